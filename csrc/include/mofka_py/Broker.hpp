/**
 * @file Broker.hpp
 * @brief Hosts topics and their partition logs, consumer groups and committed
 *        offsets. The same broker runs embedded, on MPI server ranks and
 *        behind the TCP service; only the transport in front of it differs.
 */
#pragma once
#include "mofka_py/Group.hpp"
#include "mofka_py/PartitionLog.hpp"
#include "mofka_py/Types.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace mofka_py {

/// Broker-wide settings.
struct BrokerOptions {
    std::string directory; ///< empty: memory://
    TopicConfig defaults; ///< settings for topics created without their own
    bool repair = false; ///< truncate corrupted logs on open instead of failing
    /// After the broker opens, partitions of groups that had committed offsets are handed out
    /// only to members that say they hold them, for this long (a service restarted under live
    /// consumers gives them time to come back before anyone else takes their partitions).
    int64_t rejoinGraceMs = 0;
    /// This broker's node id in a replicated cluster (`mofka-py serve --cluster`); empty: not
    /// in a cluster. A cluster broker's partitions take requests only as the cluster's
    /// coordinator says (setReplicaRole): none until it has.
    std::string nodeId;
    /// How long a leader waits for its in-sync replicas to hold a write before the produce fails
    /// with Timeout (the producer resends it; the cluster coordinator meanwhile drops a replica
    /// that lags from the in-sync set).
    int64_t replicaAckTimeoutMs = 30000;
};

/// A replicated partition's place on this node, as the cluster's coordinator sets it.
struct ReplicaRole {
    enum class Kind : uint8_t {
        Offline, ///< takes no requests here (not a replica, or no role decided yet)
        Leader, ///< takes writes and reads; a write counts once the in-sync replicas hold it
        Follower, ///< copies the leader's log; takes no client requests
    };
    Kind kind = Kind::Offline;
    uint64_t epoch = 0; ///< the leader's epoch: fences every older leader at every replica
    std::string leader; ///< leader's node id ("" while there is none)
    std::string leaderAddress; ///< leader's host:port, for clients and followers
    std::vector<std::string> replicas; ///< node ids holding the partition
    std::vector<std::string> isr; ///< node ids in sync with the leader (the leader included)
};

/// What the leader knows about one follower.
struct FollowerStatus {
    std::string node;
    uint64_t position = 0; ///< the follower holds every event below this offset
    bool known = false; ///< it fetched since this node became leader
    int64_t sinceFetchMs = -1; ///< since its last fetch (-1: never)
    int64_t sinceCaughtUpMs = -1; ///< since it last fetched at the leader's end (-1: never)
};

/// A replicated partition's state on this node.
struct ReplicaStatus {
    ReplicaRole role;
    uint64_t endOffset = 0; ///< the local log's end (written, maybe not yet replicated)
    uint64_t highWatermark = 0; ///< below it: held by every in-sync replica, readable by consumers
    std::vector<FollowerStatus> followers; ///< leader: each other replica
};

/// The leader's answer to a follower's fetch, before any data.
struct FollowerFetchCheck {
    bool diverged = false; ///< the follower's last batch differs from the leader's: it must truncate
    uint64_t leaderEnd = 0; ///< the leader's log end
    bool highWatermarkMoved = false; ///< this fetch made more events readable by consumers
};

/**
 * @brief The broker: topics, partitions, groups and durable offsets.
 *
 * A `file://` broker owns its directory exclusively (an flock'ed LOCK file
 * naming the owner's pid).
 */
class Broker {
  public:
    /// Open (creating if needed) a broker; throws FabricLocked, NotAFabric, Corruption.
    explicit Broker(BrokerOptions options);
    ~Broker();
    Broker(const Broker&) = delete;
    Broker& operator=(const Broker&) = delete;

    /// Create a topic; throws TopicExists or InvalidArgument and writes nothing then.
    void createTopic(const std::string& name, const TopicConfig& config);
    /// Names of all topics, sorted.
    std::vector<std::string> listTopics() const;
    /// Partitions, offsets and settings of a topic; throws TopicNotFound.
    TopicInfo describeTopic(const std::string& name) const;
    /// Number of partitions of a topic; throws TopicNotFound.
    uint32_t partitionCount(const std::string& topic) const;
    /// Largest event a topic accepts (metadata + data bytes).
    uint64_t maxEventBytes(const std::string& topic) const;

    /// Append a batch to a partition.
    AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch,
                         CrcMode mode = CrcMode::Compute);

    /// A produce written to its partition whose sync may still be due (see startProduce()).
    struct StartedProduce {
        AppendResult result;
        PartitionLog::Pending pending; ///< ticket 0: done, nothing to wait for
        std::shared_ptr<void> topic; ///< the broker's topic: keeps the partition alive until finishProduce()
        PartitionLog* log = nullptr; ///< the partition's log (e.g. to group waits per partition)
        std::shared_ptr<void> replica; ///< a replicated leader's partition: wait for the in-sync replicas
        uint64_t replicateTo = 0; ///< ... until they hold every event below this offset
        uint64_t epoch = 0; ///< ... under this leader epoch
        bool done() const { return pending.ticket == 0 && !replica; }
    };
    /**
     * @brief produce() in two steps, for an event loop that must not wait for the disk: write the
     *        batch now; under sync=batch on file storage, finishProduce() waits for its sync.
     *
     * The batch is not readable nor acknowledged before finishProduce() returns (unless done()).
     * Batches written meanwhile to the same partition share one fdatasync (group commit).
     */
    StartedProduce startProduce(const std::string& topic, uint32_t partition, SealedBatch& batch,
                                CrcMode mode = CrcMode::Compute);
    /// Wait for the sync of a started produce (blocks; any thread); throws its StorageError.
    AppendResult finishProduce(const StartedProduce& started);
    /// For an event loop: a started produce with no sync due (pending.ticket 0) that waits only for
    /// its in-sync replicas: its result once they hold it, std::nullopt while they do not yet, or
    /// the error that ends the wait (NotLeader: leadership lost or lease lapsed). Never blocks.
    std::optional<AppendResult> pollReplicated(const StartedProduce& started);
    /// In-memory topics: room to receive a batch of @p length bytes straight into the
    /// partition's log (see PartitionLog::reserve); nullptr when not possible.
    uint8_t* reserve(const std::string& topic, uint32_t partition, uint64_t length);
    /// Publish the partition's oldest reservation (refused after the topic is complete).
    /// @p landedCrc as for PartitionLog::commitReserved.
    AppendResult commitReserved(const std::string& topic, uint32_t partition, CrcMode mode = CrcMode::Verify,
                                std::optional<uint32_t> landedCrc = std::nullopt);
    /// Drop the partition's oldest reservation.
    void cancelReserved(const std::string& topic, uint32_t partition);
    /// Stored batches from @p offset, waiting up to @p timeoutMs for data.
    std::vector<StoredBatch> fetch(const std::string& topic, uint32_t partition, uint64_t offset, size_t maxBytes,
                                   int64_t timeoutMs);
    /// Wait until any partition of @p topic changes after @p version (or the timeout).
    uint64_t waitTopicChange(const std::string& topic, uint64_t version, int64_t timeoutMs);
    /// Wake everything blocked in waitTopicChange on @p topic (e.g. a closing consumer).
    void wakeTopic(const std::string& topic);
    /// Start and end offsets of a partition.
    std::pair<uint64_t, uint64_t> offsets(const std::string& topic, uint32_t partition) const;

    /**
     * @brief Delete a topic: its events and its groups' offsets.
     *
     * Refused (GroupActive, naming them) while consumer groups have live members on it,
     * unless @p force. On file storage the topic directory is first renamed away (the point
     * of no return; a crash after it finishes the delete at the next open), then removed.
     */
    void deleteTopic(const std::string& name, bool force);
    /// Drop every stored event of a partition (its offsets go on from where they were); returns how many.
    uint64_t purgePartition(const std::string& name, uint32_t partition);
    /// Change a topic's retention (the TopicField bits of @p changes say which), durably.
    void alterTopic(const std::string& name, const TopicConfig& changes);
    /// Mark a topic complete: consumers stop after its last event; pushes are refused.
    void markComplete(const std::string& topic);
    /// Whether markComplete was called.
    bool isComplete(const std::string& topic) const;

    /// Join a group on a topic; returns a member id (new if @p memberId is empty).
    std::string joinGroup(const std::string& group, const std::string& topic, const std::string& memberId);
    /// Leave a group; the member's partitions go to the others.
    void leaveGroup(const std::string& group, const std::string& topic, const std::string& memberId);
    /// Give up partitions after committing them; they then go to their new owner.
    void releasePartitions(const std::string& group, const std::string& topic, const std::string& memberId,
                           const std::vector<uint32_t>& partitions);
    /**
     * @brief A member's heartbeat: the partitions it owns now.
     *
     * Members sorted by id; partition p is meant for member p mod n. A partition moves to
     * its new member only after its previous owner released it (so it committed its
     * position first). Members silent for their session timeout are dropped.
     */
    Assignment assignment(const std::string& group, const std::string& topic, const MemberHeartbeat& heartbeat);
    /**
     * @brief Store committed offsets (next offset to read) durably.
     *
     * With a @p memberId, every partition must be owned by that member, or nothing is
     * stored and CommitFailed is thrown (a member whose session expired is fenced off).
     */
    void commit(const std::string& group, const std::string& topic,
                const std::vector<std::pair<uint32_t, uint64_t>>& offsets, const std::string& memberId = "");
    /// Committed offset of a group on a partition, if any.
    std::optional<uint64_t> committed(const std::string& group, const std::string& topic, uint32_t partition) const;
    /// Members, ownership, committed offsets and skipped counts of a group on a topic.
    GroupState describeGroup(const std::string& group, const std::string& topic);
    /// Set a group's committed offsets (an explicit rewind or skip); throws GroupActive,
    /// naming them, while the group has live members, and then writes nothing.
    void resetGroup(const std::string& group, const std::string& topic,
                    const std::vector<std::pair<uint32_t, uint64_t>>& offsets);
    /// Drop a member from a group now, as if its session had expired (Kafka's RemoveMembersFromConsumerGroup):
    /// its partitions go to the others at the group's committed offsets and its later commits are
    /// fenced. Returns whether it was a member.
    bool removeMember(const std::string& group, const std::string& topic, const std::string& memberId);
    /// Count @p count events a member of @p group skipped on @p partition (deleted by retention first).
    void noteSkipped(const std::string& group, const std::string& topic, uint32_t partition, uint64_t count);
    /// The first offset of @p partition stored at or after @p timestampUs (µs since the epoch;
    /// per batch), or the end offset when there is none.
    uint64_t offsetForTime(const std::string& topic, uint32_t partition, int64_t timestampUs) const;
    /// All groups with committed offsets or members on a topic.
    std::vector<std::string> groups(const std::string& topic) const;

    // ---- Replication (a cluster broker; see BrokerOptions::nodeId) ----

    /// Set a partition's role (the cluster coordinator, after an election or an in-sync set change).
    void setReplicaRole(const std::string& topic, uint32_t partition, const ReplicaRole& role);
    /// A partition's replication state here; throws InvalidArgument on a broker outside a cluster.
    ReplicaStatus replicaStatus(const std::string& topic, uint32_t partition) const;
    /// A partition's local log end and high watermark here (what the replication path reads per
    /// fetch; replicaStatus() without the role and followers).
    std::pair<uint64_t, uint64_t> replicaMarks(const std::string& topic, uint32_t partition) const;
    /**
     * @brief Until when (steady clock, ns) this node's leadership lease is known to hold: after
     *        it, its leaders refuse writes and acknowledge none (a paused leader that wakes up
     *        cannot write after another was elected). INT64_MAX: no lease (not in a cluster).
     */
    void setLeaseDeadline(int64_t steadyNs);
    /// Leader side of a follower's fetch from @p offset: checks its epoch (a higher one deposes
    /// this leader at once), that its last batch (@p prev, if it has one) is the leader's, and
    /// records its position. Throws NotLeader.
    FollowerFetchCheck followerFetch(const std::string& topic, uint32_t partition, const std::string& node,
                                     uint64_t epoch, uint64_t offset, const std::optional<BatchHeader>& prev);
    /// Stored batches from @p offset for a follower: past the high watermark too.
    std::vector<StoredBatch> fetchForReplica(const std::string& topic, uint32_t partition, uint64_t offset,
                                             size_t maxBytes);
    /// Follower side: append batches fetched from the leader of @p epoch (as stored there) and
    /// note its high watermark; throws NotLeader if this node no longer follows that epoch.
    void appendFromLeader(const std::string& topic, uint32_t partition, uint64_t epoch,
                          const std::vector<StoredBatch>& batches, uint64_t leaderHighWatermark);
    /// Follower side: drop the local log from @p offset on (a tail the leader does not have).
    uint64_t truncateReplica(const std::string& topic, uint32_t partition, uint64_t epoch, uint64_t offset);
    /// Header of the local batch ending at @p offset (a follower's proof of where it is).
    std::optional<BatchHeader> batchEndingAt(const std::string& topic, uint32_t partition, uint64_t offset) const;
    /// The batch that holds @p offset starts at... (the largest batch boundary <= @p offset).
    uint64_t batchBoundaryAtOrBefore(const std::string& topic, uint32_t partition, uint64_t offset) const;
    /// The live nodes of the cluster (id, host:port), as the coordinator last saw them in etcd.
    void setClusterNodes(const std::vector<std::pair<std::string, std::string>>& nodes);
    /// What a cluster client asks any node: the nodes, and who leads each partition of @p topic.
    ClusterView clusterView(const std::string& topic) const;
    /// This broker's node id ("" outside a cluster).
    const std::string& nodeId() const { return m_opts.nodeId; }

    /// Sync every log to stable storage.
    void sync();
    /**
     * @brief Check every stored batch of every topic now (PartitionLog::verify()): headers, offsets,
     *        CRC32C; partitions in turn, while the broker keeps serving.
     *
     * @p progress, when given, gets (bytes checked, bytes to check) over the whole broker. Throws a
     * Corruption error naming the topic, partition, file and byte of the first damaged batch.
     * @return the bytes checked.
     */
    uint64_t verify(const std::function<void(uint64_t, uint64_t)>& progress = {}) const;
    /// What opening the broker's partition logs checked, summed over them (see LogOpenStats).
    LogOpenStats openStats() const;
    /// Flush and release everything; idempotent.
    void close();
    /// The directory of a file:// broker (empty for memory://).
    const std::string& directory() const { return m_opts.directory; }

  private:
    struct Topic;
    struct Group;
    class Replica;
    std::shared_ptr<Replica> replicaOf(const Topic& t, uint32_t partition) const;
    void addReplicas(Topic& t) const;
    std::shared_ptr<Replica> requireReplica(const std::string& topic, uint32_t partition) const;
    std::shared_ptr<Topic> getTopic(const std::string& name) const;
    /// Every topic, as they are now (taken under the lock; used without it).
    std::vector<std::shared_ptr<Topic>> topicsSnapshot() const;
    std::shared_ptr<Topic> loadTopic(const std::string& name);
    void lockDirectory();
    void loadOffsets();
    std::unique_ptr<PartitionLog> openOffsetsLog(const std::string& dir) const;
    static void appendCommits(PartitionLog& log,
                              const std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>>& commits);
    static void appendSkipped(PartitionLog& log,
                              const std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>>& totals);
    Group& liveGroupLocked(const std::string& group, const std::string& topic);
    void eraseTopicOffsets(const std::string& topic);
    void forgetTopicOffsetsLocked(const std::string& topic);
    void housekeepingLoop();

    BrokerOptions m_opts;
    mutable std::mutex m_mutex;
    std::map<std::string, std::shared_ptr<Topic>> m_topics;
    std::map<std::pair<std::string, std::string>, Group> m_groups; // (group, topic)
    std::map<std::tuple<std::string, std::string, uint32_t>, uint64_t> m_committed;
    std::map<std::tuple<std::string, std::string, uint32_t>, uint64_t> m_skipped;
    std::set<std::pair<std::string, std::string>> m_recoveredGroups; ///< (group, topic) with offsets found at open
    std::chrono::steady_clock::time_point m_openedAt = std::chrono::steady_clock::now();
    std::unique_ptr<PartitionLog> m_offsetsLog;
    uint64_t m_memberCounter = 0;
    int m_lockFd = -1;
    std::atomic<bool> m_closed{false};
    std::atomic<int64_t> m_leaseDeadlineNs{INT64_MAX};
    std::vector<std::pair<std::string, std::string>> m_clusterNodes; ///< guarded by m_mutex
    std::thread m_housekeeper;
    std::mutex m_hkMutex;
    std::condition_variable m_hkCv;
};

} // namespace mofka_py
