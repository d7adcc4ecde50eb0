/**
 * @file ReplicaFetcher.hpp
 * @brief A follower's copy loop: fetches one partition from its leader over TCP and appends
 *        what it gets, byte for byte, at the same offsets (Kafka's replica fetcher).
 */
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mofka_py {

class Broker; // mofka_py/Broker.hpp

/// Settings of a ReplicaFetcher.
struct ReplicaFetcherOptions {
    std::string token; ///< the cluster's shared secret (the leader's service token)
    size_t maxBytes = 8u << 20; ///< largest reply per fetch
    int64_t pollMs = 500; ///< how long the leader may hold a fetch that finds nothing new
    int64_t connectTimeoutMs = 1000; ///< connecting to the leader
};

/**
 * @brief Copies a partition from its leader while this node follows it under one epoch.
 *
 * A thread fetches from the local log's end, giving the leader the local last batch so a tail
 * the leader does not have (written by a deposed leader, never acknowledged) is found and
 * truncated first. Each fetch tells the leader how far this replica holds the log: that is
 * what moves its high watermark. Errors are retried with a short backoff (lastError() shows the
 * latest) until stop(); the cluster coordinator replaces the fetcher when the leader changes.
 */
class ReplicaFetcher {
  public:
    /// Start fetching @p topic / @p partition from the leader of @p epoch at @p host : @p port.
    ReplicaFetcher(std::shared_ptr<Broker> broker, std::string topic, uint32_t partition, uint64_t epoch,
                   std::string host, uint16_t port, ReplicaFetcherOptions options = {});
    /// Stops and joins the thread.
    ~ReplicaFetcher();
    ReplicaFetcher(const ReplicaFetcher&) = delete;
    ReplicaFetcher& operator=(const ReplicaFetcher&) = delete;
    /// Stop fetching (returns once the thread ended; idempotent).
    void stop();
    /// The last error met ("" if the last fetch succeeded).
    std::string lastError() const;
    /// Batches appended so far.
    uint64_t appendedBatches() const;
    /// Truncations of a divergent tail so far.
    uint64_t truncations() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace mofka_py
