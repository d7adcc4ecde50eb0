/**
 * @file Producer.hpp
 * @brief Batching producer with futures, bounded memory and strict per-partition order.
 */
#pragma once
#include "mofka_py/BrokerClient.hpp"
#include "mofka_py/RecordBatch.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace mofka_py {

/// Where an event was stored.
struct EventId {
    uint32_t partition;
    uint64_t offset;
};

/// How a producer picks a partition when the caller names none.
enum class PartitionSelector {
    RoundRobin, ///< event i goes to partition i mod N (per producer)
    KeyHash ///< murmur2 of the key (Kafka-compatible); round robin for events without key
};

/// Producer settings.
struct ProducerOptions {
    size_t batchSize = 16384; ///< seal a batch at this many events (the `batch_size` setting)
    size_t batchBytes = 4u << 20; ///< ... or at this many bytes
    double lingerMs = 1.0; ///< ... or when its first event is this old
    size_t maxPendingBytes = 256u << 20; ///< pushed but not yet appended; push blocks past this
    PartitionSelector selector = PartitionSelector::KeyHash;
};

/// Kafka-compatible murmur2 partitioner: the same key lands on the same partition everywhere.
uint32_t partitionForKey(const void* key, size_t size, uint32_t partitions);

struct BatchState;

/**
 * @brief The outcome of one push: resolves to an EventId once the batch is appended.
 */
class Future {
  public:
    Future() = default;
    Future(std::shared_ptr<BatchState> state, uint32_t index) : m_state(std::move(state)), m_index(index) {}
    /// True once the event is stored (or failed).
    bool done() const;
    /// Wait up to @p timeoutMs for the outcome; true if it is there (does not throw).
    bool waitFor(int64_t timeoutMs) const;
    /// Wait up to @p timeoutMs (< 0: forever); throws the append error, or Timeout.
    EventId wait(int64_t timeoutMs) const;

  private:
    std::shared_ptr<BatchState> m_state;
    uint32_t m_index = 0;
};

class ProducerImpl;

/**
 * @brief Sends events of one topic in batches from a background thread.
 *
 * Events to one partition are appended in push order. Data above
 * BatchBuilder::kInlineThreshold is referenced (its Owner kept) until appended.
 */
class Producer {
  public:
    /// Start a producer for @p topic over @p client.
    Producer(std::shared_ptr<BrokerClient> client, const std::string& topic, const ProducerOptions& options);
    ~Producer();

    /**
     * @brief Queue one event.
     * @param partition explicit partition, or -1 to use the selector
     * @param key       key bytes for KeyHash (may be null)
     * @throws InvalidArgument, EventTooLarge, Closed, BufferFull (when !block and memory is full)
     */
    Future push(const void* meta, size_t metaLen, const DataRef* data, size_t nData, int64_t partition, const void* key,
                size_t keyLen, bool block);

    /// Queue @p n metadata-only events of @p metaLen bytes, @p stride apart (the vectorised path).
    /// Returns a future for the last event.
    Future pushMany(const uint8_t* metas, size_t n, size_t metaLen, size_t stride, int64_t partition, bool block);

    /// Queue events whose metadata are given by lengths into one buffer (variable sizes).
    Future pushManyVar(const uint8_t* metas, const uint64_t* lengths, size_t n, int64_t partition, bool block);

    /// True if an event of @p bytes would have to wait for memory now.
    bool wouldBlock(size_t bytes) const;
    /// Wait until @p bytes fit under maxPendingBytes (or @p timeoutMs passes); true if they fit.
    bool waitForSpace(size_t bytes, int64_t timeoutMs) const;

    /**
     * @brief Send everything queued and wait until it is appended (@p timeoutMs < 0: no limit).
     *
     * Throws Timeout naming the events still unstored, their partitions and the cause when the
     * time runs out (they stay queued), and the failure of events not stored since the last
     * report otherwise.
     */
    void flush(int64_t timeoutMs);
    /**
     * @brief Flush and stop; pushing afterwards throws Closed.
     *
     * Without a timeout (< 0) it waits until every event is stored or failed (a transport
     * retrying a lost connection gives up after its reconnect timeout); past @p timeoutMs
     * it stops waiting and the events not stored fail. Throws if events were not stored
     * (and not reported by flush() before): never returns quietly with events lost.
     */
    void close(int64_t timeoutMs = -1);
    /// After a failure: partitions that refused events since a batch to them failed take
    /// events again (new producer id). Waits for batches in flight first.
    void reset();
    /// Bytes pushed and not yet appended.
    size_t pendingBytes() const;
    /// Events appended so far.
    uint64_t appendedEvents() const;
    /// Partitions of the topic.
    uint32_t partitions() const;

  private:
    std::shared_ptr<ProducerImpl> m_impl;
};

} // namespace mofka_py
