#include "broker/Replica.hpp"

#include <algorithm>

namespace mofka_py {
namespace {

int64_t steadyNowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

int64_t msSince(std::chrono::steady_clock::time_point t, std::chrono::steady_clock::time_point now) {
    if (t == std::chrono::steady_clock::time_point{}) return -1;
    return std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count();
}

} // namespace

void Broker::Replica::throwNotLeaderLocked(const std::string& why) const {
    std::string where = "partition " + std::to_string(m_partition) + " of topic '" + m_topic + "'";
    std::string hint;
    if (m_role.leader.empty() || m_role.leader == m_self)
        hint = "; it has no leader right now (an election takes a lease's time after a node fails). Clients of a "
               "cluster URL (tcp://host1:port1,host2:port2,...) wait for the new leader by themselves";
    else
        hint = "; its leader is node " + m_role.leader + " at " + m_role.leaderAddress + " (epoch " +
               std::to_string(m_role.epoch) + "). Clients of a cluster URL (tcp://host1:port1,host2:port2,...) " +
               "move there by themselves";
    throw Error(ErrorCode::NotLeader, "node " + m_self + " does not lead " + where + ": " + why + hint);
}

void Broker::Replica::setRole(const ReplicaRole& role) {
    std::lock_guard<std::mutex> l(m_mutex);
    const bool wasLeader = m_role.kind == ReplicaRole::Kind::Leader;
    const bool becomesLeader = role.kind == ReplicaRole::Kind::Leader;
    if (becomesLeader && (!wasLeader || role.epoch != m_role.epoch)) {
        // A new leadership: what followers hold is learnt again from their fetches; until their
        // first one, each in-sync follower counts as caught up now (it gets the lag allowance).
        m_followers.clear();
        auto now = Clock::now();
        for (const std::string& n : role.replicas)
            if (n != m_self) m_followers[n].caughtUp = contains(role.isr, n) ? now : Clock::time_point{};
        m_hw = std::min(m_hw, m_log.endOffset());
    }
    if (becomesLeader)
        for (const std::string& n : role.replicas)
            if (n != m_self) m_followers.try_emplace(n);
    m_role = role;
    if (becomesLeader) recomputeLocked();
    m_log.setVisibleEnd(m_hw);
    m_cv.notify_all(); // writes waiting under an older role re-check it
    m_log.notifyAll();
}

ReplicaStatus Broker::Replica::status() const {
    std::lock_guard<std::mutex> l(m_mutex);
    ReplicaStatus s;
    s.role = m_role;
    s.endOffset = m_log.endOffset();
    s.highWatermark = m_hw;
    auto now = Clock::now();
    for (auto& kv : m_followers) {
        const Follower& f = kv.second;
        // A follower holding the whole log is in sync now, even while its next fetch waits for data.
        int64_t caughtUp = f.known && f.position >= s.endOffset ? 0 : msSince(f.caughtUp, now);
        s.followers.push_back({kv.first, f.position, f.known, msSince(f.lastFetch, now), caughtUp});
    }
    return s;
}

std::pair<uint64_t, uint64_t> Broker::Replica::marks() const {
    std::lock_guard<std::mutex> l(m_mutex);
    return {m_log.endOffset(), m_hw};
}

void Broker::Replica::requireLeader() const {
    std::lock_guard<std::mutex> l(m_mutex);
    if (m_role.kind != ReplicaRole::Kind::Leader)
        throwNotLeaderLocked(m_role.kind == ReplicaRole::Kind::Follower ? "this node is a follower" : "no role here");
}

void Broker::Replica::checkWritable(int64_t leaseDeadlineNs) const {
    std::lock_guard<std::mutex> l(m_mutex);
    if (m_role.kind != ReplicaRole::Kind::Leader)
        throwNotLeaderLocked(m_role.kind == ReplicaRole::Kind::Follower ? "this node is a follower" : "no role here");
    if (steadyNowNs() >= leaseDeadlineNs)
        throwNotLeaderLocked("its leadership lease lapsed (etcd did not renew it in time), so it takes no writes");
    if (m_role.isr.size() < m_minInsync)
        throw Error(ErrorCode::NotEnoughReplicas,
                    "partition " + std::to_string(m_partition) + " of topic '" + m_topic + "' has " +
                        std::to_string(m_role.isr.size()) + " in-sync replica(s) and its topic needs " +
                        std::to_string(m_minInsync) + " (min_insync) to take a write: bring the missing nodes back " +
                        "(`mofka-py cluster status` names them) or create the topic with a lower min_insync");
}

uint64_t Broker::Replica::epoch() const {
    std::lock_guard<std::mutex> l(m_mutex);
    return m_role.epoch;
}

bool Broker::Replica::recomputeLocked() {
    if (m_role.kind != ReplicaRole::Kind::Leader) return false;
    uint64_t hw = m_log.endOffset();
    for (const std::string& n : m_role.isr) {
        if (n == m_self) continue;
        auto it = m_followers.find(n);
        // An in-sync follower that has not fetched under this leadership holds at least the old mark.
        uint64_t pos = (it == m_followers.end() || !it->second.known) ? m_hw : it->second.position;
        hw = std::min(hw, pos);
    }
    if (hw <= m_hw) return false;
    m_hw = hw;
    m_log.setVisibleEnd(hw);
    m_cv.notify_all();
    return true;
}

void Broker::Replica::noteAppended() {
    std::lock_guard<std::mutex> l(m_mutex);
    recomputeLocked();
}

bool Broker::Replica::replicated(uint64_t end) const {
    std::lock_guard<std::mutex> l(m_mutex);
    return m_hw >= end;
}

bool Broker::Replica::replicatedLocked(uint64_t end, uint64_t epoch, int64_t leaseDeadlineNs) const {
    if (m_role.kind != ReplicaRole::Kind::Leader || m_role.epoch != epoch)
        throwNotLeaderLocked("its leadership ended before the in-sync replicas held the write (the producer "
                             "resends it to the new leader, which stores it once)");
    // Acknowledge only while the lease holds: a leader paused past it may have been replaced.
    if (steadyNowNs() >= leaseDeadlineNs)
        throwNotLeaderLocked("its leadership lease lapsed before the write was acknowledged");
    return m_hw >= end;
}

void Broker::Replica::awaitReplicated(uint64_t end, uint64_t epoch, const std::atomic<int64_t>& leaseDeadlineNs,
                                      int64_t timeoutMs) {
    std::unique_lock<std::mutex> l(m_mutex);
    auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
        const int64_t lease = leaseDeadlineNs.load();
        if (replicatedLocked(end, epoch, lease)) return;
        if (Clock::now() >= deadline)
            throw Error(ErrorCode::Timeout, "the in-sync replicas of partition " + std::to_string(m_partition) +
                                                " of topic '" + m_topic + "' did not hold the write within " +
                                                std::to_string(timeoutMs) +
                                                " ms (replica_ack_timeout_ms); the producer resends it");
        auto leaseAt = Clock::time_point(std::chrono::nanoseconds(lease));
        m_cv.wait_until(l, std::min(deadline, leaseAt));
    }
}

bool Broker::Replica::checkReplicated(uint64_t end, uint64_t epoch, int64_t leaseDeadlineNs) const {
    std::lock_guard<std::mutex> l(m_mutex);
    return replicatedLocked(end, epoch, leaseDeadlineNs);
}

void Broker::Replica::wake() {
    std::lock_guard<std::mutex> l(m_mutex);
    m_cv.notify_all();
}

FollowerFetchCheck Broker::Replica::followerFetch(const std::string& node, uint64_t epoch, uint64_t offset,
                                                  const std::optional<BatchHeader>& prev) {
    std::lock_guard<std::mutex> l(m_mutex);
    if (epoch > m_role.epoch && m_role.kind == ReplicaRole::Kind::Leader) {
        // A follower already serves a newer leader: this one was deposed (it may have been paused).
        m_role.kind = ReplicaRole::Kind::Offline;
        m_cv.notify_all();
        throwNotLeaderLocked("a follower follows epoch " + std::to_string(epoch) + ", newer than this leader's " +
                             std::to_string(m_role.epoch) + ": it stepped down");
    }
    if (m_role.kind != ReplicaRole::Kind::Leader) throwNotLeaderLocked("a follower fetched from a non-leader");
    if (epoch < m_role.epoch) throwNotLeaderLocked("the follower's epoch " + std::to_string(epoch) + " is stale");
    if (!contains(m_role.replicas, node) || node == m_self)
        throw Error(ErrorCode::InvalidArgument, "node " + node + " is not a follower of partition " +
                                                    std::to_string(m_partition) + " of topic '" + m_topic + "'");
    FollowerFetchCheck c;
    c.leaderEnd = m_log.endOffset();
    bool matches = offset <= c.leaderEnd;
    if (matches && prev) {
        std::optional<BatchHeader> mine = m_log.batchEndingAt(offset);
        matches = mine && mine->crc == prev->crc && mine->baseOffset == prev->baseOffset &&
                  mine->count == prev->count && mine->producerId == prev->producerId &&
                  mine->sequence == prev->sequence;
    }
    if (!matches) {
        c.diverged = true;
        return c;
    }
    Follower& f = m_followers[node];
    auto now = Clock::now();
    // Caught up (Kafka's rule): it holds everything the leader had when it last fetched, or all of it.
    // Under a steady stream a follower is always a little behind the end, never behind that.
    if (offset >= c.leaderEnd || (f.known && offset >= f.endAtLastFetch)) f.caughtUp = now;
    f.position = offset;
    f.known = true;
    f.lastFetch = now;
    f.endAtLastFetch = c.leaderEnd;
    c.highWatermarkMoved = recomputeLocked();
    return c;
}

void Broker::Replica::requireFollowerLocked(uint64_t epoch) const {
    if (m_role.kind != ReplicaRole::Kind::Follower || m_role.epoch != epoch)
        throw Error(ErrorCode::NotLeader, "node " + m_self + " no longer follows epoch " + std::to_string(epoch) +
                                              " of partition " + std::to_string(m_partition) + " of topic '" + m_topic +
                                              "'");
}

void Broker::Replica::appendFromLeader(uint64_t epoch, const std::vector<StoredBatch>& batches, uint64_t leaderHw) {
    std::lock_guard<std::mutex> l(m_mutex);
    requireFollowerLocked(epoch);
    for (const StoredBatch& b : batches) m_log.appendReplica(b.data, b.size);
    // Its next fetch tells the leader it holds these: under sync=batch, durably.
    if (m_syncEach && !batches.empty()) m_log.sync();
    m_hw = std::max(m_hw, std::min(leaderHw, m_log.endOffset()));
    m_log.setVisibleEnd(m_hw);
}

uint64_t Broker::Replica::truncate(uint64_t epoch, uint64_t offset) {
    std::lock_guard<std::mutex> l(m_mutex);
    requireFollowerLocked(epoch);
    uint64_t dropped = m_log.truncateTo(offset);
    m_hw = std::min(m_hw, m_log.endOffset());
    m_log.setVisibleEnd(m_hw);
    return dropped;
}

} // namespace mofka_py
