#include "broker/ControlHandler.hpp"

#include "wire/Control.hpp"

namespace mofka_py {

std::vector<uint8_t> handleControl(Broker& broker, const uint8_t* body, size_t size) {
    ControlRequest q = decodeControl(body, size);
    Writer w;
    switch (q.op) {
    case ControlOp::DescribeGroup: writeGroupState(w, broker.describeGroup(q.group, q.topic)); break;
    case ControlOp::ResetGroup: broker.resetGroup(q.group, q.topic, q.offsets); break;
    case ControlOp::NoteSkipped: broker.noteSkipped(q.group, q.topic, q.partition, q.count); break;
    case ControlOp::OffsetForTime: w.put<uint64_t>(broker.offsetForTime(q.topic, q.partition, q.timestampUs)); break;
    case ControlOp::DeleteTopic: broker.deleteTopic(q.topic, q.count != 0); break;
    case ControlOp::PurgePartition: w.put<uint64_t>(broker.purgePartition(q.topic, q.partition)); break;
    case ControlOp::AlterTopic: broker.alterTopic(q.topic, q.config); break;
    case ControlOp::RemoveMember: w.put<uint8_t>(broker.removeMember(q.group, q.topic, q.member) ? 1 : 0); break;
    }
    return std::move(w.buf);
}

} // namespace mofka_py
