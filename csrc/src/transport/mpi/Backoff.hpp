// Polling MPI without spinning a core: how long a poller waits between polls.
#pragma once
#include "transport/mpi/Wake.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace mofka_py {
namespace mpi {

/// Monotonic time in nanoseconds (steady_clock), the unit of Traffic marks.
inline int64_t steadyNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
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
/// MPI calls, so sleeping between polls would throttle it (the receiver's; a
/// sender waiting for its own messages uses idleSending()). The thread's timer
/// slack is set to 1 us so that short sleeps are short (the default adds ~50 us).
///
/// With a WakeChannel (ranks on one node), a poller that would sleep arms the
/// channel instead (polls once more), then blocks in the kernel until a
/// wake-up or the end of its sleep: a rank that sends this one a message
/// while it is armed wakes it, so the first event after an idle spell is not
/// held up by a sleep. When every rank is on this node, sleeps grow to
/// kMaxWakeSleepUs (a wake-up comes); otherwise they stay at kMaxSleepUs
/// (ranks elsewhere cannot wake this one).
class Backoff {
  public:
    static constexpr int64_t kQuickNs = 100000; ///< yield-only window after the poller's own progress
    static constexpr int64_t kMaxSleepUs = 250; ///< longest sleep between polls of an idle fabric
    static constexpr int64_t kMaxWakeSleepUs = 2000; ///< the same when every rank can wake this one

    /// @p traffic: the rank's Traffic mark, yielding for @p spindownUs after it (none: only the
    /// 100 us window after the poller's own progress applies). @p wake: this rank's channel.
    explicit Backoff(const Traffic* traffic = nullptr, int64_t spindownUs = 0, WakeChannel* wake = nullptr)
    : m_spindownNs(spindownUs * 1000), m_traffic(traffic), m_wake(wake && wake->enabled() ? wake : nullptr),
      m_seen(m_wake ? m_wake->generation() : 0) {}
    ~Backoff() { disarm(); }
    Backoff(const Backoff&) = delete; // armed state belongs to one poller
    Backoff& operator=(const Backoff&) = delete;

    void idle(bool transferring = false) {
        if (transferring) {
            std::this_thread::yield();
            return;
        }
        int64_t now = steadyNs();
        if (m_rounds++ == 0) m_since = now;
        bool quick = now - m_since < kQuickNs;
        bool spinning = m_traffic && now - m_traffic->load(std::memory_order_relaxed) < m_spindownNs;
        if (quick || spinning) {
            std::this_thread::yield();
            return;
        }
        tightTimerSlack();
        if (m_wake && !m_armed) { // from now on a message to this rank wakes it; poll once more first
            m_wake->arm();
            m_armed = true;
            return;
        }
        int64_t cap = m_wake && m_wake->allLocal() ? kMaxWakeSleepUs : kMaxSleepUs;
        int64_t us = std::min<int64_t>(cap, int64_t(2) << std::min(m_sleeps++, 10));
        if (!m_wake) {
            std::this_thread::sleep_for(std::chrono::microseconds(us));
            return;
        }
        m_wake->wait(us, m_seen);
        uint64_t gen = m_wake->generation(); // read before the caller's next poll
        if (gen != m_seen) reset(); // woken: a message is on its way, poll eagerly again
        m_seen = gen;
    }
    /// Between polls of a sender whose own messages are in flight. MPI moves a large message
    /// between ranks of one node by a single copy the receiver makes (MPICH's CMA path): the
    /// sender only waits for the word that it is done. So after a short yield-only spell
    /// (kSendSpinNs since the poller's last progress: a small message is done by then) it sleeps
    /// kSendPaceUs between polls, leaving its core to the receiving rank's threads on a node with
    /// no core to spare (the log's prefault thread then keeps ahead of a first run).
    void idleSending() {
        int64_t now = steadyNs();
        if (m_rounds++ == 0) m_since = now;
        if (now - m_since < kSendSpinNs) {
            std::this_thread::yield();
            return;
        }
        tightTimerSlack();
        std::this_thread::sleep_for(std::chrono::microseconds(kSendPaceUs));
    }
    static constexpr int64_t kSendSpinNs = 50000; ///< yield-only window of idleSending()
    static constexpr int64_t kSendPaceUs = 50; ///< then its sleep between polls

    /// The poller made progress: back to short waits.
    void reset() {
        m_rounds = 0;
        m_sleeps = 0;
        disarm();
    }

  private:
    void disarm() {
        if (m_armed) m_wake->disarm();
        m_armed = false;
    }
    static void tightTimerSlack() {
#ifdef PR_SET_TIMERSLACK
        thread_local bool done = false;
        if (!done) {
            prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
            done = true;
        }
#endif
    }
    int64_t m_spindownNs;
    const Traffic* m_traffic;
    WakeChannel* m_wake;
    uint64_t m_seen; ///< the channel's generation before the caller's last poll
    bool m_armed = false;
    int m_rounds = 0;
    int m_sleeps = 0;
    int64_t m_since = 0;
};

} // namespace mpi
} // namespace mofka_py
