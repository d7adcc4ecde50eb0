#include "mofka_py/Producer.hpp"

#include "mofka_py/Error.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace mofka_py {
namespace {
using Clock = std::chrono::steady_clock;

int64_t wallUs() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
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
    if (timeoutMs < 0)
        m_state->cv.wait(l, ready);
    else if (!m_state->cv.wait_for(l, std::chrono::milliseconds(timeoutMs), ready))
        throw Error(ErrorCode::Timeout, "event not stored within " + std::to_string(timeoutMs) +
                                            " ms; call result() again or producer.flush() to wait longer");
    if (m_state->status == 2) throw Error(m_state->code, m_state->error);
    if (m_state->baseOffset == UINT64_MAX)
        throw Error(ErrorCode::Generic,
                    "event was stored by an earlier attempt; its offset is not known to this producer");
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
        uint32_t events;
    };

    ProducerImpl(std::shared_ptr<BrokerClient> client, std::string topic, ProducerOptions opts)
    : m_client(std::move(client)), m_topic(std::move(topic)), m_opts(opts) {
        if (m_opts.batchSize < 1 || m_opts.batchBytes < 1 || m_opts.lingerMs < 0 || m_opts.maxPendingBytes < 1)
            throw Error(ErrorCode::InvalidArgument,
                        "batch_size, batch_bytes and max_pending_bytes must be positive, linger_ms >= 0");
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
        try {
            close();
        } catch (...) {}
    }

    uint32_t choose(int64_t partition, const void* key, size_t keyLen) {
        if (partition >= 0) {
            if (uint64_t(partition) >= m_partitions)
                throw Error(ErrorCode::InvalidArgument, "partition " + std::to_string(partition) +
                                                            " does not exist in topic '" + m_topic + "' (it has " +
                                                            std::to_string(m_partitions) + ")");
            return uint32_t(partition);
        }
        if (key && m_opts.selector == PartitionSelector::KeyHash) return partitionForKey(key, keyLen, m_partitions);
        return uint32_t(m_rr++ % m_partitions);
    }

    void checkOpen() const {
        if (m_closed) throw Error(ErrorCode::Closed, "producer is closed; create a new one with topic.producer()");
    }

    /// A partition where one of this producer's batches failed takes none of its later events
    /// (no gap in its stream) until reset().
    void checkPartitionLocked(uint32_t p) const {
        auto it = m_failed.find(p);
        if (it == m_failed.end()) return;
        throw Error(it->second.first, refusedMessage(p, it->second.second));
    }

    std::string refusedMessage(uint32_t p, const std::string& cause) const {
        return "partition " + std::to_string(p) + " of topic '" + m_topic +
               "' takes no more events from this producer: " + "an earlier batch to it was not stored (" + cause +
               "). Later events were refused so that the partition "
               "holds no gap in this producer's stream; once the cause is fixed, call producer.reset() (or open a new "
               "producer) to continue";
    }

    void reserve(std::unique_lock<std::mutex>& l, size_t bytes, bool block) {
        if (m_pending + bytes <= m_opts.maxPendingBytes || m_pending == 0) {
            m_pending += bytes;
            return;
        }
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
        if (ob.builder.count() >= m_opts.batchSize || ob.builder.bytes() >= m_opts.batchBytes) {
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

    Future push(const void* meta, size_t metaLen, const DataRef* data, size_t nData, int64_t partition, const void* key,
                size_t keyLen, bool block) {
        size_t dataLen = 0;
        for (size_t i = 0; i < nData; ++i) dataLen += data[i].size;
        if (metaLen + dataLen > m_maxEvent)
            throw Error(ErrorCode::EventTooLarge, "event of " + std::to_string(metaLen + dataLen) +
                                                      " bytes exceeds the topic's max_event_bytes (" +
                                                      std::to_string(m_maxEvent) +
                                                      "); split it or create the topic with a larger max_event_bytes");
        if (metaLen > UINT32_MAX) throw Error(ErrorCode::EventTooLarge, "metadata larger than 4 GiB");
        std::unique_lock<std::mutex> l(m_mutex);
        checkOpen();
        uint32_t p = choose(partition, key, keyLen);
        checkPartitionLocked(p);
        size_t bytes = metaLen + dataLen + 12;
        reserve(l, bytes, block);
        OpenBatch& ob = prepare(p);
        ob.builder.add(meta, metaLen, data, nData, wallUs());
        ob.bytes += bytes;
        return added(p, 1);
    }

    Future pushMany(const uint8_t* metas, size_t n, size_t metaLen, size_t stride, int64_t partition, bool block) {
        if (metaLen > m_maxEvent)
            throw Error(ErrorCode::EventTooLarge,
                        "events of " + std::to_string(metaLen) + " bytes exceed max_event_bytes");
        Future last;
        size_t i = 0;
        std::unique_lock<std::mutex> l(m_mutex);
        checkOpen();
        while (i < n) {
            uint32_t p = partition >= 0 ? choose(partition, nullptr, 0) : uint32_t(m_rr++ % m_partitions);
            checkPartitionLocked(p);
            OpenBatch& ob = prepare(p);
            size_t room = m_opts.batchSize - ob.builder.count();
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
                throw Error(ErrorCode::EventTooLarge,
                            "event " + std::to_string(i) + " of push_many has " + std::to_string(lengths[i]) +
                                " bytes of metadata, more than the topic's max_event_bytes (" +
                                std::to_string(m_maxEvent) + "); nothing was queued");
        if (partition >= 0 && uint64_t(partition) >= m_partitions)
            throw Error(ErrorCode::InvalidArgument, "partition " + std::to_string(partition) +
                                                        " does not exist in topic '" + m_topic + "' (it has " +
                                                        std::to_string(m_partitions) + ")");
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
        uint32_t events = uint32_t(ob.builder.count());
        m_ready.push_back({p, std::move(ob.builder), std::move(ob.state), ob.bytes, events});
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
        bool reported = false; ///< complete() ran (its futures have the outcome)
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
                code = e.code();
                msg = e.what();
            } catch (const std::exception& e) {
                msg = e.what();
            } catch (...) {
                msg = "unknown error";
            }
        }
        const uint32_t p = s.r.partition;
        s.batch = SealedBatch(); // release user buffers before reporting success
        std::vector<Ready> refused;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            if (status == 2 && m_giveUp && !m_failed.count(p)) {
                // Failed because close() stopped waiting: say so, with what kept it from being stored.
                code = m_giveUpCode;
                msg = "not stored: the producer was closed before it could be (" + m_giveUpCause + ")";
            }
            if (status == 2) {
                auto f = m_failed.find(p);
                if (f == m_failed.end()) {
                    // The first failure on this partition: it fails every later batch of it (those
                    // already on their way are refused by the broker as out of sequence).
                    m_failed[p] = {code, msg};
                    refused = takeQueuedLocked(p);
                } else {
                    code = f->second.first; // a later batch fails with the first cause, not the gap it left
                    msg = refusedMessage(p, f->second.second);
                }
                noteFailureLocked(p, s.r.events, code, msg);
            } else {
                m_appended += s.r.events;
            }
            m_pending -= s.r.bytes;
            --m_inflight;
            s.reported = true;
        }
        s.r.state->finish(status, s.result.baseOffset, code, msg);
        failRefused(refused, p);
        std::lock_guard<std::mutex> l(m_mutex);
        m_spaceCv.notify_all();
        m_doneCv.notify_all();
    }

    /// Remove partition @p p's batches that were not sent yet (sealed or still open).
    std::vector<Ready> takeQueuedLocked(uint32_t p) {
        std::vector<Ready> out;
        for (auto it = m_ready.begin(); it != m_ready.end();) {
            if (it->partition == p) {
                out.push_back(std::move(*it));
                it = m_ready.erase(it);
            } else {
                ++it;
            }
        }
        OpenBatch& ob = m_open[p];
        if (!ob.builder.empty()) {
            uint32_t events = uint32_t(ob.builder.count());
            out.push_back({p, std::move(ob.builder), std::move(ob.state), ob.bytes, events});
            ob.builder = BatchBuilder();
            ob.state.reset();
            ob.bytes = 0;
            ++m_inflight; // as if sealed; failRefused() settles it
        }
        return out;
    }

    /// Fail batches of a partition that will not be sent; their futures get the partition's cause.
    void failRefused(std::vector<Ready>& refused, uint32_t p) {
        if (refused.empty()) return;
        ErrorCode code;
        std::string msg;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            auto f = m_failed.find(p);
            code = f->second.first;
            msg = refusedMessage(p, f->second.second);
            for (auto& r : refused) {
                noteFailureLocked(p, r.events, code, msg);
                m_pending -= r.bytes;
                --m_inflight;
            }
        }
        for (auto& r : refused) r.state->finish(2, 0, code, msg);
    }

    /// Count events that were not stored, for the next flush()/close() to report.
    void noteFailureLocked(uint32_t p, uint32_t events, ErrorCode code, const std::string& msg) {
        if (m_unstored.events == 0) {
            m_unstored.code = code;
            m_unstored.cause = msg;
        }
        m_unstored.events += events;
        m_unstored.partitions.insert(p);
    }

    /// The failures not yet reported, as one error (and forget them).
    Error takeUnstoredLocked(const std::string& when) {
        std::string parts;
        for (uint32_t p : m_unstored.partitions) parts += (parts.empty() ? "" : ", ") + std::to_string(p);
        Error e(m_unstored.code, when + ": " + std::to_string(m_unstored.events) + " event(s) to topic '" + m_topic +
                                     "' (partition" + (m_unstored.partitions.size() > 1 ? "s " : " ") + parts +
                                     ") were not stored: " + m_unstored.cause);
        m_unstored = Unstored{};
        return e;
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
        m_resending.assign(all.begin(), all.end()); // still outstanding while resent (see outstandingLocked)
        l.unlock();
        for (auto& s : all) {
            if (connectionLost(s->error)) {
                try {
                    s->result = m_client->produce(m_topic, s->r.partition, s->batch, m_cancel);
                    s->error = nullptr;
                } catch (...) {
                    s->error = std::current_exception();
                }
            }
            complete(*s);
        }
        l.lock();
        m_resending.clear();
        m_dispatching = false;
        m_cv.notify_all();
    }

    /// Hands the oldest ready batch to the transport if the window has room and no other thread
    /// is handing one over (batches must reach the broker in sequence order). Called with @p l
    /// held, by the sender thread or by flush(); true if a batch was sent.
    bool dispatchOne(std::unique_lock<std::mutex>& l) {
        if (m_dispatching || m_ready.empty() || m_sending.size() >= m_window) return false;
        if (m_failed.count(m_ready.front().partition) || m_giveUp) {
            // Not sent: its partition failed, or the producer stopped waiting (close with a timeout).
            auto s = std::make_shared<Sending>();
            s->r = std::move(m_ready.front());
            m_ready.pop_front();
            std::string why =
                m_giveUp ? "not sent: the producer was closed before it could be stored (" + m_giveUpCause + ")"
                         : refusedMessage(s->r.partition, m_failed[s->r.partition].second);
            ErrorCode code = m_giveUp ? m_giveUpCode : m_failed[s->r.partition].first;
            s->error = std::make_exception_ptr(Error(code, why));
            s->done = true;
            m_sending.push_back(s);
            m_cv.notify_all();
            return true;
        }
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
            auto linger =
                std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(m_opts.lingerMs));
            Clock::time_point next = Clock::time_point::max();
            for (uint32_t p = 0; p < m_partitions; ++p) {
                OpenBatch& ob = m_open[p];
                if (ob.builder.empty()) continue;
                if (now - ob.started >= linger || m_closed)
                    sealLocked(p);
                else
                    next = std::min(next, ob.started + linger);
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
            if (next == Clock::time_point::max())
                m_cv.wait(l);
            else
                m_cv.wait_until(l, next);
        }
        m_doneCv.notify_all();
    }

    /// Events and partitions not stored yet (sealed, in flight, or still open).
    std::pair<uint64_t, std::string> outstandingLocked() const {
        uint64_t n = 0;
        std::set<uint32_t> parts;
        for (auto& r : m_ready) {
            n += r.events;
            parts.insert(r.partition);
        }
        for (auto& s : m_sending)
            if (!s->done || s->error) {
                n += s->r.events;
                parts.insert(s->r.partition);
            }
        for (auto& s : m_resending)
            if (!s->reported) {
                n += s->r.events;
                parts.insert(s->r.partition);
            }
        for (uint32_t p = 0; p < m_partitions; ++p)
            if (!m_open[p].builder.empty()) {
                n += m_open[p].builder.count();
                parts.insert(p);
            }
        std::string list;
        for (uint32_t p : parts) list += (list.empty() ? "" : ", ") + std::to_string(p);
        return {n, (parts.size() > 1 ? "partitions " : "partition ") + list};
    }

    /// Why nothing gets stored, as far as the transport knows.
    std::string stuckCause() const {
        std::string problem = m_client->connectionProblem();
        return problem.empty() ? "the broker has not acknowledged them yet" : problem;
    }

    void flush(int64_t timeoutMs) {
        std::unique_lock<std::mutex> l(m_mutex);
        for (uint32_t p = 0; p < m_partitions; ++p) sealLocked(p);
        // Send from this thread rather than waking the sender: one thread hand-off less per flush.
        while (dispatchOne(l)) {}
        m_cv.notify_one();
        auto done = [&] { return m_inflight == 0; };
        if (timeoutMs < 0)
            m_doneCv.wait(l, done);
        else if (!m_doneCv.wait_for(l, std::chrono::milliseconds(timeoutMs), done)) {
            auto [n, parts] = outstandingLocked();
            l.unlock();
            std::string cause = stuckCause();
            throw Error(ErrorCode::Timeout,
                        "flush(timeout=" + seconds(timeoutMs) + "): " + std::to_string(n) + " event(s) to topic '" +
                            m_topic + "' (" + parts + ") not stored yet: " + cause +
                            ". They stay queued: flush again to keep waiting, or close(timeout=...) "
                            "to give up on them");
        }
        if (m_unstored.events) throw takeUnstoredLocked("flush");
    }

    static std::string seconds(int64_t ms) {
        std::string s = std::to_string(ms / 1000);
        if (ms % 1000) {
            std::string frac = std::to_string(1000 + ms % 1000).substr(1);
            while (!frac.empty() && frac.back() == '0') frac.pop_back();
            s += "." + frac;
        }
        return s + " s";
    }

    /// Flush and stop. Without a timeout it waits until every event is stored or failed (a
    /// transport retrying a lost connection gives up after its reconnect timeout). With one, past
    /// it the producer stops waiting: events not stored fail with the cause. Either way, events
    /// that were not stored and not yet reported by flush() are reported here, as an error.
    void close(int64_t timeoutMs = -1) {
        std::unique_lock<std::mutex> l(m_mutex);
        if (m_closed) return;
        m_closed = true;
        for (uint32_t p = 0; p < m_partitions; ++p) sealLocked(p);
        m_cv.notify_all();
        m_spaceCv.notify_all();
        auto done = [&] { return m_inflight == 0; };
        if (timeoutMs >= 0 && !m_doneCv.wait_for(l, std::chrono::milliseconds(timeoutMs), done)) {
            l.unlock();
            std::string cause = stuckCause();
            l.lock();
            m_giveUp = true;
            m_giveUpCode = m_client->connectionProblem().empty() ? ErrorCode::Timeout : ErrorCode::Connection;
            m_giveUpCause = "close(timeout=" + seconds(timeoutMs) + ") passed: " + cause;
            m_cancel.cancelNow(); // a transport retrying a lost connection stops now
            m_cv.notify_all();
        }
        l.unlock();
        if (m_thread.joinable()) m_thread.join();
        l.lock();
        if (m_unstored.events) throw takeUnstoredLocked("close");
    }

    /// Continue after a failure: partitions refused since a failed batch take events again,
    /// under a new producer id (its sequence numbers start afresh, so the broker does not see
    /// the failed batch as a gap). Waits for batches in flight to finish first.
    void reset() {
        std::unique_lock<std::mutex> l(m_mutex);
        checkOpen();
        m_cv.notify_all();
        m_doneCv.wait(l, [&] { return m_sending.empty() && m_ready.empty(); });
        m_failed.clear();
        m_producerId = randomProducerId();
        m_sequence.assign(m_partitions, 0);
        m_unstored = Unstored{};
    }

    bool wouldBlock(size_t bytes) const {
        std::lock_guard<std::mutex> l(m_mutex);
        return !(m_pending + bytes <= m_opts.maxPendingBytes || m_pending == 0);
    }
    bool waitForSpace(size_t bytes, int64_t timeoutMs) const {
        std::unique_lock<std::mutex> l(m_mutex);
        return m_spaceCv.wait_for(l, std::chrono::milliseconds(timeoutMs), [&] {
            return m_pending + bytes <= m_opts.maxPendingBytes || m_pending == 0 || m_closed;
        });
    }
    size_t pendingBytes() const {
        std::lock_guard<std::mutex> l(m_mutex);
        return m_pending;
    }
    uint64_t appended() const {
        std::lock_guard<std::mutex> l(m_mutex);
        return m_appended;
    }
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
    std::vector<std::shared_ptr<Sending>> m_resending; ///< being resent after a lost connection (recover())
    std::vector<uint64_t> m_sequence;
    uint64_t m_rr = 0;
    size_t m_pending = 0;
    size_t m_inflight = 0;
    uint64_t m_appended = 0;
    bool m_closed = false;
    bool m_dispatching = false; ///< a thread is handing a batch to the transport (or resending after a lost connection)
    size_t m_window = 1; ///< batches in flight at most
    /// Events not stored since the last report by flush()/close(): how many, where, the first cause.
    struct Unstored {
        uint64_t events = 0;
        std::set<uint32_t> partitions;
        ErrorCode code = ErrorCode::Generic;
        std::string cause;
    } m_unstored;
    std::map<uint32_t, std::pair<ErrorCode, std::string>> m_failed; ///< partition -> first failure (see reset())
    CancelToken m_cancel; ///< set when close() stops waiting: transport retries give up
    bool m_giveUp = false; ///< close() timed out: queued batches fail instead of being sent
    ErrorCode m_giveUpCode = ErrorCode::Timeout;
    std::string m_giveUpCause;
    std::thread m_thread;
};

Producer::Producer(std::shared_ptr<BrokerClient> client, const std::string& topic, const ProducerOptions& options)
: m_impl(std::make_shared<ProducerImpl>(std::move(client), topic, options)) {}
Producer::~Producer() = default;
Future Producer::push(const void* meta, size_t metaLen, const DataRef* data, size_t nData, int64_t partition,
                      const void* key, size_t keyLen, bool block) {
    return m_impl->push(meta, metaLen, data, nData, partition, key, keyLen, block);
}
Future Producer::pushMany(const uint8_t* metas, size_t n, size_t metaLen, size_t stride, int64_t partition,
                          bool block) {
    return m_impl->pushMany(metas, n, metaLen, stride, partition, block);
}
Future Producer::pushManyVar(const uint8_t* metas, const uint64_t* lengths, size_t n, int64_t partition, bool block) {
    return m_impl->pushManyVar(metas, lengths, n, partition, block);
}
bool Producer::wouldBlock(size_t bytes) const { return m_impl->wouldBlock(bytes); }
bool Producer::waitForSpace(size_t bytes, int64_t timeoutMs) const { return m_impl->waitForSpace(bytes, timeoutMs); }
void Producer::flush(int64_t timeoutMs) { m_impl->flush(timeoutMs); }
void Producer::close(int64_t timeoutMs) { m_impl->close(timeoutMs); }
void Producer::reset() { m_impl->reset(); }
size_t Producer::pendingBytes() const { return m_impl->pendingBytes(); }
uint64_t Producer::appendedEvents() const { return m_impl->appended(); }
uint32_t Producer::partitions() const { return m_impl->partitions(); }

uint32_t partitionForKey(const void* key, size_t size, uint32_t partitions) {
    // murmur2 as used by Kafka's default partitioner (seed 0x9747b28c).
    const uint32_t m = 0x5bd1e995;
    const int r = 24;
    auto data = static_cast<const uint8_t*>(key);
    uint32_t h = 0x9747b28cu ^ uint32_t(size);
    size_t n4 = size / 4;
    for (size_t i = 0; i < n4; ++i) {
        uint32_t k;
        std::memcpy(&k, data + 4 * i, 4);
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const uint8_t* tail = data + 4 * n4;
    switch (size & 3) {
    case 3: h ^= uint32_t(tail[2]) << 16; [[fallthrough]];
    case 2: h ^= uint32_t(tail[1]) << 8; [[fallthrough]];
    case 1: h ^= tail[0]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (h & 0x7fffffffu) % partitions;
}

} // namespace mofka_py
