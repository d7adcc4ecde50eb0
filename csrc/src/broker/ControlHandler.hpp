// The server side of control requests (wire/Control.hpp), the same for every transport.
#pragma once
#include "mofka_py/Broker.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mofka_py {

/// What running a control request gave: the reply body, and the topic whose events or state it
/// changed (marked complete, purged, deleted), so that a transport can answer the long polls
/// waiting on it now rather than at their timeout ("" when none).
struct ControlResult {
    std::vector<uint8_t> reply;
    std::string changedTopic;
};

/// Decode a control request, run it on @p broker and return the reply.
/// Throws Error (Corruption for a malformed body; the broker's errors otherwise).
ControlResult handleControl(Broker& broker, const uint8_t* body, size_t size);

} // namespace mofka_py
