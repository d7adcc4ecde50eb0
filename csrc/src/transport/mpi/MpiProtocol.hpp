// Requests and replies of the MPI transport, and the MPI helpers both sides use.
//
// Two duplicated communicators keep directions apart: requests (and produce
// payloads) travel on `requests`, replies (and fetch payloads) on `replies`.
// A request carries the tag its reply will use; a payload uses that tag too.
#pragma once
#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Frame.hpp" // Writer, Reader, topic config/info encoding

#include <mpi.h>

#include <sys/mman.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace mofka_py {
namespace mpi {

constexpr int kRequestTag = 0;
constexpr int kFirstReplyTag = 1;
constexpr int kLastReplyTag = 32000; // MPI guarantees tags up to 32767

enum class Op : uint8_t {
    CreateTopic = 1, ListTopics, DescribeTopic, Produce, Fetch, WaitTopicChange, Offsets, MarkComplete,
    IsComplete, JoinGroup, LeaveGroup, Assignment, Commit, Committed, Groups, WakeTopic, Bye, ReleasePartitions,
    CancelWait ///< one-way: answer the parked WaitTopicChange of this source with the tag given now
};

/// Throw a mofka_py Error if an MPI call failed (the communicators use MPI_ERRORS_RETURN).
inline void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(ErrorCode::Connection, std::string("MPI transport: ") + what + " failed: " + std::string(msg, size_t(len)));
}

/// Waits between polls without blocking in MPI (MPICH would spin a core in a
/// blocking call). Right after activity it only yields for a short window (a
/// reply usually follows within microseconds, and a yield hands the core to
/// another rank on an oversubscribed node); past the window it sleeps, a
/// little longer each round, up to 250 us. While a transfer is under way it
/// only yields: MPI moves large messages only inside MPI calls, so sleeping
/// between polls would throttle it. The thread's timer slack is set to 1 us
/// so that short sleeps are short (the default slack adds ~50 us).
class Backoff {
  public:
    static constexpr int64_t kSpinNs = 100000; ///< yield-only window after activity

    void idle(bool transferring = false) {
        if (transferring) {
            std::this_thread::yield();
            return;
        }
        auto now = std::chrono::steady_clock::now();
        if (m_rounds++ == 0) m_since = now;
        if (now - m_since < std::chrono::nanoseconds(kSpinNs)) {
            std::this_thread::yield();
            return;
        }
        tightTimerSlack();
        int64_t us = std::min<int64_t>(250, int64_t(2) << std::min(m_sleeps++, 7));
        std::this_thread::sleep_for(std::chrono::microseconds(us));
    }
    void reset() { m_rounds = 0; m_sleeps = 0; }

  private:
    static void tightTimerSlack() {
#ifdef PR_SET_TIMERSLACK
        thread_local bool done = false;
        if (!done) { prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); done = true; }
#endif
    }
    int m_rounds = 0;
    int m_sleeps = 0;
    std::chrono::steady_clock::time_point m_since;
};

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
            if (auto pool = self.lock()) pool->put(q, cls);
            else release(q, cls);
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
        if (cls >= kHuge) munmap(p, cls);
        else std::free(p);
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

/// A committed derived datatype over absolute addresses (used with MPI_BOTTOM):
/// scatter/gather without a packing copy.
class AddressList {
  public:
    void add(const void* p, size_t n) {
        if (n == 0) return;
        MPI_Aint a;
        MPI_Get_address(p, &a);
        m_addr.push_back(a);
        m_len.push_back(int(n));
    }
    bool empty() const { return m_addr.empty(); }
    /// Build and commit the type; the caller frees it with MPI_Type_free.
    MPI_Datatype commit() {
        MPI_Datatype t;
        check(MPI_Type_create_hindexed(int(m_addr.size()), m_len.data(), m_addr.data(), MPI_BYTE, &t), "MPI_Type_create_hindexed");
        check(MPI_Type_commit(&t), "MPI_Type_commit");
        return t;
    }

  private:
    std::vector<MPI_Aint> m_addr;
    std::vector<int> m_len;
};

/// Stable hash of a topic name (FNV-1a): where its partitions start.
inline uint32_t topicHash(const std::string& s) {
    uint32_t h = 2166136261u;
    for (unsigned char c : s) { h ^= c; h *= 16777619u; }
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
