// The server side of control requests (wire/Control.hpp), the same for every transport.
#pragma once
#include "mofka_py/Broker.hpp"

#include <cstdint>
#include <vector>

namespace mofka_py {

/// Decode a control request, run it on @p broker and return the reply body.
/// Throws Error (Corruption for a malformed body; the broker's errors otherwise).
std::vector<uint8_t> handleControl(Broker& broker, const uint8_t* body, size_t size);

} // namespace mofka_py
