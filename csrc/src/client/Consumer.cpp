#include "mofka_py/Consumer.hpp"

#include "mofka_py/Error.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace mofka_py {
namespace {
using Clock = std::chrono::steady_clock;
}

class ConsumerImpl {
  public:
    ConsumerImpl(std::shared_ptr<BrokerClient> client, std::string topic, ConsumerOptions opts)
    : m_client(std::move(client)), m_topic(std::move(topic)), m_opts(std::move(opts)) {
        if (m_opts.prefetchBytes < 1 || m_opts.fetchBytes < 1)
            throw Error(ErrorCode::InvalidArgument, "prefetch_bytes and fetch_bytes must be positive");
        m_spindown = std::chrono::microseconds(m_client->spindownUs());
        TopicInfo info = m_client->describeTopic(m_topic);
        m_partitionCount = info.config.partitions;
        if (m_opts.group.empty() && !m_opts.memberId.empty())
            throw Error(ErrorCode::InvalidArgument, "member_id needs a group: use topic.consumer(group='name', member_id=...)");
        if (!m_opts.group.empty()) {
            if (!m_opts.partitions.empty())
                throw Error(ErrorCode::InvalidArgument, "give either group= or partitions=, not both: a group assigns partitions itself");
            m_member = m_client->joinGroup(m_opts.group, m_topic, m_opts.memberId);
            Assignment a = m_client->assignment(m_opts.group, m_topic, m_member);
            rebalance(a);
            m_pending = a.pending;
        } else {
            std::vector<uint32_t> parts = m_opts.partitions;
            for (uint32_t p : parts)
                if (p >= m_partitionCount)
                    throw Error(ErrorCode::InvalidArgument, "partition " + std::to_string(p) + " does not exist in topic '" +
                                                                m_topic + "' (it has " + std::to_string(m_partitionCount) + ")");
            if (parts.empty())
                for (uint32_t p = 0; p < m_partitionCount; ++p) parts.push_back(p);
            std::sort(parts.begin(), parts.end());
            parts.erase(std::unique(parts.begin(), parts.end()), parts.end());
            rebalance(Assignment{0, parts});
        }
        m_thread = std::thread([this] { run(); });
    }
    ~ConsumerImpl() {
        try { close(); } catch (...) {}
    }

    uint64_t initialPosition(uint32_t p) {
        switch (m_opts.start) {
        case StartPosition::Offset: return m_opts.startOffset;
        case StartPosition::Latest: return m_client->offsets(m_topic, p).second;
        case StartPosition::Committed:
            if (!m_opts.group.empty())
                if (auto c = m_client->committed(m_opts.group, m_topic, p)) return *c;
            [[fallthrough]];
        case StartPosition::Earliest: return m_client->offsets(m_topic, p).first;
        }
        return 0;
    }

    void rebalance(const Assignment& a) {
        std::vector<uint32_t> lost;
        std::map<uint32_t, uint64_t> fresh;
        {
            std::unique_lock<std::mutex> l(m_mutex);
            std::set<uint32_t> next(a.partitions.begin(), a.partitions.end());
            for (uint32_t p : m_assigned)
                if (!next.count(p)) lost.push_back(p);
            for (uint32_t p : a.partitions)
                if (!m_delivered.count(p)) fresh[p] = 0;
            if (!lost.empty()) {
                // Hand out nothing more from partitions that are leaving, and give the events
                // already handed out a moment to be acknowledged, so the next owner starts
                // right after them instead of seeing them again.
                std::set<uint32_t> gone(lost.begin(), lost.end());
                for (auto it = m_queue.begin(); it != m_queue.end();) {
                    if (gone.count(it->partition)) { m_queueBytes -= it->view->size(); it = m_queue.erase(it); }
                    else ++it;
                }
                std::vector<uint32_t> kept;
                for (uint32_t p : m_assigned)
                    if (!gone.count(p)) kept.push_back(p);
                m_assigned = kept;
                m_ackCv.wait_for(l, std::chrono::milliseconds(kRevokeGraceMs), [&] {
                    if (m_stop) return true;
                    for (uint32_t p : lost)
                        if (m_acked[p] < m_delivered[p]) return false;
                    return true;
                });
            }
        }
        if (!lost.empty()) {
            commitPartitions(lost);
            m_client->releasePartitions(m_opts.group, m_topic, m_member, lost);
        }
        for (auto& kv : fresh) kv.second = initialPosition(kv.first);
        std::lock_guard<std::mutex> l(m_mutex);
        for (uint32_t p : lost) { m_delivered.erase(p); m_acked.erase(p); m_fetchPos.erase(p); m_sentCommit.erase(p); }
        m_queue.clear();
        m_queueBytes = 0;
        for (auto& kv : m_delivered) m_fetchPos[kv.first] = kv.second;
        for (auto& kv : fresh) { m_delivered[kv.first] = m_fetchPos[kv.first] = kv.second; m_acked[kv.first] = kv.second; }
        m_assigned = a.partitions;
        m_generation = a.generation;
        m_atEnd = false;
        m_spaceCv.notify_all();
    }

    void run() {
        auto lastCommit = Clock::now();
        Clock::time_point lastHeartbeat{};
        uint64_t version = UINT64_MAX; // the topic's change counter as last seen; unknown at first
        while (!m_stop) {
            try {
                // Assignment doubles as the heartbeat; over a network it is a round trip, so not every batch.
                if (!m_opts.group.empty() && Clock::now() - lastHeartbeat >= std::chrono::milliseconds(kHeartbeatMs)) {
                    Assignment a = m_client->assignment(m_opts.group, m_topic, m_member);
                    if (a.generation != m_generation) rebalance(a);
                    m_pending = a.pending;
                    lastHeartbeat = Clock::now();
                }
                if (!m_opts.group.empty() && m_opts.autoCommitMs > 0 &&
                    Clock::now() - lastCommit >= std::chrono::milliseconds(m_opts.autoCommitMs)) {
                    commitAll();
                    lastCommit = Clock::now();
                }
                {
                    std::unique_lock<std::mutex> l(m_mutex);
                    if (m_queueBytes >= m_opts.prefetchBytes) {
                        m_spaceCv.wait_for(l, std::chrono::milliseconds(100));
                        continue;
                    }
                }
                // Learn the version before fetching, so an append after the fetch always wakes the wait below.
                if (version == UINT64_MAX) version = m_client->waitTopicChange(m_topic, UINT64_MAX, 0);
                if (m_client->longPollFetch() && !m_atEnd && partitions().size() == 1) {
                    // One partition over a network: the fetch itself waits, and returns the events.
                    if (fetchOnce(std::min<int64_t>(100, kHeartbeatMs * 2))) continue;
                    checkEnd();
                    if (!m_atEnd) continue;
                }
                if (fetchOnce()) continue;
                checkEnd();
                version = m_client->waitTopicChange(m_topic, version, std::min<int64_t>(100, kHeartbeatMs * 2));
            } catch (const Error& e) {
                std::lock_guard<std::mutex> l(m_mutex);
                if (m_stop) break;
                m_error = e.what();
                m_errorCode = e.code();
                m_dataCv.notify_all();
                break;
            }
        }
    }

    /// Fetch from every owned partition; with one partition, @p waitMs lets the fetch wait for data.
    bool fetchOnce(int64_t waitMs = 0) {
        std::vector<std::pair<uint32_t, uint64_t>> todo;
        uint64_t gen;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            for (uint32_t p : m_assigned) todo.emplace_back(p, m_fetchPos[p]);
            gen = m_generation;
        }
        bool got = false;
        size_t budget = m_opts.fetchBytes;
        for (auto& [p, pos] : todo) {
            auto batches = m_client->fetch(m_topic, p, pos, budget, todo.size() == 1 ? waitMs : 0);
            if (batches.empty()) continue;
            std::lock_guard<std::mutex> l(m_mutex);
            if (gen != m_generation || m_fetchPos[p] != pos) return true; // a rebalance moved things
            for (auto& sb : batches) {
                auto view = std::make_shared<BatchView>(sb.data, sb.size);
                uint64_t first = pos > sb.baseOffset ? pos - sb.baseOffset : 0;
                if (first >= sb.count) continue;
                m_queue.push_back({p, uint32_t(first), sb.count, view, sb.owner});
                m_queueBytes += sb.size;
                pos = sb.baseOffset + sb.count;
            }
            m_fetchPos[p] = pos;
            m_lastData = Clock::now();
            got = true;
            m_dataCv.notify_all();
        }
        return got;
    }

    void checkEnd() {
        // Partitions promised to this member but not yet released by their owner are work to come.
        if (m_pending > 0 || !m_client->isComplete(m_topic)) return;
        std::vector<std::pair<uint32_t, uint64_t>> todo;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            for (uint32_t p : m_assigned) todo.emplace_back(p, m_fetchPos[p]);
        }
        for (auto& [p, pos] : todo)
            if (pos < m_client->offsets(m_topic, p).second) return;
        std::lock_guard<std::mutex> l(m_mutex);
        m_atEnd = true;
        m_dataCv.notify_all();
    }

    bool waitData(std::unique_lock<std::mutex>& l, int64_t timeoutMs) {
        auto ready = [&] { return !m_queue.empty() || m_atEnd || m_closed || !m_error.empty(); };
        if (!ready() && m_spindown.count() > 0) {
            // Events arrived moments ago: the next ones likely follow, poll for them a while.
            auto until = m_lastData + m_spindown;
            if (timeoutMs >= 0) until = std::min(until, Clock::now() + std::chrono::milliseconds(timeoutMs));
            while (!ready() && Clock::now() < until) {
                l.unlock();
                std::this_thread::yield();
                l.lock();
            }
        }
        if (timeoutMs < 0) m_dataCv.wait(l, ready);
        else m_dataCv.wait_for(l, std::chrono::milliseconds(timeoutMs), ready);
        if (!m_error.empty()) throw Error(m_errorCode, "consumer stopped: " + m_error);
        if (m_closed) throw Error(ErrorCode::Closed, "consumer is closed; create a new one with topic.consumer()");
        return !m_queue.empty();
    }

    std::optional<Event> pull(int64_t timeoutMs) {
        std::unique_lock<std::mutex> l(m_mutex);
        if (!waitData(l, timeoutMs)) return std::nullopt;
        Delivery& d = m_queue.front();
        uint32_t i = d.first++;
        Event ev{d.partition, d.offsetOf(i), d.view->metadata(i), select(d.view->eventData(i)),
                 d.view->header().firstTimestampUs, d.owner};
        m_delivered[d.partition] = ev.offset + 1;
        if (d.first == d.end) popFront();
        return ev;
    }

    std::optional<Delivery> pullBatch(size_t maxEvents, int64_t timeoutMs) {
        std::unique_lock<std::mutex> l(m_mutex);
        if (!waitData(l, timeoutMs)) return std::nullopt;
        Delivery& d = m_queue.front();
        Delivery out = d;
        out.end = uint32_t(std::min<uint64_t>(d.end, uint64_t(d.first) + std::max<size_t>(maxEvents, 1)));
        d.first = out.end;
        m_delivered[d.partition] = out.offsetOf(out.end - 1) + 1;
        if (d.first == d.end) popFront();
        return out;
    }

    void popFront() {
        m_queueBytes -= m_queue.front().view->size();
        m_queue.pop_front();
        m_spaceCv.notify_all();
    }

    Piece select(Piece d) const {
        switch (m_opts.data) {
        case DataMode::Full: return d;
        case DataMode::None: return {nullptr, 0};
        case DataMode::Range: {
            size_t off = size_t(std::min<uint64_t>(m_opts.rangeOffset, d.size));
            size_t len = size_t(std::min<uint64_t>(m_opts.rangeSize, d.size - off));
            return {d.data + off, len};
        }
        }
        return d;
    }

    void ack(uint32_t p, uint64_t offset) {
        std::lock_guard<std::mutex> l(m_mutex);
        auto it = m_acked.find(p);
        if (it == m_acked.end()) return; // partition moved to another member; it will see the event again
        it->second = std::max(it->second, offset + 1);
        m_ackCv.notify_all();
    }

    void commitPartitions(const std::vector<uint32_t>& parts) {
        std::vector<std::pair<uint32_t, uint64_t>> offs;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            for (uint32_t p : parts) {
                auto it = m_acked.find(p);
                if (it == m_acked.end()) continue;
                auto s = m_sentCommit.find(p);
                if (s != m_sentCommit.end() && s->second == it->second) continue;
                offs.emplace_back(p, it->second);
            }
        }
        if (offs.empty()) return;
        m_client->commit(m_opts.group, m_topic, offs);
        std::lock_guard<std::mutex> l(m_mutex);
        for (auto& po : offs) m_sentCommit[po.first] = po.second;
    }

    void commitAll() {
        std::vector<uint32_t> parts;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            parts = m_assigned;
        }
        commitPartitions(parts);
    }

    void commit() {
        if (m_opts.group.empty())
            throw Error(ErrorCode::InvalidArgument, "commit() needs a consumer group: use topic.consumer(group='name')");
        commitAll();
    }

    bool exhausted() const {
        std::lock_guard<std::mutex> l(m_mutex);
        return m_queue.empty() && m_atEnd;
    }

    std::vector<uint32_t> partitions() const {
        std::lock_guard<std::mutex> l(m_mutex);
        return m_assigned;
    }

    void close() {
        {
            std::lock_guard<std::mutex> l(m_mutex);
            if (m_closed) return;
            m_stop = true;
        }
        m_spaceCv.notify_all();
        try { m_client->wakeTopic(m_topic); } catch (...) {}
        if (m_thread.joinable()) m_thread.join();
        std::exception_ptr err;
        if (!m_opts.group.empty()) {
            try { commitAll(); } catch (...) { err = std::current_exception(); }
            try { m_client->leaveGroup(m_opts.group, m_topic, m_member); } catch (...) {}
        }
        {
            std::lock_guard<std::mutex> l(m_mutex);
            m_closed = true;
            m_queue.clear();
            m_dataCv.notify_all();
        }
        if (err) std::rethrow_exception(err);
    }

  private:
    std::shared_ptr<BrokerClient> m_client;
    std::string m_topic;
    ConsumerOptions m_opts;
    uint32_t m_partitionCount = 0;
    std::string m_member;
    mutable std::mutex m_mutex;
    std::condition_variable m_dataCv, m_spaceCv, m_ackCv;
    static constexpr int64_t kRevokeGraceMs = 1000;
    static constexpr int64_t kHeartbeatMs = 50;
    std::deque<Delivery> m_queue;
    size_t m_queueBytes = 0;
    Clock::time_point m_lastData{};            ///< when a fetch last brought events (guarded by m_mutex)
    std::chrono::microseconds m_spindown{0};   ///< the transport's spin-down window (see waitData)
    std::vector<uint32_t> m_assigned;
    uint64_t m_generation = UINT64_MAX;
    std::atomic<uint32_t> m_pending{0};
    std::map<uint32_t, uint64_t> m_fetchPos, m_delivered, m_acked, m_sentCommit;
    bool m_atEnd = false;
    bool m_closed = false;
    std::atomic<bool> m_stop{false};
    std::string m_error;
    ErrorCode m_errorCode = ErrorCode::Generic;
    std::thread m_thread;
};

Consumer::Consumer(std::shared_ptr<BrokerClient> client, const std::string& topic, const ConsumerOptions& options)
: m_impl(std::make_shared<ConsumerImpl>(std::move(client), topic, options)) {}
Consumer::~Consumer() = default;
std::optional<Event> Consumer::pull(int64_t timeoutMs) { return m_impl->pull(timeoutMs); }
std::optional<Delivery> Consumer::pullBatch(size_t maxEvents, int64_t timeoutMs) { return m_impl->pullBatch(maxEvents, timeoutMs); }
void Consumer::ack(uint32_t partition, uint64_t offset) { m_impl->ack(partition, offset); }
void Consumer::commit() { m_impl->commit(); }
bool Consumer::exhausted() const { return m_impl->exhausted(); }
std::vector<uint32_t> Consumer::partitions() const { return m_impl->partitions(); }
void Consumer::close() { m_impl->close(); }
Piece Consumer::select(Piece data) const { return m_impl->select(data); }

} // namespace mofka_py
