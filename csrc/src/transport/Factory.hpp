// Choosing and opening a transport from a fabric URL: the one place that knows them all.
#pragma once
#include "mofka_py/Broker.hpp"
#include "mofka_py/Fabric.hpp"

#include <memory>
#include <string>

namespace mofka_py {

/// A client for @p url: an in-process broker (memory://, file://) or a TCP service (tcp://).
std::shared_ptr<BrokerClient> openFabricClient(const std::string& url, const FabricOptions& options);

/// Options of a broker a fabric hosts itself (embedded, or on an MPI server rank): a topic
/// created without a setting takes it from @p defaults. An empty @p directory: in memory.
BrokerOptions hostedBrokerOptions(const TopicConfig& defaults, bool repair, const std::string& directory);

} // namespace mofka_py
