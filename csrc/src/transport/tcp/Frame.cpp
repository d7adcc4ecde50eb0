#include "transport/tcp/Frame.hpp"

#include "mofka_py/RecordBatch.hpp"

#include "wire/Control.hpp"

namespace mofka_py {

void checkFrameHeader(const FrameHeader& h, uint64_t maxBody) {
    if (h.magic != kFrameMagic)
        throw Error(ErrorCode::Corruption,
                    "not a mofka-py frame (bad magic): is the client speaking the mofka-py protocol?");
    if (h.version != kFrameVersion)
        throw Error(ErrorCode::Corruption, "unsupported protocol version " + std::to_string(h.version) +
                                               " (this server speaks " + std::to_string(kFrameVersion) +
                                               "); upgrade the older side");
    if (h.bodyLength > maxBody)
        throw Error(ErrorCode::Corruption, "frame of " + std::to_string(h.bodyLength) + " bytes exceeds the limit of " +
                                               std::to_string(maxBody) + " bytes");
}

Digest loginMac(const std::string& token, const uint8_t* serverNonce, const uint8_t* clientNonce, const char* label) {
    std::vector<uint8_t> msg(serverNonce, serverNonce + 32);
    msg.insert(msg.end(), clientNonce, clientNonce + 32);
    msg.insert(msg.end(), label, label + std::strlen(label));
    return hmacSha256(token, msg.data(), msg.size());
}

std::vector<uint8_t> encodeHeader(MsgType type, uint32_t flags, uint64_t requestId, uint64_t bodyLength) {
    FrameHeader h{kFrameMagic, kFrameVersion, uint16_t(type), flags, 0, requestId, bodyLength};
    std::vector<uint8_t> out(sizeof(h));
    std::memcpy(out.data(), &h, sizeof(h));
    return out;
}

Request decodeRequest(uint16_t type, const uint8_t* body, size_t size) {
    Request q;
    q.type = MsgType(type);
    Reader r(body, size);
    switch (q.type) {
    case MsgType::Status: break;
    case MsgType::Produce: {
        // body = batch | topic | u32 partition | u32 trailer length (the batch comes first so it
        // can be stored from the receive buffer as it is)
        if (size < 4) throw Error(ErrorCode::Corruption, "malformed message: produce trailer");
        uint32_t tl;
        std::memcpy(&tl, body + size - 4, 4);
        if (uint64_t(tl) + 4 > size) throw Error(ErrorCode::Corruption, "malformed message: produce trailer");
        q.batchLength = size - tl - 4;
        Reader t(body + q.batchLength, tl);
        q.topic = t.str();
        q.partition = t.get<uint32_t>();
        t.end();
        BatchView v(body, q.batchLength); // structure only; the log verifies the CRC
        return q;
    }
    case MsgType::Fetch:
    case MsgType::WaitTopic:
        q.poll = readPoll(r, q.type == MsgType::Fetch ? PollRequest::Kind::Fetch : PollRequest::Kind::WaitTopic);
        if (q.poll.timeoutMs < 0 || q.poll.timeoutMs > 600000)
            throw Error(ErrorCode::Corruption, "malformed message: timeout out of range");
        break;
    case MsgType::ReplicaFetch: {
        q.poll = readPoll(r, PollRequest::Kind::Fetch);
        q.poll.replica = true;
        if (q.poll.timeoutMs < 0 || q.poll.timeoutMs > 600000)
            throw Error(ErrorCode::Corruption, "malformed message: timeout out of range");
        q.node = r.str();
        q.epoch = r.get<uint64_t>();
        if (r.get<uint8_t>()) {
            BatchHeader h{};
            h.baseOffset = r.get<uint64_t>();
            h.count = r.get<uint32_t>();
            h.crc = r.get<uint32_t>();
            h.producerId = r.get<uint64_t>();
            h.sequence = r.get<uint64_t>();
            q.prev = h;
        }
        break;
    }
    case MsgType::Control: {
        size_t n = r.remaining();
        const uint8_t* p = r.take(n);
        q.control.assign(p, p + n);
        decodeControl(p, n); // refuse a malformed control body here, with the frame
        break;
    }
    default: throw Error(ErrorCode::Corruption, "unknown message type " + std::to_string(type));
    }
    r.end();
    return q;
}

std::vector<uint8_t> encodeRequest(const Request& q) {
    Writer w;
    switch (q.type) {
    case MsgType::Fetch:
    case MsgType::WaitTopic: writePoll(w, q.poll); break;
    case MsgType::ReplicaFetch:
        writePoll(w, q.poll);
        w.str(q.node).put<uint64_t>(q.epoch).put<uint8_t>(q.prev ? 1 : 0);
        if (q.prev)
            w.put<uint64_t>(q.prev->baseOffset)
                .put<uint32_t>(q.prev->count)
                .put<uint32_t>(q.prev->crc)
                .put<uint64_t>(q.prev->producerId)
                .put<uint64_t>(q.prev->sequence);
        break;
    case MsgType::Control: w.bytes(q.control.data(), q.control.size()); break;
    default: break;
    }
    return std::move(w.buf);
}

uint16_t decodeFrameForTest(const uint8_t* data, size_t size, uint64_t maxBody) {
    if (size < kFrameHeaderSize) throw Error(ErrorCode::Corruption, "malformed message: truncated header");
    FrameHeader h;
    std::memcpy(&h, data, sizeof(h));
    checkFrameHeader(h, maxBody);
    if (h.bodyLength != size - kFrameHeaderSize)
        throw Error(ErrorCode::Corruption, "malformed message: body length mismatch");
    if (h.type == uint16_t(MsgType::Auth)) {
        if (h.bodyLength != 64) throw Error(ErrorCode::Corruption, "malformed handshake");
        return h.type;
    }
    decodeRequest(h.type, data + kFrameHeaderSize, size_t(h.bodyLength));
    return h.type;
}

} // namespace mofka_py
