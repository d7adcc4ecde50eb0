// Requests and replies of the MPI transport, and the MPI helpers both sides use.
//
// Two duplicated communicators keep directions apart: requests (and produce
// payloads) travel on `requests`, replies (and fetch payloads) on `replies`.
// A request carries the tag its reply will use; a payload uses that tag too.
#pragma once
#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "wire/Messages.hpp" // Writer, Reader, topic config/info encoding

#include <mpi.h>

#include <sys/mman.h>
#include <sys/prctl.h>

#include <algorithm>
#include <atomic>
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
/// Fetch replies up to this size carry the stored bytes in the reply message itself.
constexpr size_t kInlineFetchBytes = 16 << 10;

/// Requests: the streaming ones the MPI transport carries its own way (batches sent and received
/// without packing, parked long polls), the transport's own bookkeeping, and every other request
/// as a transport-neutral control request (wire/Control.hpp).
enum class Op : uint8_t {
    Produce = 1, Fetch, WaitTopicChange,
    WakeTopic,  ///< a closing consumer: answer this source's long polls on the topic now
    Bye,        ///< a client leaves the fabric
    CancelWait, ///< one-way: answer the parked WaitTopicChange of this source with the tag given now
    Control     ///< a control request, the rest of the message as is
};

/// Throw a mofka_py Error if an MPI call failed (the communicators use MPI_ERRORS_RETURN).
inline void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(ErrorCode::Connection, std::string("MPI transport: ") + what + " failed: " + std::string(msg, size_t(len)));
}

/// Monotonic time in nanoseconds (steady_clock), the unit of Traffic marks.
inline int64_t steadyNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// When events last passed through this side of the fabric (steadyNs), shared
/// by the pollers of one rank: a rank that just moved events polls eagerly.
using Traffic = std::atomic<int64_t>;

inline void markTraffic(Traffic& t) { t.store(steadyNs(), std::memory_order_relaxed); }

/// Waits between polls without blocking in MPI (MPICH would spin a core in a
/// blocking call). A poller only yields (no sleep) while
///  - less than 100 us passed since its own last progress (a reply usually
///    follows a request within microseconds), or
///  - less than the spin-down window (fabric option, default 10 ms) passed
///    since events last went through the rank (the Traffic mark): in a
///    stream, the next event comes soon and a sleeping poller would add up
///    to a sleep to its latency;
/// otherwise it sleeps, a little longer each round, up to 250 us, so that an
/// idle rank costs a few percent of a core. A yield hands the core to any
/// other runnable thread, so an oversubscribed node keeps working. While a
/// transfer is under way it only yields: MPI moves large messages only inside
/// MPI calls, so sleeping between polls would throttle it. The thread's timer
/// slack is set to 1 us so that short sleeps are short (the default adds ~50 us).
class Backoff {
  public:
    static constexpr int64_t kQuickNs = 100000; ///< yield-only window after the poller's own progress
    static constexpr int64_t kMaxSleepUs = 250; ///< longest sleep between polls of an idle fabric

    /// @p traffic: the rank's Traffic mark, yielding for @p spindownUs after it (none: only the
    /// 100 us window after the poller's own progress applies).
    explicit Backoff(const Traffic* traffic = nullptr, int64_t spindownUs = 0)
    : m_spindownNs(spindownUs * 1000), m_traffic(traffic) {}

    void idle(bool transferring = false) {
        if (transferring) {
            std::this_thread::yield();
            return;
        }
        int64_t now = steadyNs();
        if (m_rounds++ == 0) m_since = now;
        bool quick = now - m_since < kQuickNs;
        if (quick || (m_traffic && now - m_traffic->load(std::memory_order_relaxed) < m_spindownNs)) {
            std::this_thread::yield();
            return;
        }
        tightTimerSlack();
        int64_t us = std::min<int64_t>(kMaxSleepUs, int64_t(2) << std::min(m_sleeps++, 7));
        std::this_thread::sleep_for(std::chrono::microseconds(us));
    }
    /// The poller made progress: back to short waits.
    void reset() { m_rounds = 0; m_sleeps = 0; }

  private:
    static void tightTimerSlack() {
#ifdef PR_SET_TIMERSLACK
        thread_local bool done = false;
        if (!done) { prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); done = true; }
#endif
    }
    int64_t m_spindownNs;
    const Traffic* m_traffic;
    int m_rounds = 0;
    int m_sleeps = 0;
    int64_t m_since = 0;
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

/**
 * How a payload made of pieces (a record batch's header, metadata and data
 * buffers; or stored batches) travels without a packing copy. Pieces adjacent
 * in memory are merged; a run of 64 KiB or more goes alone as a contiguous
 * message; smaller runs between them share one message through an hindexed
 * datatype over their absolute addresses (MPI_BOTTOM). Contiguous messages
 * matter: MPI's fast paths (single-copy shared memory, RDMA) take contiguous
 * buffers, and a derived datatype over a 16 MiB piece measured 2.6 GB/s
 * against 11-24 GB/s contiguous on the project's machines. Messages of one
 * payload use one tag and arrive in order (MPI does not overtake), so the
 * receiver posts one contiguous receive per message at consecutive offsets.
 */
class MessagePlan {
  public:
    static constexpr size_t kAlone = size_t(64) << 10; ///< runs this long get a message of their own
    static constexpr size_t kMaxMessage = size_t(1) << 30;

    void add(const void* p, size_t n) {
        if (n == 0) return;
        auto* b = static_cast<const uint8_t*>(p);
        if (!m_runs.empty() && m_runs.back().first + m_runs.back().second == b &&
            m_runs.back().second + n <= kMaxMessage) {
            m_runs.back().second += n;
            return;
        }
        while (n > kMaxMessage) { // int counts: split very long runs
            m_runs.emplace_back(b, kMaxMessage);
            b += kMaxMessage;
            n -= kMaxMessage;
        }
        m_runs.emplace_back(b, n);
    }
    bool empty() const { return m_runs.empty(); }

    /// Byte length of each message, in sending order (built on first use).
    const std::vector<uint64_t>& lengths() {
        plan();
        return m_lengths;
    }

    /// Start every message to @p dst on @p tag; appends one request per message to @p reqs.
    void isendAll(int dst, int tag, MPI_Comm comm, std::vector<MPI_Request>& reqs) {
        plan();
        for (const Group& g : m_groups) {
            reqs.push_back(MPI_REQUEST_NULL);
            if (g.count == 1) {
                const auto& r = m_runs[g.first];
                check(MPI_Isend(r.first, int(r.second), MPI_BYTE, dst, tag, comm, &reqs.back()), "MPI_Isend (payload)");
                continue;
            }
            std::vector<MPI_Aint> addr(g.count);
            std::vector<int> len(g.count);
            for (size_t i = 0; i < g.count; ++i) {
                MPI_Get_address(m_runs[g.first + i].first, &addr[i]);
                len[i] = int(m_runs[g.first + i].second);
            }
            MPI_Datatype t;
            check(MPI_Type_create_hindexed(int(g.count), len.data(), addr.data(), MPI_BYTE, &t), "MPI_Type_create_hindexed");
            check(MPI_Type_commit(&t), "MPI_Type_commit");
            int rc = MPI_Isend(MPI_BOTTOM, 1, t, dst, tag, comm, &reqs.back());
            MPI_Type_free(&t);
            check(rc, "MPI_Isend (payload)");
        }
    }

  private:
    struct Group {
        size_t first, count;
    };
    void plan() {
        if (!m_groups.empty() || m_runs.empty()) return;
        size_t bytes = 0;
        auto close = [&](size_t end) {
            if (!m_groups.empty() && m_groups.back().first + m_groups.back().count == end) return;
            size_t first = m_groups.empty() ? 0 : m_groups.back().first + m_groups.back().count;
            if (first == end) return;
            m_groups.push_back({first, end - first});
            m_lengths.push_back(bytes);
            bytes = 0;
        };
        for (size_t i = 0; i < m_runs.size(); ++i) {
            const size_t n = m_runs[i].second;
            if (n >= kAlone) {
                close(i);
                m_groups.push_back({i, 1});
                m_lengths.push_back(n);
                continue;
            }
            if (bytes + n > kMaxMessage) close(i);
            bytes += n;
        }
        close(m_runs.size());
    }

    std::vector<std::pair<const uint8_t*, size_t>> m_runs;
    std::vector<Group> m_groups;
    std::vector<uint64_t> m_lengths;
};

/// Receive the messages of a payload (lengths from the sender) at consecutive offsets of @p dst.
inline void irecvAll(uint8_t* dst, const std::vector<uint64_t>& lengths, int src, int tag, MPI_Comm comm,
                     std::vector<MPI_Request>& reqs) {
    size_t off = 0;
    for (uint64_t n : lengths) {
        reqs.push_back(MPI_REQUEST_NULL);
        check(MPI_Irecv(dst + off, int(n), MPI_BYTE, src, tag, comm, &reqs.back()), "MPI_Irecv (payload)");
        off += size_t(n);
    }
}

/// Write a payload's message lengths (count, then each).
inline void putLengths(Writer& w, const std::vector<uint64_t>& lengths) {
    w.put<uint32_t>(uint32_t(lengths.size()));
    for (uint64_t n : lengths) w.put<uint64_t>(n);
}

/// Read message lengths written by putLengths; they must add up to @p total.
inline std::vector<uint64_t> getLengths(Reader& r, uint64_t total) {
    uint32_t n = r.get<uint32_t>();
    if (n > 1u << 16) throw Error(ErrorCode::Corruption, "MPI transport: too many payload messages");
    std::vector<uint64_t> out(n);
    uint64_t sum = 0;
    for (auto& v : out) {
        v = r.get<uint64_t>();
        if (v == 0 || v > MessagePlan::kMaxMessage) throw Error(ErrorCode::Corruption, "MPI transport: bad payload message length");
        sum += v;
    }
    if (sum != total) throw Error(ErrorCode::Corruption, "MPI transport: payload message lengths do not add up");
    return out;
}

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
