// Receive buffers of the MPI transport, reused so that pages stay warm.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace mofka_py {
namespace mpi {

/**
 * Reusable receive buffers. Memory the process never touched costs far more
 * than a copy (first-touch page faults run at ~1.7 GB/s on the project's VMs,
 * against ~15-20 GB/s for a copy into warm pages), so fetch replies and
 * produced batches are received into buffers that come back here when their
 * last reference (a consumer's event, a batch being appended) goes away.
 * Sizes are rounded up to powers of two; at most maxIdleBytes stay idle.
 */
class BufferPool : public std::enable_shared_from_this<BufferPool> {
  public:
    explicit BufferPool(size_t maxIdleBytes) : m_maxIdle(maxIdleBytes) {}
    ~BufferPool() {
        for (auto& kv : m_free)
            for (uint8_t* p : kv.second) release(p, kv.first);
    }

    /// A buffer of at least @p n bytes, 64-byte aligned.
    std::shared_ptr<uint8_t> get(size_t n) {
        size_t cls = sizeClass(n);
        uint8_t* p = nullptr;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            auto it = m_free.find(cls);
            if (it != m_free.end() && !it->second.empty()) {
                p = it->second.back();
                it->second.pop_back();
                m_idle -= cls;
            }
        }
        if (!p) p = allocate(cls);
        std::weak_ptr<BufferPool> self = weak_from_this();
        return std::shared_ptr<uint8_t>(p, [self, cls](uint8_t* q) {
            if (auto pool = self.lock())
                pool->put(q, cls);
            else
                release(q, cls);
        });
    }

  private:
    static constexpr size_t kHuge = size_t(2) << 20;
    static size_t sizeClass(size_t n) {
        size_t c = 4096;
        while (c < n) c <<= 1;
        return c;
    }
    static uint8_t* allocate(size_t cls) {
        if (cls >= kHuge) {
            void* a = mmap(nullptr, cls, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (a == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
            madvise(a, cls, MADV_HUGEPAGE);
#endif
            return static_cast<uint8_t*>(a);
        }
        void* a = std::aligned_alloc(64, cls);
        if (!a) throw std::bad_alloc();
        return static_cast<uint8_t*>(a);
    }
    static void release(uint8_t* p, size_t cls) {
        if (cls >= kHuge)
            munmap(p, cls);
        else
            std::free(p);
    }
    void put(uint8_t* p, size_t cls) {
        {
            std::lock_guard<std::mutex> l(m_mutex);
            if (m_idle + cls <= m_maxIdle) {
                m_free[cls].push_back(p);
                m_idle += cls;
                return;
            }
        }
        release(p, cls);
    }

    std::mutex m_mutex;
    std::map<size_t, std::vector<uint8_t*>> m_free;
    size_t m_idle = 0;
    size_t m_maxIdle;
};

} // namespace mpi
} // namespace mofka_py
