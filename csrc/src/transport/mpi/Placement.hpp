// Which server rank holds which partition of a topic.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mofka_py {
namespace mpi {

/// Stable hash of a topic name (FNV-1a): where its partitions start.
inline uint32_t topicHash(const std::string& s) {
    uint32_t h = 2166136261u;
    for (unsigned char c : s) {
        h ^= c;
        h *= 16777619u;
    }
    return h;
}

/// Placement. Every server holds the topic's metadata (all partitions exist
/// everywhere); partition p's events live on server (p + hash(topic)) mod n.
/// The server of partition 0 is the topic's coordinator: consumer groups,
/// commits, completion.
inline size_t partitionServerIndex(const std::string& topic, uint32_t partition, size_t nservers) {
    return size_t((uint64_t(topicHash(topic)) + partition) % nservers);
}
inline size_t coordinatorIndex(const std::string& topic, size_t nservers) {
    return partitionServerIndex(topic, 0, nservers);
}

} // namespace mpi
} // namespace mofka_py
