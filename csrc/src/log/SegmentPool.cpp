#include "log/SegmentPool.hpp"

#include "mofka_py/Error.hpp"
#include "mofka_py/PartitionLog.hpp"

#include <chrono>
#include <cstdlib>
#include <sys/mman.h>
#include <thread>

namespace mofka_py {

void* AnonSegmentPool::take(size_t length) {
    std::lock_guard<std::mutex> l(m_mutex);
    auto it = m_free.find(length);
    if (it == m_free.end()) return MAP_FAILED;
    void* p = it->second;
    m_free.erase(it);
    m_idle -= length;
    return p;
}

bool AnonSegmentPool::give(void* p, size_t length) {
    std::lock_guard<std::mutex> l(m_mutex);
    if (m_idle + length > kMaxIdle) return false;
    m_free.emplace(length, p);
    m_idle += length;
    return true;
}

size_t AnonSegmentPool::idle() {
    std::lock_guard<std::mutex> l(m_mutex);
    return m_idle;
}

AnonSegmentPool& anonSegmentPool() {
    static AnonSegmentPool* pool = new AnonSegmentPool; // never destroyed: mappings may outlive statics
    return *pool;
}

void* mapAligned(size_t length) {
    void* raw =
        mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return MAP_FAILED;
    const uintptr_t r = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t a = (r + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
    if (a > r) munmap(raw, a - r);
    if (r + kHugePage > a) munmap(reinterpret_cast<void*>(a + length), r + kHugePage - a);
#ifdef MADV_HUGEPAGE
    // Faulting fresh 4 KiB pages costs more than copying into them; 2 MiB pages cut that ~3x.
    madvise(reinterpret_cast<void*>(a), length, MADV_HUGEPAGE);
#endif
    return reinterpret_cast<void*>(a);
}

namespace {
/// @p pieces 2 MiB pieces of fresh memory, each page touched (the kernel backs them now); MAP_FAILED
/// when they cannot be mapped.
void* mapTouched(size_t pieces) {
    void* region = mapAligned(pieces * kHugePage);
    if (region == MAP_FAILED) return region;
    auto* p = static_cast<volatile uint8_t*>(region);
    for (size_t off = 0; off < pieces * kHugePage; off += 4096) p[off] = 0;
    return region;
}
} // namespace

void FaultReservoir::addPiecesLocked(void* region, size_t pieces) {
    for (size_t i = 0; i < pieces; ++i) m_pieces.push_back(static_cast<uint8_t*>(region) + i * kHugePage);
}

size_t FaultReservoir::reserve(size_t bytes) {
    const size_t n = (bytes + kHugePage - 1) / kHugePage;
    if (n == 0) return held();
    void* region = mapTouched(n);
    if (region == MAP_FAILED) throwError(ErrorCode::Generic, "cannot map memory to reserve", true);
    std::lock_guard<std::mutex> l(m_mutex);
    addPiecesLocked(region, n);
    return m_pieces.size() * kHugePage;
}

size_t FaultReservoir::held() {
    std::lock_guard<std::mutex> l(m_mutex);
    return m_pieces.size() * kHugePage;
}

bool FaultReservoir::install(uint8_t* dst) {
    uint8_t* piece;
    {
        std::lock_guard<std::mutex> l(m_mutex);
        m_recycling = false; // a log grows into fresh memory again: refill behind it
        if (m_pieces.empty()) {
            if (m_ahead) m_cv.notify_one(); // outrun: the refiller should be running
            return false;
        }
        piece = m_pieces.back();
        m_pieces.pop_back();
        if (m_ahead && m_pieces.size() * kHugePage < m_ahead) m_cv.notify_one();
    }
    if (mremap(piece, kHugePage, kHugePage, MREMAP_MAYMOVE | MREMAP_FIXED, dst) == MAP_FAILED) {
        munmap(piece, kHugePage); // the destination keeps its own (unfaulted) pages
        return false;
    }
    return true;
}

void FaultReservoir::keepAhead(size_t bytes) {
    std::lock_guard<std::mutex> l(m_mutex);
    if (bytes <= m_ahead) return;
    m_ahead = bytes;
    if (!m_thread) {
        m_thread = true;
        // Detached: the reservoir is never destroyed, and the thread only maps and touches memory.
        std::thread([this] { refillLoop(); }).detach();
    }
    m_cv.notify_one();
}

void FaultReservoir::recycled() {
    std::lock_guard<std::mutex> l(m_mutex);
    m_recycling = true;
    m_lastRecycle = std::chrono::steady_clock::now();
}

void FaultReservoir::refillLoop() {
    constexpr size_t kChunk = 4; // pieces mapped and touched at a time (8 MiB)
    constexpr auto kQuiet = std::chrono::milliseconds(20); // without a recycled segment: logs are quiet
    std::unique_lock<std::mutex> l(m_mutex);
    for (;;) {
        m_cv.wait(l, [&] { return m_pieces.size() * kHugePage < m_ahead; });
        // Segments given back by retention are recycled before fresh memory: what they hold is
        // already ahead, and faulting more would only compete with the writers for the cores.
        // (Looked at again when a piece is taken, or after a while: new segments take from the pool.)
        if (m_pieces.size() * kHugePage + anonSegmentPool().idle() >= m_ahead) {
            m_cv.wait_for(l, std::chrono::milliseconds(100));
            continue;
        }
        // Likewise while new segments keep coming out of the pool (it is then mostly empty, between
        // a segment given back and the next one taken): a perf profile of 1 MiB MPI produce showed
        // the refill zeroing its whole 256 MiB in that state, half the server rank's samples for the
        // first ~20 rounds. It waits for a quiet spell instead (no segment recycled for kQuiet), so
        // a log that starts growing later still finds memory faulted ahead; a piece taken (install)
        // ends the wait at once.
        if (m_recycling) {
            auto until = m_lastRecycle + kQuiet;
            if (std::chrono::steady_clock::now() < until) {
                m_cv.wait_until(l, until, [&] { return !m_recycling; });
                continue; // looked at again: a segment recycled meanwhile moves the end of the wait
            }
        }
        l.unlock();
        void* region = mapTouched(kChunk);
        if (region == MAP_FAILED) { // out of address space or memory: try again later, writers fault on demand
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            l.lock();
            continue;
        }
        l.lock();
        addPiecesLocked(region, kChunk);
    }
}

size_t defaultFaultAhead() {
    static const size_t bytes = [] {
        const char* v = std::getenv("MOFKA_PY_PREFAULT_MB");
        if (!v || !*v) return size_t(256) << 20;
        char* end = nullptr;
        unsigned long long mb = std::strtoull(v, &end, 10);
        return (end && *end == 0) ? size_t(mb) << 20 : size_t(256) << 20;
    }();
    return bytes;
}

FaultReservoir& faultReservoir() {
    static FaultReservoir* r = new FaultReservoir; // never destroyed, like the pool
    return *r;
}

Mapping::~Mapping() {
    if (addr == MAP_FAILED) return;
    if (anonymous && anonSegmentPool().give(addr, length)) return;
    munmap(addr, length);
}

size_t reserveSegmentMemory(size_t bytes) { return faultReservoir().reserve(bytes); }

size_t reservedSegmentMemory() { return faultReservoir().held(); }

} // namespace mofka_py
