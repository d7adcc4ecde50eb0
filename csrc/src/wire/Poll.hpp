// The two long-poll requests every transport serves: a fetch (the next batches of a partition)
// and a wait for a topic change. One encoding, one decoder, shared by TCP and MPI (the reply
// paths differ: each transport moves the stored bytes its own zero-copy way).
//
// Fetch body: str topic, u32 partition, u64 offset, u64 maxBytes, i64 timeoutMs.
// Wait body:  str topic, u64 version, i64 timeoutMs.
#pragma once
#include "wire/Codec.hpp"

#include <cstdint>
#include <string>

namespace mofka_py {

/// A fetch or a wait for a topic change, as a client sends it.
struct PollRequest {
    enum class Kind : uint8_t { Fetch, WaitTopic };
    Kind kind = Kind::Fetch;
    std::string topic;
    uint32_t partition = 0; ///< Fetch
    uint64_t offset = 0; ///< Fetch: the first offset wanted
    uint64_t maxBytes = 0; ///< Fetch: reply size limit
    uint64_t version = 0; ///< WaitTopic: the topic version the client has seen
    int64_t timeoutMs = 0; ///< how long the server may hold the request (<= 0: answer at once)
    bool replica = false; ///< Fetch by a follower replica: past the high watermark, answered with it
};

/// Append the body of @p q (its kind is carried by the transport's message type).
void writePoll(Writer& w, const PollRequest& q);
/// Decode a poll body of kind @p kind; throws Error(Corruption) if malformed.
PollRequest readPoll(Reader& r, PollRequest::Kind kind);

} // namespace mofka_py
