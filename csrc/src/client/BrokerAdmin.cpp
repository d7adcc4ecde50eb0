// Control requests as a client sends them; every transport carries the bodies unchanged.
#include "mofka_py/BrokerClient.hpp"

#include "wire/Control.hpp"

namespace mofka_py {

namespace {
using To = BrokerClient::ControlRoute::To;
}

GroupState BrokerClient::describeGroup(const std::string& group, const std::string& topic) {
    ControlRequest q;
    q.op = ControlOp::DescribeGroup;
    q.group = group;
    q.topic = topic;
    auto reply = control({To::Coordinator, topic, 0}, encodeControl(q));
    Reader r(reply.data(), reply.size());
    GroupState s = readGroupState(r);
    r.end();
    return s;
}

void BrokerClient::resetGroup(const std::string& group, const std::string& topic,
                              const std::vector<std::pair<uint32_t, uint64_t>>& offsets) {
    ControlRequest q;
    q.op = ControlOp::ResetGroup;
    q.group = group;
    q.topic = topic;
    q.offsets = offsets;
    control({To::Coordinator, topic, 0}, encodeControl(q));
}

void BrokerClient::noteSkipped(const std::string& group, const std::string& topic, uint32_t partition, uint64_t count) {
    ControlRequest q;
    q.op = ControlOp::NoteSkipped;
    q.group = group;
    q.topic = topic;
    q.partition = partition;
    q.count = count;
    control({To::Coordinator, topic, 0}, encodeControl(q));
}

uint64_t BrokerClient::offsetForTime(const std::string& topic, uint32_t partition, int64_t timestampUs) {
    ControlRequest q;
    q.op = ControlOp::OffsetForTime;
    q.topic = topic;
    q.partition = partition;
    q.timestampUs = timestampUs;
    auto reply = control({To::Partition, topic, partition}, encodeControl(q));
    Reader r(reply.data(), reply.size());
    uint64_t off = r.get<uint64_t>();
    r.end();
    return off;
}

bool BrokerClient::removeMember(const std::string& group, const std::string& topic, const std::string& memberId) {
    ControlRequest q;
    q.op = ControlOp::RemoveMember;
    q.group = group;
    q.topic = topic;
    q.member = memberId;
    auto reply = control({To::Coordinator, topic, 0}, encodeControl(q));
    Reader r(reply.data(), reply.size());
    bool removed = r.get<uint8_t>() != 0;
    r.end();
    return removed;
}

void BrokerClient::deleteTopic(const std::string& topic, bool force) {
    ControlRequest q;
    q.op = ControlOp::DeleteTopic;
    q.topic = topic;
    q.count = force ? 1 : 0;
    control({To::Every, topic, 0}, encodeControl(q));
}

uint64_t BrokerClient::purgeTopic(const std::string& topic) {
    uint32_t n = describeTopic(topic).config.partitions;
    uint64_t removed = 0;
    for (uint32_t p = 0; p < n; ++p) {
        ControlRequest q;
        q.op = ControlOp::PurgePartition;
        q.topic = topic;
        q.partition = p;
        auto reply = control({To::Partition, topic, p}, encodeControl(q));
        Reader r(reply.data(), reply.size());
        removed += r.get<uint64_t>();
        r.end();
    }
    return removed;
}

void BrokerClient::alterTopic(const std::string& topic, const TopicConfig& changes) {
    ControlRequest q;
    q.op = ControlOp::AlterTopic;
    q.topic = topic;
    q.config = changes;
    control({To::Every, topic, 0}, encodeControl(q));
}

} // namespace mofka_py
