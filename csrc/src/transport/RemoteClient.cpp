#include "transport/RemoteClient.hpp"

#include "wire/Control.hpp"

#include <random>
#include <unistd.h>

namespace mofka_py {

namespace {
using To = BrokerClient::ControlRoute::To;

ControlRequest req(ControlOp op, const std::string& topic) {
    ControlRequest q;
    q.op = op;
    q.topic = topic;
    return q;
}

/// Decode a whole reply with @p read; trailing bytes are an error.
template <typename F>
auto decodeReply(const std::vector<uint8_t>& reply, F&& read) {
    Reader r(reply.data(), reply.size());
    auto v = read(r);
    r.end();
    return v;
}
} // namespace

void RemoteClient::createTopic(const std::string& name, const TopicConfig& config) {
    ControlRequest q = req(ControlOp::CreateTopic, name);
    q.config = config;
    ControlRoute route{To::Every, name};
    route.tolerate = ErrorCode::TopicExists; // left behind on another server by an interrupted create
    control(route, encodeControl(q));
}

std::vector<std::string> RemoteClient::listTopics() {
    return decodeReply(control({To::Coordinator, ""}, encodeControl(req(ControlOp::ListTopics, ""))),
                       [](Reader& r) { return r.strs(); });
}

TopicInfo RemoteClient::describeTopic(const std::string& name) {
    return decodeReply(control({To::Coordinator, name}, encodeControl(req(ControlOp::DescribeTopic, name))),
                       [](Reader& r) { return readTopicInfo(r); });
}

std::pair<uint64_t, uint64_t> RemoteClient::offsets(const std::string& topic, uint32_t partition) {
    ControlRequest q = req(ControlOp::Offsets, topic);
    q.partition = partition;
    return decodeReply(control({To::Partition, topic, partition}, encodeControl(q)), [](Reader& r) {
        uint64_t start = r.get<uint64_t>();
        return std::make_pair(start, r.get<uint64_t>());
    });
}

void RemoteClient::markComplete(const std::string& topic) {
    // Every server refuses appends once it knows; the coordinator, which answers isComplete, last.
    ControlRoute route{To::Every, topic};
    route.coordinatorLast = true;
    control(route, encodeControl(req(ControlOp::MarkComplete, topic)));
}

bool RemoteClient::isComplete(const std::string& topic) {
    return decodeReply(control({To::Coordinator, topic}, encodeControl(req(ControlOp::IsComplete, topic))),
                       [](Reader& r) { return r.get<uint8_t>() != 0; });
}

std::string RemoteClient::joinGroup(const std::string& group, const std::string& topic, const std::string& memberId) {
    ControlRequest q = req(ControlOp::JoinGroup, topic);
    q.group = group;
    q.member = memberId;
    if (q.member.empty()) {
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        q.member = group + "-" + std::to_string(getpid()) + "-" + std::to_string(rng());
    }
    return decodeReply(control({To::Coordinator, topic}, encodeControl(q)), [](Reader& r) { return r.str(); });
}

void RemoteClient::leaveGroup(const std::string& group, const std::string& topic, const std::string& memberId) {
    ControlRequest q = req(ControlOp::LeaveGroup, topic);
    q.group = group;
    q.member = memberId;
    control({To::Coordinator, topic}, encodeControl(q));
}

Assignment RemoteClient::assignment(const std::string& group, const std::string& topic,
                                    const MemberHeartbeat& heartbeat) {
    ControlRequest q = req(ControlOp::Assignment, topic);
    q.group = group;
    q.heartbeat = heartbeat;
    return decodeReply(control({To::Coordinator, topic}, encodeControl(q)),
                       [](Reader& r) { return readAssignment(r); });
}

void RemoteClient::releasePartitions(const std::string& group, const std::string& topic, const std::string& memberId,
                                     const std::vector<uint32_t>& partitions) {
    ControlRequest q = req(ControlOp::Release, topic);
    q.group = group;
    q.member = memberId;
    q.partitions = partitions;
    control({To::Coordinator, topic}, encodeControl(q));
}

void RemoteClient::commit(const std::string& group, const std::string& topic,
                          const std::vector<std::pair<uint32_t, uint64_t>>& offsets, const std::string& memberId) {
    ControlRequest q = req(ControlOp::Commit, topic);
    q.group = group;
    q.offsets = offsets;
    q.member = memberId;
    control({To::Coordinator, topic}, encodeControl(q));
}

std::optional<uint64_t> RemoteClient::committed(const std::string& group, const std::string& topic,
                                                uint32_t partition) {
    ControlRequest q = req(ControlOp::Committed, topic);
    q.group = group;
    q.partition = partition;
    return decodeReply(control({To::Coordinator, topic}, encodeControl(q)), [](Reader& r) {
        bool has = r.get<uint8_t>() != 0;
        uint64_t v = r.get<uint64_t>();
        return has ? std::optional<uint64_t>(v) : std::nullopt;
    });
}

std::vector<std::string> RemoteClient::groups(const std::string& topic) {
    return decodeReply(control({To::Coordinator, topic}, encodeControl(req(ControlOp::Groups, topic))),
                       [](Reader& r) { return r.strs(); });
}

} // namespace mofka_py
