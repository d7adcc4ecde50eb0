/**
 * @file Fabric.hpp
 * @brief Entry point of the C++ API: open a fabric by URL, get topics,
 *        producers and consumers. The handles share their implementation.
 *
 * @code
 *   auto fab = mofka_py::Fabric::connect("file:///scratch/run1");
 *   auto topic = fab.createTopic("frames", cfg);
 *   mofka_py::Producer prod(fab.client(), "frames", {});
 * @endcode
 */
#pragma once
#include "mofka_py/Broker.hpp"
#include "mofka_py/BrokerClient.hpp"
#include "mofka_py/TcpServer.hpp"

#include <memory>
#include <string>
#include <vector>

namespace mofka_py {

/// A parsed fabric URL.
struct FabricUrl {
    std::string scheme; ///< "memory", "file" or "tcp"
    std::string path;   ///< directory for file://
    std::string host;   ///< tcp://host:port
    uint16_t port = 0;
};

/// Parse @p url; throws InvalidArgument with the accepted forms.
FabricUrl parseFabricUrl(const std::string& url);

/**
 * @brief A connection to a fabric (embedded, or through a transport).
 */
class Fabric {
  public:
    /// Open a fabric: embedded ("memory://", "file:///path", created if missing)
    /// or a service ("tcp://host:port", see TcpServer).
    static Fabric connect(const std::string& url, const BrokerOptions& options = {},
                          const TcpClientOptions& tcp = {});
    /// Wrap an existing client (used by the MPI and TCP transports).
    explicit Fabric(std::shared_ptr<BrokerClient> client) : m_client(std::move(client)) {}

    /// The transport-independent request interface.
    const std::shared_ptr<BrokerClient>& client() const { return m_client; }
    /// Close the fabric (for embedded ones, the broker and its files).
    void close() { m_client->close(); }

  private:
    std::shared_ptr<BrokerClient> m_client;
};

} // namespace mofka_py
