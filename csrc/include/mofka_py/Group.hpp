/**
 * @file Group.hpp
 * @brief Value types of consumer groups: a member's assignment and heartbeat,
 *        and the state of a group as `describe` reports it.
 */
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mofka_py {

/// A consumer's current share of a group's partitions.
struct Assignment {
    uint64_t generation;
    std::vector<uint32_t> partitions;
    uint32_t pending = 0; ///< partitions meant for this member still held by their previous owner
};

/// What a member says of itself in each heartbeat (the assignment request).
struct MemberHeartbeat {
    std::string memberId;
    /// The member is dropped when no heartbeat came for this long (Kafka's session.timeout.ms).
    int64_t sessionTimeoutMs = 10000;
    /// Partitions the member is reading now, each with the position it handed events out to.
    /// After a broker restart (owners are in memory only) a member takes back what it held, so
    /// no other member reads them twice; the positions tell the group what is still unread.
    std::vector<std::pair<uint32_t, uint64_t>> owned;
};

/// A live member of a group as the broker sees it.
struct GroupMember {
    std::string id;
    std::vector<uint32_t> partitions; ///< partitions it owns now
    int64_t idleMs = 0; ///< since its last heartbeat
    int64_t sessionTimeoutMs = 0;
};

/// A group's position on one partition.
struct GroupPartition {
    uint32_t partition = 0;
    std::optional<uint64_t> committed; ///< next offset to read, if the group ever committed
    uint64_t skipped = 0; ///< events its members skipped because retention deleted them first
    std::optional<std::string> owner; ///< the live member reading it
    uint64_t position = 0; ///< how far its owner handed events out (last heartbeat)
};

/// A group on a topic: members, ownership and committed positions.
struct GroupState {
    std::string group;
    std::string topic;
    uint64_t generation = 0;
    std::vector<GroupMember> members;
    std::vector<GroupPartition> partitions; ///< one per partition of the topic
};

} // namespace mofka_py
