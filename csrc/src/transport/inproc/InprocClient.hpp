// The in-process transport (opened through transport/Factory from a memory:// or file:// URL).
#pragma once
#include "mofka_py/BrokerClient.hpp"

#include <memory>
#include <string>

namespace mofka_py {

class Broker;

/// A client that calls a broker in the same process.
std::shared_ptr<BrokerClient> makeInprocClient(std::shared_ptr<Broker> broker, std::string url);

} // namespace mofka_py
