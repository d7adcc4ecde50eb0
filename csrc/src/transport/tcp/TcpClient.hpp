// The TCP transport's client side (opened through transport/Factory from a tcp:// URL).
#pragma once
#include "mofka_py/BrokerClient.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mofka_py {

/// Settings of a TCP client.
struct TcpClientOptions {
    std::string token;
    /// Connecting and logging in together; a peer that does not greet like a mofka-py
    /// server within min(this, requestTimeoutMs) is reported as not being one.
    int64_t connectTimeoutMs = 5000;
    int64_t requestTimeoutMs = 30000; ///< no reply within this: Timeout
    int64_t reconnectTimeoutMs = 300000; ///< keep retrying a lost connection this long
};

/// The leader's answer to a follower replica's fetch (MsgType::ReplicaFetch).
struct ReplicaFetchReply {
    bool diverged = false; ///< the follower's last batch is not the leader's: truncate, ask again
    uint64_t leaderEnd = 0; ///< diverged: the leader's log end
    uint64_t highWatermark = 0; ///< the leader's high watermark
    std::vector<StoredBatch> batches; ///< as stored at the leader, from the asked offset
};

/// A follower replica's fetch over @p client (made by makeTcpClient): batches of @p topic /
/// @p partition from @p offset, past the high watermark, waiting up to @p timeoutMs; @p prev is
/// the follower's batch ending at @p offset (none when its log is empty there).
ReplicaFetchReply tcpReplicaFetch(BrokerClient& client, const std::string& topic, uint32_t partition, uint64_t offset,
                                  size_t maxBytes, int64_t timeoutMs, const std::string& node, uint64_t epoch,
                                  const std::optional<BatchHeader>& prev);

/**
 * @brief A client of a replicated cluster (`mofka-py serve --cluster` on each of @p nodes): it
 *        asks any node who leads each partition, sends each request to its leader, and on a
 *        failover (NotLeader, a lost node) asks again and resends, for up to
 *        @p options.reconnectTimeoutMs. Resent batches are stored once (the idempotent producer).
 */
std::shared_ptr<BrokerClient> makeClusterClient(const std::vector<std::pair<std::string, uint16_t>>& nodes,
                                                const TcpClientOptions& options, const std::string& url);

/// A client for a TcpServer at @p host : @p port.
std::shared_ptr<BrokerClient> makeTcpClient(const std::string& host, uint16_t port, const TcpClientOptions& options,
                                            const std::string& url);

} // namespace mofka_py
