/**
 * @file SegmentPool.hpp
 * @brief Where segment memory comes from and goes back to: the pool of idle
 *        `memory://` segment mappings, the reservoir of pre-faulted 2 MiB pieces,
 *        and the mapping handle readers hold. Internal to the log.
 */
#pragma once
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

/// Pre-faulted 2 MiB pieces waiting to be moved into in-memory segments. Thread-safe.
class FaultReservoir {
  public:
    /// Map and touch @p bytes (rounded up to 2 MiB) more; returns the bytes now held.
    size_t reserve(size_t bytes);
    /// Bytes held.
    size_t held();
    /// Move one piece to @p dst (2 MiB aligned, replacing what was mapped there); false if empty.
    bool install(uint8_t* dst);

  private:
    std::mutex m_mutex;
    std::vector<uint8_t*> m_pieces;
};

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
