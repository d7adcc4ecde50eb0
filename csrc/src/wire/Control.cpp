#include "wire/Control.hpp"

namespace mofka_py {

std::vector<uint8_t> encodeControl(const ControlRequest& q) {
    Writer w;
    w.put<uint16_t>(uint16_t(q.op));
    switch (q.op) {
    case ControlOp::DescribeGroup: w.str(q.group).str(q.topic); break;
    case ControlOp::ResetGroup: w.str(q.group).str(q.topic).offsets(q.offsets); break;
    case ControlOp::NoteSkipped: w.str(q.group).str(q.topic).put<uint32_t>(q.partition).put<uint64_t>(q.count); break;
    case ControlOp::OffsetForTime: w.str(q.topic).put<uint32_t>(q.partition).put<int64_t>(q.timestampUs); break;
    case ControlOp::DeleteTopic: w.str(q.topic).put<uint64_t>(q.count); break;
    case ControlOp::PurgePartition: w.str(q.topic).put<uint32_t>(q.partition); break;
    case ControlOp::AlterTopic:
        w.str(q.topic);
        writeTopicConfig(w, q.config);
        break;
    case ControlOp::RemoveMember: w.str(q.group).str(q.topic).str(q.member); break;
    case ControlOp::CreateTopic:
        w.str(q.topic);
        writeTopicConfig(w, q.config);
        break;
    case ControlOp::ListTopics: break;
    case ControlOp::DescribeTopic:
    case ControlOp::MarkComplete:
    case ControlOp::IsComplete:
    case ControlOp::Groups:
    case ControlOp::ClusterMetadata: w.str(q.topic); break;
    case ControlOp::Offsets: w.str(q.topic).put<uint32_t>(q.partition); break;
    case ControlOp::JoinGroup:
    case ControlOp::LeaveGroup: w.str(q.group).str(q.topic).str(q.member); break;
    case ControlOp::Assignment:
        w.str(q.group).str(q.topic);
        writeHeartbeat(w, q.heartbeat);
        break;
    case ControlOp::Release: w.str(q.group).str(q.topic).str(q.member).u32s(q.partitions); break;
    case ControlOp::Commit: w.str(q.group).str(q.topic).offsets(q.offsets).str(q.member); break;
    case ControlOp::Committed: w.str(q.group).str(q.topic).put<uint32_t>(q.partition); break;
    }
    return std::move(w.buf);
}

ControlRequest decodeControl(const uint8_t* body, size_t size) {
    Reader r(body, size);
    ControlRequest q;
    q.op = ControlOp(r.get<uint16_t>());
    switch (q.op) {
    case ControlOp::DescribeGroup:
        q.group = r.str();
        q.topic = r.str();
        break;
    case ControlOp::ResetGroup:
        q.group = r.str();
        q.topic = r.str();
        q.offsets = r.offsets();
        break;
    case ControlOp::NoteSkipped:
        q.group = r.str();
        q.topic = r.str();
        q.partition = r.get<uint32_t>();
        q.count = r.get<uint64_t>();
        break;
    case ControlOp::OffsetForTime:
        q.topic = r.str();
        q.partition = r.get<uint32_t>();
        q.timestampUs = r.get<int64_t>();
        break;
    case ControlOp::DeleteTopic:
        q.topic = r.str();
        q.count = r.get<uint64_t>();
        break;
    case ControlOp::PurgePartition:
        q.topic = r.str();
        q.partition = r.get<uint32_t>();
        break;
    case ControlOp::AlterTopic:
        q.topic = r.str();
        q.config = readTopicConfig(r);
        break;
    case ControlOp::RemoveMember:
        q.group = r.str();
        q.topic = r.str();
        q.member = r.str();
        break;
    case ControlOp::CreateTopic:
        q.topic = r.str();
        q.config = readTopicConfig(r);
        break;
    case ControlOp::ListTopics: break;
    case ControlOp::DescribeTopic:
    case ControlOp::MarkComplete:
    case ControlOp::IsComplete:
    case ControlOp::Groups:
    case ControlOp::ClusterMetadata: q.topic = r.str(); break;
    case ControlOp::Offsets:
        q.topic = r.str();
        q.partition = r.get<uint32_t>();
        break;
    case ControlOp::JoinGroup:
    case ControlOp::LeaveGroup:
        q.group = r.str();
        q.topic = r.str();
        q.member = r.str();
        break;
    case ControlOp::Assignment:
        q.group = r.str();
        q.topic = r.str();
        q.heartbeat = readHeartbeat(r);
        break;
    case ControlOp::Release:
        q.group = r.str();
        q.topic = r.str();
        q.member = r.str();
        q.partitions = r.u32s();
        break;
    case ControlOp::Commit:
        q.group = r.str();
        q.topic = r.str();
        q.offsets = r.offsets();
        q.member = r.str();
        break;
    case ControlOp::Committed:
        q.group = r.str();
        q.topic = r.str();
        q.partition = r.get<uint32_t>();
        break;
    default: throw Error(ErrorCode::Corruption, "unknown control request " + std::to_string(uint16_t(q.op)));
    }
    r.end();
    return q;
}

void writeGroupState(Writer& w, const GroupState& s) {
    w.str(s.group).str(s.topic).put<uint64_t>(s.generation).put<uint32_t>(uint32_t(s.members.size()));
    for (auto& m : s.members) w.str(m.id).u32s(m.partitions).put<int64_t>(m.idleMs).put<int64_t>(m.sessionTimeoutMs);
    w.put<uint32_t>(uint32_t(s.partitions.size()));
    for (auto& p : s.partitions)
        w.put<uint32_t>(p.partition)
            .put<uint8_t>(p.committed ? 1 : 0)
            .put<uint64_t>(p.committed.value_or(0))
            .put<uint64_t>(p.skipped)
            .put<uint8_t>(p.owner ? 1 : 0)
            .str(p.owner.value_or(""))
            .put<uint64_t>(p.position);
}

GroupState readGroupState(Reader& r) {
    GroupState s;
    s.group = r.str();
    s.topic = r.str();
    s.generation = r.get<uint64_t>();
    s.members.resize(r.count(24));
    for (auto& m : s.members) {
        m.id = r.str();
        m.partitions = r.u32s();
        m.idleMs = r.get<int64_t>();
        m.sessionTimeoutMs = r.get<int64_t>();
    }
    s.partitions.resize(r.count(34));
    for (auto& p : s.partitions) {
        p.partition = r.get<uint32_t>();
        bool has = r.get<uint8_t>() != 0;
        uint64_t c = r.get<uint64_t>();
        if (has) p.committed = c;
        p.skipped = r.get<uint64_t>();
        bool owned = r.get<uint8_t>() != 0;
        std::string o = r.str();
        if (owned) p.owner = o;
        p.position = r.get<uint64_t>();
    }
    return s;
}

void writeClusterView(Writer& w, const ClusterView& v) {
    w.put<uint8_t>(v.cluster ? 1 : 0).str(v.self).put<uint32_t>(uint32_t(v.nodes.size()));
    for (auto& n : v.nodes) w.str(n.id).str(n.address);
    w.put<uint8_t>(v.hasTopic ? 1 : 0).put<uint32_t>(v.minInsync).put<uint32_t>(uint32_t(v.partitions.size()));
    for (auto& p : v.partitions) w.str(p.leader).str(p.leaderAddress).put<uint64_t>(p.epoch).strs(p.replicas);
}

ClusterView readClusterView(Reader& r) {
    ClusterView v;
    v.cluster = r.get<uint8_t>() != 0;
    v.self = r.str();
    uint32_t n = r.get<uint32_t>();
    if (n > r.remaining()) throw Error(ErrorCode::Corruption, "malformed cluster view");
    for (uint32_t i = 0; i < n; ++i) {
        ClusterView::Node node;
        node.id = r.str();
        node.address = r.str();
        v.nodes.push_back(std::move(node));
    }
    v.hasTopic = r.get<uint8_t>() != 0;
    v.minInsync = r.get<uint32_t>();
    uint32_t np = r.get<uint32_t>();
    if (np > r.remaining()) throw Error(ErrorCode::Corruption, "malformed cluster view");
    for (uint32_t i = 0; i < np; ++i) {
        ClusterView::Partition p;
        p.leader = r.str();
        p.leaderAddress = r.str();
        p.epoch = r.get<uint64_t>();
        p.replicas = r.strs();
        v.partitions.push_back(std::move(p));
    }
    return v;
}

} // namespace mofka_py
