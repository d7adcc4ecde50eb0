/**
 * @file Consumer.hpp
 * @brief Consumer with prefetch, consumer groups and durable offsets.
 */
#pragma once
#include "mofka_py/BrokerClient.hpp"
#include "mofka_py/RecordBatch.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mofka_py {

/// Where a consumer starts reading a partition. In a group it applies only to partitions the
/// group never committed (Kafka's auto.offset.reset): a partition assigned to a member always
/// resumes at the group's committed offset.
enum class StartPosition { Earliest, Latest, Committed, Offset };

/// What a consumer does when retention deleted events before it read them.
enum class GapPolicy {
    Error, ///< stop with OffsetOutOfRange once the events before the gap were handed out
    Earliest ///< skip to the oldest retained event, counting what was skipped
};

/// Which part of each event's data a consumer receives.
enum class DataMode {
    Full, ///< all of it
    None, ///< metadata only: data is never read
    Range ///< bytes [rangeOffset, rangeOffset + rangeSize) of it
};

/// Consumer settings.
struct ConsumerOptions {
    std::string group; ///< empty: no group, no commits
    /// Stable member id in the group (empty: a new one). A consumer restarted after a crash with
    /// the same id takes its partitions back at once instead of waiting for the old session to
    /// expire; two live consumers must never share an id.
    std::string memberId;
    StartPosition start = StartPosition::Committed;
    uint64_t startOffset = 0; ///< for StartPosition::Offset
    GapPolicy onGap = GapPolicy::Error;
    DataMode data = DataMode::Full;
    uint64_t rangeOffset = 0;
    uint64_t rangeSize = 0;
    std::vector<uint32_t> partitions; ///< without a group: these only (empty: all)
    size_t prefetchBytes = 64u << 20; ///< fetched but not yet pulled
    size_t fetchBytes = 8u << 20; ///< per request
    int64_t autoCommitMs = 1000; ///< commit acknowledged offsets this often (0: only on commit/close)
    /// A member silent this long is dropped and its partitions go to others (Kafka's session.timeout.ms).
    int64_t sessionTimeoutMs = 10000;
    /// When a partition moves away, how long its events handed out but not yet acknowledged
    /// may take to be acknowledged before the partition goes anyway (those events are then
    /// delivered again to the new owner: the at-least-once window).
    int64_t rebalanceTimeoutMs = 10000;
};

/// What a consumer did so far.
struct ConsumerStats {
    uint64_t delivered = 0; ///< events handed out (pull, pullBatch)
    uint64_t skipped = 0; ///< events deleted by retention before they were read (on_gap=earliest)
    uint64_t rebalances = 0; ///< assignment changes
    uint64_t revokedUnacked = 0; ///< events handed out but not acknowledged when their partition moved away
    uint64_t fencedCommits = 0; ///< commits refused because the partitions had moved on
    uint64_t prefetchedEvents = 0; ///< fetched, waiting to be handed out (now)
};

/// One event as a consumer sees it; @c owner keeps the bytes alive.
struct Event {
    uint32_t partition;
    uint64_t offset;
    Piece metadata;
    Piece data;
    int64_t timestampUs;
    Owner owner;
    /// Which ownership of its partition delivered it: an ack from an earlier one (the partition
    /// moved away and came back meanwhile) is ignored, as the events it would cover were handed
    /// out again.
    uint32_t epoch = 0;
};

/// The not-yet-pulled rest of one fetched batch (the vectorised path).
struct Delivery {
    uint32_t partition;
    uint32_t first; ///< first event index in the batch to hand out
    uint32_t end; ///< one past the last
    std::shared_ptr<const BatchView> view;
    Owner owner;
    uint32_t epoch = 0; ///< see Event::epoch
    uint64_t offsetOf(uint32_t i) const { return view->baseOffset() + i; }
};

class ConsumerImpl;

/**
 * @brief Reads a topic's partitions (all, chosen ones, or a group's share).
 *
 * A background thread prefetches batches; pull() hands out events without
 * copying their bytes. In a group, ack() marks events processed and commit()
 * (or auto-commit, or close) stores the positions durably.
 */
class Consumer {
  public:
    /// Start consuming @p topic.
    Consumer(std::shared_ptr<BrokerClient> client, const std::string& topic, const ConsumerOptions& options);
    ~Consumer();
    /// The next event, or nothing after @p timeoutMs (< 0: wait forever) or at the end of a complete topic.
    std::optional<Event> pull(int64_t timeoutMs);
    /// The rest of the next fetched batch, up to @p maxEvents events (vectorised consume).
    std::optional<Delivery> pullBatch(size_t maxEvents, int64_t timeoutMs);
    /// Mark everything up to and including @p offset of @p partition processed; @p epoch is the
    /// delivered event's (an ack from an earlier ownership of the partition is ignored).
    void ack(uint32_t partition, uint64_t offset, uint32_t epoch);
    /// Store acknowledged positions durably now; needs a group.
    void commit();
    /// True when the topic is complete and every owned partition was read to its end.
    bool exhausted() const;
    /// Partitions this consumer currently reads.
    std::vector<uint32_t> partitions() const;
    /// Counters of what this consumer did.
    ConsumerStats stats() const;
    /// This consumer's member id in its group (empty without a group).
    std::string memberId() const;
    /// Commit, leave the group and stop prefetching.
    void close();
    /// Apply the data selection of this consumer to an event's data.
    Piece select(Piece data) const;

  private:
    std::shared_ptr<ConsumerImpl> m_impl;
};

} // namespace mofka_py
