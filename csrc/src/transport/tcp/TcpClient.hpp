// The TCP transport's client side (opened through transport/Factory from a tcp:// URL).
#pragma once
#include "mofka_py/BrokerClient.hpp"

#include <cstdint>
#include <memory>
#include <string>

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

/// A client for a TcpServer at @p host : @p port.
std::shared_ptr<BrokerClient> makeTcpClient(const std::string& host, uint16_t port, const TcpClientOptions& options,
                                            const std::string& url);

} // namespace mofka_py
