#include "wire/Messages.hpp"

namespace mofka_py {

void writeAssignment(Writer& w, const Assignment& a) {
    w.put<uint64_t>(a.generation).put<uint32_t>(a.pending).u32s(a.partitions);
}

Assignment readAssignment(Reader& r) {
    Assignment a;
    a.generation = r.get<uint64_t>();
    a.pending = r.get<uint32_t>();
    a.partitions = r.u32s();
    return a;
}

void writeHeartbeat(Writer& w, const MemberHeartbeat& h) {
    w.str(h.memberId).put<int64_t>(h.sessionTimeoutMs).offsets(h.owned);
}

MemberHeartbeat readHeartbeat(Reader& r) {
    MemberHeartbeat h;
    h.memberId = r.str();
    h.sessionTimeoutMs = r.get<int64_t>();
    h.owned = r.offsets();
    return h;
}

void writeTopicConfig(Writer& w, const TopicConfig& c) {
    w.put<uint32_t>(c.partitions)
        .put<uint64_t>(c.segmentBytes)
        .put<uint64_t>(c.retentionBytes)
        .put<int64_t>(c.retentionMs)
        .put<uint8_t>(uint8_t(c.sync))
        .put<int64_t>(c.syncIntervalMs)
        .put<uint64_t>(c.maxEventBytes)
        .put<uint32_t>(c.setFields)
        .put<uint32_t>(c.replication)
        .put<uint32_t>(c.minInsync);
}

TopicConfig readTopicConfig(Reader& r) {
    TopicConfig c;
    c.partitions = r.get<uint32_t>();
    c.segmentBytes = r.get<uint64_t>();
    c.retentionBytes = r.get<uint64_t>();
    c.retentionMs = r.get<int64_t>();
    uint8_t s = r.get<uint8_t>();
    if (s > 2) throw Error(ErrorCode::Corruption, "malformed message: bad sync policy");
    c.sync = SyncPolicy(s);
    c.syncIntervalMs = r.get<int64_t>();
    c.maxEventBytes = r.get<uint64_t>();
    c.setFields = r.get<uint32_t>();
    c.replication = r.get<uint32_t>();
    c.minInsync = r.get<uint32_t>();
    return c;
}

void writeTopicInfo(Writer& w, const TopicInfo& i) {
    w.str(i.name);
    writeTopicConfig(w, i.config);
    w.put<uint8_t>(i.complete).put<uint32_t>(uint32_t(i.partitions.size()));
    for (auto& p : i.partitions)
        w.put<uint32_t>(p.partition).put<uint64_t>(p.startOffset).put<uint64_t>(p.endOffset).put<uint64_t>(p.sizeBytes);
}

TopicInfo readTopicInfo(Reader& r) {
    TopicInfo i;
    i.name = r.str();
    i.config = readTopicConfig(r);
    i.complete = r.get<uint8_t>() != 0;
    uint32_t n = r.get<uint32_t>();
    if (n > r.remaining() / 28) throw Error(ErrorCode::Corruption, "malformed message: partition count");
    for (uint32_t k = 0; k < n; ++k) {
        PartitionInfo p;
        p.partition = r.get<uint32_t>();
        p.startOffset = r.get<uint64_t>();
        p.endOffset = r.get<uint64_t>();
        p.sizeBytes = r.get<uint64_t>();
        i.partitions.push_back(p);
    }
    return i;
}

} // namespace mofka_py
