/**
 * @file Types.hpp
 * @brief Value types shared by every layer: topic settings and descriptions, stored
 *        batches and append results. No behaviour beyond naming values; the log, the
 *        broker, the transports and the clients all speak in these.
 */
#pragma once
#include "mofka_py/Error.hpp"
#include "mofka_py/RecordBatch.hpp" // Owner

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mofka_py {

/// When appended data is forced to stable storage (the `sync` setting, docs/configuration.md).
enum class SyncPolicy { None, Batch, Interval };

/// The name of a SyncPolicy, as settings spell it: "none", "batch" or "interval".
inline const char* syncPolicyName(SyncPolicy s) {
    return s == SyncPolicy::Batch ? "batch" : s == SyncPolicy::Interval ? "interval" : "none";
}

/// The one parse of the `sync` setting; anything but "none", "batch" or "interval" is InvalidArgument.
inline SyncPolicy parseSyncPolicy(const std::string& s) {
    if (s == "none") return SyncPolicy::None;
    if (s == "batch") return SyncPolicy::Batch;
    if (s == "interval") return SyncPolicy::Interval;
    throw Error(ErrorCode::InvalidArgument, "sync must be one of 'none', 'batch', 'interval' (got '" + s + "')");
}

/// Per-topic settings (fixed at creation).
struct TopicConfig {
    uint32_t partitions = 1;
    uint64_t segmentBytes = 256ull << 20;
    uint64_t retentionBytes = 0;
    int64_t retentionMs = 0;
    SyncPolicy sync = SyncPolicy::None;
    int64_t syncIntervalMs = 1000;
    uint64_t maxEventBytes = 64ull << 20;
    /// Copies of each partition in a cluster (`mofka-py serve --cluster`); 1 on a single broker.
    uint32_t replication = 1;
    /// Replicas (the leader included) that must hold a write before it is acknowledged, and
    /// below which a partition refuses writes; 0: min(2, replication).
    uint32_t minInsync = 0;
    /// Which fields were given (TopicField bits); the broker's defaults fill the others.
    uint32_t setFields = ~0u;
};

/// Bits of TopicConfig::setFields.
enum TopicField : uint32_t {
    kSegmentBytes = 1,
    kRetentionBytes = 2,
    kRetentionMs = 4,
    kSync = 8,
    kSyncIntervalMs = 16,
    kMaxEventBytes = 32,
    kReplication = 64,
    kMinInsync = 128,
};

/// The min_insync a topic uses: its own, or min(2, replication) when it left it at 0.
inline uint32_t effectiveMinInsync(const TopicConfig& c) {
    return c.minInsync ? c.minInsync : (c.replication < 2 ? c.replication : 2);
}

/// State of one partition as reported by describe().
struct PartitionInfo {
    uint32_t partition;
    uint64_t startOffset;
    uint64_t endOffset;
    uint64_t sizeBytes;
};

/// What describe() returns.
struct TopicInfo {
    std::string name;
    TopicConfig config;
    bool complete;
    std::vector<PartitionInfo> partitions;
};

/// A stored batch handed to readers; @c owner keeps its memory mapped.
struct StoredBatch {
    Owner owner;
    const uint8_t* data;
    size_t size;
    uint64_t baseOffset;
    uint32_t count;
};

/// Outcome of an append.
struct AppendResult {
    uint64_t baseOffset;
    bool duplicate; ///< the batch had been appended before (producer retry)
};

/// A cluster node's view of the cluster and of one topic's partitions (what clients route by).
struct ClusterView {
    struct Node {
        std::string id, address;
    };
    struct Partition {
        std::string leader, leaderAddress;
        uint64_t epoch = 0;
        std::vector<std::string> replicas;
    };
    bool cluster = false; ///< false: a single broker (it serves every partition itself)
    std::string self; ///< the answering node's id
    std::vector<Node> nodes; ///< every live node the answering node knows of
    bool hasTopic = false; ///< the topic exists there
    uint32_t minInsync = 0;
    std::vector<Partition> partitions;
};

/// How the log treats the CRC of an incoming batch.
enum class CrcMode {
    Compute, ///< the producer left it to the log (in-process)
    Verify ///< received from elsewhere: check it, refuse a mismatch
};

} // namespace mofka_py
