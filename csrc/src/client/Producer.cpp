#include "mofka_py/Producer.hpp"

#include "mofka_py/Error.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

namespace mofka_py {
namespace {
using Clock = std::chrono::steady_clock;

int64_t wallUs() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch()).count();
}
uint64_t randomProducerId() {
    std::random_device rd;
    uint64_t v = (uint64_t(rd()) << 32) ^ rd() ^ uint64_t(Clock::now().time_since_epoch().count());
    return v ? v : 1;
}
} // namespace

/// Shared by the futures of one batch.
struct BatchState {
    std::mutex mutex;
    std::condition_variable cv;
    int status = 0; // 0 pending, 1 stored, 2 failed
    uint32_t partition = 0;
    uint64_t baseOffset = 0;
    ErrorCode code = ErrorCode::Generic;
    std::string error;

    void finish(int st, uint64_t base, ErrorCode c, std::string msg) {
        {
            std::lock_guard<std::mutex> l(mutex);
            status = st;
            baseOffset = base;
            code = c;
            error = std::move(msg);
        }
        cv.notify_all();
    }
};

bool Future::done() const {
    if (!m_state) return false;
    std::lock_guard<std::mutex> l(m_state->mutex);
    return m_state->status != 0;
}

bool Future::waitFor(int64_t timeoutMs) const {
    if (!m_state) return false;
    std::unique_lock<std::mutex> l(m_state->mutex);
    return m_state->cv.wait_for(l, std::chrono::milliseconds(timeoutMs), [&] { return m_state->status != 0; });
}

EventId Future::wait(int64_t timeoutMs) const {
    if (!m_state) throw Error(ErrorCode::InvalidArgument, "empty future");
    std::unique_lock<std::mutex> l(m_state->mutex);
    auto ready = [&] { return m_state->status != 0; };
    if (timeoutMs < 0) m_state->cv.wait(l, ready);
    else if (!m_state->cv.wait_for(l, std::chrono::milliseconds(timeoutMs), ready))
        throw Error(ErrorCode::Timeout, "event not stored within " + std::to_string(timeoutMs) +
                                            " ms; call result() again or producer.flush() to wait longer");
    if (m_state->status == 2) throw Error(m_state->code, m_state->error);
    if (m_state->baseOffset == UINT64_MAX)
        throw Error(ErrorCode::Generic, "event was stored by an earlier attempt; its offset is not known to this producer");
    return {m_state->partition, m_state->baseOffset + m_index};
}

class ProducerImpl {
  public:
    struct OpenBatch {
        BatchBuilder builder;
        std::shared_ptr<BatchState> state;
        Clock::time_point started;
        size_t bytes = 0;
    };
    struct Ready {
        uint32_t partition;
        BatchBuilder builder;
        std::shared_ptr<BatchState> state;
        size_t bytes;
    };

    ProducerImpl(std::shared_ptr<BrokerClient> client, std::string topic, ProducerOptions opts)
    : m_client(std::move(client)), m_topic(std::move(topic)), m_opts(opts) {
        if (m_opts.batchEvents < 1 || m_opts.batchBytes < 1 || m_opts.lingerMs < 0 || m_opts.maxPendingBytes < 1)
            throw Error(ErrorCode::InvalidArgument, "batch_size, batch_bytes and max_pending_bytes must be positive, linger_ms >= 0");
        TopicInfo info = m_client->describeTopic(m_topic);
        m_partitions = info.config.partitions;
        m_maxEvent = info.config.maxEventBytes;
        m_open.resize(m_partitions);
        m_sequence.assign(m_partitions, 0);
        m_window = std::max<size_t>(1, m_client->maxInflightProduce());
        m_producerId = randomProducerId();
        m_thread = std::thread([this] { run(); });
    }
    ~ProducerImpl() {
        try { close(); } catch (...) {}
    }

    uint32_t choose(int64_t partition, const void* key, size_t keyLen) {
        if (partition >= 0) {
            if (uint64_t(partition) >= m_partitions)
                throw Error(ErrorCode::InvalidArgument, "partition " + std::to_string(partition) + " does not exist in topic '" +
                                                            m_topic + "' (it has " + std::to_string(m_partitions) + ")");
            return uint32_t(partition);
        }
        if (key && m_opts.selector == PartitionSelector::KeyHash) return partitionForKey(key, keyLen, m_partitions);
        return uint32_t(m_rr++ % m_partitions);
    }

    void checkOpen() const {
        if (m_closed) throw Error(ErrorCode::Closed, "producer is closed; create a new one with topic.producer()");
    }

    void reserve(std::unique_lock<std::mutex>& l, size_t bytes, bool block) {
        if (m_pending + bytes <= m_opts.maxPendingBytes || m_pending == 0) { m_pending += bytes; return; }
        if (!block)
            throw Error(ErrorCode::BufferFull, "producer buffer full (" + std::to_string(m_pending) +
                                                   " bytes pending); wait, flush(), or raise max_pending_bytes");
        m_spaceCv.wait(l, [&] { return m_pending + bytes <= m_opts.maxPendingBytes || m_pending == 0 || m_closed; });
        checkOpen();
        m_pending += bytes;
    }

    /// Called with m_mutex held; moves a full batch to the send queue.
    Future added(uint32_t p, size_t n) {
        OpenBatch& ob = m_open[p];
        uint32_t index = uint32_t(ob.builder.count() - 1);
        Future f(ob.state, index);
        if (ob.builder.count() >= m_opts.batchEvents || ob.builder.bytes() >= m_opts.batchBytes) {
            sealLocked(p);
            m_cv.notify_one();
        } else if (ob.builder.count() == n) {
            m_cv.notify_one(); // a new batch: the sender must watch its linger deadline
        }
        return f;
    }

    OpenBatch& prepare(uint32_t p) {
        OpenBatch& ob = m_open[p];
        if (!ob.state) {
            ob.state = std::make_shared<BatchState>();
            ob.state->partition = p;
            ob.started = Clock::now();
        }
        return ob;
    }

    Future push(const void* meta, size_t metaLen, const DataRef* data, size_t nData, int64_t partition,
                const void* key, size_t keyLen, bool block) {
        size_t dataLen = 0;
        for (size_t i = 0; i < nData; ++i) dataLen += data[i].size;
        if (metaLen + dataLen > m_maxEvent)
            throw Error(ErrorCode::EventTooLarge, "event of " + std::to_string(metaLen + dataLen) + " bytes exceeds the topic's max_event_bytes (" +
                                                      std::to_string(m_maxEvent) + "); split it or create the topic with a larger max_event_bytes");
        if (metaLen > UINT32_MAX) throw Error(ErrorCode::EventTooLarge, "metadata larger than 4 GiB");
        std::unique_lock<std::mutex> l(m_mutex);
        checkOpen();
        uint32_t p = choose(partition, key, keyLen);
        size_t bytes = metaLen + dataLen + 12;
        reserve(l, bytes, block);
        OpenBatch& ob = prepare(p);
        ob.builder.add(meta, metaLen, data, nData, wallUs());
        ob.bytes += bytes;
        return added(p, 1);
    }

    Future pushMany(const uint8_t* metas, size_t n, size_t metaLen, size_t stride, int64_t partition, bool block) {
        if (metaLen > m_maxEvent)
            throw Error(ErrorCode::EventTooLarge, "events of " + std::to_string(metaLen) + " bytes exceed max_event_bytes");
        Future last;
        size_t i = 0;
        std::unique_lock<std::mutex> l(m_mutex);
        checkOpen();
        while (i < n) {
            uint32_t p = partition >= 0 ? choose(partition, nullptr, 0) : uint32_t(m_rr++ % m_partitions);
            OpenBatch& ob = prepare(p);
            size_t room = m_opts.batchEvents - ob.builder.count();
            size_t k = std::min(n - i, std::max<size_t>(room, 1));
            if (partition < 0 && m_partitions > 1) k = std::min<size_t>(k, 1024); // spread over partitions
            size_t bytes = k * (metaLen + 12);
            reserve(l, bytes, block);
            OpenBatch& ob2 = prepare(p); // reserve may have waited while the batch was sealed
            ob2.builder.addMany(metas + i * stride, k, metaLen, stride, wallUs());
            ob2.bytes += bytes;
            last = added(p, k);
            i += k;
        }
        return last;
    }

    Future pushManyVar(const uint8_t* metas, const uint64_t* lengths, size_t n, int64_t partition, bool block) {
        // Check every event first: bad input must queue nothing, not the events before the bad one.
        for (size_t i = 0; i < n; ++i)
            if (lengths[i] > m_maxEvent || lengths[i] > UINT32_MAX)
                throw Error(ErrorCode::EventTooLarge, "event " + std::to_string(i) + " of push_many has " +
                                                          std::to_string(lengths[i]) + " bytes of metadata, more than the topic's max_event_bytes (" +
                                                          std::to_string(m_maxEvent) + "); nothing was queued");
        if (partition >= 0 && uint64_t(partition) >= m_partitions)
            throw Error(ErrorCode::InvalidArgument, "partition " + std::to_string(partition) + " does not exist in topic '" +
                                                        m_topic + "' (it has " + std::to_string(m_partitions) + ")");
        Future last;
        size_t pos = 0;
        for (size_t i = 0; i < n; ++i) {
            last = push(metas + pos, lengths[i], nullptr, 0, partition, nullptr, 0, block);
            pos += lengths[i];
        }
        return last;
    }

    void sealLocked(uint32_t p) {
        OpenBatch& ob = m_open[p];
        if (ob.builder.empty()) return;
        m_ready.push_back({p, std::move(ob.builder), std::move(ob.state), ob.bytes});
        ob.builder = BatchBuilder();
        ob.state.reset();
        ob.bytes = 0;
        ++m_inflight;
    }

    /// A batch handed to the transport, reported in order once its outcome is known.
    struct Sending {
        Ready r;
        SealedBatch batch;
        bool done = false;
        AppendResult result{};
        std::exception_ptr error;
    };

    static bool connectionLost(const std::exception_ptr& e) {
        if (!e) return false;
        try {
            std::rethrow_exception(e);
        } catch (const Error& err) {
            return err.code() == ErrorCode::Connection;
        } catch (...) {
            return false;
        }
    }

    /// Report one batch's outcome to its futures and release its memory.
    void complete(Sending& s) {
        int status = 1;
        ErrorCode code = ErrorCode::Generic;
        std::string msg;
        if (s.error) {
            status = 2;
            try {
                std::rethrow_exception(s.error);
            } catch (const Error& e) {
                code = e.code(); msg = e.what();
            } catch (const std::exception& e) {
                msg = e.what();
            } catch (...) {
                msg = "unknown error";
            }
        }
        uint32_t count = s.batch.count;
        s.batch = SealedBatch(); // release user buffers before reporting success
        s.r.state->finish(status, s.result.baseOffset, code, msg);
        std::lock_guard<std::mutex> l(m_mutex);
        if (status == 2 && m_firstError.empty()) { m_firstError = msg; m_firstErrorCode = code; }
        if (status == 1) m_appended += count;
        m_pending -= s.r.bytes;
        --m_inflight;
        m_spaceCv.notify_all();
        m_doneCv.notify_all();
    }

    /// The connection went away under batches in flight: once all of them have an outcome,
    /// resend the failed ones in order with the synchronous call, which reconnects with backoff;
    /// the broker drops those it had already stored (same producer id and sequence).
    void recover(std::unique_lock<std::mutex>& l) {
        m_cv.wait(l, [&] {
            if (m_dispatching) return false;
            for (auto& s : m_sending)
                if (!s->done) return false;
            return true;
        });
        m_dispatching = true; // nobody sends a later batch before these are resent
        std::deque<std::shared_ptr<Sending>> all;
        all.swap(m_sending);
        l.unlock();
        for (auto& s : all) {
            if (connectionLost(s->error)) {
                try {
                    s->result = m_client->produce(m_topic, s->r.partition, s->batch);
                    s->error = nullptr;
                } catch (...) {
                    s->error = std::current_exception();
                }
            }
            complete(*s);
        }
        l.lock();
        m_dispatching = false;
        m_cv.notify_all();
    }

    /// Hands the oldest ready batch to the transport if the window has room and no other thread
    /// is handing one over (batches must reach the broker in sequence order). Called with @p l
    /// held, by the sender thread or by flush(); true if a batch was sent.
    bool dispatchOne(std::unique_lock<std::mutex>& l) {
        if (m_dispatching || m_ready.empty() || m_sending.size() >= m_window) return false;
        m_dispatching = true;
        auto s = std::make_shared<Sending>();
        s->r = std::move(m_ready.front());
        m_ready.pop_front();
        uint64_t seq = m_sequence[s->r.partition]++;
        m_sending.push_back(s);
        l.unlock();
        std::exception_ptr failed;
        try {
            s->batch = s->r.builder.seal(m_producerId, seq);
            m_client->produceAsync(m_topic, s->r.partition, s->batch,
                                   [this, s](const AppendResult& res, std::exception_ptr err) {
                                       std::lock_guard<std::mutex> g(m_mutex);
                                       s->result = res;
                                       s->error = err;
                                       s->done = true;
                                       m_cv.notify_all();
                                   });
        } catch (...) {
            failed = std::current_exception();
        }
        l.lock();
        if (failed && !s->done) {
            s->error = failed;
            s->done = true;
        }
        m_dispatching = false;
        m_cv.notify_all();
        return true;
    }

    void run() {
        std::unique_lock<std::mutex> l(m_mutex);
        for (;;) {
            // Seal batches whose linger time is up.
            auto now = Clock::now();
            auto linger = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(m_opts.lingerMs));
            Clock::time_point next = Clock::time_point::max();
            for (uint32_t p = 0; p < m_partitions; ++p) {
                OpenBatch& ob = m_open[p];
                if (ob.builder.empty()) continue;
                if (now - ob.started >= linger || m_closed) sealLocked(p);
                else next = std::min(next, ob.started + linger);
            }
            // Report finished batches in the order they were sent.
            if (!m_sending.empty() && m_sending.front()->done) {
                if (connectionLost(m_sending.front()->error)) {
                    recover(l);
                } else {
                    auto s = m_sending.front();
                    m_sending.pop_front();
                    l.unlock();
                    complete(*s);
                    l.lock();
                }
                continue;
            }
            // Keep up to m_window batches in flight; they reach the broker in this order.
            if (dispatchOne(l)) continue;
            if (m_ready.empty() && m_sending.empty() && m_closed) break;
            if (next == Clock::time_point::max()) m_cv.wait(l);
            else m_cv.wait_until(l, next);
        }
        m_doneCv.notify_all();
    }

    void flush(int64_t timeoutMs) {
        std::unique_lock<std::mutex> l(m_mutex);
        for (uint32_t p = 0; p < m_partitions; ++p) sealLocked(p);
        // Send from this thread rather than waking the sender: one thread hand-off less per flush.
        while (dispatchOne(l)) {}
        m_cv.notify_one();
        auto done = [&] { return m_inflight == 0; };
        if (timeoutMs < 0) m_doneCv.wait(l, done);
        else if (!m_doneCv.wait_for(l, std::chrono::milliseconds(timeoutMs), done))
            throw Error(ErrorCode::Timeout, "flush did not finish within " + std::to_string(timeoutMs) + " ms (" +
                                                std::to_string(m_pending) + " bytes still pending)");
        if (!m_firstError.empty()) {
            std::string e = m_firstError;
            m_firstError.clear();
            throw Error(m_firstErrorCode, "some events were not stored: " + e);
        }
    }

    void close() {
        {
            std::unique_lock<std::mutex> l(m_mutex);
            if (m_closed) return;
            m_closed = true;
            for (uint32_t p = 0; p < m_partitions; ++p) sealLocked(p);
        }
        m_cv.notify_all();
        m_spaceCv.notify_all();
        if (m_thread.joinable()) m_thread.join();
    }

    bool wouldBlock(size_t bytes) const {
        std::lock_guard<std::mutex> l(m_mutex);
        return !(m_pending + bytes <= m_opts.maxPendingBytes || m_pending == 0);
    }
    bool waitForSpace(size_t bytes, int64_t timeoutMs) const {
        std::unique_lock<std::mutex> l(m_mutex);
        return m_spaceCv.wait_for(l, std::chrono::milliseconds(timeoutMs),
                                  [&] { return m_pending + bytes <= m_opts.maxPendingBytes || m_pending == 0 || m_closed; });
    }
    size_t pendingBytes() const { std::lock_guard<std::mutex> l(m_mutex); return m_pending; }
    uint64_t appended() const { std::lock_guard<std::mutex> l(m_mutex); return m_appended; }
    uint32_t partitions() const { return m_partitions; }

  private:
    std::shared_ptr<BrokerClient> m_client;
    std::string m_topic;
    ProducerOptions m_opts;
    uint32_t m_partitions = 1;
    uint64_t m_maxEvent = 0;
    uint64_t m_producerId = 0;
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    mutable std::condition_variable m_spaceCv;
    std::condition_variable m_doneCv;
    std::vector<OpenBatch> m_open;
    std::deque<Ready> m_ready;
    std::deque<std::shared_ptr<Sending>> m_sending;
    std::vector<uint64_t> m_sequence;
    uint64_t m_rr = 0;
    size_t m_pending = 0;
    size_t m_inflight = 0;
    uint64_t m_appended = 0;
    bool m_closed = false;
    bool m_dispatching = false; ///< a thread is handing a batch to the transport (or resending after a lost connection)
    size_t m_window = 1;        ///< batches in flight at most
    std::string m_firstError;
    ErrorCode m_firstErrorCode = ErrorCode::Generic;
    std::thread m_thread;
};

Producer::Producer(std::shared_ptr<BrokerClient> client, const std::string& topic, const ProducerOptions& options)
: m_impl(std::make_shared<ProducerImpl>(std::move(client), topic, options)) {}
Producer::~Producer() = default;
Future Producer::push(const void* meta, size_t metaLen, const DataRef* data, size_t nData, int64_t partition,
                      const void* key, size_t keyLen, bool block) {
    return m_impl->push(meta, metaLen, data, nData, partition, key, keyLen, block);
}
Future Producer::pushMany(const uint8_t* metas, size_t n, size_t metaLen, size_t stride, int64_t partition, bool block) {
    return m_impl->pushMany(metas, n, metaLen, stride, partition, block);
}
Future Producer::pushManyVar(const uint8_t* metas, const uint64_t* lengths, size_t n, int64_t partition, bool block) {
    return m_impl->pushManyVar(metas, lengths, n, partition, block);
}
bool Producer::wouldBlock(size_t bytes) const { return m_impl->wouldBlock(bytes); }
bool Producer::waitForSpace(size_t bytes, int64_t timeoutMs) const { return m_impl->waitForSpace(bytes, timeoutMs); }
void Producer::flush(int64_t timeoutMs) { m_impl->flush(timeoutMs); }
void Producer::close() { m_impl->close(); }
size_t Producer::pendingBytes() const { return m_impl->pendingBytes(); }
uint64_t Producer::appendedEvents() const { return m_impl->appended(); }
uint32_t Producer::partitions() const { return m_impl->partitions(); }

} // namespace mofka_py
