/**
 * @file SegmentPool.hpp
 * @brief Where segment memory comes from and goes back to: the pool of idle
 *        `memory://` segment mappings, the reservoir of pre-faulted 2 MiB pieces,
 *        and the mapping handle readers hold. Internal to the log.
 */
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <sys/mman.h>
#include <vector>

namespace mofka_py {

/// Huge page size: in-memory segments are mapped and backed in pieces of this size.
constexpr size_t kHugePage = size_t(1) << 21;

/**
 * @brief Anonymous (memory://) segment mappings given back by retention or a closed log,
 *        kept for the next new segment of the same capacity.
 *
 * Pages already touched cost a copy, fresh ones a page fault each (first touch ran ~10x
 * slower than a copy on the project's VMs). At most 1 GiB stays idle. Thread-safe.
 */
class AnonSegmentPool {
  public:
    /// An idle mapping of exactly @p length bytes, or MAP_FAILED when there is none.
    void* take(size_t length);
    /// Keep @p p (@p length bytes) for a later take(); false (the caller unmaps it) when the pool is full.
    bool give(void* p, size_t length);
    /// Bytes of idle mappings held (already faulted in: new segments take them before fresh memory).
    size_t idle();

  private:
    static constexpr size_t kMaxIdle = size_t(1) << 30;
    std::mutex m_mutex;
    std::multimap<size_t, void*> m_free;
    size_t m_idle = 0;
};

/// The process-wide pool (never destroyed: mappings may outlive statics).
AnonSegmentPool& anonSegmentPool();

/// Anonymous mapping of @p length bytes (a multiple of 2 MiB) starting on a 2 MiB
/// boundary, so pieces moved in from the reservoir stay huge pages; MAP_FAILED on failure.
void* mapAligned(size_t length);

/**
 * @brief Pre-faulted 2 MiB pieces waiting to be moved into in-memory segments. Thread-safe.
 *
 * Two ways to fill it: reserve() (memory_reserve: everything touched up front, zero faults after),
 * and keepAhead(): a background thread keeps about that many bytes touched ahead of what the
 * segments take, refilling as pieces are installed, so the page faults of a first run happen on
 * that thread instead of on the writer's critical path (the default for memory:// storage; see
 * defaultFaultAhead()).
 */
class FaultReservoir {
  public:
    /// Map and touch @p bytes (rounded up to 2 MiB) more; returns the bytes now held.
    size_t reserve(size_t bytes);
    /// Bytes held.
    size_t held();
    /// Move one piece to @p dst (2 MiB aligned, replacing what was mapped there); false if empty.
    bool install(uint8_t* dst);
    /// Keep at least @p bytes touched ahead in the background (the largest asked for wins; 0: nothing
    /// more). Starts the refilling thread on first use; it lives as long as the process.
    void keepAhead(size_t bytes);
    /// A new segment was made of recycled memory (anonSegmentPool()): logs are reusing what retention
    /// gives back, so the refilling waits until they are quiet for a while or a segment takes a piece
    /// again (install()).
    void recycled();

  private:
    void refillLoop();
    /// Hold the @p pieces 2 MiB pieces starting at @p region.
    void addPiecesLocked(void* region, size_t pieces);
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::vector<uint8_t*> m_pieces;
    size_t m_ahead = 0; ///< keepAhead() target, bytes
    bool m_recycling = false; ///< a new segment was recycled, and none took a piece since
    std::chrono::steady_clock::time_point m_lastRecycle; ///< when the latest recycled segment was made
    bool m_thread = false;
};

/// The default keepAhead() of memory:// segments: MOFKA_PY_PREFAULT_MB from the environment
/// (0 turns it off), else 256 MiB.
size_t defaultFaultAhead();

/// The process-wide reservoir (never destroyed, like the pool).
FaultReservoir& faultReservoir();

/// A mapped region; unmapped (or, anonymous, given back to the pool) when the last reader lets go of it.
struct Mapping {
    void* addr = MAP_FAILED;
    size_t length = 0;
    bool anonymous = false;
    ~Mapping();
};

} // namespace mofka_py
