#include "mofka_py/Broker.hpp"

#include "broker/Replica.hpp"
#include "log/Sync.hpp"
#include "mofka_py/Error.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mofka_py {
namespace {

constexpr const char* kMarker = "fabric.conf";
constexpr const char* kMarkerText = "format=mofka-py-fabric\nversion=1\n";

bool exists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}
bool isDir(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
std::vector<std::string> listDir(const std::string& p) {
    std::vector<std::string> out;
    if (DIR* d = opendir(p.c_str())) {
        while (dirent* e = readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") out.push_back(n);
        }
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}
/// Remove a directory and everything under it (topic directories hold partition directories).
void removeTree(const std::string& dir) {
    for (const std::string& n : listDir(dir)) {
        std::string path = dir + "/" + n;
        if (isDir(path))
            removeTree(path);
        else
            ::unlink(path.c_str());
    }
    ::rmdir(dir.c_str());
}
/// fsync a directory, so entries created or renamed in it reach the disk; a StorageError if that fails
/// (filesystems that cannot sync a directory at all, EINVAL, are taken at their word).
void fsyncPath(const std::string& p) {
    if (int e = syncDirectory(p)) {
        errno = e;
        throwError(ErrorCode::Storage, "cannot sync directory " + p, true);
    }
}
/// Write a small file atomically (temp file, fsync, rename, fsync dir).
void writeFileAtomic(const std::string& dir, const std::string& name, const std::string& text) {
    std::string tmp = dir + "/." + name + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throwError(ErrorCode::Generic, "cannot write " + tmp, true);
    if (::write(fd, text.data(), text.size()) != ssize_t(text.size())) {
        ::close(fd);
        throwError(ErrorCode::Generic, "cannot write " + tmp, true);
    }
    if (int e = syncFd(fd, false)) {
        ::close(fd);
        errno = e;
        throwError(ErrorCode::Storage, "cannot sync " + tmp, true);
    }
    if (::close(fd) != 0) throwError(ErrorCode::Storage, "cannot write " + tmp, true);
    if (rename(tmp.c_str(), (dir + "/" + name).c_str()) != 0)
        throwError(ErrorCode::Generic, "cannot rename " + tmp, true);
    fsyncPath(dir);
}
std::map<std::string, std::string> readConf(const std::string& path) {
    std::map<std::string, std::string> kv;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return kv;
}
std::string topicConfText(const TopicConfig& c) {
    std::ostringstream o;
    o << "partitions=" << c.partitions << "\nsegment_bytes=" << c.segmentBytes
      << "\nretention_bytes=" << c.retentionBytes << "\nretention_ms=" << c.retentionMs
      << "\nsync=" << syncPolicyName(c.sync) << "\nsync_interval_ms=" << c.syncIntervalMs
      << "\nmax_event_bytes=" << c.maxEventBytes << "\nreplication=" << c.replication << "\nmin_insync=" << c.minInsync
      << "\n";
    return o.str();
}
void validateTopicName(const std::string& name) {
    // System topics (services' own, hidden from `topic list`) start with "__".
    size_t first = name.rfind("__", 0) == 0 ? 2 : 0;
    bool ok = name.size() > first && name.size() <= 200 && std::isalnum(static_cast<unsigned char>(name[first]));
    for (char ch : name)
        ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-');
    if (!ok)
        throw Error(ErrorCode::InvalidArgument,
                    "invalid topic name '" + name +
                        "': use 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit "
                        "(or __ and a letter or digit: a system topic)");
}
void validateConfig(const TopicConfig& c) {
    if (c.partitions < 1 || c.partitions > 65536)
        throw Error(ErrorCode::InvalidArgument,
                    "partitions must be between 1 and 65536 (got " + std::to_string(c.partitions) + ")");
    if (c.segmentBytes < 4096) throw Error(ErrorCode::InvalidArgument, "segment_bytes must be at least 4096");
    if (c.maxEventBytes < 1) throw Error(ErrorCode::InvalidArgument, "max_event_bytes must be positive");
    if (c.retentionMs < 0 || c.syncIntervalMs < 1)
        throw Error(ErrorCode::InvalidArgument, "retention_ms must be >= 0 and sync_interval_ms >= 1");
    if (c.replication < 1 || c.replication > 5)
        throw Error(ErrorCode::InvalidArgument,
                    "replication must be between 1 and 5 (got " + std::to_string(c.replication) + ")");
    if (c.minInsync > c.replication)
        throw Error(ErrorCode::InvalidArgument, "min_insync (" + std::to_string(c.minInsync) +
                                                    ") cannot exceed replication (" + std::to_string(c.replication) +
                                                    "): a write could never be acknowledged");
}

// Offsets log records: a commit is u16 group length, group, u16 topic length, topic, u32 partition,
// u64 offset; a skipped-events total is kSkippedMark followed by the same fields (the total in
// place of the offset). Group names are at most 1000 bytes, so the mark cannot start a commit.
constexpr uint16_t kSkippedMark = 0xFFFF;
// A deleted topic: kTopicGoneMark, u16 topic length, topic. Replay forgets every offset of the
// topic recorded before it (a topic created again under the name starts with no group offsets).
constexpr uint16_t kTopicGoneMark = 0xFFFE;
std::string encodeCommit(const std::string& g, const std::string& t, uint32_t p, uint64_t o) {
    std::string r;
    uint16_t gl = uint16_t(g.size()), tl = uint16_t(t.size());
    r.append(reinterpret_cast<const char*>(&gl), 2).append(g);
    r.append(reinterpret_cast<const char*>(&tl), 2).append(t);
    r.append(reinterpret_cast<const char*>(&p), 4).append(reinterpret_cast<const char*>(&o), 8);
    return r;
}

} // namespace

struct Broker::Topic {
    std::string name;
    TopicConfig config;
    std::vector<std::unique_ptr<PartitionLog>> logs;
    /// A cluster broker's: one per partition (see Replica.hpp); empty outside a cluster.
    std::vector<std::shared_ptr<Replica>> replicas;
    std::string directory;
    std::atomic<bool> complete{false};
    std::mutex mutex;
    std::condition_variable cv;
    uint64_t version = 0;

    void bump() {
        {
            std::lock_guard<std::mutex> l(mutex);
            ++version;
        }
        cv.notify_all();
    }
};

struct Broker::Group {
    struct Member {
        std::chrono::steady_clock::time_point seen;
        int64_t sessionTimeoutMs;
    };
    std::map<std::string, Member> members;
    std::map<uint32_t, std::string> owner; ///< partition -> member holding it until released
    std::map<uint32_t, uint64_t> position; ///< partition -> how far its owner handed events out
    uint64_t generation = 0;

    void dropMember(const std::string& id) {
        members.erase(id);
        for (auto it = owner.begin(); it != owner.end();) {
            if (it->second == id) {
                position.erase(it->first);
                it = owner.erase(it);
            } else {
                ++it;
            }
        }
        ++generation;
    }
    /// Drop the members whose session ran out.
    void expire(std::chrono::steady_clock::time_point now) {
        std::vector<std::string> expired;
        for (auto& kv : members)
            if (now - kv.second.seen > std::chrono::milliseconds(kv.second.sessionTimeoutMs))
                expired.push_back(kv.first);
        for (auto& id : expired) dropMember(id);
    }
};

Broker::Broker(BrokerOptions options) : m_opts(std::move(options)) {
    validateConfig(m_opts.defaults);
    if (!m_opts.directory.empty()) {
        const std::string& d = m_opts.directory;
        if (exists(d) && !isDir(d))
            throw Error(ErrorCode::NotAFabric, d + " is a file, not a fabric directory; pass a directory path");
        if (isDir(d) && !exists(d + "/" + kMarker) && !listDir(d).empty())
            throw Error(ErrorCode::NotAFabric, d + " is not a mofka-py fabric directory (no " + kMarker +
                                                   ") and is not empty; give an empty or new directory");
        if (exists(d + "/" + kMarker)) {
            auto kv = readConf(d + "/" + kMarker);
            if (kv["format"] != "mofka-py-fabric")
                throw Error(ErrorCode::NotAFabric, d + "/" + kMarker + " is not a mofka-py fabric marker");
            if (kv["version"] != "1")
                throw Error(ErrorCode::NotAFabric,
                            d + " uses fabric format version " + kv["version"] + "; this mofka-py reads version 1");
        }
        if (!isDir(d) && mkdir(d.c_str(), 0755) != 0)
            throwError(ErrorCode::InvalidArgument, "cannot create fabric directory " + d, true);
        lockDirectory();
        try {
            if (!exists(d + "/" + kMarker)) writeFileAtomic(d, kMarker, kMarkerText);
            mkdir((d + "/topics").c_str(), 0755);
            std::vector<std::string> deleting;
            for (const std::string& n : listDir(d + "/topics")) {
                if (n.rfind(".deleting-", 0) == 0)
                    deleting.push_back(n);
                else if (n.rfind(".creating-", 0) == 0)
                    removeTree(d + "/topics/" + n); // never visible
                else if (n[0] != '.')
                    m_topics[n] = loadTopic(n);
            }
            loadOffsets();
            // A delete cut short by a crash: the rename was its point of no return; finish it.
            for (const std::string& n : deleting) {
                std::string name = n.substr(10, n.rfind('.') - 10);
                if (!m_topics.count(name)) forgetTopicOffsetsLocked(name);
                removeTree(d + "/topics/" + n);
            }
            if (!deleting.empty()) fsyncPath(d + "/topics");
        } catch (...) {
            // The destructor does not run for a half-built broker: release the lock here,
            // so the caller can reopen (e.g. with repair=True) in this process.
            m_topics.clear();
            m_offsetsLog.reset();
            flock(m_lockFd, LOCK_UN);
            ::close(m_lockFd);
            m_lockFd = -1;
            throw;
        }
    }
    m_housekeeper = std::thread([this] { housekeepingLoop(); });
}

Broker::~Broker() {
    try {
        close();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mofka-py: %s\n", e.what()); // e.g. a failed final sync: never dropped silently
    } catch (...) {}
}

void Broker::lockDirectory() {
    std::string path = m_opts.directory + "/LOCK";
    m_lockFd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (m_lockFd < 0) throwError(ErrorCode::Generic, "cannot open " + path, true);
    if (flock(m_lockFd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = {};
        ssize_t n = pread(m_lockFd, buf, sizeof(buf) - 1, 0);
        ::close(m_lockFd);
        m_lockFd = -1;
        std::string pid = n > 0 ? std::string(buf, size_t(n)) : "unknown";
        pid.erase(std::remove(pid.begin(), pid.end(), '\n'), pid.end());
        throw Error(
            ErrorCode::FabricLocked,
            "fabric directory " + m_opts.directory + " is already open in process " + pid +
                "; a file:// fabric has one owner at a time. Close it there, or run `mofka-py serve --data-dir " +
                m_opts.directory + "` and connect every process with tcp://");
    }
    std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(m_lockFd, 0) != 0 || pwrite(m_lockFd, pid.data(), pid.size(), 0) < 0) { /* advisory only */
    }
}

std::shared_ptr<Broker::Topic> Broker::loadTopic(const std::string& name) {
    auto t = std::make_shared<Topic>();
    t->name = name;
    t->directory = m_opts.directory + "/topics/" + name;
    auto kv = readConf(t->directory + "/topic.conf");
    if (kv.empty()) throw Error(ErrorCode::Corruption, "topic directory " + t->directory + " has no topic.conf");
    try {
        t->config.partitions = uint32_t(std::stoul(kv.at("partitions")));
        t->config.segmentBytes = std::stoull(kv.at("segment_bytes"));
        t->config.retentionBytes = std::stoull(kv.at("retention_bytes"));
        t->config.retentionMs = std::stoll(kv.at("retention_ms"));
        t->config.sync = parseSyncPolicy(kv.at("sync"));
        t->config.syncIntervalMs = std::stoll(kv.at("sync_interval_ms"));
        t->config.maxEventBytes = std::stoull(kv.at("max_event_bytes"));
        // Written since replication came (older fabrics: one copy).
        t->config.replication = kv.count("replication") ? uint32_t(std::stoul(kv.at("replication"))) : 1;
        t->config.minInsync = kv.count("min_insync") ? uint32_t(std::stoul(kv.at("min_insync"))) : 0;
    } catch (const std::exception&) {
        throw Error(ErrorCode::Corruption, t->directory + "/topic.conf is incomplete or unreadable");
    }
    t->complete = exists(t->directory + "/COMPLETE");
    for (uint32_t p = 0; p < t->config.partitions; ++p) {
        LogOptions lo;
        lo.directory = t->directory + "/p" + std::to_string(p);
        lo.segmentBytes = t->config.segmentBytes;
        lo.retentionBytes = t->config.retentionBytes;
        lo.retentionMs = t->config.retentionMs;
        lo.sync = t->config.sync;
        lo.syncIntervalMs = t->config.syncIntervalMs;
        lo.repair = m_opts.repair;
        t->logs.push_back(std::make_unique<PartitionLog>(lo));
    }
    addReplicas(*t);
    return t;
}

void Broker::addReplicas(Topic& t) const {
    if (m_opts.nodeId.empty()) return;
    for (uint32_t p = 0; p < t.logs.size(); ++p)
        t.replicas.push_back(std::make_shared<Replica>(*t.logs[p], m_opts.nodeId, t.name, p,
                                                       effectiveMinInsync(t.config),
                                                       t.config.sync == SyncPolicy::Batch && !t.directory.empty()));
}

std::shared_ptr<Broker::Replica> Broker::replicaOf(const Topic& t, uint32_t partition) const {
    return t.replicas.empty() ? nullptr : t.replicas[partition];
}

void Broker::createTopic(const std::string& name, const TopicConfig& given) {
    TopicConfig config = m_opts.defaults;
    config.partitions = given.partitions;
    if (given.setFields & kSegmentBytes) config.segmentBytes = given.segmentBytes;
    if (given.setFields & kRetentionBytes) config.retentionBytes = given.retentionBytes;
    if (given.setFields & kRetentionMs) config.retentionMs = given.retentionMs;
    if (given.setFields & kSync) config.sync = given.sync;
    if (given.setFields & kSyncIntervalMs) config.syncIntervalMs = given.syncIntervalMs;
    if (given.setFields & kMaxEventBytes) config.maxEventBytes = given.maxEventBytes;
    if (given.setFields & kReplication) config.replication = given.replication;
    if (given.setFields & kMinInsync) config.minInsync = given.minInsync;
    config.setFields = ~0u;
    validateTopicName(name);
    validateConfig(config);
    if (config.replication > 1 && m_opts.nodeId.empty())
        throw Error(ErrorCode::InvalidArgument,
                    "replication=" + std::to_string(config.replication) +
                        " needs a cluster: run `mofka-py serve --cluster etcd://host:port --node-id NAME` on several "
                        "nodes and connect to tcp://host1:port1,host2:port2,...; a single broker keeps one copy");
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_closed) throw Error(ErrorCode::Closed, "fabric is closed");
    if (m_topics.count(name))
        throw Error(ErrorCode::TopicExists, "topic '" + name + "' already exists; use fabric.topic(name) to open it");
    if (m_opts.directory.empty()) {
        auto t = std::make_shared<Topic>();
        t->name = name;
        t->config = config;
        for (uint32_t p = 0; p < config.partitions; ++p) {
            LogOptions lo;
            lo.segmentBytes = config.segmentBytes;
            lo.retentionBytes = config.retentionBytes;
            lo.retentionMs = config.retentionMs;
            t->logs.push_back(std::make_unique<PartitionLog>(lo));
        }
        addReplicas(*t);
        m_topics[name] = t;
        return;
    }
    // Build the topic under a temporary name, then rename: a crash leaves no half topic.
    std::string topics = m_opts.directory + "/topics";
    std::string tmp = topics + "/.creating-" + name;
    mkdir(tmp.c_str(), 0755);
    writeFileAtomic(tmp, "topic.conf", topicConfText(config));
    if (rename(tmp.c_str(), (topics + "/" + name).c_str()) != 0)
        throwError(ErrorCode::Generic, "cannot create topic directory for " + name, true);
    // Loaded before the sync: a failed sync must not hide a topic that is on disk.
    auto t = m_topics[name] = loadTopic(name);
    std::string why; // a failed sync of the topics directory, or of the new topic's own (its partitions')
    try {
        if (int e = syncDirectory(topics)) why = "a failed sync at " + topics + " (" + std::strerror(e) + ")";
    } catch (const Error& e) {
        why = e.what();
    }
    for (auto& log : t->logs)
        if (why.empty()) why = log->unwritable();
    if (!why.empty()) {
        // Whether the topic's directories reached the disk is unknown: no event may be acknowledged in them.
        for (auto& log : t->logs) log->markUnwritable(why);
        throw Error(ErrorCode::Storage,
                    "topic '" + name + "' was created, but its partitions take no writes since " + why +
                        ": after a failed sync a later one would prove nothing. Check the disk (kernel "
                        "log, free space), then restart the service or reopen the fabric to write to it");
    }
}

std::vector<std::string> Broker::listTopics() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<std::string> out;
    for (auto& kv : m_topics) out.push_back(kv.first);
    return out;
}

std::shared_ptr<Broker::Topic> Broker::getTopic(const std::string& name) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_closed) throw Error(ErrorCode::Closed, "fabric is closed; open it again with mofka_py.connect()");
    auto it = m_topics.find(name);
    if (it == m_topics.end())
        throw Error(ErrorCode::TopicNotFound, "topic '" + name +
                                                  "' does not exist; create it with fabric.create_topic('" + name +
                                                  "') or `mofka-py topic create " + name + "`");
    return it->second;
}

TopicInfo Broker::describeTopic(const std::string& name) const {
    auto t = getTopic(name);
    TopicInfo info{name, t->config, t->complete.load(), {}};
    for (uint32_t p = 0; p < t->logs.size(); ++p)
        info.partitions.push_back(
            {p, t->logs[p]->startOffset(), t->logs[p]->visibleEndOffset(), t->logs[p]->sizeBytes()});
    return info;
}

uint32_t Broker::partitionCount(const std::string& topic) const { return getTopic(topic)->config.partitions; }
uint64_t Broker::maxEventBytes(const std::string& topic) const { return getTopic(topic)->config.maxEventBytes; }

static void checkPartition(const Broker&, uint32_t p, uint32_t n, const std::string& topic) {
    if (p >= n)
        throw Error(ErrorCode::InvalidArgument, "partition " + std::to_string(p) + " does not exist in topic '" +
                                                    topic + "' (it has " + std::to_string(n) + ")");
}

AppendResult Broker::produce(const std::string& topic, uint32_t partition, SealedBatch& batch, CrcMode mode) {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    if (t->complete)
        throw Error(ErrorCode::Closed, "topic '" + topic + "' is marked complete and accepts no more events");
    if (!t->replicas.empty()) return finishProduce(startProduce(topic, partition, batch, mode));
    AppendResult r = t->logs[partition]->append(batch, mode);
    t->bump();
    return r;
}

Broker::StartedProduce Broker::startProduce(const std::string& topic, uint32_t partition, SealedBatch& batch,
                                            CrcMode mode) {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    if (t->complete)
        throw Error(ErrorCode::Closed, "topic '" + topic + "' is marked complete and accepts no more events");
    std::shared_ptr<Replica> rep = replicaOf(*t, partition);
    if (rep) rep->checkWritable(m_leaseDeadlineNs.load());
    StartedProduce s;
    s.log = t->logs[partition].get();
    const uint32_t count = batch.count;
    s.pending = s.log->appendNoWait(batch, mode);
    s.result = s.pending.result;
    if (rep) {
        // Acknowledged once the in-sync replicas hold it (a resent duplicate too: its first copy may not be yet).
        s.replicateTo = s.result.baseOffset + count;
        s.epoch = rep->epoch();
        rep->noteAppended();
        if (s.pending.ticket != 0 || !rep->replicated(s.replicateTo))
            s.replica = rep;
        else
            rep->checkWritable(m_leaseDeadlineNs.load()); // acknowledged at once: the lease must still hold
    }
    if (s.done()) t->bump();
    s.topic = std::move(t);
    return s;
}

AppendResult Broker::finishProduce(const StartedProduce& started) {
    if (started.done()) return started.result;
    AppendResult r = started.pending.ticket != 0 ? started.log->awaitDurable(started.pending) : started.result;
    if (started.replica) {
        auto rep = std::static_pointer_cast<Replica>(started.replica);
        // Under sync=batch the log's end moves only once the sync is done: count the batch now, or a
        // leader without in-sync followers (replication 1, or the others out of sync) would wait for
        // a fetch that never comes, until replica_ack_timeout_ms.
        if (started.pending.ticket != 0) rep->noteAppended();
        rep->awaitReplicated(started.replicateTo, started.epoch, m_leaseDeadlineNs, m_opts.replicaAckTimeoutMs);
    }
    std::static_pointer_cast<Topic>(started.topic)->bump();
    return r;
}

std::optional<AppendResult> Broker::pollReplicated(const StartedProduce& started) {
    if (started.done()) return started.result;
    if (!started.replica || started.pending.ticket != 0)
        throw Error(ErrorCode::InvalidArgument, "pollReplicated: a produce with a sync due needs finishProduce()");
    if (!std::static_pointer_cast<Replica>(started.replica)
             ->checkReplicated(started.replicateTo, started.epoch, m_leaseDeadlineNs.load()))
        return std::nullopt;
    std::static_pointer_cast<Topic>(started.topic)->bump();
    return started.result;
}

uint8_t* Broker::reserve(const std::string& topic, uint32_t partition, uint64_t length) {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    if (t->complete || !t->replicas.empty()) return nullptr; // the normal path (reports the error, replicates)
    return t->logs[partition]->reserve(length);
}

AppendResult Broker::commitReserved(const std::string& topic, uint32_t partition, CrcMode mode,
                                    std::optional<uint32_t> landedCrc) {
    auto t = getTopic(topic);
    if (t->complete) {
        t->logs[partition]->cancelReserved();
        throw Error(ErrorCode::Closed, "topic '" + topic + "' is marked complete and accepts no more events");
    }
    AppendResult r = t->logs[partition]->commitReserved(mode, landedCrc);
    t->bump();
    return r;
}

void Broker::cancelReserved(const std::string& topic, uint32_t partition) {
    getTopic(topic)->logs[partition]->cancelReserved();
}

std::vector<StoredBatch> Broker::fetch(const std::string& topic, uint32_t partition, uint64_t offset, size_t maxBytes,
                                       int64_t timeoutMs) {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    if (auto rep = replicaOf(*t, partition)) rep->requireLeader();
    auto out = t->logs[partition]->read(offset, maxBytes);
    if (out.empty() && timeoutMs > 0 && !t->complete) {
        t->logs[partition]->waitFor(offset, std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs));
        out = t->logs[partition]->read(offset, maxBytes);
    }
    return out;
}

uint64_t Broker::waitTopicChange(const std::string& topic, uint64_t version, int64_t timeoutMs) {
    auto t = getTopic(topic);
    std::unique_lock<std::mutex> l(t->mutex);
    t->cv.wait_for(l, std::chrono::milliseconds(timeoutMs), [&] { return t->version != version || m_closed; });
    return t->version;
}

void Broker::wakeTopic(const std::string& topic) { getTopic(topic)->bump(); }

std::pair<uint64_t, uint64_t> Broker::offsets(const std::string& topic, uint32_t partition) const {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    if (auto rep = replicaOf(*t, partition)) rep->requireLeader();
    return {t->logs[partition]->startOffset(), t->logs[partition]->visibleEndOffset()};
}

// ---- Replication ----

std::shared_ptr<Broker::Replica> Broker::requireReplica(const std::string& topic, uint32_t partition) const {
    if (m_opts.nodeId.empty())
        throw Error(ErrorCode::InvalidArgument,
                    "this broker is not in a cluster (serve it with --cluster etcd://host:port --node-id NAME)");
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    return t->replicas[partition];
}

void Broker::setReplicaRole(const std::string& topic, uint32_t partition, const ReplicaRole& role) {
    requireReplica(topic, partition)->setRole(role);
    getTopic(topic)->bump();
}

ReplicaStatus Broker::replicaStatus(const std::string& topic, uint32_t partition) const {
    return requireReplica(topic, partition)->status();
}

std::pair<uint64_t, uint64_t> Broker::replicaMarks(const std::string& topic, uint32_t partition) const {
    return requireReplica(topic, partition)->marks();
}

void Broker::setLeaseDeadline(int64_t steadyNs) {
    const bool earlier = steadyNs < m_leaseDeadlineNs.exchange(steadyNs);
    if (!earlier) return;
    // Writes waiting for their replicas must not outlive the lease: wake them to refuse.
    const std::vector<std::shared_ptr<Topic>> topics = topicsSnapshot();
    for (auto& t : topics)
        for (auto& rep : t->replicas) rep->wake();
}

void Broker::setClusterNodes(const std::vector<std::pair<std::string, std::string>>& nodes) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_clusterNodes = nodes;
}

ClusterView Broker::clusterView(const std::string& topic) const {
    ClusterView v;
    v.cluster = !m_opts.nodeId.empty();
    v.self = m_opts.nodeId;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        for (auto& n : m_clusterNodes) v.nodes.push_back({n.first, n.second});
    }
    if (topic.empty()) return v;
    std::shared_ptr<Topic> t;
    try {
        t = getTopic(topic);
    } catch (const Error& e) {
        if (e.code() != ErrorCode::TopicNotFound) throw;
        return v;
    }
    v.hasTopic = true;
    v.minInsync = effectiveMinInsync(t->config);
    for (auto& rep : t->replicas) {
        ReplicaStatus s = rep->status();
        v.partitions.push_back({s.role.leader, s.role.leaderAddress, s.role.epoch, s.role.replicas});
    }
    return v;
}

FollowerFetchCheck Broker::followerFetch(const std::string& topic, uint32_t partition, const std::string& node,
                                         uint64_t epoch, uint64_t offset, const std::optional<BatchHeader>& prev) {
    return requireReplica(topic, partition)->followerFetch(node, epoch, offset, prev);
}

std::vector<StoredBatch> Broker::fetchForReplica(const std::string& topic, uint32_t partition, uint64_t offset,
                                                 size_t maxBytes) {
    auto rep = requireReplica(topic, partition);
    rep->requireLeader();
    return getTopic(topic)->logs[partition]->readUnlimited(offset, maxBytes);
}

void Broker::appendFromLeader(const std::string& topic, uint32_t partition, uint64_t epoch,
                              const std::vector<StoredBatch>& batches, uint64_t leaderHighWatermark) {
    requireReplica(topic, partition)->appendFromLeader(epoch, batches, leaderHighWatermark);
}

uint64_t Broker::truncateReplica(const std::string& topic, uint32_t partition, uint64_t epoch, uint64_t offset) {
    return requireReplica(topic, partition)->truncate(epoch, offset);
}

std::optional<BatchHeader> Broker::batchEndingAt(const std::string& topic, uint32_t partition, uint64_t offset) const {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    return t->logs[partition]->batchEndingAt(offset);
}

uint64_t Broker::batchBoundaryAtOrBefore(const std::string& topic, uint32_t partition, uint64_t offset) const {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    PartitionLog& log = *t->logs[partition];
    if (offset >= log.endOffset()) return log.endOffset();
    if (offset <= log.startOffset()) return log.startOffset();
    auto b = log.readUnlimited(offset, 1);
    return b.empty() ? log.startOffset() : std::min(offset, b.front().baseOffset);
}

void Broker::markComplete(const std::string& topic) {
    auto t = getTopic(topic);
    // Events written before count before the end (startProduce(): a sync may still be due).
    for (auto& l : t->logs) l->awaitWritten();
    if (!t->directory.empty() && !t->complete) writeFileAtomic(t->directory, "COMPLETE", "complete\n");
    t->complete = true;
    t->bump();
    for (auto& l : t->logs) l->notifyAll();
}

bool Broker::isComplete(const std::string& topic) const { return getTopic(topic)->complete; }

namespace {
constexpr int64_t kDefaultSessionTimeoutMs = 10000;

std::string listOf(const std::vector<uint32_t>& v) {
    std::string out;
    for (uint32_t p : v) out += (out.empty() ? "" : ", ") + std::to_string(p);
    return out;
}
} // namespace

Broker::Group& Broker::liveGroupLocked(const std::string& group, const std::string& topic) {
    Group& g = m_groups[{group, topic}];
    g.expire(std::chrono::steady_clock::now());
    return g;
}

std::string Broker::joinGroup(const std::string& group, const std::string& topic, const std::string& memberId) {
    getTopic(topic);
    if (group.empty()) throw Error(ErrorCode::InvalidArgument, "group name must not be empty");
    std::lock_guard<std::mutex> lock(m_mutex);
    std::string id =
        memberId.empty() ? group + "-" + std::to_string(getpid()) + "-" + std::to_string(++m_memberCounter) : memberId;
    Group& g = m_groups[{group, topic}];
    auto it = g.members.find(id);
    if (it == g.members.end()) {
        ++g.generation;
        g.members[id] = {std::chrono::steady_clock::now(), kDefaultSessionTimeoutMs};
    } else {
        it->second.seen = std::chrono::steady_clock::now();
    }
    return id;
}

void Broker::leaveGroup(const std::string& group, const std::string& topic, const std::string& memberId) {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_groups.find({group, topic});
    if (it != m_groups.end() && it->second.members.count(memberId)) it->second.dropMember(memberId);
}

void Broker::releasePartitions(const std::string& group, const std::string& topic, const std::string& memberId,
                               const std::vector<uint32_t>& partitions) {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_groups.find({group, topic});
    if (it == m_groups.end()) return;
    bool changed = false;
    for (uint32_t p : partitions) {
        auto o = it->second.owner.find(p);
        if (o != it->second.owner.end() && o->second == memberId) {
            it->second.owner.erase(o);
            it->second.position.erase(p);
            changed = true;
        }
    }
    if (changed) ++it->second.generation;
}

Assignment Broker::assignment(const std::string& group, const std::string& topic, const MemberHeartbeat& hb) {
    uint32_t n = getTopic(topic)->config.partitions;
    if (hb.memberId.empty())
        throw Error(ErrorCode::InvalidArgument, "a group member needs an id (join the group first)");
    if (hb.sessionTimeoutMs < 1 || hb.sessionTimeoutMs > 3600000)
        throw Error(ErrorCode::InvalidArgument, "session_timeout_ms must be between 1 and 3600000 (got " +
                                                    std::to_string(hb.sessionTimeoutMs) + ")");
    std::lock_guard<std::mutex> lock(m_mutex);
    Group& g = m_groups[{group, topic}];
    auto now = std::chrono::steady_clock::now();
    if (!g.members.count(hb.memberId)) ++g.generation; // new, or expired earlier and came back
    g.members[hb.memberId] = {now, hb.sessionTimeoutMs};
    g.expire(now);
    // What the member reads now and nobody else owns stays its own: after a broker restart
    // (owners are kept in memory) the group picks up where it was, with no partition read twice.
    for (auto& [p, position] : hb.owned) {
        if (p >= n) continue;
        auto o = g.owner.find(p);
        if (o == g.owner.end())
            g.owner[p] = hb.memberId;
        else if (o->second != hb.memberId)
            continue;
        g.position[p] = position;
    }
    // Right after a restart, a group that was consuming waits a moment for its members to
    // come back and claim their partitions before unowned ones are handed to anyone.
    bool rejoining = m_opts.rejoinGraceMs > 0 && m_recoveredGroups.count({group, topic}) &&
                     now - m_openedAt < std::chrono::milliseconds(m_opts.rejoinGraceMs);
    size_t index = 0, count = g.members.size();
    for (auto& kv : g.members) {
        if (kv.first == hb.memberId) break;
        ++index;
    }
    Assignment a{g.generation, {}};
    for (uint32_t p = 0; p < n; ++p) {
        if (p % count != index) continue;
        auto o = g.owner.find(p);
        if (o != g.owner.end() && o->second != hb.memberId) {
            ++a.pending;
            continue;
        } // still held by its previous owner
        if (o == g.owner.end() && rejoining) {
            ++a.pending;
            continue;
        }
        if (o == g.owner.end()) g.position.erase(p);
        g.owner[p] = hb.memberId;
        a.partitions.push_back(p);
    }
    return a;
}

void Broker::commit(const std::string& group, const std::string& topic,
                    const std::vector<std::pair<uint32_t, uint64_t>>& offsets, const std::string& memberId) {
    auto t = getTopic(topic);
    for (auto& po : offsets) checkPartition(*this, po.first, t->config.partitions, topic);
    if (group.empty() || group.size() > 1000)
        throw Error(ErrorCode::InvalidArgument, "group name must have 1-1000 characters");
    std::lock_guard<std::mutex> lock(m_mutex);
    if (!memberId.empty()) {
        Group& g = m_groups[{group, topic}];
        std::vector<uint32_t> notOwned;
        for (auto& po : offsets) {
            auto o = g.owner.find(po.first);
            if (o == g.owner.end() || o->second != memberId) notOwned.push_back(po.first);
        }
        if (!notOwned.empty())
            throw Error(ErrorCode::CommitFailed,
                        "member '" + memberId + "' of group '" + group + "' no longer owns partition(s) " +
                            listOf(notOwned) + " of topic '" + topic +
                            "' (its session expired or the group moved them); nothing was committed, "
                            "and events after the group's last commit go to the partitions' new owner");
    }
    if (m_offsetsLog && !offsets.empty()) {
        std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>> recs;
        for (auto& po : offsets) recs.emplace_back(group, topic, po.first, po.second);
        appendCommits(*m_offsetsLog, recs);
    }
    for (auto& po : offsets) m_committed[{group, topic, po.first}] = po.second;
}

std::optional<uint64_t> Broker::committed(const std::string& group, const std::string& topic,
                                          uint32_t partition) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_committed.find({group, topic, partition});
    if (it == m_committed.end()) return std::nullopt;
    return it->second;
}

GroupState Broker::describeGroup(const std::string& group, const std::string& topic) {
    uint32_t n = getTopic(topic)->config.partitions;
    std::lock_guard<std::mutex> lock(m_mutex);
    GroupState st;
    st.group = group;
    st.topic = topic;
    auto now = std::chrono::steady_clock::now();
    auto git = m_groups.find({group, topic});
    if (git != m_groups.end()) {
        Group& g = git->second;
        g.expire(now);
        st.generation = g.generation;
        for (auto& kv : g.members) {
            GroupMember m;
            m.id = kv.first;
            m.idleMs = std::chrono::duration_cast<std::chrono::milliseconds>(now - kv.second.seen).count();
            m.sessionTimeoutMs = kv.second.sessionTimeoutMs;
            for (auto& o : g.owner)
                if (o.second == kv.first) m.partitions.push_back(o.first);
            st.members.push_back(std::move(m));
        }
    }
    for (uint32_t p = 0; p < n; ++p) {
        GroupPartition gp;
        gp.partition = p;
        auto c = m_committed.find({group, topic, p});
        if (c != m_committed.end()) gp.committed = c->second;
        auto s = m_skipped.find({group, topic, p});
        if (s != m_skipped.end()) gp.skipped = s->second;
        if (git != m_groups.end()) {
            auto o = git->second.owner.find(p);
            if (o != git->second.owner.end()) {
                gp.owner = o->second;
                auto pos = git->second.position.find(p);
                if (pos != git->second.position.end()) gp.position = pos->second;
            }
        }
        st.partitions.push_back(gp);
    }
    return st;
}

void Broker::resetGroup(const std::string& group, const std::string& topic,
                        const std::vector<std::pair<uint32_t, uint64_t>>& offsets) {
    auto t = getTopic(topic);
    for (auto& po : offsets) checkPartition(*this, po.first, t->config.partitions, topic);
    if (group.empty() || group.size() > 1000)
        throw Error(ErrorCode::InvalidArgument, "group name must have 1-1000 characters");
    std::lock_guard<std::mutex> lock(m_mutex);
    Group& g = liveGroupLocked(group, topic);
    if (!g.members.empty()) {
        std::string names;
        for (auto& kv : g.members) names += (names.empty() ? "" : ", ") + kv.first;
        throw Error(ErrorCode::GroupActive,
                    "group '" + group + "' on topic '" + topic + "' has " + std::to_string(g.members.size()) +
                        " live member(s): " + names +
                        "; stop them (or wait for their session to expire) before resetting its offsets");
    }
    g.owner.clear();
    g.position.clear();
    if (m_offsetsLog && !offsets.empty()) {
        std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>> recs;
        for (auto& po : offsets) recs.emplace_back(group, topic, po.first, po.second);
        appendCommits(*m_offsetsLog, recs);
    }
    for (auto& po : offsets) m_committed[{group, topic, po.first}] = po.second;
}

bool Broker::removeMember(const std::string& group, const std::string& topic, const std::string& memberId) {
    getTopic(topic);
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_groups.find({group, topic});
    if (it == m_groups.end() || !it->second.members.count(memberId)) return false;
    it->second.dropMember(memberId);
    return true;
}

void Broker::noteSkipped(const std::string& group, const std::string& topic, uint32_t partition, uint64_t count) {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    if (group.empty() || group.size() > 1000)
        throw Error(ErrorCode::InvalidArgument, "group name must have 1-1000 characters");
    std::lock_guard<std::mutex> lock(m_mutex);
    uint64_t& total = m_skipped[{group, topic, partition}];
    total += count;
    if (m_offsetsLog) appendSkipped(*m_offsetsLog, {{group, topic, partition, total}});
}

uint64_t Broker::offsetForTime(const std::string& topic, uint32_t partition, int64_t timestampUs) const {
    auto t = getTopic(topic);
    checkPartition(*this, partition, t->config.partitions, topic);
    const PartitionLog& log = *t->logs[partition];
    uint64_t pos = log.startOffset(), end = log.endOffset();
    // A scan of the batch headers (an administrative call; the stored bytes are mapped, not copied).
    while (pos < end) {
        auto batches = log.read(pos, 16 << 20);
        if (batches.empty()) break;
        for (auto& sb : batches) {
            BatchView v(sb.data, sb.size);
            if (v.header().lastTimestampUs >= timestampUs) return std::max(pos, sb.baseOffset);
            pos = sb.baseOffset + sb.count;
        }
    }
    return end;
}

void Broker::eraseTopicOffsets(const std::string& topic) {
    for (auto* m : {&m_committed, &m_skipped})
        for (auto it = m->begin(); it != m->end();) it = std::get<1>(it->first) == topic ? m->erase(it) : std::next(it);
    for (auto it = m_groups.begin(); it != m_groups.end();)
        it = it->first.second == topic ? m_groups.erase(it) : std::next(it);
}

void Broker::forgetTopicOffsetsLocked(const std::string& topic) {
    eraseTopicOffsets(topic);
    if (!m_offsetsLog) return;
    std::string rec(reinterpret_cast<const char*>(&kTopicGoneMark), 2);
    uint16_t len = uint16_t(topic.size());
    rec.append(reinterpret_cast<const char*>(&len), 2).append(topic);
    BatchBuilder b;
    b.add(rec.data(), rec.size(), nullptr, 0,
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count());
    SealedBatch sb = b.seal(0, 0);
    m_offsetsLog->append(sb);
}

void Broker::deleteTopic(const std::string& name, bool force) {
    std::shared_ptr<Topic> t = getTopic(name);
    std::unique_lock<std::mutex> lock(m_mutex);
    if (!force) {
        std::string live;
        auto now = std::chrono::steady_clock::now();
        for (auto& kv : m_groups) {
            if (kv.first.second != name) continue;
            kv.second.expire(now);
            for (auto& m : kv.second.members)
                live += (live.empty() ? "" : ", ") + m.first + " (group " + kv.first.first + ")";
        }
        if (!live.empty())
            throw Error(ErrorCode::GroupActive, "topic '" + name + "' has live consumers: " + live +
                                                    "; stop them first, or delete with force=True (`--force`)");
    }
    m_topics.erase(name);
    if (!m_opts.directory.empty()) {
        // The rename is the point of no return: a crash after it finishes the delete on the next open.
        std::string topics = m_opts.directory + "/topics";
        std::string gone = topics + "/.deleting-" + name + "." + std::to_string(++m_memberCounter);
        for (auto& log : t->logs) {
            try {
                log->close();
            } catch (const Error&) {} // a failed final sync: its events are being deleted
        }
        if (rename((topics + "/" + name).c_str(), gone.c_str()) != 0) {
            m_topics[name] = loadTopic(name);
            throwError(ErrorCode::Storage, "cannot delete topic directory " + topics + "/" + name, true);
        }
        std::string syncFailure;
        try {
            fsyncPath(topics);
        } catch (const Error& e) {
            syncFailure = e.what();
        }
        forgetTopicOffsetsLocked(name);
        lock.unlock();
        if (!syncFailure.empty()) {
            // Whether the rename reached the disk is unknown: removing files now could leave the
            // topic's own name with half its files after a crash. The next open finishes the delete.
            t->bump();
            throw Error(ErrorCode::Storage, "topic '" + name + "' was deleted, but " + syncFailure +
                                                "; its files stay in " + gone +
                                                " until the fabric is reopened (check the disk first)");
        }
        removeTree(gone);
        try {
            fsyncPath(topics);
        } catch (const Error& e) { // the rename is on disk: the next open finishes a cut-short removal
            std::fprintf(stderr, "mofka-py: topic '%s' was deleted, but %s (the next open removes what is left)\n",
                         name.c_str(), e.what());
        }
    } else {
        forgetTopicOffsetsLocked(name);
        lock.unlock();
        for (auto& log : t->logs) log->close();
    }
    t->bump(); // waiters on the topic see it gone
}

uint64_t Broker::purgePartition(const std::string& name, uint32_t partition) {
    auto t = getTopic(name);
    checkPartition(*this, partition, t->config.partitions, name);
    uint64_t removed = t->logs[partition]->purge();
    t->bump();
    return removed;
}

void Broker::alterTopic(const std::string& name, const TopicConfig& changes) {
    auto t = getTopic(name);
    if (changes.setFields & ~uint32_t(kRetentionBytes | kRetentionMs))
        throw Error(ErrorCode::InvalidArgument,
                    "only retention_bytes and retention_ms can be changed on an existing topic");
    if (changes.retentionMs < 0) throw Error(ErrorCode::InvalidArgument, "retention_ms must be >= 0");
    std::lock_guard<std::mutex> lock(m_mutex);
    TopicConfig c = t->config;
    if (changes.setFields & kRetentionBytes) c.retentionBytes = changes.retentionBytes;
    if (changes.setFields & kRetentionMs) c.retentionMs = changes.retentionMs;
    if (!t->directory.empty()) writeFileAtomic(t->directory, "topic.conf", topicConfText(c));
    t->config = c;
    for (auto& log : t->logs) log->setRetention(c.retentionBytes, c.retentionMs);
}

std::vector<std::string> Broker::groups(const std::string& topic) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<std::string> out;
    for (auto& kv : m_committed)
        if (std::get<1>(kv.first) == topic) out.push_back(std::get<0>(kv.first));
    for (auto& kv : m_groups)
        if (kv.first.second == topic && !kv.second.members.empty()) out.push_back(kv.first.first);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

namespace {
void removeFlatDir(const std::string& dir) {
    for (const std::string& n : listDir(dir)) ::unlink((dir + "/" + n).c_str());
    ::rmdir(dir.c_str());
}
constexpr uint64_t kCompactOffsetsAfter = 100000; // records in the offsets log
} // namespace

std::unique_ptr<PartitionLog> Broker::openOffsetsLog(const std::string& dir) const {
    LogOptions lo;
    lo.directory = dir;
    lo.segmentBytes = 64ull << 20;
    lo.sync = m_opts.defaults.sync == SyncPolicy::None ? SyncPolicy::None : SyncPolicy::Batch;
    lo.repair = m_opts.repair;
    return std::make_unique<PartitionLog>(lo);
}

void Broker::appendCommits(PartitionLog& log,
                           const std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>>& commits) {
    BatchBuilder b;
    int64_t now =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    for (auto& [g, t, p, o] : commits) {
        std::string rec = encodeCommit(g, t, p, o);
        b.add(rec.data(), rec.size(), nullptr, 0, now);
    }
    SealedBatch sb = b.seal(0, 0);
    log.append(sb);
}

void Broker::appendSkipped(PartitionLog& log,
                           const std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>>& totals) {
    BatchBuilder b;
    int64_t now =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    for (auto& [g, t, p, n] : totals) {
        std::string rec(reinterpret_cast<const char*>(&kSkippedMark), 2);
        rec += encodeCommit(g, t, p, n);
        b.add(rec.data(), rec.size(), nullptr, 0, now);
    }
    SealedBatch sb = b.seal(0, 0);
    log.append(sb);
}

void Broker::loadOffsets() {
    const std::string dir = m_opts.directory + "/__offsets";
    const std::string fresh = dir + ".new", old = dir + ".old";
    // Compaction swaps directories with two renames; finish or undo one cut short by a crash.
    if (!isDir(dir) && isDir(fresh)) rename(fresh.c_str(), dir.c_str());
    if (isDir(fresh)) removeFlatDir(fresh);
    if (isDir(old)) removeFlatDir(old);
    m_offsetsLog = openOffsetsLog(dir);
    uint64_t pos = m_offsetsLog->startOffset(), records = 0;
    for (;;) {
        auto batches = m_offsetsLog->read(pos, 64 << 20);
        if (batches.empty()) break;
        for (auto& sb : batches) {
            BatchView v(sb.data, sb.size);
            for (uint32_t i = 0; i < v.count(); ++i) {
                Piece m = v.metadata(i);
                const uint8_t* p = m.data;
                bool skippedRecord = false;
                if (m.size >= 2) {
                    uint16_t mark;
                    std::memcpy(&mark, p, 2);
                    if (mark == kSkippedMark) {
                        skippedRecord = true;
                        p += 2;
                        m.size -= 2;
                    }
                    if (mark == kTopicGoneMark) {
                        ++records;
                        uint16_t len = 0;
                        if (m.size >= 4) std::memcpy(&len, p + 2, 2);
                        if (m.size == size_t(4) + len)
                            eraseTopicOffsets(std::string(reinterpret_cast<const char*>(p + 4), len));
                        continue;
                    }
                }
                uint16_t gl, tl;
                uint32_t part;
                uint64_t off;
                ++records;
                if (m.size < 16) continue;
                std::memcpy(&gl, p, 2);
                if (m.size < size_t(16) + gl) continue;
                std::string g(reinterpret_cast<const char*>(p + 2), gl);
                std::memcpy(&tl, p + 2 + gl, 2);
                if (m.size != size_t(2 + gl + 2 + tl + 12)) continue;
                std::string t(reinterpret_cast<const char*>(p + 4 + gl), tl);
                std::memcpy(&part, p + 4 + gl + tl, 4);
                std::memcpy(&off, p + 8 + gl + tl, 8);
                if (skippedRecord)
                    m_skipped[{g, t, part}] = off;
                else
                    m_committed[{g, t, part}] = off;
            }
            pos = sb.baseOffset + sb.count;
        }
    }
    for (auto& kv : m_committed) m_recoveredGroups.emplace(std::get<0>(kv.first), std::get<1>(kv.first));
    if (records > kCompactOffsetsAfter && records > 4 * (m_committed.size() + m_skipped.size())) {
        // Keep only the latest offset of each (group, topic, partition).
        auto snapshot = openOffsetsLog(fresh);
        std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>> all;
        for (auto& kv : m_committed)
            all.emplace_back(std::get<0>(kv.first), std::get<1>(kv.first), std::get<2>(kv.first), kv.second);
        for (size_t i = 0; i < all.size(); i += 4096)
            appendCommits(*snapshot, {all.begin() + long(i), all.begin() + long(std::min(all.size(), i + 4096))});
        std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>> skipped;
        for (auto& kv : m_skipped)
            skipped.emplace_back(std::get<0>(kv.first), std::get<1>(kv.first), std::get<2>(kv.first), kv.second);
        for (size_t i = 0; i < skipped.size(); i += 4096)
            appendSkipped(*snapshot,
                          {skipped.begin() + long(i), skipped.begin() + long(std::min(skipped.size(), i + 4096))});
        snapshot->sync();
        snapshot->close();
        m_offsetsLog->close();
        if (rename(dir.c_str(), old.c_str()) != 0 || rename(fresh.c_str(), dir.c_str()) != 0)
            throwError(ErrorCode::Generic, "cannot swap in the compacted offsets log in " + m_opts.directory, true);
        fsyncPath(m_opts.directory);
        removeFlatDir(old);
        m_offsetsLog = openOffsetsLog(dir);
    }
}

void Broker::housekeepingLoop() {
    std::unique_lock<std::mutex> l(m_hkMutex);
    while (!m_closed) {
        m_hkCv.wait_for(l, std::chrono::milliseconds(100));
        if (m_closed) break;
        const std::vector<std::shared_ptr<Topic>> topics = topicsSnapshot();
        for (auto& t : topics)
            for (auto& log : t->logs) log->housekeeping();
    }
}

std::vector<std::shared_ptr<Broker::Topic>> Broker::topicsSnapshot() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<std::shared_ptr<Topic>> topics;
    for (auto& kv : m_topics) topics.push_back(kv.second);
    return topics;
}

uint64_t Broker::verify(const std::function<void(uint64_t, uint64_t)>& progress) const {
    const std::vector<std::shared_ptr<Topic>> topics = topicsSnapshot();
    uint64_t total = 0, done = 0;
    for (auto& t : topics)
        for (auto& log : t->logs) total += log->sizeBytes();
    if (progress) progress(0, total);
    for (auto& t : topics)
        for (size_t p = 0; p < t->logs.size(); ++p) {
            const uint64_t before = done;
            try {
                done += t->logs[p]->verify([&](uint64_t d, uint64_t) {
                    if (progress) progress(before + d, std::max(total, before + d)); // logs may grow meanwhile
                });
            } catch (const Error& e) {
                if (e.code() != ErrorCode::Corruption) throw;
                throw Error(ErrorCode::Corruption,
                            "topic '" + t->name + "' partition " + std::to_string(p) + ": " + e.what());
            }
        }
    if (progress) progress(done, std::max(total, done));
    return done;
}

LogOpenStats Broker::openStats() const {
    const std::vector<std::shared_ptr<Topic>> topics = topicsSnapshot();
    LogOpenStats sum;
    sum.fromRecoveryPoint = !topics.empty();
    for (auto& t : topics)
        for (auto& log : t->logs) {
            LogOpenStats st = log->openStats();
            sum.fromRecoveryPoint = sum.fromRecoveryPoint && st.fromRecoveryPoint;
            sum.checkedBytes += st.checkedBytes;
            sum.deferredBytes += st.deferredBytes;
        }
    return sum;
}

void Broker::sync() {
    const std::vector<std::shared_ptr<Topic>> topics = topicsSnapshot();
    // Every log is synced even when one fails; the first failure is thrown.
    std::exception_ptr failed;
    auto syncOne = [&](PartitionLog& log) {
        try {
            log.sync();
        } catch (...) {
            if (!failed) failed = std::current_exception();
        }
    };
    for (auto& t : topics)
        for (auto& log : t->logs) syncOne(*log);
    if (m_offsetsLog) syncOne(*m_offsetsLog);
    if (failed) std::rethrow_exception(failed);
}

void Broker::close() {
    if (m_closed.exchange(true)) return;
    {
        std::lock_guard<std::mutex> l(m_hkMutex);
        m_hkCv.notify_all();
    }
    if (m_housekeeper.joinable()) m_housekeeper.join();
    std::lock_guard<std::mutex> lock(m_mutex);
    // Every log is closed even when a final sync fails; the first failure is thrown.
    std::exception_ptr failed;
    auto closeOne = [&](PartitionLog& log) {
        try {
            log.close();
        } catch (...) {
            if (!failed) failed = std::current_exception();
        }
    };
    for (auto& kv : m_topics) {
        kv.second->bump();
        for (auto& log : kv.second->logs) closeOne(*log);
    }
    if (m_offsetsLog) closeOne(*m_offsetsLog);
    if (m_lockFd >= 0) {
        flock(m_lockFd, LOCK_UN);
        ::close(m_lockFd);
        m_lockFd = -1;
    }
    if (failed) std::rethrow_exception(failed);
}

} // namespace mofka_py
