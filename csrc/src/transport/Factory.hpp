// Choosing and opening a transport from a fabric URL: the one place that knows them all.
#pragma once
#include "mofka_py/Fabric.hpp"

#include <memory>
#include <string>

namespace mofka_py {

/// A client for @p url: an in-process broker (memory://, file://) or a TCP service (tcp://).
std::shared_ptr<BrokerClient> openFabricClient(const std::string& url, const FabricOptions& options);

} // namespace mofka_py
