#include "broker/ControlHandler.hpp"

#include "wire/Control.hpp"

namespace mofka_py {

ControlResult handleControl(Broker& broker, const uint8_t* body, size_t size) {
    ControlRequest q = decodeControl(body, size);
    Writer w;
    std::string changed;
    switch (q.op) {
    case ControlOp::DescribeGroup: writeGroupState(w, broker.describeGroup(q.group, q.topic)); break;
    case ControlOp::ResetGroup: broker.resetGroup(q.group, q.topic, q.offsets); break;
    case ControlOp::NoteSkipped: broker.noteSkipped(q.group, q.topic, q.partition, q.count); break;
    case ControlOp::OffsetForTime: w.put<uint64_t>(broker.offsetForTime(q.topic, q.partition, q.timestampUs)); break;
    case ControlOp::DeleteTopic:
        broker.deleteTopic(q.topic, q.count != 0);
        changed = q.topic;
        break;
    case ControlOp::PurgePartition:
        w.put<uint64_t>(broker.purgePartition(q.topic, q.partition));
        changed = q.topic;
        break;
    case ControlOp::AlterTopic: broker.alterTopic(q.topic, q.config); break;
    case ControlOp::RemoveMember: w.put<uint8_t>(broker.removeMember(q.group, q.topic, q.member) ? 1 : 0); break;
    case ControlOp::CreateTopic: broker.createTopic(q.topic, q.config); break;
    case ControlOp::ListTopics: w.strs(broker.listTopics()); break;
    case ControlOp::DescribeTopic: writeTopicInfo(w, broker.describeTopic(q.topic)); break;
    case ControlOp::Offsets: {
        auto o = broker.offsets(q.topic, q.partition);
        w.put<uint64_t>(o.first).put<uint64_t>(o.second);
        break;
    }
    case ControlOp::MarkComplete:
        broker.markComplete(q.topic);
        changed = q.topic;
        break;
    case ControlOp::IsComplete: w.put<uint8_t>(broker.isComplete(q.topic) ? 1 : 0); break;
    case ControlOp::JoinGroup: w.str(broker.joinGroup(q.group, q.topic, q.member)); break;
    case ControlOp::LeaveGroup: broker.leaveGroup(q.group, q.topic, q.member); break;
    case ControlOp::Assignment: writeAssignment(w, broker.assignment(q.group, q.topic, q.heartbeat)); break;
    case ControlOp::Release: broker.releasePartitions(q.group, q.topic, q.member, q.partitions); break;
    case ControlOp::Commit: broker.commit(q.group, q.topic, q.offsets, q.member); break;
    case ControlOp::Committed: {
        auto c = broker.committed(q.group, q.topic, q.partition);
        w.put<uint8_t>(c ? 1 : 0).put<uint64_t>(c.value_or(0));
        break;
    }
    case ControlOp::Groups: w.strs(broker.groups(q.topic)); break;
    case ControlOp::ClusterMetadata: writeClusterView(w, broker.clusterView(q.topic)); break;
    }
    return {std::move(w.buf), std::move(changed)};
}

} // namespace mofka_py
