// Control requests: every request other than the streaming ones (produce, fetch, wait for a
// topic change), which transports carry with their own zero-copy paths. A transport carries a
// control request as one opaque body (TCP: a Control frame; MPI: a Control message; in-process:
// a direct call), routed by BrokerClient::ControlRoute. Encoded and decoded here once, served by
// broker/ControlHandler, sent by client/RemoteClient and client/BrokerAdmin.
//
// Request body: u16 op, then the op's fields. Reply body: the op's result.
#pragma once
#include "mofka_py/Group.hpp"
#include "wire/Codec.hpp"
#include "wire/Messages.hpp" // TopicConfig on the wire

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mofka_py {

enum class ControlOp : uint16_t {
    DescribeGroup = 1, ///< group, topic -> GroupState
    ResetGroup, ///< group, topic, offsets -> nothing
    NoteSkipped, ///< group, topic, partition, count -> nothing
    OffsetForTime, ///< topic, partition, timestampUs -> u64 offset
    DeleteTopic, ///< topic, count (1: force) -> nothing
    PurgePartition, ///< topic, partition -> u64 events removed
    AlterTopic, ///< topic, config (setFields say which) -> nothing
    RemoveMember, ///< group, topic, member -> u8 (1: it was a member)
    CreateTopic, ///< topic, config -> nothing
    ListTopics, ///< -> string list
    DescribeTopic, ///< topic -> TopicInfo
    Offsets, ///< topic, partition -> u64 start, u64 end
    MarkComplete, ///< topic -> nothing
    IsComplete, ///< topic -> u8
    JoinGroup, ///< group, topic, member -> string (the member id)
    LeaveGroup, ///< group, topic, member -> nothing
    Assignment, ///< group, topic, heartbeat -> Assignment
    Release, ///< group, topic, member, partitions -> nothing
    Commit, ///< group, topic, offsets, member -> nothing
    Committed, ///< group, topic, partition -> u8 has, u64 offset
    Groups, ///< topic -> string list
    ClusterMetadata, ///< topic ("" for none) -> ClusterView (wire/Control.hpp)
};

void writeClusterView(Writer& w, const ClusterView& v);
ClusterView readClusterView(Reader& r);

/// A decoded control request (fields used depend on the op).
struct ControlRequest {
    ControlOp op{};
    std::string group, topic, member;
    uint32_t partition = 0;
    uint64_t count = 0;
    int64_t timestampUs = 0;
    std::vector<std::pair<uint32_t, uint64_t>> offsets;
    std::vector<uint32_t> partitions;
    TopicConfig config;
    MemberHeartbeat heartbeat;
};

/// Encode a control request body.
std::vector<uint8_t> encodeControl(const ControlRequest& q);
/// Decode a control request body; throws Error(Corruption) if malformed.
ControlRequest decodeControl(const uint8_t* body, size_t size);

void writeGroupState(Writer& w, const GroupState& s);
GroupState readGroupState(Reader& r);

} // namespace mofka_py
