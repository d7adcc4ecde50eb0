/**
 * @file PartitionLog.hpp
 * @brief One partition's append-only log: segments, sparse index, recovery,
 *        retention and sync policy. `memory://` keeps the same structures in RAM.
 */
#pragma once
#include "mofka_py/RecordBatch.hpp"
#include "mofka_py/Types.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mofka_py {

/// Storage settings of a partition log (per topic).
struct LogOptions {
    std::string directory; ///< empty: in memory
    uint64_t segmentBytes = 256ull << 20; ///< roll to a new segment past this size
    uint64_t retentionBytes = 0; ///< 0: keep everything
    int64_t retentionMs = 0; ///< 0: keep everything
    SyncPolicy sync = SyncPolicy::None;
    int64_t syncIntervalMs = 1000;
    uint64_t indexIntervalBytes = 4096; ///< sparse index granularity
    bool repair =
        false; ///< on open, check everything (no recovery point) and truncate at corruption instead of failing
    /// File storage: record a recovery point at most this often while batches are appended (and always
    /// at close); 0: only at close. See PartitionLog::openStats().
    int64_t recoveryPointIntervalMs = 30000;
};

/// What opening a file-storage partition log checked (see PartitionLog::openStats()).
struct LogOpenStats {
    bool fromRecoveryPoint = false; ///< a valid recovery point described the log's older batches
    uint64_t checkedBytes = 0; ///< bytes read and CRC-checked at open (the tail past the recovery point)
    uint64_t deferredBytes = 0; ///< bytes taken from the recovery point, checked when first read instead
};

/**
 * @brief Pre-fault @p bytes (rounded up to 2 MiB) of memory for `memory://` segments.
 *
 * The first touch of never-used memory can cost more than copying into it
 * (on virtual machines the host backs guest pages lazily; on any Linux the
 * kernel zeroes each fresh page). Reserved memory is touched now, kept in a
 * process-wide reservoir of 2 MiB pieces and moved (mremap, no copy) into
 * in-memory segments ahead of each append, so producers do not wait on page
 * faults. Call before the first produce, e.g. at service start. Thread-safe.
 * @return bytes now waiting in the reservoir.
 */
size_t reserveSegmentMemory(size_t bytes);

/// Bytes of pre-faulted memory still waiting in the reservoir (see reserveSegmentMemory()).
size_t reservedSegmentMemory();

/**
 * @brief Append-only, persistent (or in-memory) log of record batches.
 *
 * Thread-safe: one writer at a time, readers concurrently. Stored bytes are
 * immutable and stay mapped while a reader holds a StoredBatch.
 *
 * Group commit (file storage, SyncPolicy::Batch): a writer copies its batch into the
 * segment under the log's lock and then waits, without the lock, for an fdatasync that
 * covers it. One waiting writer at a time runs that fdatasync, for every batch written so
 * far; after it succeeds those batches are published (readable, offsets acknowledged) in
 * offset order. Concurrent writers so share one sync instead of queueing for one each.
 * A batch is never readable nor acknowledged before a sync covering it succeeded
 * (appendReplica() excepted: a replica's batches are synced by its caller).
 *
 * Recovery point (file storage): at close, and every LogOptions::recoveryPointIntervalMs while
 * batches are appended, the log syncs its segments and records, in the file `recovery-point` of its
 * directory, each segment's checked size, next offset and newest timestamp and the producers'
 * dedupe windows (with a CRC32C of the record). Opening reads that record instead of the segments:
 * only bytes past it (after kill -9, the tail written since) are read and checked, so a clean reopen
 * costs the same whatever the log's size. The batches it describes are checked when first used: a
 * segment's index is rebuilt from its batch headers (structure and offsets checked) the first time
 * it is looked into, and each batch's CRC32C the first time read() hands it out, so damage in an old
 * segment still surfaces as a Corruption error, never as data. verify() checks everything at once;
 * LogOptions::repair ignores the record and checks everything at open. truncateTo() removes the record
 * (durably) before it changes a file.
 *
 * A failed sync (fdatasync of a segment, fsync of the log's directory) makes the log
 * unwritable until it is reopened (a new PartitionLog on the same directory): after a
 * failed sync the kernel may have dropped written pages while reporting them written,
 * so a later sync that succeeds proves nothing. The write that saw the failure throws
 * a StorageError, and so does every later append; reads keep working. Under group commit
 * a failed sync fails every batch written since the last successful one: they are cut off
 * the file, none is published, and each of their writers gets the StorageError.
 */
class PartitionLog {
  public:
    /// Open or create the log; recovers the tail (see LogOptions::repair).
    explicit PartitionLog(LogOptions options);
    ~PartitionLog();
    PartitionLog(const PartitionLog&) = delete;
    PartitionLog& operator=(const PartitionLog&) = delete;

    /**
     * @brief Append a sealed batch; assigns offsets and drops a producer's duplicate.
     *
     * Throws a StorageError when the batch cannot be written or synced (nothing of it is
     * stored), and for every batch once a sync failed (see the class comment).
     */
    AppendResult append(SealedBatch& batch, CrcMode mode = CrcMode::Compute);

    /// A batch written by appendNoWait(): its offsets, and what to wait for before they count.
    struct Pending {
        AppendResult result;
        /// 0: stored and published already (in memory, sync none or interval, or a resent batch
        /// stored before); else the write to pass to awaitDurable().
        uint64_t ticket = 0;
    };
    /**
     * @brief append() in two steps, for a caller that must not block on the disk (an event loop):
     *        write the batch now, wait for its sync later with awaitDurable().
     *
     * Under SyncPolicy::Batch on file storage the batch is copied into the segment and gets its
     * offsets, but it is neither readable nor acknowledged until awaitDurable() returns for it
     * (nothing of it counts if that throws). Refusals (a duplicate's original offsets, errors)
     * are as for append(). May block on a sync when the batch needs a new segment.
     */
    Pending appendNoWait(SealedBatch& batch, CrcMode mode = CrcMode::Compute);
    /// Wait until the batch of @p pending is synced and published, running the sync for every batch
    /// written so far unless another thread runs one; returns its offsets. Throws the StorageError
    /// of the failed sync that lost it. Any thread may call it, once per Pending.
    AppendResult awaitDurable(const Pending& pending);
    /// Sync and publish every batch written so far (appendNoWait()); their failures go to their writers.
    void awaitWritten();

    /**
     * @brief In-memory logs: room for one batch of @p length bytes past the end of the active
     *        segment (and past earlier open reservations), for a transport to receive into.
     *
     * Nothing is visible until commitReserved(); reservations are committed (or cancelled) in
     * the order they were made, and append() must not be called while any is open.
     * @return where to write, or nullptr when the log cannot (file storage, segment full).
     */
    uint8_t* reserve(uint64_t length);
    /// Publish the oldest reservation: check the batch header and CRC, drop a producer's
    /// duplicate, assign offsets. A refused batch is dropped (later reservations move down).
    /// @p landedCrc: the CRC32C of the batch's covered bytes (kCrcCoverageStart onwards),
    /// computed by the transport over the reserved memory as the pieces landed; it is checked
    /// against the header instead of reading the whole batch again under the lock.
    AppendResult commitReserved(CrcMode mode = CrcMode::Verify, std::optional<uint32_t> landedCrc = std::nullopt);
    /// Drop the oldest reservation unpublished (its transfer failed).
    void cancelReserved();

    /**
     * @brief Append one batch exactly as another replica stored it (the bytes read() returns for
     *        it, header included), at the same offsets.
     *
     * Its base offset must equal endOffset() (else InvalidArgument, nothing written); its header,
     * length, layout and CRC32C are checked (Corruption, nothing written). Its producer id and
     * sequence are recorded like a normal append's, so a producer resending that batch to this
     * replica later is answered as a duplicate (no sequence check: the replica stores what the
     * other one stored).
     *
     * The batch is readable at once and does not wait for a sync, whatever the sync policy: call
     * sync() (or rely on the policy) after a run of them. Batches of appendNoWait() still waiting
     * for their sync are synced first (their offsets come before). Refused (InvalidArgument) while
     * a reservation is open, and (StorageError) once the log is unwritable. Costs one CRC32C pass
     * and one copy (in memory) or write (file storage) of @p length bytes.
     */
    AppendResult appendReplica(const uint8_t* data, size_t length);

    /**
     * @brief Drop every stored batch at or after @p offset, so that endOffset() == offset afterwards.
     *
     * @p offset must be a batch boundary between startOffset() and endOffset() (InvalidArgument
     * otherwise, nothing changed); endOffset() itself drops nothing. The producers' dedupe state
     * forgets the dropped batches (a resend of one of them is appended again, not answered as a
     * duplicate) and is left as a reopen of the truncated log would rebuild it. The visible end
     * (setVisibleEnd()) is kept as set.
     *
     * Batches of appendNoWait() still waiting for their sync are synced (or failed) first, so the
     * truncation applies to published batches only. Refused (InvalidArgument) while a reservation
     * is open, and (StorageError) once the log is unwritable.
     *
     * File storage: the truncation is durable before this returns, whatever the sync policy:
     * later segment files are removed (newest first) and the directory synced, then the segment
     * holding @p offset is cut (ftruncate and fdatasync), so a crash at any point leaves the log
     * whole, only perhaps not yet truncated. When readers still map that segment, its kept part is
     * copied into a new file renamed over it instead (their views stay intact); that copies up to
     * one segment. A failure on disk (StorageError) leaves the log truncated in memory and
     * unwritable until reopened. Readers holding StoredBatch views of dropped data stay safe: the
     * dropped bytes stay mapped, unchanged, until the last view is released (in memory, a segment
     * cut under readers takes no more batches; the next append starts a new one).
     *
     * Holds the log's lock throughout (readers and writers wait). Costs an index lookup, a walk
     * back through earlier batch headers for a producer whose dedupe window the dropped batches
     * had filled (until its window is full again), and on file storage up to two fsyncs plus,
     * when readers map the cut segment, the copy of its kept part.
     * @return the number of events dropped.
     */
    uint64_t truncateTo(uint64_t offset);

    /// Header of the stored batch whose last event is @p offset - 1 (the batch ending exactly at
    /// @p offset), or std::nullopt when no stored batch ends there (offset not a boundary, at or
    /// before startOffset(), or beyond endOffset()). Ignores the visible end; an index lookup.
    std::optional<BatchHeader> batchEndingAt(uint64_t offset) const;

    /**
     * @brief Readers see only offsets below @p end (a leader's high watermark).
     *
     * read() returns no batch that reaches past @p end (a batch is visible only if its base
     * offset plus its count is <= @p end; batches straddling it are not split), and waitFor()
     * waits until such a visible batch holds an event past its offset. UINT64_MAX (the default)
     * removes the limit. Raising it wakes waiters (like an append). endOffset() still reports the
     * real end. Lowering it is allowed (readers then see less). Costs a lookup in the index.
     */
    void setVisibleEnd(uint64_t end);
    /// The limit as set by setVisibleEnd() (UINT64_MAX: none).
    uint64_t visibleEnd() const;
    /// min(endOffset(), visibleEnd()).
    uint64_t visibleEndOffset() const;

    /// Batches holding offsets >= @p offset, at most @p maxBytes (at least one batch), up to the
    /// visible end (see setVisibleEnd()).
    std::vector<StoredBatch> read(uint64_t offset, size_t maxBytes) const;
    /// read() without the visible-end limit (for replication).
    std::vector<StoredBatch> readUnlimited(uint64_t offset, size_t maxBytes) const;

    /// Offset of the first retained event.
    uint64_t startOffset() const;
    /// Offset the next event will get.
    uint64_t endOffset() const;
    /// Bytes stored in retained segments.
    uint64_t sizeBytes() const;

    /// Wait until read(@p offset) would return a batch (endOffset() > @p offset, within the
    /// visible end) or the deadline passes; true if data is there.
    bool waitFor(uint64_t offset, std::chrono::steady_clock::time_point deadline) const;

    /// Force appended data to stable storage now. Throws a StorageError if the sync fails
    /// (the log is then unwritable) or failed before.
    void sync();
    /// Sync if the interval policy says so; drop segments past retention. Never throws for a
    /// failed sync: the log becomes unwritable, the next append reports it (and stderr at once).
    void housekeeping();
    /// Drop every stored event (the log continues at the same end offset); returns how many.
    /// Refused (StorageError) once the log is unwritable.
    uint64_t purge();
    /// Change the retention limits (0: none) and apply them now.
    void setRetention(uint64_t retentionBytes, int64_t retentionMs);
    /// Sync and release files; further use throws Closed. The files are released even when
    /// the final sync fails, which is then thrown (StorageError).
    void close();

    /// Wake waiters (used when a topic is marked complete).
    void notifyAll() const;

    /// What the open checked: whether a recovery point was used, bytes checked at open, bytes left to
    /// be checked on first read (see the class comment).
    LogOpenStats openStats() const;
    /**
     * @brief Check every stored batch now: header, layout, offsets in sequence, CRC32C.
     *
     * Reads the whole log (without holding its lock: appends go on; batches appended meanwhile are
     * not checked). @p progress, when given, is called with (bytes checked, bytes to check) every
     * 64 MiB and at the end. Throws a Corruption error naming the file, byte and offset of the first
     * damaged batch; afterwards the checked batches are not checked again on read.
     * @return the bytes checked.
     */
    uint64_t verify(const std::function<void(uint64_t, uint64_t)>& progress = {}) const;

    /**
     * @brief Why the log takes no more writes, or empty while it is writable.
     *
     * Set by a failed sync (e.g. "a failed sync at <path> (Input/output error)"), including one
     * while the constructor created the log's directory or first segment: the log then opens
     * readable but unwritable; or by a failed truncateTo() ("a failed truncation at <path> (...)").
     * Cleared only by opening the log again.
     */
    std::string unwritable() const;
    /// Refuse every later write as after a failed sync, because of @p why ("a failed sync at
    /// <path> (<errno text>)"), e.g. a failed sync of the directory holding the log's own.
    /// Reads keep working; only opening the log again makes it writable.
    void markUnwritable(const std::string& why);

  private:
    struct Segment;
    void openDirectory();
    /// Check @p seg from byte @p from (where offset @p expected starts; UINT64_MAX: the segment's base),
    /// indexing its batches; truncates a torn tail of the last segment, throws (or repairs) corruption.
    void recoverSegment(Segment& seg, bool last, size_t from = 0, uint64_t expected = UINT64_MAX);
    /// Build the index of the part of @p seg taken from the recovery point (its headers checked), once.
    void ensureIndexedLocked(const Segment& seg) const;
    /// Position in @p seg of the indexed batch at or before @p offset (0 when none), its index built first.
    size_t indexedPositionLocked(const Segment& seg, uint64_t offset) const;
    /// A batch at @p pos of @p seg about to be handed out: check its CRC32C if the recovery point
    /// vouched for it and it was not checked yet (Corruption naming the file and byte otherwise).
    void checkFirstReadLocked(const Segment& seg, size_t pos) const;
    /// fdatasync every segment file (the appended data is on disk); fails like syncSegmentLocked().
    void syncAllLocked();
    /// Sync what is published (if the policy left it unsynced) and record the recovery point (close()).
    void writeRecoveryPointLocked();
    /// housekeeping(): the same, with the syncs and the file written without the lock (appends go on).
    void refreshRecoveryPoint(std::unique_lock<std::mutex>& lock);
    /// The recovery point's bytes for the log as it is (with their CRC32C).
    std::vector<uint8_t> recoveryRecordLocked() const;
    /// Write @p record to @p tmp and fdatasync it (StorageError on failure, @p tmp removed).
    void writeRecoveryFile(const std::vector<uint8_t>& record, const std::string& tmp) const;
    /// Remove the recovery point durably (before a change to stored batches it would contradict).
    void removeRecoveryPointLocked(const std::string& consequence);
    Segment& writableSegment(uint64_t length);
    void backRange(Segment& seg, size_t pos, uint64_t length);
    /// A batch its producer sent before (a retry): its original offsets, or nullopt for a new one;
    /// throws OutOfSequence for a batch that follows one of its producer's batches never stored.
    std::optional<AppendResult> resentLocked(const BatchHeader& h) const;
    /// Make a batch written at @p pos of @p seg visible: index, offsets, producer window; unlocks, wakes readers.
    AppendResult publishLocked(Segment& seg, size_t pos, uint64_t length, const BatchHeader& h, uint32_t count,
                               std::unique_lock<std::mutex>& lock);
    /// True if @p length more bytes go into @p seg without rolling to a new segment.
    bool fitsLocked(const Segment& seg, uint64_t length) const;
    /// Group commit: fdatasync (without the lock) everything written so far, then publish it, or
    /// on failure fail every unsynced batch. Only while no sync runs and something is unsynced.
    void groupSyncLocked(std::unique_lock<std::mutex>& lock);
    /// Group commit: until nothing written is unsynced (syncing, or waiting for the thread that does).
    void drainLocked(std::unique_lock<std::mutex>& lock);
    /// Group commit: cut every unsynced batch off the file, unpublished; their writers get @p error.
    void failUnsyncedLocked(const std::string& error);
    /// The message of a failed sync of @p path (errno @p err), saying @p consequence.
    std::string syncFailureText(const std::string& path, int err, const std::string& consequence) const;
    /// Open (or create) the segment starting at @p baseOffset.
    std::shared_ptr<Segment> newSegment(uint64_t baseOffset, uint64_t capacity);
    /// If newSegment() created @p seg's file, sync its name to disk (unless sync is none);
    /// fails like syncSegmentLocked(), with @p consequence.
    void syncCreatedLocked(const Segment& seg, const std::string& consequence);
    /// fdatasync @p seg; on failure the log becomes unwritable and a StorageError saying
    /// @p consequence is thrown.
    void syncSegmentLocked(const Segment& seg, const std::string& consequence);
    /// fsync directory @p dir (an entry in it was created or renamed); fails like syncSegmentLocked().
    void syncDirectoryLocked(const std::string& dir, const std::string& consequence);
    /// Record that syncing @p path failed with @p err: the log takes no more writes.
    [[noreturn]] void failSyncLocked(const std::string& path, int err, const std::string& consequence);
    /// Throw the StorageError every write gets once the log is unwritable.
    [[noreturn]] void throwUnwritableLocked() const;
    void applyRetentionLocked();
    size_t findSegmentLocked(uint64_t offset) const;
    /// read() up to @p visibleTo (a batch boundary, or UINT64_MAX: no limit).
    std::vector<StoredBatch> readLocked(uint64_t offset, size_t maxBytes, uint64_t visibleTo) const;
    /// The largest batch boundary <= @p end and <= m_next (@p end itself when at or before the start).
    uint64_t boundaryAtOrBelowLocked(uint64_t end) const;
    /// After m_next grew by one batch: keep m_visibleTo the largest boundary within the limit.
    void advanceVisibleLocked() {
        if (m_visibleLimit >= m_next) m_visibleTo = m_next;
    }
    /// truncateTo(): producers' windows without the batches at or after @p offset, older batches
    /// brought back in from the log where the dropped ones had pushed them out.
    void forgetProducersFromLocked(uint64_t offset);
    /// truncateTo() on file storage: cut m_segments[@p index] at byte @p pos on disk, durably (in
    /// place when @p exclusive, else by a copy of the kept part renamed over it).
    void cutSegmentFileLocked(size_t index, size_t pos, bool exclusive, const std::string& consequence);
    /// Refuse every later write after a failed step of truncateTo() on @p path (errno @p err).
    [[noreturn]] void failTruncationLocked(const std::string& path, int err, const std::string& consequence);

    LogOptions m_opts;
    mutable std::mutex m_mutex;
    mutable std::condition_variable m_cv;
    std::vector<std::shared_ptr<Segment>> m_segments;
    uint64_t m_next = 0;
    /// The last batches of a producer (sequence, base offset): a resent batch within this
    /// window gets its original offsets back (producers keep fewer batches than this in flight).
    struct ProducerState {
        static constexpr size_t kWindow = 16;
        std::vector<std::pair<uint64_t, uint64_t>> recent; // oldest first
        uint64_t lastSequence() const { return recent.back().first; }
        /// Returns the entry that fell out of the window, if one did.
        std::optional<std::pair<uint64_t, uint64_t>> add(uint64_t seq, uint64_t base) {
            std::optional<std::pair<uint64_t, uint64_t>> out;
            if (recent.size() == kWindow) {
                out = recent.front();
                recent.erase(recent.begin());
            }
            recent.emplace_back(seq, base);
            return out;
        }
    };
    std::map<uint64_t, ProducerState> m_producers;
    /// Open reservations of the active segment (position reserved, length), oldest first.
    std::vector<std::pair<size_t, uint64_t>> m_reserved;
    std::chrono::steady_clock::time_point m_lastSync;
    bool m_dirty = false;
    bool m_closed = false;
    bool m_cut = false; ///< recovery truncated a segment that was not the last
    LogOpenStats m_openStats;
    bool m_pointStale = true; ///< published batches (or a truncation) since the recovery point was recorded
    std::chrono::steady_clock::time_point m_lastPoint;
    uint64_t m_pointGeneration = 0; ///< bumped by truncateTo(): a record snapshotted before it is dropped
    bool m_pointWriting = false; ///< housekeeping() writes a recovery point (without the lock)
    /// Why the log takes no more writes ("a failed sync at <path> (<errno text>)"); empty: writable.
    std::string m_unwritable;

    /// Group commit: a batch written to the active segment, not yet synced nor published.
    struct Unsynced {
        std::shared_ptr<Segment> seg;
        size_t pos;
        uint64_t length;
        uint64_t base;
        uint32_t count;
        int64_t lastTimestampUs;
        uint64_t ticket;
        uint64_t producerId;
        std::optional<std::pair<uint64_t, uint64_t>> evicted; ///< what it pushed out of its producer's window
    };
    std::deque<Unsynced> m_unsynced; ///< oldest first; all in the active segment
    uint64_t m_assigned = 0; ///< offset the next written batch gets (m_next plus the unsynced events)
    uint64_t m_tickets = 0; ///< batches written under group commit so far
    uint64_t m_durable = 0; ///< batches up to this ticket are synced and published
    uint64_t m_failedUpTo = 0; ///< batches up to this ticket (and past m_durable) were lost by a failed sync
    std::string m_groupError; ///< what their writers are told
    bool m_syncing = false; ///< a thread runs the group's fdatasync (without the lock)

    uint64_t m_visibleLimit = UINT64_MAX; ///< setVisibleEnd()
    /// What readers see: the largest batch boundary <= min(m_next, m_visibleLimit) (m_next without a limit).
    uint64_t m_visibleTo = 0;
};

} // namespace mofka_py
