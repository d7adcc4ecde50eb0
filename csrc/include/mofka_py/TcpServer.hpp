/**
 * @file TcpServer.hpp
 * @brief The networked fabric service: one broker behind an epoll event loop.
 */
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mofka_py {

/// Settings of the TCP service.
struct TcpServerOptions {
    std::string host = "127.0.0.1"; ///< address to bind
    uint16_t port = 7400; ///< 0: any free port
    std::string token; ///< shared secret; empty: no authentication (loopback only)
    uint64_t maxFrameBytes = 1ull << 30; ///< larger frames close the connection
    uint32_t maxInflight = 256; ///< parked (long-poll) requests per connection
    uint64_t maxQueuedBytes = 256ull << 20; ///< stop reading a connection whose replies pile up past this
    int64_t idleTimeoutMs = 600000; ///< close connections silent for this long
    /// Logged-in and not-yet-logged-in connections together. A newcomer takes the place of a
    /// connection still waiting to log in if need be, so only when every one of them is logged
    /// in is it refused (politely, with an error frame).
    uint32_t maxConnections = 1024;
    /// A connection that has not completed the login this long after it was accepted is closed,
    /// however slowly it trickles bytes (NATS's auth_timeout).
    int64_t loginTimeoutMs = 5000;
    /// Connections not yet logged in, all addresses together (capped at maxConnections).
    uint32_t maxPendingLogins = 256;
    /// Connections not yet logged in from one IPv4 address (capped at maxPendingLogins).
    uint32_t maxPendingLoginsPerAddress = 64;
};

class Broker; // mofka_py/Broker.hpp
class TcpServerImpl;

/**
 * @brief Serves a broker over TCP. Single-threaded: call poll() in a loop
 *        (it returns after at most @p timeoutMs), then shutdown().
 *
 * Binding a non-loopback address without a token is refused.
 */
class TcpServer {
  public:
    /// Bind and listen; throws InvalidArgument / Connection on failure.
    TcpServer(std::shared_ptr<Broker> broker, const TcpServerOptions& options);
    ~TcpServer();
    /// The port actually bound.
    uint16_t port() const;
    /// Run the event loop for up to @p timeoutMs milliseconds.
    void poll(int timeoutMs);
    /// Stop accepting, send what is queued (up to @p drainMs), close every connection.
    void shutdown(int drainMs = 2000);
    /// Number of open client connections, logged in or not.
    size_t connections() const;
    /// Number of open connections that have not logged in yet.
    size_t pendingLogins() const;

  private:
    std::unique_ptr<TcpServerImpl> m_impl;
};

} // namespace mofka_py
