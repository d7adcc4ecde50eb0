// Waking a sleeping poller of another rank on the same node, instead of letting it sleep out its
// backoff: a one-byte datagram on a Unix socket in the abstract namespace (no network port). MPI
// itself offers no blocking wait that leaves the core free (MPICH spins), so an idle rank blocks
// in the kernel on this socket, and a rank that sends it an MPI message wakes it. Each rank
// publishes in a small shared-memory page how many of its pollers may be blocked (armed), so
// that a busy stream pays no wake-up system calls: only messages to an armed rank are followed
// by a datagram.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace mofka_py {
namespace mpi {

class WakeChannel {
  public:
    /**
     * This rank's socket of the fabric @p token ("\0mofka-py/<token>/<rank>") and its page of
     * armed pollers ("/mofka-py-<token>-<rank>" in /dev/shm until unlinkOwn()). @p local[r]
     * tells whether rank r runs on this node (only those are woken). If either cannot be made,
     * the channel is disabled and pollers sleep their backoff as before.
     */
    WakeChannel(uint64_t token, int rank, std::vector<bool> local);
    ~WakeChannel();
    WakeChannel(const WakeChannel&) = delete;
    WakeChannel& operator=(const WakeChannel&) = delete;

    bool enabled() const { return m_fd >= 0; }
    /// Every rank of the fabric is on this node and reachable: sleeps may be long, a wake-up comes.
    bool allLocal() const { return m_allLocal; }
    /// Counts wake-ups received; read before polling MPI, passed to wait().
    uint64_t generation() const { return m_gen.load(std::memory_order_acquire); }
    /// Block up to @p us microseconds, or return at once if a wake-up came since @p seen was read.
    void wait(int64_t us, uint64_t seen);
    /// After sending @p peer an MPI message (pushed out): wake it if any of its pollers is armed.
    void wake(int peer);

    /// A poller is about to block: from now on, messages to this rank are followed by a wake-up.
    /// The poller must poll MPI once more after arming, then may wait() until it disarms.
    void arm();
    void disarm();

    /// Map the pages of the other local ranks (after every rank made its own).
    void openPeers();
    /// Remove this rank's page name (after every rank opened the others): nothing is left behind.
    void unlinkOwn();

  private:
    void drain();
    int m_fd = -1;
    uint64_t m_token;
    int m_rank;
    bool m_allLocal = false;
    std::vector<bool> m_local;
    std::vector<std::atomic<int32_t>*> m_armed; ///< per rank: its page's armed count (null: cannot wake)
    std::atomic<uint64_t> m_gen{0};
};

} // namespace mpi
} // namespace mofka_py
