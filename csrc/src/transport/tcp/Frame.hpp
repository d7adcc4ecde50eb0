/**
 * @file Frame.hpp
 * @brief Framing and message encoding of the networked fabric service.
 *
 * Every message is a 32-byte FrameHeader (magic, version, type, flags,
 * request id, body length) and a body. Record batches travel inside PRODUCE
 * requests and FETCH responses as stored, never re-encoded. Decoders check
 * every length against the bytes actually present and throw
 * Error(Corruption) on anything malformed.
 */
#pragma once
#include "mofka_py/Error.hpp"
#include "mofka_py/Group.hpp"
#include "mofka_py/Types.hpp"
#include "transport/tcp/Sha256.hpp"
#include "wire/Codec.hpp"
#include "wire/Messages.hpp"
#include "wire/Poll.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace mofka_py {

constexpr uint32_t kFrameMagic = 0x4659504Du; ///< "MPYF"
constexpr uint16_t kFrameVersion = 1;
constexpr size_t kFrameHeaderSize = 32;
constexpr uint16_t kResponseBit = 0x8000;
constexpr uint32_t kFlagError = 1;

/// Message kinds (a response carries the request's kind | kResponseBit).
/// Message kinds: the login, the streaming requests the TCP transport carries its own way
/// (zero-copy batches, parked long polls), the service's status, and every other request as a
/// transport-neutral control request (wire/Control.hpp).
enum class MsgType : uint16_t {
    Hello = 1,
    Auth = 2,
    AuthOk = 3,
    Produce = 13,
    Fetch = 14,
    WaitTopic = 15,
    ReplicaFetch = 16, ///< a follower replica's fetch (cluster): a Fetch with who and where it is
    Status = 26,
    Control = 40, ///< a control request, carried as is
};

/// The fixed frame header, as sent.
struct FrameHeader {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t flags;
    uint32_t reserved;
    uint64_t requestId;
    uint64_t bodyLength;
};
static_assert(sizeof(FrameHeader) == kFrameHeaderSize, "frame header layout");

/// Check a received header: magic, version and the size limit.
void checkFrameHeader(const FrameHeader& h, uint64_t maxBody);

/// The login proof: HMAC-SHA-256 under the token of both nonces and a label
/// ("mofka-py client" or "mofka-py server"), so neither side's proof can be replayed as the other's.
Digest loginMac(const std::string& token, const uint8_t* serverNonce, const uint8_t* clientNonce, const char* label);

/// Encode/decode a frame header.
std::vector<uint8_t> encodeHeader(MsgType type, uint32_t flags, uint64_t requestId, uint64_t bodyLength);

/// A decoded client request (fields used depend on the type).
struct Request {
    MsgType type{};
    std::string topic; ///< Produce
    uint32_t partition = 0; ///< Produce
    size_t batchLength = 0; ///< Produce: the batch is body[0, batchLength)
    PollRequest poll; ///< Fetch, WaitTopic, ReplicaFetch (wire/Poll.hpp, shared with every transport)
    std::string node; ///< ReplicaFetch: the follower's node id
    uint64_t epoch = 0; ///< ReplicaFetch: the leader epoch the follower follows
    std::optional<BatchHeader> prev; ///< ReplicaFetch: the follower's batch ending at poll.offset
    std::vector<uint8_t> control; ///< Control: the control request body (wire/Control.hpp)
};

/// Decode a request body of message type @p type; throws Error(Corruption) if malformed.
Request decodeRequest(uint16_t type, const uint8_t* body, size_t size);

/// Encode the body of a request (the client side of decodeRequest, produce excepted).
std::vector<uint8_t> encodeRequest(const Request& r);

/**
 * @brief Decode one whole frame (header + body) the way the server does,
 *        without acting on it; throws Error(Corruption) if malformed.
 *
 * Used by the fuzz tests: any byte string must either decode or raise.
 * Returns the message type.
 */
uint16_t decodeFrameForTest(const uint8_t* data, size_t size, uint64_t maxBody);

} // namespace mofka_py
