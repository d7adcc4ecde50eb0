// The replication state of one partition on one cluster node: its role (leader, follower or
// offline, with the leader's epoch), on a leader what each follower holds and the high
// watermark they make (consumers read below it; a produce is acknowledged once it reaches its
// end), on a follower the leader's high watermark. Broker.cpp keeps one per partition of a
// cluster broker and delegates to it; the cluster coordinator (Python, on etcd) sets the roles.
#pragma once
#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

namespace mofka_py {

class Broker::Replica {
  public:
    /// @p syncEach: a follower syncs what it copied before it asks for more (the topic's sync=batch).
    Replica(PartitionLog& log, std::string self, std::string topic, uint32_t partition, uint32_t minInsync,
            bool syncEach)
    : m_log(log), m_self(std::move(self)), m_topic(std::move(topic)), m_partition(partition), m_minInsync(minInsync),
      m_syncEach(syncEach) {
        m_log.setVisibleEnd(0); // nothing readable before a role says what is committed
    }

    /// Take a role from the coordinator. A new epoch or a lost leadership fails the writes waiting
    /// for their replicas (their producers resend them to the new leader).
    void setRole(const ReplicaRole& role);
    /// This node's state for the partition.
    ReplicaStatus status() const;
    /// The local log's end and the high watermark (status() without copying the role).
    std::pair<uint64_t, uint64_t> marks() const;
    /// Throws NotLeader / NotEnoughReplicas unless this node may take a write now.
    void checkWritable(int64_t leaseDeadlineNs) const;
    /// Throws NotLeader unless this node leads the partition (reads, offsets).
    void requireLeader() const;
    /// The current epoch (0: never had a role).
    uint64_t epoch() const;
    /// After a local append on the leader: the high watermark may move (a leader alone in sync).
    void noteAppended();
    /// Whether the in-sync replicas hold every event below @p end.
    bool replicated(uint64_t end) const;
    /// Wait until the in-sync replicas hold every event below @p end, then check that the lease
    /// still holds; throws NotLeader (leadership lost or lapsed) or Timeout.
    void awaitReplicated(uint64_t end, uint64_t epoch, const std::atomic<int64_t>& leaseDeadlineNs, int64_t timeoutMs);
    /// awaitReplicated() without waiting: true once held, false while not yet; throws the same errors.
    bool checkReplicated(uint64_t end, uint64_t epoch, int64_t leaseDeadlineNs) const;
    /// Make writes waiting for their replicas look again (the lease deadline moved).
    void wake();
    /// Leader side of a follower's fetch (see Broker::followerFetch).
    FollowerFetchCheck followerFetch(const std::string& node, uint64_t epoch, uint64_t offset,
                                     const std::optional<BatchHeader>& prev);
    /// Follower side: append fetched batches (see Broker::appendFromLeader).
    void appendFromLeader(uint64_t epoch, const std::vector<StoredBatch>& batches, uint64_t leaderHw);
    /// Follower side: truncate a divergent tail.
    uint64_t truncate(uint64_t epoch, uint64_t offset);

  private:
    using Clock = std::chrono::steady_clock;
    struct Follower {
        uint64_t position = 0;
        bool known = false;
        Clock::time_point lastFetch{};
        Clock::time_point caughtUp{};
        uint64_t endAtLastFetch = 0; ///< the leader's end when this follower last fetched
    };
    [[noreturn]] void throwNotLeaderLocked(const std::string& why) const;
    bool recomputeLocked();
    /// Whether the in-sync replicas hold every event below @p end; throws NotLeader when the
    /// leadership of @p epoch ended or its lease lapsed (a write must not be acknowledged then).
    bool replicatedLocked(uint64_t end, uint64_t epoch, int64_t leaseDeadlineNs) const;
    void requireFollowerLocked(uint64_t epoch) const;

    PartitionLog& m_log;
    const std::string m_self;
    const std::string m_topic;
    const uint32_t m_partition;
    const uint32_t m_minInsync;
    const bool m_syncEach;
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    ReplicaRole m_role;
    uint64_t m_hw = 0;
    std::map<std::string, Follower> m_followers;
};

} // namespace mofka_py
