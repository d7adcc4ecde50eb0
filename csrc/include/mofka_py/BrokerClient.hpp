/**
 * @file BrokerClient.hpp
 * @brief The one interface every transport implements (inproc, MPI, TCP):
 *        the requests a client sends to a broker.
 */
#pragma once
#include "mofka_py/Error.hpp"
#include "mofka_py/Group.hpp"
#include "mofka_py/RecordBatch.hpp"
#include "mofka_py/Types.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mofka_py {

class Broker;

/// Lets a caller stop a transport's retries early: once @c deadlineNs (steady_clock, ns since its
/// epoch) is in the past, a call that is retrying a lost connection gives up with its last error.
struct CancelToken {
    std::atomic<int64_t> deadlineNs{INT64_MAX};
    void cancelNow() {
        deadlineNs =
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
                .count();
    }
    bool cancelled() const {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
                   .count() >= deadlineNs.load();
    }
};

/**
 * @brief Requests to a broker, whatever carries them.
 *
 * Implementations must be thread-safe. Errors are mofka_py::Error.
 */
class BrokerClient {
  public:
    virtual ~BrokerClient() = default;
    /// Create a topic.
    virtual void createTopic(const std::string& name, const TopicConfig& config) = 0;
    /// Names of all topics.
    virtual std::vector<std::string> listTopics() = 0;
    /// Settings and offsets of a topic.
    virtual TopicInfo describeTopic(const std::string& name) = 0;
    /// Append a batch (the transport carries it without re-encoding).
    virtual AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch) = 0;
    /// The same, giving up retries of a lost connection once @p cancel says so (transports
    /// that retry override it; the default ignores the token).
    virtual AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch,
                                 const CancelToken& cancel) {
        (void)cancel;
        return produce(topic, partition, batch);
    }
    /// What keeps requests from getting through right now (e.g. "cannot connect to ...: Connection
    /// refused, retrying for 12 s"), or "" when nothing is known to be wrong.
    virtual std::string connectionProblem() const { return ""; }
    /// Called once when an asynchronous append is over: its result, or its error.
    using ProduceCallback = std::function<void(const AppendResult&, std::exception_ptr)>;
    /**
     * @brief Start an append and return; @p done runs when it is over (maybe on a transport thread,
     *        maybe before this returns). @p batch must stay alive and unchanged until then.
     *
     * Appends started on one client reach the broker in the order they were started. A
     * connection lost on the way fails them with ErrorCode::Connection and the next ones
     * fail fast until the caller resends with produce(), which reconnects.
     * The default runs produce() right away.
     */
    virtual void produceAsync(const std::string& topic, uint32_t partition, SealedBatch& batch, ProduceCallback done) {
        AppendResult r{};
        try {
            r = produce(topic, partition, batch);
        } catch (...) {
            done(r, std::current_exception());
            return;
        }
        done(r, nullptr);
    }
    /// True when a fetch with a timeout (a long poll) is the cheapest way to wait for one
    /// partition's next events on this transport (a round trip saved over the network).
    virtual bool longPollFetch() const { return false; }
    /// How many appends a producer should keep in flight on this transport (1: one at a time).
    virtual size_t maxInflightProduce() const { return 1; }
    /// How long (microseconds) a consumer waiting for events keeps polling its queue, yielding
    /// the core, after events last arrived, before it blocks: on transports whose own pollers
    /// spin down after traffic (MPI), this saves a thread wake-up per event in a stream.
    virtual int64_t spindownUs() const { return 0; }
    /// Batches from @p offset, waiting up to @p timeoutMs when there are none.
    virtual std::vector<StoredBatch> fetch(const std::string& topic, uint32_t partition, uint64_t offset,
                                           size_t maxBytes, int64_t timeoutMs) = 0;
    /// Block until the topic changes after @p version (or timeout); returns the new version.
    virtual uint64_t waitTopicChange(const std::string& topic, uint64_t version, int64_t timeoutMs) = 0;
    /// Wake local waiters of waitTopicChange on @p topic (used when a consumer closes).
    virtual void wakeTopic(const std::string& topic) { (void)topic; }
    /// Start and end offsets of a partition.
    virtual std::pair<uint64_t, uint64_t> offsets(const std::string& topic, uint32_t partition) = 0;
    /// Mark a topic complete.
    virtual void markComplete(const std::string& topic) = 0;
    /// Whether a topic is complete.
    virtual bool isComplete(const std::string& topic) = 0;
    /// Join a consumer group.
    virtual std::string joinGroup(const std::string& group, const std::string& topic, const std::string& memberId) = 0;
    /// Leave a consumer group.
    virtual void leaveGroup(const std::string& group, const std::string& topic, const std::string& memberId) = 0;
    /// Current partitions of a member (also its heartbeat; see Broker::assignment).
    virtual Assignment assignment(const std::string& group, const std::string& topic,
                                  const MemberHeartbeat& heartbeat) = 0;
    /// Release partitions a member no longer owns (after committing them).
    virtual void releasePartitions(const std::string& group, const std::string& topic, const std::string& memberId,
                                   const std::vector<uint32_t>& partitions) = 0;
    /// Commit offsets durably; with a @p memberId, only for partitions it owns (see Broker::commit).
    virtual void commit(const std::string& group, const std::string& topic,
                        const std::vector<std::pair<uint32_t, uint64_t>>& offsets,
                        const std::string& memberId = "") = 0;
    /// A group's committed offset on a partition.
    virtual std::optional<uint64_t> committed(const std::string& group, const std::string& topic,
                                              uint32_t partition) = 0;
    /// Groups known on a topic.
    virtual std::vector<std::string> groups(const std::string& topic) = 0;
    /// Where a control request goes: the topic's coordinator (groups, commits) or the
    /// server of one of its partitions (offsets, data).
    struct ControlRoute {
        /// Every: each server holding the topic, the coordinator first (its answer is returned;
        /// on the others, @c tolerate is ignored, as after an interrupted call).
        enum class To { Coordinator, Partition, Every } to;
        std::string topic;
        uint32_t partition = 0;
        bool coordinatorLast = false; ///< Every: the coordinator after the others
        ErrorCode tolerate = ErrorCode::TopicNotFound; ///< Every: an error of the others to ignore
    };
    /// Carry one control request body (see wire/Control.hpp) and return the reply body.
    virtual std::vector<uint8_t> control(const ControlRoute& route, const std::vector<uint8_t>& request) = 0;

    // Control requests, the same on every transport (client/BrokerAdmin.cpp).

    /// Members, ownership, committed offsets and skipped counts of a group.
    GroupState describeGroup(const std::string& group, const std::string& topic);
    /// Set a group's committed offsets; refused (GroupActive) while it has live members.
    void resetGroup(const std::string& group, const std::string& topic,
                    const std::vector<std::pair<uint32_t, uint64_t>>& offsets);
    /// Count events a group's member skipped because retention deleted them first.
    void noteSkipped(const std::string& group, const std::string& topic, uint32_t partition, uint64_t count);
    /// The first offset stored at or after @p timestampUs (µs since the epoch), or the end offset.
    uint64_t offsetForTime(const std::string& topic, uint32_t partition, int64_t timestampUs);
    /// Drop a member from a group now (see Broker::removeMember); true if it was one.
    bool removeMember(const std::string& group, const std::string& topic, const std::string& memberId);
    /// Delete a topic with its events and group offsets (see Broker::deleteTopic).
    void deleteTopic(const std::string& topic, bool force);
    /// Drop every stored event of a topic; returns how many.
    uint64_t purgeTopic(const std::string& topic);
    /// Change a topic's retention (the TopicField bits of @p changes say which).
    void alterTopic(const std::string& topic, const TopicConfig& changes);

    /// Clients connected to the broker's service, or -1 when it has no such notion (embedded).
    virtual int64_t connectedClients() { return -1; }
    /// Release the connection (and, for embedded fabrics, the broker).
    virtual void close() = 0;
    /// The URL this client was opened with.
    virtual std::string url() const = 0;
    /// The broker itself when it lives in this process (memory://, file://); null for remote fabrics.
    virtual std::shared_ptr<Broker> localBroker() const { return nullptr; }
};

} // namespace mofka_py
