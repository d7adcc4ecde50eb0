#include "mofka_py/PartitionLog.hpp"

#include "log/SegmentPool.hpp"
#include "log/Sync.hpp"
#include "mofka_py/Crc32c.hpp"
#include "mofka_py/Error.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mofka_py {
namespace {

int64_t nowUs() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// truncateTo() writes the kept part of a segment that readers still map under the segment's
/// name plus this, then renames it over the segment; one left by a crash is removed on open.
constexpr const char* kTruncatingSuffix = ".truncating";

/// The recovery point of a partition's directory (see the PartitionLog class comment).
constexpr const char* kRecoveryPointName = "recovery-point";
constexpr uint64_t kRecoveryPointMagic = 0x3130305450525950ull; // "PYRPT001"

/// What a recovery point records.
struct RecoveryPoint {
    struct Seg {
        uint64_t base, size, next;
        int64_t maxTimestampUs;
    };
    std::vector<Seg> segments; // oldest first
    std::vector<std::pair<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>>> producers;
};

void put64(std::vector<uint8_t>& out, uint64_t v) {
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    out.insert(out.end(), b, b + 8);
}

/// Read and check (magic, sizes, CRC32C) a recovery point; false when missing or not intact.
bool readRecoveryPoint(const std::string& path, RecoveryPoint& out) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::vector<uint8_t> buf;
    uint8_t chunk[65536];
    for (;;) {
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buf.insert(buf.end(), chunk, chunk + n);
        if (buf.size() > (64u << 20)) break; // not ours
    }
    ::close(fd);
    if (buf.size() < 28) return false;
    uint32_t crc;
    std::memcpy(&crc, buf.data() + buf.size() - 4, 4);
    if (crc32c(0, buf.data(), buf.size() - 4) != crc) return false;
    size_t at = 0;
    const size_t end = buf.size() - 4;
    auto get = [&](uint64_t& v) {
        if (at + 8 > end) return false;
        std::memcpy(&v, buf.data() + at, 8);
        at += 8;
        return true;
    };
    uint64_t magic = 0, nseg = 0, nprod = 0;
    if (!get(magic) || magic != kRecoveryPointMagic || !get(nseg) || nseg > (end - at) / 32) return false;
    out.segments.resize(nseg);
    for (auto& sg : out.segments) {
        uint64_t ts = 0;
        if (!get(sg.base) || !get(sg.size) || !get(sg.next) || !get(ts)) return false;
        sg.maxTimestampUs = int64_t(ts);
    }
    if (!get(nprod) || nprod > (end - at) / 16) return false;
    out.producers.resize(nprod);
    for (auto& [id, recent] : out.producers) {
        uint64_t n = 0;
        if (!get(id) || !get(n) || n > (end - at) / 16) return false;
        recent.resize(n);
        for (auto& [seq, base] : recent)
            if (!get(seq) || !get(base)) return false;
    }
    return at == end;
}

/// How a stored batch checks out (checkStored()).
struct StoredCheck {
    enum How { Intact, Incomplete, Damaged } how = Intact;
    const BatchHeader* header = nullptr; ///< when Intact
    std::string problem; ///< why not
};

/// The one check of a stored batch, for recovery at open, a segment's first indexing, first reads and
/// verify(): the batch at @p pos (of the bytes before @p end) has an intact header (magic, version,
/// length and its check), lies within @p end (else Incomplete: a torn write at a log's end), with @p crc
/// an intact layout and CRC32C, and the base offset @p expected (UINT64_MAX: any).
StoredCheck checkStored(const uint8_t* base, size_t pos, size_t end, uint64_t expected, bool crc) {
    StoredCheck out;
    auto refuse = [&](StoredCheck::How how, std::string problem) {
        out.how = how;
        out.problem = std::move(problem);
        return out;
    };
    if (end - pos < kBatchHeaderSize) return refuse(StoredCheck::Incomplete, "incomplete batch header");
    const auto* h = reinterpret_cast<const BatchHeader*>(base + pos);
    if (h->magic != kBatchMagic || h->version != kBatchVersion || h->lengthCheck != lengthCheck(h->length) ||
        h->length < kBatchHeaderSize || (h->length & 7))
        return refuse(StoredCheck::Damaged, "bad batch header");
    if (h->length > end - pos) return refuse(StoredCheck::Incomplete, "incomplete batch");
    if (crc) {
        try {
            if (!BatchView(base + pos, size_t(h->length)).crcOk())
                return refuse(StoredCheck::Damaged, "CRC32C mismatch");
        } catch (const Error& e) {
            return refuse(StoredCheck::Damaged, e.what());
        }
    }
    if (expected != UINT64_MAX && h->baseOffset != expected)
        return refuse(StoredCheck::Damaged, "offset " + std::to_string(h->baseOffset) + " out of sequence");
    out.header = h;
    return out;
}

/// The Corruption error for damage found after open (on first use, or by verify()).
[[noreturn]] void throwStoredCorruption(const std::string& problem, const std::string& path, size_t pos,
                                        uint64_t offset) {
    throw Error(ErrorCode::Corruption,
                "partition log corrupted: " + problem + " in " + path + " at byte " + std::to_string(pos) +
                    " (offset " + std::to_string(offset) +
                    "); the events from there cannot be trusted. `mofka-py verify` checks a whole fabric; restore "
                    "from a replica, or reopen with repair=True to truncate the log there (events from that point "
                    "are dropped)");
}

std::string segmentName(uint64_t base) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%020llu.log", static_cast<unsigned long long>(base));
    return buf;
}

/// Create @p path and its missing parents; returns the directories created, outermost first.
std::vector<std::string> makeDirs(const std::string& path) {
    std::vector<std::string> created;
    std::string cur;
    for (size_t i = 0; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            if (!cur.empty()) {
                if (mkdir(cur.c_str(), 0755) == 0)
                    created.push_back(cur);
                else if (errno != EEXIST)
                    throwError(ErrorCode::Generic, "cannot create directory " + cur, true);
            }
        }
        if (i < path.size()) cur.push_back(path[i]);
    }
    return created;
}

std::string parentDir(const std::string& path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string megabytes(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
    return buf;
}

/// " (<free> free of <size> on that filesystem)" for the filesystem holding @p path; empty if unknown.
std::string freeSpace(const std::string& path) {
    struct statvfs fs;
    if (statvfs(parentDir(path).c_str(), &fs) != 0) return "";
    return " (" + megabytes(double(fs.f_bavail) * double(fs.f_frsize)) + " free of " +
           megabytes(double(fs.f_blocks) * double(fs.f_frsize)) + " on that filesystem)";
}

/// What a producer does after its batch did not fit on the disk.
constexpr const char* kProducerRetry = "call producer.reset() to write again";

/// A StorageError for a failed write of @p path (errno is the cause): names the file,
/// the free space of its filesystem and what to do (on a full disk: free space, then @p retry).
[[noreturn]] void storageError(const std::string& what, const std::string& path, const char* retry = kProducerRetry) {
    int e = errno;
    std::string msg = what + " " + path + ": " + std::strerror(e) + freeSpace(path);
    if (e == ENOSPC || e == EDQUOT)
        msg += std::string("; nothing of this batch was stored and reads still work. Free space (or shorten the "
                           "topic's retention, `mofka-py topic purge`), then ") +
               retry;
    throw Error(ErrorCode::Storage, msg);
}

/// What to do about a log made unwritable by a failed sync, and why it stays so.
constexpr const char* kUnwritableAdvice =
    "after a failed sync the kernel may have dropped written data while reporting it written, so a later sync "
    "would prove nothing. Events acknowledged before stay readable. Check the disk (kernel log, free space), then "
    "restart the service or reopen the fabric (recovery checks the log's tail) to write again";

/// What a failed sync of acknowledged data means under @p policy.
std::string unsyncedEvents(SyncPolicy policy) {
    return policy == SyncPolicy::Batch
               ? "every event acknowledged before was synced"
               : "events acknowledged since the last successful sync may not have reached the disk";
}

void writeAll(int fd, std::vector<iovec>& iov, off_t pos, const std::string& path, const char* retry = kProducerRetry) {
    size_t i = 0;
    while (i < iov.size()) {
        int n = int(std::min<size_t>(iov.size() - i, IOV_MAX));
        ssize_t w = pwritev(fd, iov.data() + i, n, pos);
        if (w < 0) {
            if (errno == EINTR) continue;
            storageError("cannot write", path, retry);
        }
        pos += w;
        while (w > 0 && i < iov.size()) {
            if (size_t(w) >= iov[i].iov_len) {
                w -= ssize_t(iov[i].iov_len);
                ++i;
            } else {
                iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + w;
                iov[i].iov_len -= size_t(w);
                w = 0;
            }
        }
    }
}

} // namespace

struct PartitionLog::Segment {
    uint64_t baseOffset = 0;
    uint64_t nextOffset = 0;
    std::shared_ptr<Mapping> map;
    uint8_t* base = nullptr;
    size_t capacity = 0;
    size_t size = 0; ///< bytes published (readable)
    size_t written = 0; ///< bytes written: size, plus group commit's unsynced batches
    int fd = -1;
    std::string path;
    int64_t maxTimestampUs = 0;
    size_t backed = 0; ///< in memory: bytes from the start known to be faulted in (or written)
    bool created = false; ///< its file was created by newSegment(): the directory needs a sync
    /// In memory: truncateTo() cut it while readers mapped its dropped tail; it takes no more
    /// batches, so those bytes are never overwritten under them.
    bool sealed = false;
    mutable std::vector<std::pair<uint64_t, uint64_t>> index; // (first offset of a batch, position)
    mutable uint64_t lastIndexedPos = 0;
    /// Bytes [0, unindexedEnd) came from the recovery point: indexed on first use (ensureIndexedLocked()).
    mutable size_t unindexedEnd = 0;
    /// Bytes [0, uncheckedEnd) came from the recovery point: each batch's CRC is checked on first read.
    size_t uncheckedEnd = 0;
    mutable size_t checkedTo = 0; ///< the batches before this position were checked
    mutable std::map<size_t, size_t> checkedAhead; ///< batches checked past checkedTo: position -> length

    ~Segment() {
        if (fd >= 0) ::close(fd);
    }
    void addToIndex(uint64_t offset, uint64_t pos, uint64_t interval) {
        if (index.empty() || pos - lastIndexedPos >= interval) {
            index.emplace_back(offset, pos);
            lastIndexedPos = pos;
        }
    }
};

PartitionLog::PartitionLog(LogOptions options) : m_opts(std::move(options)) {
    m_lastSync = std::chrono::steady_clock::now();
    if (m_opts.directory.empty()) {
        m_segments.push_back(newSegment(0, m_opts.segmentBytes));
    } else {
        openDirectory();
    }
    m_assigned = m_next;
    m_visibleTo = m_next;
}

PartitionLog::~PartitionLog() {
    try {
        close();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mofka-py: %s\n", e.what()); // nobody else can hear it now
    } catch (...) {}
}

std::shared_ptr<PartitionLog::Segment> PartitionLog::newSegment(uint64_t baseOffset, uint64_t capacity) {
    auto seg = std::make_shared<Segment>();
    seg->baseOffset = seg->nextOffset = baseOffset;
    seg->capacity = alignUp(capacity, 1 << 21);
    seg->map = std::make_shared<Mapping>();
    if (m_opts.directory.empty()) {
        seg->map->anonymous = true;
        // Fresh pages for its writes are faulted in ahead by a background thread (off the writer's path).
        if (size_t ahead = defaultFaultAhead()) faultReservoir().keepAhead(ahead);
        seg->map->addr = anonSegmentPool().take(seg->capacity);
        if (seg->map->addr != MAP_FAILED) {
            seg->backed = seg->capacity; // used before: its pages are in
            faultReservoir().recycled();
        } else {
            seg->map->addr = mapAligned(seg->capacity);
        }
    } else {
        seg->path = m_opts.directory + "/" + segmentName(baseOffset);
        seg->fd = ::open(seg->path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (seg->fd >= 0)
            seg->created = true;
        else if (errno == EEXIST)
            seg->fd = ::open(seg->path.c_str(), O_RDWR | O_CLOEXEC);
        if (seg->fd < 0) storageError("cannot open segment", seg->path);
        struct stat st;
        fstat(seg->fd, &st);
        seg->size = seg->written = size_t(st.st_size);
        seg->capacity = std::max<size_t>(seg->capacity, alignUp(seg->size, 1 << 21));
        seg->map->addr = mmap(nullptr, seg->capacity, PROT_READ, MAP_SHARED, seg->fd, 0);
    }
    if (seg->map->addr == MAP_FAILED) throwError(ErrorCode::Generic, "cannot map a log segment", true);
    seg->map->length = seg->capacity;
    seg->base = static_cast<uint8_t*>(seg->map->addr);
    return seg;
}

void PartitionLog::syncCreatedLocked(const Segment& seg, const std::string& consequence) {
    // The new file's name must be on disk before anything in it is acknowledged (and before
    // retention or a purge removes the segments in front of it).
    if (seg.created && m_opts.sync != SyncPolicy::None)
        syncDirectoryLocked(m_opts.directory, "the new segment " + seg.path + " was not used; " + consequence);
}

void PartitionLog::openDirectory() {
    // A failed sync of a directory created here opens the log unwritable (readable, refusing
    // writes until it is reopened) rather than not at all: see unwritable().
    auto opening = [&](const std::function<void()>& sync) {
        try {
            sync();
        } catch (const Error& e) {
            if (m_unwritable.empty()) throw; // not a failed sync (e.g. the directory cannot be opened)
            std::fprintf(stderr, "mofka-py: %s\n", e.what());
        }
    };
    std::vector<std::string> created = makeDirs(m_opts.directory);
    if (m_opts.sync != SyncPolicy::None)
        for (const std::string& dir : created)
            if (m_unwritable.empty())
                opening([&] { syncDirectoryLocked(parentDir(dir), "the log opened unwritable"); });
    std::vector<uint64_t> bases;
    if (DIR* d = opendir(m_opts.directory.c_str())) {
        while (dirent* e = readdir(d)) {
            std::string n = e->d_name;
            if (n.size() == 24 && n.compare(20, 4, ".log") == 0 && std::all_of(n.begin(), n.begin() + 20, ::isdigit))
                bases.push_back(std::stoull(n.substr(0, 20)));
            else if (n.size() > 24 && n.compare(20, 4, ".log") == 0 &&
                     n.compare(24, std::string::npos, kTruncatingSuffix) == 0)
                ::unlink((m_opts.directory + "/" + n).c_str()); // a truncation cut short: its segment is whole
        }
        closedir(d);
    }
    std::sort(bases.begin(), bases.end());
    // The recovery point describes a prefix of the segments (those retention removed since left out):
    // used[i] is segment i's record, or nullptr for the segments past it (checked in full). Any
    // disagreement with the files (a recorded segment missing or shorter, an earlier one grown) and
    // the record is ignored: everything is checked, as without one. repair checks everything.
    RecoveryPoint point;
    std::vector<const RecoveryPoint::Seg*> used(bases.size(), nullptr);
    if (!m_opts.repair && !bases.empty() && readRecoveryPoint(m_opts.directory + "/" + kRecoveryPointName, point)) {
        size_t j = 0;
        while (j < point.segments.size() && point.segments[j].base < bases[0]) ++j;
        bool ok = j < point.segments.size();
        for (size_t i = 0; ok && j < point.segments.size(); ++i, ++j) {
            const RecoveryPoint::Seg& rec = point.segments[j];
            struct stat st{};
            const bool lastRecord = j + 1 == point.segments.size();
            ok = i < bases.size() && rec.base == bases[i] &&
                 ::stat((m_opts.directory + "/" + segmentName(bases[i])).c_str(), &st) == 0 &&
                 uint64_t(st.st_size) >= rec.size && (lastRecord || uint64_t(st.st_size) == rec.size) &&
                 rec.next >= rec.base;
            if (ok) used[i] = &rec;
        }
        if (ok) {
            for (auto& [id, recent] : point.producers) m_producers[id].recent = recent;
            m_openStats.fromRecoveryPoint = true;
        } else {
            std::fill(used.begin(), used.end(), nullptr);
        }
    }
    for (size_t i = 0; i < bases.size(); ++i) {
        auto seg = newSegment(bases[i], m_opts.segmentBytes);
        if (!m_segments.empty() && seg->baseOffset != m_next) {
            if (!m_opts.repair)
                throw Error(ErrorCode::Corruption, "segment " + seg->path + " starts at offset " +
                                                       std::to_string(seg->baseOffset) +
                                                       " but the previous one ends at " + std::to_string(m_next) +
                                                       "; reopen with repair=True to drop the segments after the gap");
            for (size_t j = i; j < bases.size(); ++j)
                ::unlink((m_opts.directory + "/" + segmentName(bases[j])).c_str());
            break;
        }
        bool last = (i + 1 == bases.size());
        m_segments.push_back(seg);
        if (const RecoveryPoint::Seg* rec = used[i]) {
            // Its recorded part is taken as recorded (checked on first use), the rest checked now.
            seg->maxTimestampUs = rec->maxTimestampUs;
            seg->unindexedEnd = seg->uncheckedEnd = size_t(rec->size);
            m_openStats.deferredBytes += rec->size;
            recoverSegment(*seg, last, size_t(rec->size), rec->next);
        } else {
            recoverSegment(*seg, last);
        }
        seg->written = seg->size;
        m_next = seg->nextOffset;
        if (m_cut) break; // repair removed the later segments
    }
    if (m_segments.empty()) {
        m_segments.push_back(newSegment(m_next, m_opts.segmentBytes));
        if (m_unwritable.empty()) opening([&] { syncCreatedLocked(*m_segments.back(), "the log opened unwritable"); });
    }
    // Up to date when the record described everything there is; else recorded at the next chance.
    m_pointStale = !m_openStats.fromRecoveryPoint || m_openStats.checkedBytes > 0 || m_cut;
    m_lastPoint = std::chrono::steady_clock::now();
}

void PartitionLog::recoverSegment(Segment& seg, bool last, size_t from, uint64_t expectedAt) {
    const size_t fileSize = seg.size;
    size_t pos = from;
    uint64_t expected = expectedAt == UINT64_MAX ? seg.baseOffset : expectedAt;
    std::string problem;
    bool torn = false;
    while (pos < fileSize) {
        const uint8_t* p = seg.base + pos;
        size_t rem = fileSize - pos;
        if (std::all_of(p, p + rem, [](uint8_t b) { return b == 0; })) {
            torn = true;
            break;
        }
        const StoredCheck c = checkStored(seg.base, pos, fileSize, expected, true);
        if (c.how == StoredCheck::Incomplete) {
            torn = true;
            break;
        }
        if (c.how == StoredCheck::Damaged) {
            problem = c.problem;
            break;
        }
        const BatchHeader& h = *c.header;
        seg.addToIndex(h.baseOffset, pos, m_opts.indexIntervalBytes);
        expected = h.baseOffset + h.count;
        seg.maxTimestampUs = std::max(seg.maxTimestampUs, h.lastTimestampUs);
        if (h.producerId) m_producers[h.producerId].add(h.sequence, h.baseOffset);
        pos += size_t(h.length);
    }
    m_openStats.checkedBytes += pos - from;
    seg.nextOffset = expected;
    if (pos == fileSize) return;
    if (torn && last) {
        // A write that did not complete before a crash: it was never acknowledged.
        if (ftruncate(seg.fd, off_t(pos)) != 0) throwError(ErrorCode::Generic, "cannot truncate " + seg.path, true);
        seg.size = pos;
        return;
    }
    if (problem.empty()) problem = "incomplete batch before the end of the log";
    std::string where = seg.path + " at byte " + std::to_string(pos) + " (offset " + std::to_string(expected) + ")";
    if (!m_opts.repair)
        throw Error(ErrorCode::Corruption,
                    "partition log corrupted: " + problem + " in " + where +
                        "; the events after it cannot be trusted. Restore from a replica, or reopen with "
                        "repair=True to truncate the log there (events from that point are dropped)");
    std::fprintf(stderr, "mofka-py: repair: truncating %s (%s)\n", where.c_str(), problem.c_str());
    if (ftruncate(seg.fd, off_t(pos)) != 0) throwError(ErrorCode::Generic, "cannot truncate " + seg.path, true);
    seg.size = pos;
    // Later segments are unusable after a cut: remove them; this one becomes the active segment.
    if (!last) {
        if (DIR* d = opendir(m_opts.directory.c_str())) {
            while (dirent* e = readdir(d)) {
                std::string n = e->d_name;
                if (n.size() == 24 && n.compare(20, 4, ".log") == 0 &&
                    std::all_of(n.begin(), n.begin() + 20, ::isdigit) && std::stoull(n.substr(0, 20)) > seg.baseOffset)
                    ::unlink((m_opts.directory + "/" + n).c_str());
            }
            closedir(d);
        }
        m_cut = true;
    }
}

bool PartitionLog::fitsLocked(const Segment& seg, uint64_t length) const {
    // Roll past segmentBytes (the mapping is rounded up to 2 MiB, so its capacity is not the limit).
    return !seg.sealed && seg.written + length <= seg.capacity &&
           (seg.written == 0 || seg.written + length <= m_opts.segmentBytes);
}

PartitionLog::Segment& PartitionLog::writableSegment(uint64_t length) {
    Segment* active = m_segments.back().get();
    if (fitsLocked(*active, length)) return *active;
    const std::string notStored =
        "this batch was not stored" +
        (m_opts.sync == SyncPolicy::Batch ? std::string() : "; " + unsyncedEvents(m_opts.sync));
    if (active->size > 0 && active->fd >= 0 && m_opts.sync != SyncPolicy::None) syncSegmentLocked(*active, notStored);
    auto next = newSegment(m_next, std::max<uint64_t>(m_opts.segmentBytes, length));
    syncCreatedLocked(*next, notStored);
    if (active->size == 0) {
        // An empty segment too small for this batch: replace it (a file keeps its name, the base offset).
        if (active->fd >= 0 && active->path != next->path) ::unlink(active->path.c_str());
        m_segments.back() = std::move(next);
    } else {
        m_segments.push_back(std::move(next));
    }
    applyRetentionLocked();
    return *m_segments.back();
}

/// Move reserved, already-faulted memory in where [pos, pos + length) of an in-memory segment
/// lands. Only past everything written or reserved (the caller passes that end as @p pos):
/// [pos, capacity) holds nothing yet, so replacing its pages loses nothing.
void PartitionLog::backRange(Segment& seg, size_t pos, uint64_t length) {
    if (seg.backed >= pos + length) return;
    size_t at = std::max(seg.backed, alignUp(pos, kHugePage));
    while (at < pos + length && at + kHugePage <= seg.capacity && faultReservoir().install(seg.base + at))
        at += kHugePage;
    seg.backed = std::max<size_t>(at, alignUp(pos + length, kHugePage)); // stays 2 MiB aligned
}

uint8_t* PartitionLog::reserve(uint64_t length) {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    if (!m_opts.directory.empty() || length < kBatchHeaderSize) return nullptr;
    if (m_reserved.empty()) {
        // Nothing pending: roll to a new segment if this one is full, as append() would (a batch
        // larger than a segment gets a segment of its own instead of a detour through a buffer).
        Segment& seg = writableSegment(length);
        backRange(seg, seg.size, length);
        m_reserved.emplace_back(seg.size, length);
        return seg.base + seg.size;
    }
    Segment& seg = *m_segments.back();
    const size_t start = m_reserved.back().first + m_reserved.back().second;
    if (start + length > seg.capacity || start + length > m_opts.segmentBytes) return nullptr;
    backRange(seg, start, length);
    m_reserved.emplace_back(start, length);
    return seg.base + start;
}

void PartitionLog::cancelReserved() {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (!m_reserved.empty()) m_reserved.erase(m_reserved.begin());
}

AppendResult PartitionLog::commitReserved(CrcMode mode, std::optional<uint32_t> landedCrc) {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_reserved.empty()) throw Error(ErrorCode::Generic, "commitReserved without a reservation");
    const auto [reservedAt, length] = m_reserved.front();
    m_reserved.erase(m_reserved.begin());
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    Segment& seg = *m_segments.back();
    const size_t pos = seg.size;
    // An earlier reservation was dropped: close the gap (regions may overlap).
    if (reservedAt != pos) std::memmove(seg.base + pos, seg.base + reservedAt, size_t(length));
    auto* h = reinterpret_cast<BatchHeader*>(seg.base + pos);
    if (h->magic != kBatchMagic || h->version != kBatchVersion || h->length != length ||
        h->lengthCheck != lengthCheck(h->length))
        throw Error(ErrorCode::Corruption, "malformed record batch received; it was not stored");
    if (auto again = resentLocked(*h)) return *again;
    const uint32_t crc =
        landedCrc ? *landedCrc : crc32c(0, seg.base + pos + kCrcCoverageStart, size_t(length) - kCrcCoverageStart);
    if (mode == CrcMode::Verify && crc != h->crc)
        throw Error(ErrorCode::Corruption,
                    "record batch CRC32C mismatch: the batch was damaged in transit; it was not stored");
    h->crc = crc;
    h->baseOffset = m_next;
    return publishLocked(seg, pos, length, *h, h->count, lock);
}

std::optional<AppendResult> PartitionLog::resentLocked(const BatchHeader& h) const {
    if (!h.producerId) return std::nullopt;
    auto it = m_producers.find(h.producerId);
    if (it == m_producers.end()) return std::nullopt;
    if (h.sequence > it->second.lastSequence() + 1)
        // A batch of this producer before it was not stored (e.g. refused on a full disk):
        // storing this one would leave a gap in the producer's stream (Kafka's OutOfOrderSequence).
        throw Error(ErrorCode::OutOfSequence,
                    "batch " + std::to_string(h.sequence) + " of producer " + std::to_string(h.producerId) +
                        " refused: its batch " + std::to_string(it->second.lastSequence() + 1) +
                        " was not stored; the producer must be reset before it writes here again");
    if (h.sequence > it->second.lastSequence()) return std::nullopt;
    uint64_t base = UINT64_MAX; // older than the window: stored, offset forgotten
    for (auto& sb : it->second.recent)
        if (sb.first == h.sequence) base = sb.second;
    return AppendResult{base, true};
}

AppendResult PartitionLog::publishLocked(Segment& seg, size_t pos, uint64_t length, const BatchHeader& h,
                                         uint32_t count, std::unique_lock<std::mutex>& lock) {
    seg.addToIndex(m_next, pos, m_opts.indexIntervalBytes);
    m_pointStale = true;
    seg.size = seg.written = pos + length;
    seg.maxTimestampUs = std::max(seg.maxTimestampUs, h.lastTimestampUs);
    const uint64_t base = m_next;
    m_next += count;
    m_assigned = m_next;
    seg.nextOffset = m_next;
    advanceVisibleLocked();
    if (h.producerId) m_producers[h.producerId].add(h.sequence, base);
    lock.unlock();
    m_cv.notify_all();
    return {base, false};
}

AppendResult PartitionLog::append(SealedBatch& batch, CrcMode mode) { return awaitDurable(appendNoWait(batch, mode)); }

PartitionLog::Pending PartitionLog::appendNoWait(SealedBatch& batch, CrcMode mode) {
    std::unique_lock<std::mutex> lock(m_mutex);
    const bool group = m_opts.sync == SyncPolicy::Batch && !m_opts.directory.empty();
    BatchHeader& h = batch.header();
    const uint64_t length = batch.length;
    for (;;) {
        if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
        if (!m_reserved.empty())
            throw Error(ErrorCode::Generic, "append while a reservation is open (a transport bug: commit it first)");
        // A resent batch gets its original's offsets, once the original counts (it may still wait for its sync).
        auto resent = [&](const AppendResult& r) {
            return Pending{r, r.baseOffset != UINT64_MAX && r.baseOffset >= m_next ? m_tickets : 0};
        };
        if (!m_unwritable.empty()) {
            // A batch stored before the failed sync is still a duplicate: its producer gets its offsets back.
            std::optional<AppendResult> again;
            try {
                again = resentLocked(h);
            } catch (const Error&) {}
            if (again) return resent(*again);
            throwUnwritableLocked();
        }
        if (auto again = resentLocked(h)) return resent(*again);
        // A new segment only once everything in the active one is synced: after a crash, only the
        // last segment may end in a torn batch.
        if (group && !m_unsynced.empty() && !fitsLocked(*m_segments.back(), length)) {
            drainLocked(lock); // releases the lock: look again at everything
            continue;
        }
        break;
    }
    Segment& seg = writableSegment(length);
    h.baseOffset = m_assigned;
    const size_t pos = seg.written;
    if (seg.fd < 0) {
        backRange(seg, pos, length);
        // In memory: copy each piece once, checksumming it while it is in cache.
        uint8_t* dst = seg.base + pos;
        uint32_t crc = 0;
        size_t skip = kCrcCoverageStart;
        for (const Piece& pc : batch.pieces) {
            if (skip >= pc.size) {
                std::memcpy(dst, pc.data, pc.size);
                skip -= pc.size;
            } else {
                std::memcpy(dst, pc.data, skip);
                crc = crc32cCopy(crc, dst + skip, pc.data + skip, pc.size - skip);
                skip = 0;
            }
            dst += pc.size;
        }
        BatchHeader* stored = reinterpret_cast<BatchHeader*>(seg.base + pos);
        if (mode == CrcMode::Verify && crc != h.crc)
            throw Error(ErrorCode::Corruption,
                        "record batch CRC32C mismatch: the batch was damaged in transit; it was not stored");
        stored->crc = crc;
        h.crc = crc;
        return {publishLocked(seg, pos, length, h, batch.count, lock), 0};
    }
    uint32_t crc = batchCrc(batch.pieces);
    if (mode == CrcMode::Verify && crc != h.crc)
        throw Error(ErrorCode::Corruption,
                    "record batch CRC32C mismatch: the batch was damaged in transit; it was not stored");
    h.crc = crc;
    std::vector<iovec> iov;
    iov.reserve(batch.pieces.size());
    for (const Piece& pc : batch.pieces) iov.push_back({const_cast<uint8_t*>(pc.data), pc.size});
    try {
        writeAll(seg.fd, iov, off_t(pos), seg.path);
    } catch (...) {
        if (ftruncate(seg.fd, off_t(pos)) != 0) { /* the tail is recovered on next open */
        }
        throw;
    }
    if (!group) {
        m_dirty = true;
        return {publishLocked(seg, pos, length, h, batch.count, lock), 0};
    }
    // Group commit: written, not yet synced. The producer's window has it at once, so that its next
    // batch is in sequence and a resent copy is a duplicate; a failed sync takes it out again.
    seg.written = pos + length;
    const uint64_t base = m_assigned;
    m_assigned += batch.count;
    Unsynced u{m_segments.back(), pos,         length,       base,        batch.count,
               h.lastTimestampUs, ++m_tickets, h.producerId, std::nullopt};
    if (h.producerId) u.evicted = m_producers[h.producerId].add(h.sequence, base);
    m_unsynced.push_back(std::move(u));
    return {{base, false}, m_tickets};
}

AppendResult PartitionLog::awaitDurable(const Pending& pending) {
    if (pending.ticket == 0) return pending.result;
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        if (pending.ticket <= m_durable) return pending.result;
        if (pending.ticket <= m_failedUpTo) throw Error(ErrorCode::Storage, m_groupError);
        // Still unsynced: sync everything written so far, unless a thread does already.
        if (m_syncing)
            m_cv.wait(lock);
        else
            groupSyncLocked(lock);
    }
}

void PartitionLog::awaitWritten() {
    std::unique_lock<std::mutex> lock(m_mutex);
    drainLocked(lock);
}

void PartitionLog::drainLocked(std::unique_lock<std::mutex>& lock) {
    while (!m_unsynced.empty()) {
        if (m_syncing)
            m_cv.wait(lock);
        else
            groupSyncLocked(lock);
    }
}

void PartitionLog::groupSyncLocked(std::unique_lock<std::mutex>& lock) {
    if (!m_unwritable.empty()) {
        // Made unwritable meanwhile (e.g. a failed sync()): a sync now would prove nothing.
        failUnsyncedLocked("partition log " + m_opts.directory + " is unwritable since " + m_unwritable +
                           "; this batch was not stored: " + kUnwritableAdvice);
        m_cv.notify_all();
        return;
    }
    m_syncing = true;
    const uint64_t target = m_unsynced.back().ticket; // every batch written before the sync starts
    const std::shared_ptr<Segment> seg = m_unsynced.back().seg;
    lock.unlock();
    // Writers go on appending meanwhile; their batches wait for the next sync.
    const int err = syncFd(seg->fd, true);
    lock.lock();
    m_syncing = false;
    if (err) {
        // Never retried (see syncSegmentLocked): everything written since the last good sync is lost.
        const size_t lost = m_unsynced.size();
        if (m_unwritable.empty()) m_unwritable = "a failed sync at " + seg->path + " (" + std::strerror(err) + ")";
        failUnsyncedLocked(syncFailureText(
            seg->path, err,
            lost == 1 ? "this batch was not stored; " + unsyncedEvents(m_opts.sync)
                      : "this batch was not stored, nor any of the " + std::to_string(lost - 1) +
                            " other batches written since the last successful sync; " + unsyncedEvents(m_opts.sync)));
    } else {
        while (!m_unsynced.empty() && m_unsynced.front().ticket <= target) {
            const Unsynced& u = m_unsynced.front();
            Segment& s = *u.seg;
            s.addToIndex(u.base, u.pos, m_opts.indexIntervalBytes);
            m_pointStale = true;
            s.size = u.pos + u.length;
            s.maxTimestampUs = std::max(s.maxTimestampUs, u.lastTimestampUs);
            m_next = u.base + u.count;
            s.nextOffset = m_next;
            advanceVisibleLocked();
            m_unsynced.pop_front();
        }
        m_durable = target;
    }
    m_cv.notify_all(); // writers waiting for this sync, and readers waiting for data
}

void PartitionLog::failUnsyncedLocked(const std::string& error) {
    if (m_unsynced.empty()) return;
    const Unsynced& first = m_unsynced.front();
    // Not acknowledged, so not kept: a later open must not find them either.
    if (ftruncate(first.seg->fd, off_t(first.pos)) != 0) { /* the tail is recovered on next open */
    }
    first.seg->written = first.pos;
    // The producers' windows as before these batches, newest undone first.
    for (auto it = m_unsynced.rbegin(); it != m_unsynced.rend(); ++it) {
        if (!it->producerId) continue;
        auto p = m_producers.find(it->producerId);
        if (p == m_producers.end()) continue;
        auto& recent = p->second.recent;
        if (!recent.empty()) recent.pop_back();
        if (it->evicted) recent.insert(recent.begin(), *it->evicted);
        if (recent.empty()) m_producers.erase(p);
    }
    m_assigned = m_next;
    m_failedUpTo = m_unsynced.back().ticket;
    m_groupError = error;
    m_unsynced.clear();
}

AppendResult PartitionLog::appendReplica(const uint8_t* data, size_t length) {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    drainLocked(lock); // appendNoWait()'s batches waiting for their sync hold the offsets before this one
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    if (!m_reserved.empty())
        throw Error(ErrorCode::InvalidArgument, "a batch is being received into this partition; a replicated batch "
                                                "cannot be appended meanwhile (it was not stored)");
    if (!m_unwritable.empty()) throwUnwritableLocked();
    try {
        BatchView check(data, length); // the header and layout a reopen's recovery checks
    } catch (const Error& e) {
        throw Error(ErrorCode::Corruption, std::string(e.what()) + " (a replicated batch of " + std::to_string(length) +
                                               " bytes); it was not stored");
    }
    BatchHeader h;
    std::memcpy(&h, data, sizeof h);
    if (length & 7)
        throw Error(ErrorCode::Corruption, "malformed record batch: its length " + std::to_string(length) +
                                               " is not a multiple of 8 (a replicated batch); it was not stored");
    if (h.baseOffset != m_next)
        throw Error(ErrorCode::InvalidArgument,
                    "replicated batch starts at offset " + std::to_string(h.baseOffset) + " but this log ends at " +
                        std::to_string(m_next) + "; it was not stored (fetch from offset " + std::to_string(m_next) +
                        ", or truncate the log to where it agrees with the other replica first)");
    auto crcMismatch = [] {
        return Error(ErrorCode::Corruption,
                     "replicated batch CRC32C mismatch: the batch was damaged in transit; it was not stored");
    };
    const Segment& active = *m_segments.back();
    // In memory, into the active segment: checksum while copying, past its end (invisible if refused).
    const bool checkWhileCopying = active.fd < 0 && fitsLocked(active, length);
    if (!checkWhileCopying && crc32c(0, data + kCrcCoverageStart, length - kCrcCoverageStart) != h.crc)
        throw crcMismatch();
    Segment& seg = writableSegment(length);
    const size_t pos = seg.written;
    if (seg.fd < 0) {
        backRange(seg, pos, length);
        uint8_t* dst = seg.base + pos;
        if (checkWhileCopying) {
            std::memcpy(dst, data, kCrcCoverageStart);
            if (crc32cCopy(0, dst + kCrcCoverageStart, data + kCrcCoverageStart, length - kCrcCoverageStart) != h.crc)
                throw crcMismatch();
        } else {
            std::memcpy(dst, data, length);
        }
    } else {
        std::vector<iovec> iov{{const_cast<uint8_t*>(data), length}};
        try {
            writeAll(seg.fd, iov, off_t(pos), seg.path, "fetch the batch again");
        } catch (...) {
            if (ftruncate(seg.fd, off_t(pos)) != 0) { /* the tail is recovered on next open */
            }
            throw;
        }
        m_dirty = true; // synced by sync(), the interval policy, a roll or close()
    }
    return publishLocked(seg, pos, length, h, h.count, lock);
}

uint64_t PartitionLog::truncateTo(uint64_t offset) {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    drainLocked(lock); // batches written but unsynced are published (or failed) first: only published ones are cut
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    if (!m_reserved.empty())
        throw Error(ErrorCode::InvalidArgument,
                    "a batch is being received into this partition; truncate again in a moment (nothing was dropped)");
    if (!m_unwritable.empty()) throwUnwritableLocked();
    const uint64_t start = m_segments.front()->baseOffset;
    if (offset < start || offset > m_next)
        throw Error(ErrorCode::InvalidArgument,
                    "cannot truncate the partition log to offset " + std::to_string(offset) + ": it holds offsets [" +
                        std::to_string(start) + ", " + std::to_string(m_next) + ") (nothing was dropped)");
    if (offset == m_next) return 0;
    // Where the batch starting at offset lies.
    const size_t si = findSegmentLocked(offset);
    const std::shared_ptr<Segment> cutSeg = m_segments[si];
    size_t pos = indexedPositionLocked(*cutSeg, offset);
    while (pos < cutSeg->size) {
        const auto* h = reinterpret_cast<const BatchHeader*>(cutSeg->base + pos);
        if (h->baseOffset >= offset) break;
        if (h->baseOffset + h->count > offset)
            throw Error(ErrorCode::InvalidArgument,
                        "cannot truncate the partition log to offset " + std::to_string(offset) +
                            ": it lies inside the stored batch of offsets [" + std::to_string(h->baseOffset) + ", " +
                            std::to_string(h->baseOffset + h->count) +
                            "); truncate to a batch boundary (nothing was dropped)");
        pos += size_t(h->length);
    }
    const uint64_t dropped = m_next - offset;

    // In memory first (readers see the truncated log from now on), then on disk.
    const bool whole = pos == 0 && si > 0; // the segment starts at offset: it goes with the later ones
    const size_t keep = whole ? si : si + 1;
    std::vector<std::string> removed; // files of the dropped segments, oldest first
    for (size_t i = keep; i < m_segments.size(); ++i)
        if (m_segments[i]->fd >= 0) removed.push_back(m_segments[i]->path);
    m_segments.resize(keep); // readers' mappings keep their bytes
    const bool cut = !whole && pos < cutSeg->size;
    // Nobody else maps the segment: its tail can be cut in place. Reader copies of the mapping are
    // only made under the lock, so the count cannot grow meanwhile.
    const bool exclusive = cutSeg->map.use_count() == 1;
    if (cut) {
        cutSeg->size = cutSeg->written = pos;
        cutSeg->nextOffset = offset;
        while (!cutSeg->index.empty() && cutSeg->index.back().second >= pos) cutSeg->index.pop_back();
        cutSeg->lastIndexedPos = cutSeg->index.empty() ? 0 : cutSeg->index.back().second;
        // Kept otherwise: no earlier than the kept batches', so retention by age keeps the segment no shorter.
        if (pos == 0) cutSeg->maxTimestampUs = 0;
    }
    Segment& last = *m_segments.back(); // the cut segment if there is one
    if (last.fd < 0) {
        if (cut && !exclusive)
            last.sealed = true; // the dropped tail is never overwritten under its readers
        else if (last.map.use_count() == 1)
            last.sealed = false; // nobody maps it: what lies past its end can be overwritten
    }
    std::atomic_thread_fence(std::memory_order_acquire); // the last reader's accesses came before its release
    m_next = m_assigned = offset;
    if (m_visibleLimit >= m_next) m_visibleTo = m_next; // else a kept boundary already
    forgetProducersFromLocked(offset);

    m_pointStale = true;
    ++m_pointGeneration; // a recovery point being written meanwhile is dropped
    if (cutSeg->fd >= 0) {
        // Later segments first, newest first, and the directory synced, before the cut: a crash at
        // any point leaves contiguous segments (the log whole, perhaps not yet truncated).
        const std::string consequence = "the truncation to offset " + std::to_string(offset) +
                                        " may not be on disk (a reopen finds every event before it, perhaps "
                                        "dropped ones after it too)";
        // The recovery point first: it describes the segments as they were.
        removeRecoveryPointLocked(consequence);
        for (auto r = removed.rbegin(); r != removed.rend(); ++r)
            if (::unlink(r->c_str()) != 0 && errno != ENOENT) failTruncationLocked(*r, errno, consequence);
        if (!removed.empty()) syncDirectoryLocked(m_opts.directory, consequence);
        if (cut) cutSegmentFileLocked(si, pos, exclusive, consequence);
    }
    lock.unlock();
    m_cv.notify_all();
    return dropped;
}

void PartitionLog::cutSegmentFileLocked(size_t index, size_t pos, bool exclusive, const std::string& consequence) {
    Segment& seg = *m_segments[index];
    if (exclusive) {
        if (ftruncate(seg.fd, off_t(pos)) != 0) failTruncationLocked(seg.path, errno, consequence);
        syncSegmentLocked(seg, consequence);
        return;
    }
    // Readers map the dropped tail: shrinking the file under them would fault their reads (SIGBUS).
    // The kept part goes into a new file renamed over the segment; their mapping keeps the old one.
    const std::string tmp = seg.path + kTruncatingSuffix;
    int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) failTruncationLocked(tmp, errno, consequence);
    auto fail = [&](int err) {
        ::close(fd);
        ::unlink(tmp.c_str());
        failTruncationLocked(tmp, err, consequence);
    };
    loff_t in = 0, out = 0;
    while (size_t(out) < pos) { // in the kernel where it can (a reflink on some filesystems)
        ssize_t n = copy_file_range(seg.fd, &in, fd, &out, pos - size_t(out), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; // not supported here: copied from the mapping below
    }
    while (size_t(out) < pos) {
        ssize_t n = pwrite(fd, seg.base + out, pos - size_t(out), out);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(n < 0 ? errno : EIO);
        out += n;
    }
    if (int e = syncFd(fd, true)) fail(e);
    ::close(fd);
    if (::rename(tmp.c_str(), seg.path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        failTruncationLocked(seg.path, e, consequence);
    }
    std::shared_ptr<Segment> fresh;
    try {
        fresh = newSegment(seg.baseOffset, m_opts.segmentBytes); // opens the renamed file
    } catch (const Error&) {
        failTruncationLocked(seg.path, errno ? errno : EIO, consequence);
    }
    fresh->index = seg.index;
    fresh->lastIndexedPos = seg.lastIndexedPos;
    fresh->nextOffset = seg.nextOffset;
    fresh->maxTimestampUs = seg.maxTimestampUs;
    m_segments[index] = std::move(fresh); // the old one's mapping lives on with its readers
    syncDirectoryLocked(m_opts.directory, consequence);
}

void PartitionLog::forgetProducersFromLocked(uint64_t offset) {
    // A producer whose window lost batches, and its older batches to bring back (the dropped ones pushed them out).
    struct Refill {
        uint64_t below; ///< look before this offset
        size_t want;
        std::vector<std::pair<uint64_t, uint64_t>> found; // oldest first
    };
    std::map<uint64_t, Refill> refill;
    for (auto p = m_producers.begin(); p != m_producers.end();) {
        auto& recent = p->second.recent;
        size_t kept = recent.size();
        while (kept > 0 && recent[kept - 1].second >= offset) --kept;
        if (kept == recent.size()) {
            ++p;
            continue;
        }
        // A full window that does not start at the producer's first batch (sequence 0) pushed older ones out.
        if (recent.size() == ProducerState::kWindow && recent.front().first > 0)
            refill[p->first] = {std::min(recent.front().second, offset), ProducerState::kWindow - kept, {}};
        recent.resize(kept);
        if (recent.empty() && !refill.count(p->first))
            p = m_producers.erase(p);
        else
            ++p;
    }
    if (refill.empty()) return;
    // Segments newest first, until every such producer has its window again (or the log's start).
    uint64_t below = 0;
    for (const auto& r : refill) below = std::max(below, r.second.below);
    size_t missing = refill.size();
    for (size_t si = findSegmentLocked(below) + 1; si-- > 0 && missing > 0;) {
        const Segment& seg = *m_segments[si];
        ensureIndexedLocked(seg); // its headers checked before they are walked
        std::map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> here;
        for (size_t pos = 0; pos < seg.size;) {
            const auto* h = reinterpret_cast<const BatchHeader*>(seg.base + pos);
            if (h->producerId) {
                auto r = refill.find(h->producerId);
                if (r != refill.end() && h->baseOffset < r->second.below)
                    here[h->producerId].emplace_back(h->sequence, h->baseOffset);
            }
            pos += size_t(h->length);
        }
        for (auto& [id, batches] : here) {
            Refill& r = refill[id];
            if (r.found.size() >= r.want) continue;
            const size_t take = std::min(r.want - r.found.size(), batches.size());
            r.found.insert(r.found.begin(), batches.end() - ptrdiff_t(take), batches.end());
            if (r.found.size() == r.want) --missing;
        }
    }
    for (auto& [id, r] : refill) {
        auto& recent = m_producers[id].recent;
        recent.insert(recent.begin(), r.found.begin(), r.found.end());
        if (recent.empty()) m_producers.erase(id);
    }
}

void PartitionLog::failTruncationLocked(const std::string& path, int err, const std::string& consequence) {
    if (m_unwritable.empty()) m_unwritable = "a failed truncation at " + path + " (" + std::strerror(err) + ")";
    throw Error(ErrorCode::Storage, "cannot truncate the partition log at " + path + ": " + std::strerror(err) +
                                        freeSpace(path) + "; " + consequence + ". Partition log " + m_opts.directory +
                                        " takes no more writes until it is reopened (recovery then checks its tail)");
}

std::optional<BatchHeader> PartitionLog::batchEndingAt(uint64_t offset) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    if (offset <= m_segments.front()->baseOffset || offset > m_next) return std::nullopt;
    const uint64_t last = offset - 1;
    const Segment& seg = *m_segments[findSegmentLocked(last)];
    size_t pos = indexedPositionLocked(seg, last);
    while (pos < seg.size) {
        const auto* h = reinterpret_cast<const BatchHeader*>(seg.base + pos);
        if (h->baseOffset + h->count > last) { // the batch holding the event at offset - 1
            if (h->baseOffset + h->count != offset) return std::nullopt;
            BatchHeader out;
            std::memcpy(&out, h, sizeof out);
            return out;
        }
        pos += size_t(h->length);
    }
    return std::nullopt;
}

void PartitionLog::setVisibleEnd(uint64_t end) {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
        m_visibleLimit = end;
        m_visibleTo = boundaryAtOrBelowLocked(end);
    }
    m_cv.notify_all();
}

uint64_t PartitionLog::visibleEnd() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_visibleLimit;
}

uint64_t PartitionLog::visibleEndOffset() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return std::min(m_next, m_visibleLimit);
}

uint64_t PartitionLog::boundaryAtOrBelowLocked(uint64_t end) const {
    if (end >= m_next) return m_next;
    if (end <= m_segments.front()->baseOffset) return end; // no retained batch below it
    const Segment& seg = *m_segments[findSegmentLocked(end)];
    size_t pos = indexedPositionLocked(seg, end);
    while (pos < seg.size) {
        const auto* h = reinterpret_cast<const BatchHeader*>(seg.base + pos);
        if (h->baseOffset + h->count > end) return h->baseOffset; // the batch holding end starts there
        pos += size_t(h->length);
    }
    return std::min(end, seg.nextOffset);
}

size_t PartitionLog::findSegmentLocked(uint64_t offset) const {
    size_t lo = 0, hi = m_segments.size();
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (m_segments[mid]->baseOffset <= offset)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

std::vector<StoredBatch> PartitionLog::read(uint64_t offset, size_t maxBytes) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return readLocked(offset, maxBytes, m_visibleTo);
}

std::vector<StoredBatch> PartitionLog::readUnlimited(uint64_t offset, size_t maxBytes) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return readLocked(offset, maxBytes, UINT64_MAX);
}

std::vector<StoredBatch> PartitionLog::readLocked(uint64_t offset, size_t maxBytes, uint64_t visibleTo) const {
    std::vector<StoredBatch> out;
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    if (offset >= std::min(m_next, visibleTo)) return out;
    size_t total = 0;
    for (size_t si = findSegmentLocked(offset); si < m_segments.size(); ++si) {
        const Segment& seg = *m_segments[si];
        size_t pos = indexedPositionLocked(seg, offset);
        while (pos < seg.size) {
            const auto* h = reinterpret_cast<const BatchHeader*>(seg.base + pos);
            if (h->length < kBatchHeaderSize || h->length > seg.size - pos)
                throw Error(ErrorCode::Corruption,
                            "partition log damaged in memory at byte " + std::to_string(pos) +
                                " of a segment (bad batch length); this is a bug, please report it");
            // A batch recovered from disk is checked before its count is trusted: a flipped count
            // would otherwise hide the batch as not yet visible (a consumer waiting forever) or skip it.
            // Damage past batches already taken ends this read with them; the next read raises it.
            if (out.empty()) {
                checkFirstReadLocked(seg, pos);
            } else {
                try {
                    checkFirstReadLocked(seg, pos);
                } catch (const Error&) {
                    return out;
                }
            }
            if (h->baseOffset + h->count > offset) {
                if (h->baseOffset + h->count > visibleTo) return out; // and so is every later batch
                if (!out.empty() && total + h->length > maxBytes) return out;
                out.push_back({seg.map, seg.base + pos, size_t(h->length), h->baseOffset, h->count});
                total += h->length;
            }
            pos += size_t(h->length);
        }
    }
    return out;
}

uint64_t PartitionLog::startOffset() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    return m_segments.front()->baseOffset;
}

uint64_t PartitionLog::endOffset() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_next;
}

uint64_t PartitionLog::sizeBytes() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    uint64_t n = 0;
    for (auto& s : m_segments) n += s->size;
    return n;
}

bool PartitionLog::waitFor(uint64_t offset, std::chrono::steady_clock::time_point deadline) const {
    std::unique_lock<std::mutex> lock(m_mutex);
    return m_cv.wait_until(lock, deadline, [&] { return m_visibleTo > offset || m_closed; }) && m_visibleTo > offset;
}

void PartitionLog::notifyAll() const { m_cv.notify_all(); }

void PartitionLog::sync() {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (!m_unwritable.empty()) throwUnwritableLocked(); // a sync now would prove nothing
    syncAllLocked();
}

void PartitionLog::syncAllLocked() {
    for (auto& s : m_segments)
        if (s->fd >= 0) syncSegmentLocked(*s, unsyncedEvents(m_opts.sync));
    m_dirty = false;
    m_lastSync = std::chrono::steady_clock::now();
}

void PartitionLog::housekeeping() {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_closed) return;
    applyRetentionLocked();
    auto now = std::chrono::steady_clock::now();
    if (m_pointStale && !m_pointWriting && m_opts.recoveryPointIntervalMs > 0 && !m_opts.directory.empty() &&
        m_unwritable.empty() && now - m_lastPoint >= std::chrono::milliseconds(m_opts.recoveryPointIntervalMs)) {
        refreshRecoveryPoint(lock);
        if (m_closed || !m_unwritable.empty()) return;
        now = std::chrono::steady_clock::now();
    }
    if (m_dirty && m_unwritable.empty() && m_opts.sync == SyncPolicy::Interval &&
        now - m_lastSync >= std::chrono::milliseconds(m_opts.syncIntervalMs)) {
        try {
            if (m_segments.back()->fd >= 0) syncSegmentLocked(*m_segments.back(), unsyncedEvents(m_opts.sync));
        } catch (const Error& e) {
            // A background sync has no caller to tell: the next append reports it, stderr now.
            std::fprintf(stderr, "mofka-py: %s\n", e.what());
            return;
        }
        m_dirty = false;
        m_lastSync = now;
    }
}

uint64_t PartitionLog::purge() {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    drainLocked(lock); // what is written is synced and kept (then removed) or failed, as for any write
    if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
    if (!m_reserved.empty())
        throw Error(ErrorCode::InvalidArgument,
                    "a batch is being received into this partition; purge again in a moment");
    if (!m_unwritable.empty()) throwUnwritableLocked();
    const uint64_t removed = m_next - m_segments.front()->baseOffset;
    // The new, empty segment first, then the old ones from the front: a crash in between leaves
    // contiguous segments (the purge is then simply not finished).
    Segment& active = *m_segments.back();
    if (active.written > 0 || active.baseOffset != m_next) {
        if (active.fd >= 0 && m_opts.sync != SyncPolicy::None) syncSegmentLocked(active, "nothing was purged");
        auto next = newSegment(m_next, m_opts.segmentBytes);
        syncCreatedLocked(*next, "nothing was purged");
        m_segments.push_back(std::move(next));
    }
    while (m_segments.size() > 1) {
        if (m_segments.front()->fd >= 0) ::unlink(m_segments.front()->path.c_str());
        m_segments.erase(m_segments.begin());
    }
    return removed;
}

void PartitionLog::setRetention(uint64_t retentionBytes, int64_t retentionMs) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_opts.retentionBytes = retentionBytes;
    m_opts.retentionMs = retentionMs;
    if (!m_closed) applyRetentionLocked();
}

void PartitionLog::applyRetentionLocked() {
    auto total = [&] {
        uint64_t n = 0;
        for (auto& s : m_segments) n += s->size;
        return n;
    };
    const int64_t now = nowUs();
    while (m_segments.size() > 1) {
        const Segment& front = *m_segments.front();
        bool overSize = m_opts.retentionBytes && total() > m_opts.retentionBytes;
        bool tooOld = m_opts.retentionMs && front.maxTimestampUs < now - m_opts.retentionMs * 1000;
        if (!overSize && !tooOld) break;
        if (front.fd >= 0) ::unlink(front.path.c_str());
        m_segments.erase(m_segments.begin());
    }
}

void PartitionLog::close() {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_closed) return;
    drainLocked(lock); // batches written but unsynced: synced and published, or failed (their writers hear it)
    if (m_closed) return;
    std::exception_ptr failed;
    if (m_dirty && m_unwritable.empty()) { // unwritable: reported already, and a sync would prove nothing
        try {
            syncAllLocked(); // (so the recovery point below need not sync again)
        } catch (const Error&) {
            failed = std::current_exception();
        }
    }
    if (!failed && m_pointStale && !m_opts.directory.empty() && m_unwritable.empty()) {
        try {
            writeRecoveryPointLocked(); // the next open reads this instead of the segments
        } catch (const Error& e) {
            std::fprintf(stderr, "mofka-py: %s\n", e.what()); // the next open checks everything instead
        }
    }
    m_closed = true;
    m_segments.clear();
    m_cv.notify_all();
    if (failed) std::rethrow_exception(failed);
}

LogOpenStats PartitionLog::openStats() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_openStats;
}

void PartitionLog::ensureIndexedLocked(const Segment& seg) const {
    if (seg.unindexedEnd == 0) return;
    std::vector<std::pair<uint64_t, uint64_t>> front;
    size_t pos = 0, lastPos = 0;
    uint64_t expected = seg.baseOffset;
    while (pos < seg.unindexedEnd) {
        const StoredCheck c = checkStored(seg.base, pos, seg.unindexedEnd, expected, false);
        if (c.how != StoredCheck::Intact) throwStoredCorruption(c.problem, seg.path, pos, expected);
        const BatchHeader* h = c.header;
        if (front.empty() || pos - lastPos >= m_opts.indexIntervalBytes) {
            front.emplace_back(h->baseOffset, pos);
            lastPos = pos;
        }
        expected = h->baseOffset + h->count;
        pos += size_t(h->length);
    }
    const bool hadEntries = !seg.index.empty();
    front.insert(front.end(), seg.index.begin(), seg.index.end()); // the batches checked at open or appended since
    seg.index.swap(front);
    if (!hadEntries) seg.lastIndexedPos = lastPos;
    seg.unindexedEnd = 0;
}

size_t PartitionLog::indexedPositionLocked(const Segment& seg, uint64_t offset) const {
    ensureIndexedLocked(seg);
    auto it = std::upper_bound(seg.index.begin(), seg.index.end(), std::make_pair(offset, UINT64_MAX));
    return it == seg.index.begin() ? 0 : size_t(std::prev(it)->second);
}

void PartitionLog::checkFirstReadLocked(const Segment& seg, size_t pos) const {
    if (pos >= seg.uncheckedEnd || pos < seg.checkedTo || seg.checkedAhead.count(pos)) return;
    const StoredCheck c = checkStored(seg.base, pos, seg.uncheckedEnd, UINT64_MAX, true);
    if (c.how != StoredCheck::Intact) {
        uint64_t offset = 0; // the header's claim, when its length is intact enough to read
        if (seg.uncheckedEnd - pos >= kBatchHeaderSize)
            std::memcpy(&offset, seg.base + pos + offsetof(BatchHeader, baseOffset), sizeof offset);
        throwStoredCorruption(c.problem, seg.path, pos, offset);
    }
    const size_t length = size_t(c.header->length);
    if (pos != seg.checkedTo) {
        if (seg.checkedAhead.size() < 4096) seg.checkedAhead.emplace(pos, length); // else checked again next time
        return;
    }
    seg.checkedTo = pos + length;
    for (auto it = seg.checkedAhead.begin(); it != seg.checkedAhead.end() && it->first <= seg.checkedTo;) {
        seg.checkedTo = std::max(seg.checkedTo, it->first + it->second);
        it = seg.checkedAhead.erase(it);
    }
}

std::vector<uint8_t> PartitionLog::recoveryRecordLocked() const {
    std::vector<uint8_t> out;
    put64(out, kRecoveryPointMagic);
    put64(out, m_segments.size());
    for (auto& sg : m_segments) {
        put64(out, sg->baseOffset);
        put64(out, sg->size);
        put64(out, sg->nextOffset);
        put64(out, uint64_t(sg->maxTimestampUs));
    }
    put64(out, m_producers.size());
    for (auto& [id, st] : m_producers) {
        put64(out, id);
        put64(out, st.recent.size());
        for (auto& [seq, base] : st.recent) {
            put64(out, seq);
            put64(out, base);
        }
    }
    const uint32_t crc = crc32c(0, out.data(), out.size());
    out.insert(out.end(), reinterpret_cast<const uint8_t*>(&crc), reinterpret_cast<const uint8_t*>(&crc) + 4);
    return out;
}

void PartitionLog::writeRecoveryFile(const std::vector<uint8_t>& record, const std::string& tmp) const {
    auto failed = [&](const std::string& what) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::Storage, "cannot record the recovery point of " + m_opts.directory + " (" + what + " " +
                                            tmp + ": " + std::strerror(err) + ")" + freeSpace(m_opts.directory) +
                                            "; nothing is lost, the next open checks the whole log");
    };
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) failed("create");
    size_t done = 0;
    while (done < record.size()) {
        ssize_t n = ::write(fd, record.data() + done, record.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::close(fd);
            failed("write");
        }
        done += size_t(n);
    }
    if (::fdatasync(fd) != 0) {
        ::close(fd);
        failed("fdatasync");
    }
    ::close(fd);
}

void PartitionLog::writeRecoveryPointLocked() {
    // Only published batches are recorded, and only once they are on disk.
    if (m_dirty) syncAllLocked();
    // A new file renamed over the old one: a crash leaves one or the other, whole (or none: full check).
    const std::string path = m_opts.directory + "/" + kRecoveryPointName;
    writeRecoveryFile(recoveryRecordLocked(), path + ".new");
    if (::rename((path + ".new").c_str(), path.c_str()) != 0)
        throw Error(ErrorCode::Storage, "cannot rename the recovery point " + path + ".new: " + std::strerror(errno) +
                                            "; nothing is lost, the next open checks the whole log");
    syncDirectoryLocked(m_opts.directory, "the recovery point may not be on disk (the next open then checks the log)");
    m_pointStale = false;
    m_lastPoint = std::chrono::steady_clock::now();
}

void PartitionLog::refreshRecoveryPoint(std::unique_lock<std::mutex>& lock) {
    // Taken under the lock: what is published now, and the segments to sync for it. The syncs and the
    // file are written without the lock (appends go on meanwhile, marking the point stale again).
    std::vector<std::shared_ptr<Segment>> segs;
    for (auto& sg : m_segments)
        if (sg->fd >= 0) segs.push_back(sg);
    const std::vector<uint8_t> record = recoveryRecordLocked();
    const uint64_t generation = m_pointGeneration;
    m_pointStale = false;
    m_pointWriting = true;
    const std::string path = m_opts.directory + "/" + kRecoveryPointName, tmp = path + ".bg";
    lock.unlock();
    std::string failure;
    int syncErr = 0;
    std::string syncPath;
    for (auto& sg : segs) // whatever the policy: the record must not claim unsynced bytes
        if (::fdatasync(sg->fd) != 0) {
            syncErr = errno;
            syncPath = sg->path;
            break;
        }
    if (!syncErr) {
        try {
            writeRecoveryFile(record, tmp);
        } catch (const Error& e) {
            failure = e.what();
        }
    }
    lock.lock();
    m_pointWriting = false;
    m_lastPoint = std::chrono::steady_clock::now();
    if (syncErr) {
        m_pointStale = true;
        try {
            failSyncLocked(syncPath, syncErr, unsyncedEvents(m_opts.sync)); // unwritable from now on
        } catch (const Error& e) {
            std::fprintf(stderr, "mofka-py: %s\n", e.what()); // the next append reports it
        }
        return;
    }
    // A truncation or a close since the snapshot: the record describes segments that changed; drop it.
    if (!failure.empty() || generation != m_pointGeneration || m_closed || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        m_pointStale = true;
        if (!failure.empty()) std::fprintf(stderr, "mofka-py: %s\n", failure.c_str());
        return;
    }
    try {
        syncDirectoryLocked(m_opts.directory, "the recovery point may not be on disk (the next open then checks it)");
    } catch (const Error& e) {
        std::fprintf(stderr, "mofka-py: %s\n", e.what());
    }
}

void PartitionLog::removeRecoveryPointLocked(const std::string& consequence) {
    const std::string path = m_opts.directory + "/" + kRecoveryPointName;
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) return;
        failTruncationLocked(path, errno, consequence);
    }
    syncDirectoryLocked(m_opts.directory, consequence);
}

uint64_t PartitionLog::verify(const std::function<void(uint64_t, uint64_t)>& progress) const {
    std::vector<std::shared_ptr<Segment>> segs;
    std::vector<size_t> sizes;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (m_closed) throw Error(ErrorCode::Closed, "partition log is closed");
        segs = m_segments; // they stay mapped while held, whatever the log does meanwhile
        for (auto& sg : segs) sizes.push_back(sg->size);
    }
    uint64_t total = 0, done = 0, reported = 0;
    for (size_t sz : sizes) total += sz;
    if (progress) progress(0, total);
    for (size_t i = 0; i < segs.size(); ++i) {
        const Segment& sg = *segs[i];
        size_t pos = 0;
        uint64_t expected = sg.baseOffset;
        while (pos < sizes[i]) {
            const StoredCheck c = checkStored(sg.base, pos, sizes[i], expected, true);
            if (c.how != StoredCheck::Intact) throwStoredCorruption(c.problem, sg.path, pos, expected);
            const BatchHeader* h = c.header;
            expected = h->baseOffset + h->count;
            pos += size_t(h->length);
            done += h->length;
            if (progress && done - reported >= (64u << 20)) {
                progress(done, total);
                reported = done;
            }
        }
    }
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        for (size_t i = 0; i < segs.size(); ++i) {
            segs[i]->checkedTo = std::max(segs[i]->checkedTo, sizes[i]);
            segs[i]->checkedAhead.clear();
        }
    }
    if (progress) progress(total, total);
    return total;
}

void PartitionLog::syncSegmentLocked(const Segment& seg, const std::string& consequence) {
    // Never retried: after a failure the kernel may have marked the lost pages clean, and a
    // second fdatasync would then succeed without them (PostgreSQL's "fsyncgate").
    if (int e = syncFd(seg.fd, true)) failSyncLocked(seg.path, e, consequence);
}

void PartitionLog::syncDirectoryLocked(const std::string& dir, const std::string& consequence) {
    // A directory that cannot be opened throws a plain StorageError: nothing was synced, nothing lost.
    if (int e = syncDirectory(dir)) failSyncLocked(dir, e, consequence);
}

std::string PartitionLog::unwritable() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_unwritable;
}

void PartitionLog::markUnwritable(const std::string& why) {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_unwritable.empty()) m_unwritable = why;
}

std::string PartitionLog::syncFailureText(const std::string& path, int err, const std::string& consequence) const {
    return "cannot sync " + path + ": " + std::strerror(err) + freeSpace(path) + "; " + consequence +
           ". Partition log " + m_opts.directory + " takes no more writes until it is reopened: " + kUnwritableAdvice;
}

void PartitionLog::failSyncLocked(const std::string& path, int err, const std::string& consequence) {
    if (m_unwritable.empty()) m_unwritable = "a failed sync at " + path + " (" + std::strerror(err) + ")";
    throw Error(ErrorCode::Storage, syncFailureText(path, err, consequence));
}

void PartitionLog::throwUnwritableLocked() const {
    throw Error(ErrorCode::Storage, "partition log " + m_opts.directory + " is unwritable since " + m_unwritable +
                                        "; nothing more is written to it until it is reopened: " + kUnwritableAdvice);
}

} // namespace mofka_py
