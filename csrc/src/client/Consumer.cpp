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
        if (m_opts.sessionTimeoutMs < 100 || m_opts.sessionTimeoutMs > 3600000)
            throw Error(ErrorCode::InvalidArgument, "session_timeout_ms must be between 100 and 3600000 (got " +
                                                        std::to_string(m_opts.sessionTimeoutMs) + ")");
        if (m_opts.rebalanceTimeoutMs < 0 || m_opts.rebalanceTimeoutMs > 3600000)
            throw Error(ErrorCode::InvalidArgument, "rebalance_timeout_ms must be between 0 and 3600000 (got " +
                                                        std::to_string(m_opts.rebalanceTimeoutMs) + ")");
        m_spindown = std::chrono::microseconds(m_client->spindownUs());
        TopicInfo info = m_client->describeTopic(m_topic);
        m_partitionCount = info.config.partitions;
        if (m_opts.group.empty() && !m_opts.memberId.empty())
            throw Error(ErrorCode::InvalidArgument,
                        "member_id needs a group: use topic.consumer(group='name', member_id=...)");
        if (!m_opts.group.empty()) {
            if (!m_opts.partitions.empty())
                throw Error(ErrorCode::InvalidArgument,
                            "give either group= or partitions=, not both: a group assigns partitions itself");
            m_member = m_client->joinGroup(m_opts.group, m_topic, m_opts.memberId);
            Assignment a = m_client->assignment(m_opts.group, m_topic, heartbeat({}));
            rebalance(a);
            m_pending = a.pending;
        } else {
            std::vector<uint32_t> parts = m_opts.partitions;
            for (uint32_t p : parts)
                if (p >= m_partitionCount)
                    throw Error(ErrorCode::InvalidArgument, "partition " + std::to_string(p) +
                                                                " does not exist in topic '" + m_topic + "' (it has " +
                                                                std::to_string(m_partitionCount) + ")");
            if (parts.empty())
                for (uint32_t p = 0; p < m_partitionCount; ++p) parts.push_back(p);
            std::sort(parts.begin(), parts.end());
            parts.erase(std::unique(parts.begin(), parts.end()), parts.end());
            rebalance(Assignment{0, parts});
        }
        m_thread = std::thread([this] { run(); });
    }
    ~ConsumerImpl() {
        try {
            close();
        } catch (...) {}
    }

    /// What this member tells its group: the partitions it reads and how far it handed them out.
    MemberHeartbeat heartbeat(const std::vector<uint32_t>& owned) const {
        MemberHeartbeat hb;
        hb.memberId = m_member;
        hb.sessionTimeoutMs = m_opts.sessionTimeoutMs;
        std::lock_guard<std::mutex> l(m_mutex);
        for (uint32_t p : owned) {
            auto it = m_delivered.find(p);
            hb.owned.emplace_back(p, it == m_delivered.end() ? 0 : it->second);
        }
        return hb;
    }

    /// Where reading @p p starts: in a group, always at the group's commit when there is one;
    /// the start policy only for partitions the group never committed (or without a group).
    std::pair<uint64_t, bool> initialPosition(uint32_t p) {
        if (!m_opts.group.empty())
            if (auto c = m_client->committed(m_opts.group, m_topic, p)) return {*c, true};
        switch (m_opts.start) {
        case StartPosition::Offset: return {m_opts.startOffset, false};
        case StartPosition::Latest: return {m_client->offsets(m_topic, p).second, false};
        case StartPosition::Committed:
        case StartPosition::Earliest: return {m_client->offsets(m_topic, p).first, false};
        }
        return {0, false};
    }

    void rebalance(const Assignment& a) {
        std::vector<uint32_t> lost, fresh;
        {
            std::unique_lock<std::mutex> l(m_mutex);
            std::set<uint32_t> next(a.partitions.begin(), a.partitions.end());
            for (uint32_t p : m_assigned)
                if (!next.count(p)) lost.push_back(p);
            for (uint32_t p : a.partitions)
                if (!m_delivered.count(p)) fresh.push_back(p);
            if (!lost.empty()) {
                // Hand out nothing more from partitions that are leaving, then let the events
                // already handed out be acknowledged, so the next owner starts right after them.
                for (uint32_t p : lost) dropQueuedLocked(p);
                std::set<uint32_t> gone(lost.begin(), lost.end());
                std::vector<uint32_t> kept;
                for (uint32_t p : m_assigned)
                    if (!gone.count(p)) kept.push_back(p);
                m_assigned = kept;
                waitAcksLocked(l, lost);
            }
        }
        if (!lost.empty()) {
            try {
                commitPartitions(lost);
            } catch (const Error& e) {
                if (e.code() != ErrorCode::CommitFailed) throw; // fenced: the partitions moved on already
            }
            m_client->releasePartitions(m_opts.group, m_topic, m_member, lost);
        }
        std::map<uint32_t, std::pair<uint64_t, bool>> starts;
        for (uint32_t p : fresh) starts[p] = initialPosition(p);
        std::lock_guard<std::mutex> l(m_mutex);
        for (uint32_t p : lost) {
            m_delivered.erase(p);
            m_acked.erase(p);
            m_fetchPos.erase(p);
            m_sentCommit.erase(p);
            m_gapAt.erase(p);
        }
        for (auto& [p, start] : starts) {
            m_delivered[p] = m_fetchPos[p] = m_acked[p] = start.first;
            if (start.second) m_sentCommit[p] = start.first;
            m_epoch[p] = ++m_epochs;
        }
        m_assigned = a.partitions;
        m_generation = a.generation;
        m_atEnd = false;
        if (!m_opts.group.empty()) ++m_stats.rebalances;
        m_spaceCv.notify_all();
    }

    /// Wait (bounded by rebalanceTimeoutMs) until every event of @p lost handed out is
    /// acknowledged; keep heartbeating meanwhile so the group does not drop this member.
    void waitAcksLocked(std::unique_lock<std::mutex>& l, const std::vector<uint32_t>& lost) {
        auto unacked = [&] {
            uint64_t n = 0;
            for (uint32_t p : lost) n += m_delivered[p] - std::min(m_acked[p], m_delivered[p]);
            return n;
        };
        auto deadline = Clock::now() + std::chrono::milliseconds(m_opts.rebalanceTimeoutMs);
        auto lastBeat = Clock::now();
        while (!m_stop && unacked() > 0 && Clock::now() < deadline) {
            m_ackCv.wait_for(l, std::chrono::milliseconds(kHeartbeatMs));
            if (Clock::now() - lastBeat < std::chrono::milliseconds(4 * kHeartbeatMs)) continue;
            std::vector<uint32_t> owned = m_assigned;
            owned.insert(owned.end(), lost.begin(), lost.end());
            l.unlock();
            try {
                m_client->assignment(m_opts.group, m_topic, heartbeat(owned));
            } catch (const Error&) {
                // The run loop meets the same error at its next heartbeat.
            }
            l.lock();
            lastBeat = Clock::now();
        }
        m_stats.revokedUnacked += unacked();
    }

    void run() {
        auto lastCommit = Clock::now();
        Clock::time_point lastHeartbeat{}, lastGapCheck = Clock::now();
        uint64_t version = UINT64_MAX; // the topic's change counter as last seen; unknown at first
        while (!m_stop) {
            try {
                // Assignment doubles as the heartbeat; over a network it is a round trip, so not every batch.
                if (!m_opts.group.empty() &&
                    (m_beatNow.exchange(false) ||
                     Clock::now() - lastHeartbeat >= std::chrono::milliseconds(kHeartbeatMs))) {
                    std::vector<uint32_t> owned = partitions();
                    Assignment a = m_client->assignment(m_opts.group, m_topic, heartbeat(owned));
                    if (a.generation != m_generation || a.partitions != owned) rebalance(a);
                    m_pending = a.pending;
                    lastHeartbeat = Clock::now();
                }
                if (!m_opts.group.empty() && m_opts.autoCommitMs > 0 &&
                    Clock::now() - lastCommit >= std::chrono::milliseconds(m_opts.autoCommitMs)) {
                    try {
                        commitAll();
                    } catch (const Error& e) {
                        if (e.code() != ErrorCode::CommitFailed) throw; // the next heartbeat rebalances
                    }
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
                    if (!m_atEnd) {
                        gapCheckDue(lastGapCheck);
                        continue;
                    }
                }
                if (fetchOnce()) continue;
                checkEnd();
                gapCheckDue(lastGapCheck);
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
            for (uint32_t p : m_assigned)
                if (!m_gapAt.count(p)) todo.emplace_back(p, m_fetchPos[p]);
            gen = m_generation;
        }
        bool got = false;
        size_t budget = m_opts.fetchBytes;
        for (auto& [p, pos] : todo) {
            auto batches = m_client->fetch(m_topic, p, pos, budget, todo.size() == 1 ? waitMs : 0);
            if (batches.empty()) continue;
            uint64_t skipped = 0;
            {
                std::lock_guard<std::mutex> l(m_mutex);
                if (gen != m_generation || m_fetchPos[p] != pos) return true; // a rebalance moved things
                if (batches.front().baseOffset > pos) {
                    // Offsets are dense: events [pos, base) were deleted by retention before we read them.
                    skipped = gapLocked(p, pos, batches.front().baseOffset);
                    if (m_gapAt.count(p)) {
                        got = true;
                        continue;
                    }
                    pos = batches.front().baseOffset;
                }
                std::deque<Delivery>& q = m_queues[p];
                for (auto& sb : batches) {
                    auto view = std::make_shared<BatchView>(sb.data, sb.size);
                    uint64_t first = pos > sb.baseOffset ? pos - sb.baseOffset : 0;
                    if (first >= sb.count) continue;
                    q.push_back({p, uint32_t(first), sb.count, view, sb.owner, m_epoch[p]});
                    m_queueBytes += sb.size;
                    ++m_queued;
                    pos = sb.baseOffset + sb.count;
                }
                if (q.empty()) m_queues.erase(p);
                m_fetchPos[p] = pos;
                m_lastData = Clock::now();
                got = true;
                m_dataCv.notify_all();
            }
            if (skipped) reportSkipped(p, skipped);
        }
        return got;
    }

    /// A gap in @p p from @p pos to @p first: under GapPolicy::Error, queue a marker that stops the
    /// consumer once the events before it were handed out; else count the skip. Returns the count.
    uint64_t gapLocked(uint32_t p, uint64_t pos, uint64_t first) {
        if (m_opts.onGap == GapPolicy::Error) {
            m_gapAt[p] = {pos, first};
            m_queues[p].push_back({p, 0, 0, nullptr, {}, 0});
            ++m_queued;
            m_dataCv.notify_all();
            return 0;
        }
        m_stats.skipped += first - pos;
        m_fetchPos[p] = first;
        return first - pos;
    }

    void reportSkipped(uint32_t p, uint64_t n) {
        if (!m_opts.group.empty()) m_client->noteSkipped(m_opts.group, m_topic, p, n);
    }

    /// Once a second when idle: a partition whose position retention deleted returns no
    /// batches at all (everything from there on is gone), so compare with its start offset.
    void gapCheckDue(Clock::time_point& last) {
        if (Clock::now() - last < std::chrono::milliseconds(1000)) return;
        last = Clock::now();
        std::vector<std::pair<uint32_t, uint64_t>> todo;
        uint64_t gen;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            for (uint32_t p : m_assigned)
                if (!m_gapAt.count(p)) todo.emplace_back(p, m_fetchPos[p]);
            gen = m_generation;
        }
        for (auto& [p, pos] : todo) {
            uint64_t start = m_client->offsets(m_topic, p).first, skipped = 0;
            if (start <= pos) continue;
            {
                std::lock_guard<std::mutex> l(m_mutex);
                if (gen != m_generation || m_fetchPos[p] != pos) return;
                skipped = gapLocked(p, pos, start);
            }
            if (skipped) reportSkipped(p, skipped);
        }
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
        if (!m_opts.group.empty()) {
            // The assignment seen may be up to a heartbeat old: a member that left since may have
            // handed this one more partitions. Ask now, so the group never ends with one unread.
            std::vector<uint32_t> owned = partitions();
            Assignment a = m_client->assignment(m_opts.group, m_topic, heartbeat(owned));
            m_pending = a.pending;
            if (a.generation != m_generation || a.partitions != owned) {
                rebalance(a);
                return;
            }
            if (a.pending > 0) return;
            if (!groupDone()) {
                // This member's share is read; it stays (heartbeating, ready to take over a
                // partition whose member fails) until the group acknowledged everything.
                std::unique_lock<std::mutex> l(m_mutex);
                m_spaceCv.wait_for(l, std::chrono::milliseconds(kHeartbeatMs), [&] { return m_stop.load(); });
                return;
            }
        }
        std::lock_guard<std::mutex> l(m_mutex);
        m_atEnd = true;
        m_dataCv.notify_all();
    }

    /// Every partition of the (complete) topic is done for the group: committed to its end, or
    /// handed out to its end by the live member that owns it. A member seeing that may leave
    /// without leaving events unread (a partition goes back to "not done" only if its owner
    /// fails before acknowledging: the at-least-once window). This member's acknowledged
    /// positions are committed first, not at the next auto-commit.
    bool groupDone() {
        try {
            commitAll();
        } catch (const Error& e) {
            if (e.code() != ErrorCode::CommitFailed) throw;
            return false;
        }
        GroupState st = m_client->describeGroup(m_opts.group, m_topic);
        TopicInfo info = m_client->describeTopic(m_topic);
        for (auto& p : info.partitions) {
            if (p.partition >= st.partitions.size()) return false;
            const GroupPartition& gp = st.partitions[p.partition];
            // Never committed: nothing to read only if nothing is retained.
            if (gp.committed.value_or(p.startOffset) >= p.endOffset) continue;
            if (gp.owner && gp.position >= p.endOffset) continue;
            return false;
        }
        return true;
    }

    bool waitData(std::unique_lock<std::mutex>& l, int64_t timeoutMs) {
        auto ready = [&] { return m_queued > 0 || m_atEnd || m_closed || !m_error.empty(); };
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
        if (timeoutMs < 0)
            m_dataCv.wait(l, ready);
        else
            m_dataCv.wait_for(l, std::chrono::milliseconds(timeoutMs), ready);
        if (m_closed) throw Error(ErrorCode::Closed, "consumer is closed; create a new one with topic.consumer()");
        if (m_queued > 0) return true; // fetched and checked before the error: handed out first
        if (!m_error.empty()) throw Error(m_errorCode, "consumer stopped: " + m_error);
        return false;
    }

    /// The delivery to hand out from next. Partitions take turns (kFairEvents events each), so
    /// a backlog on one cannot starve the others; within a partition, offsets stay in order.
    Delivery& frontLocked() {
        if (!m_cur || m_served >= kFairEvents) {
            auto it = m_cur ? m_queues.upper_bound(m_curPartition) : m_queues.begin();
            if (it == m_queues.end()) it = m_queues.begin();
            m_curPartition = it->first;
            m_cur = &it->second;
            m_served = 0;
        }
        Delivery& d = m_cur->front();
        if (!d.view) {
            // A gap under GapPolicy::Error: everything before it was handed out; stop here.
            auto [from, to] = m_gapAt[d.partition];
            m_error = "events " + std::to_string(from) + "-" + std::to_string(to - 1) + " of partition " +
                      std::to_string(d.partition) + " of topic '" + m_topic +
                      "' were deleted by retention before this consumer read them; open the consumer with "
                      "on_gap='earliest' to skip to the oldest retained event (the skip is counted), or reset the "
                      "group's offsets (topic.reset_group / `mofka-py group reset`)";
            m_errorCode = ErrorCode::OffsetOutOfRange;
            m_dataCv.notify_all();
            throw Error(m_errorCode, m_error);
        }
        return d;
    }

    /// @p n events of the front delivery were handed out; drop it when it is done.
    void consumedLocked(uint32_t n) {
        m_served += n;
        m_stats.delivered += n;
        Delivery& d = m_cur->front();
        if (d.first < d.end) return;
        m_queueBytes -= d.view->size();
        --m_queued;
        m_cur->pop_front();
        if (m_cur->empty()) {
            m_queues.erase(m_curPartition);
            m_cur = nullptr;
            m_served = 0;
        }
        m_spaceCv.notify_all();
    }

    /// Forget what is queued for @p p (it moved to another member).
    void dropQueuedLocked(uint32_t p) {
        auto it = m_queues.find(p);
        if (it == m_queues.end()) return;
        for (auto& d : it->second) {
            if (d.view) m_queueBytes -= d.view->size();
            --m_queued;
        }
        if (m_cur == &it->second) {
            m_cur = nullptr;
            m_served = 0;
        }
        m_queues.erase(it);
    }

    std::optional<Event> pull(int64_t timeoutMs) {
        std::unique_lock<std::mutex> l(m_mutex);
        if (!waitData(l, timeoutMs)) return std::nullopt;
        Delivery& d = frontLocked();
        uint32_t i = d.first++;
        Event ev{d.partition,
                 d.offsetOf(i),
                 d.view->metadata(i),
                 select(d.view->eventData(i)),
                 d.view->header().firstTimestampUs,
                 d.owner,
                 d.epoch};
        m_delivered[d.partition] = ev.offset + 1;
        consumedLocked(1);
        return ev;
    }

    std::optional<Delivery> pullBatch(size_t maxEvents, int64_t timeoutMs) {
        std::unique_lock<std::mutex> l(m_mutex);
        if (!waitData(l, timeoutMs)) return std::nullopt;
        Delivery& d = frontLocked();
        Delivery out = d;
        out.end = uint32_t(std::min<uint64_t>(d.end, uint64_t(d.first) + std::max<size_t>(maxEvents, 1)));
        d.first = out.end;
        m_delivered[d.partition] = out.offsetOf(out.end - 1) + 1;
        consumedLocked(out.end - out.first);
        return out;
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

    void ack(uint32_t p, uint64_t offset, uint32_t epoch) {
        std::lock_guard<std::mutex> l(m_mutex);
        auto it = m_acked.find(p);
        if (it == m_acked.end()) return; // partition moved to another member; it will see the event again
        auto e = m_epoch.find(p);
        if (e == m_epoch.end() || e->second != epoch) return; // delivered before the partition moved away and back
        it->second = std::max(it->second, offset + 1);
        m_ackCv.notify_all();
    }

    /// Commit the acknowledged positions of @p parts (those that moved since the last commit).
    /// Throws CommitFailed when the group fenced this member off (nothing was committed).
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
        try {
            m_client->commit(m_opts.group, m_topic, offs, m_member);
        } catch (const Error& e) {
            if (e.code() == ErrorCode::CommitFailed) {
                std::lock_guard<std::mutex> l(m_mutex);
                ++m_stats.fencedCommits;
                m_beatNow = true;
            }
            throw;
        }
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
            throw Error(ErrorCode::InvalidArgument,
                        "commit() needs a consumer group: use topic.consumer(group='name')");
        commitAll();
    }

    bool exhausted() const {
        std::lock_guard<std::mutex> l(m_mutex);
        return m_queued == 0 && m_atEnd;
    }

    std::vector<uint32_t> partitions() const {
        std::lock_guard<std::mutex> l(m_mutex);
        return m_assigned;
    }

    ConsumerStats stats() const {
        std::lock_guard<std::mutex> l(m_mutex);
        ConsumerStats s = m_stats;
        for (auto& kv : m_queues)
            for (auto& d : kv.second) s.prefetchedEvents += d.end - d.first;
        return s;
    }

    std::string memberId() const { return m_member; }

    void close() {
        {
            std::lock_guard<std::mutex> l(m_mutex);
            if (m_closed) return;
            m_stop = true;
        }
        m_spaceCv.notify_all();
        m_ackCv.notify_all();
        try {
            m_client->wakeTopic(m_topic);
        } catch (...) {}
        if (m_thread.joinable()) m_thread.join();
        std::exception_ptr err;
        if (!m_opts.group.empty()) {
            try {
                commitAll();
            } catch (const Error& e) {
                // Fenced (the partitions moved on while this member was away) or the topic was
                // deleted: there is nothing left to keep.
                if (e.code() != ErrorCode::CommitFailed && e.code() != ErrorCode::TopicNotFound)
                    err = std::current_exception();
            } catch (...) {
                err = std::current_exception();
            }
            try {
                m_client->leaveGroup(m_opts.group, m_topic, m_member);
            } catch (...) {}
        }
        {
            std::lock_guard<std::mutex> l(m_mutex);
            m_closed = true;
            m_queues.clear();
            m_cur = nullptr;
            m_queued = 0;
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
    static constexpr int64_t kHeartbeatMs = 50;
    static constexpr uint32_t kFairEvents = 256; ///< events from one partition before the next one's turn
    std::map<uint32_t, std::deque<Delivery>> m_queues; ///< fetched, not yet handed out; no empty deques
    size_t m_queued = 0; ///< deliveries in m_queues
    std::deque<Delivery>* m_cur = nullptr; ///< the partition whose turn it is (an entry of m_queues)
    uint32_t m_curPartition = 0;
    uint32_t m_served = 0; ///< events handed out from m_cur in this turn
    size_t m_queueBytes = 0;
    Clock::time_point m_lastData{}; ///< when a fetch last brought events (guarded by m_mutex)
    std::chrono::microseconds m_spindown{0}; ///< the transport's spin-down window (see waitData)
    std::vector<uint32_t> m_assigned;
    uint64_t m_generation = UINT64_MAX;
    std::atomic<uint32_t> m_pending{0};
    std::atomic<bool> m_beatNow{false}; ///< heartbeat at once (a commit was fenced)
    std::map<uint32_t, uint64_t> m_fetchPos, m_delivered, m_acked, m_sentCommit;
    std::map<uint32_t, uint32_t> m_epoch; ///< partition -> which ownership of it (see Event::epoch)
    uint32_t m_epochs = 0;
    std::map<uint32_t, std::pair<uint64_t, uint64_t>> m_gapAt; ///< partitions stopped at a gap: [from, to)
    ConsumerStats m_stats;
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
std::optional<Delivery> Consumer::pullBatch(size_t maxEvents, int64_t timeoutMs) {
    return m_impl->pullBatch(maxEvents, timeoutMs);
}
void Consumer::ack(uint32_t partition, uint64_t offset, uint32_t epoch) { m_impl->ack(partition, offset, epoch); }
void Consumer::commit() { m_impl->commit(); }
bool Consumer::exhausted() const { return m_impl->exhausted(); }
std::vector<uint32_t> Consumer::partitions() const { return m_impl->partitions(); }
ConsumerStats Consumer::stats() const { return m_impl->stats(); }
std::string Consumer::memberId() const { return m_impl->memberId(); }
void Consumer::close() { m_impl->close(); }
Piece Consumer::select(Piece data) const { return m_impl->select(data); }

} // namespace mofka_py
