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
#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Sha256.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace mofka_py {

constexpr uint32_t kFrameMagic = 0x4659504Du; ///< "MPYF"
constexpr uint16_t kFrameVersion = 1;
constexpr size_t kFrameHeaderSize = 32;
constexpr uint16_t kResponseBit = 0x8000;
constexpr uint32_t kFlagError = 1;

/// Message kinds (a response carries the request's kind | kResponseBit).
enum class MsgType : uint16_t {
    Hello = 1, Auth = 2, AuthOk = 3,
    CreateTopic = 10, ListTopics, DescribeTopic, Produce, Fetch, WaitTopic, Offsets, MarkComplete,
    IsComplete, JoinGroup, LeaveGroup, Assignment, Release, Commit, Committed, Groups, Status,
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

/// Appends little-endian values to a byte buffer.
class Writer {
  public:
    std::vector<uint8_t> buf;
    template <typename T> Writer& put(T v) {
        size_t n = buf.size();
        buf.resize(n + sizeof(T));
        std::memcpy(buf.data() + n, &v, sizeof(T));
        return *this;
    }
    Writer& str(const std::string& s) {
        put<uint32_t>(uint32_t(s.size()));
        buf.insert(buf.end(), s.begin(), s.end());
        return *this;
    }
    Writer& bytes(const void* p, size_t n) {
        auto b = static_cast<const uint8_t*>(p);
        buf.insert(buf.end(), b, b + n);
        return *this;
    }
};

/// Reads little-endian values, refusing to read past the end.
class Reader {
  public:
    Reader(const uint8_t* p, size_t n) : m_p(p), m_n(n) {}
    template <typename T> T get() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, m_p, sizeof(T));
        m_p += sizeof(T);
        m_n -= sizeof(T);
        return v;
    }
    std::string str(size_t maxLen = 1 << 20) {
        uint32_t n = get<uint32_t>();
        if (n > maxLen) throw Error(ErrorCode::Corruption, "malformed message: string too long");
        need(n);
        std::string s(reinterpret_cast<const char*>(m_p), n);
        m_p += n;
        m_n -= n;
        return s;
    }
    const uint8_t* take(size_t n) {
        need(n);
        const uint8_t* p = m_p;
        m_p += n;
        m_n -= n;
        return p;
    }
    size_t remaining() const { return m_n; }
    void end() const {
        if (m_n) throw Error(ErrorCode::Corruption, "malformed message: unexpected trailing bytes");
    }

  private:
    void need(size_t n) const {
        if (n > m_n) throw Error(ErrorCode::Corruption, "malformed message: truncated body");
    }
    const uint8_t* m_p;
    size_t m_n;
};

/// The login proof: HMAC-SHA-256 under the token of both nonces and a label
/// ("mofka-py client" or "mofka-py server"), so neither side's proof can be replayed as the other's.
Digest loginMac(const std::string& token, const uint8_t* serverNonce, const uint8_t* clientNonce, const char* label);

/// Encode/decode a frame header.
std::vector<uint8_t> encodeHeader(MsgType type, uint32_t flags, uint64_t requestId, uint64_t bodyLength);

/// A group member's assignment on the wire.
void writeAssignment(Writer& w, const Assignment& a);
Assignment readAssignment(Reader& r);

/// Topic settings and info on the wire.
void writeTopicConfig(Writer& w, const TopicConfig& c);
TopicConfig readTopicConfig(Reader& r);
void writeTopicInfo(Writer& w, const TopicInfo& i);
TopicInfo readTopicInfo(Reader& r);

/// A decoded client request (fields used depend on the type).
struct Request {
    MsgType type{};
    std::string name, topic, group, member;
    uint32_t partition = 0;
    uint64_t offset = 0, maxBytes = 0, version = 0;
    int64_t timeoutMs = 0;
    TopicConfig config;
    std::vector<uint32_t> partitions;
    std::vector<std::pair<uint32_t, uint64_t>> offsets;
    size_t batchLength = 0; ///< Produce: the batch is body[0, batchLength)
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
