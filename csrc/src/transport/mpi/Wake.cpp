#include "transport/mpi/Wake.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

namespace mofka_py {
namespace mpi {
namespace {

constexpr size_t kPage = 64; ///< bytes of a rank's shared page (one cache line; one counter used)

/// The abstract-namespace address of @p rank's socket in fabric @p token.
socklen_t address(uint64_t token, int rank, sockaddr_un& a) {
    std::memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    std::string name = "mofka-py/" + std::to_string(token) + "/" + std::to_string(rank);
    size_t n = std::min(name.size(), sizeof(a.sun_path) - 2);
    std::memcpy(a.sun_path + 1, name.data(), n); // sun_path[0] stays 0: the abstract namespace
    return socklen_t(offsetof(sockaddr_un, sun_path) + 1 + n);
}

std::string pageName(uint64_t token, int rank) {
    return "/mofka-py-" + std::to_string(token) + "-" + std::to_string(rank);
}

/// Map a rank's page; @p create makes it (exclusively). Null on failure.
std::atomic<int32_t>* mapPage(const std::string& name, bool create) {
    int fd = ::shm_open(name.c_str(), create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
    if (fd < 0) return nullptr;
    if (create && ::ftruncate(fd, off_t(kPage)) != 0) {
        ::close(fd);
        ::shm_unlink(name.c_str());
        return nullptr;
    }
    void* p = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) {
        if (create) ::shm_unlink(name.c_str());
        return nullptr;
    }
    static_assert(std::atomic<int32_t>::is_always_lock_free, "a lock-free counter is shared between processes");
    // The owner constructs its counter in the fresh (zeroed) page; a peer only maps it, so that its
    // count is never reset from another process.
    return create ? new (p) std::atomic<int32_t>(0) : static_cast<std::atomic<int32_t>*>(p);
}

} // namespace

WakeChannel::WakeChannel(uint64_t token, int rank, std::vector<bool> local)
: m_token(token), m_rank(rank), m_local(std::move(local)), m_armed(m_local.size(), nullptr) {
    if (rank < 0 || size_t(rank) >= m_local.size()) return;
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    sockaddr_un a;
    socklen_t n = address(token, rank, a);
    std::atomic<int32_t>* mine = nullptr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), n) != 0 || !(mine = mapPage(pageName(token, rank), true))) {
        ::close(fd);
        return;
    }
    m_fd = fd;
    m_armed[size_t(rank)] = mine;
}

WakeChannel::~WakeChannel() {
    for (auto* p : m_armed)
        if (p) ::munmap(p, kPage);
    if (m_fd >= 0) ::close(m_fd);
}

void WakeChannel::openPeers() {
    if (m_fd < 0) return;
    bool all = true;
    for (size_t r = 0; r < m_local.size(); ++r) {
        if (int(r) == m_rank) continue;
        if (m_local[r]) m_armed[r] = mapPage(pageName(m_token, int(r)), false);
        all = all && m_armed[r] != nullptr;
    }
    m_allLocal = all;
}

void WakeChannel::unlinkOwn() {
    if (m_fd >= 0) ::shm_unlink(pageName(m_token, m_rank).c_str());
}

void WakeChannel::arm() { m_armed[size_t(m_rank)]->fetch_add(1, std::memory_order_seq_cst); }
void WakeChannel::disarm() { m_armed[size_t(m_rank)]->fetch_sub(1, std::memory_order_seq_cst); }

void WakeChannel::drain() {
    char buf[64];
    bool got = false;
    while (::recv(m_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) got = true;
    if (got) m_gen.fetch_add(1, std::memory_order_acq_rel);
}

void WakeChannel::wait(int64_t us, uint64_t seen) {
    if (generation() != seen) return;
    pollfd p{m_fd, POLLIN, 0}; // a disabled channel (fd -1) is ignored by ppoll: a plain sleep
    timespec ts{time_t(us / 1000000), long(us % 1000000) * 1000};
    if (::ppoll(&p, 1, &ts, nullptr) > 0) drain();
}

void WakeChannel::wake(int peer) {
    if (m_fd < 0 || peer < 0 || size_t(peer) >= m_armed.size() || !m_armed[size_t(peer)]) return;
    // The message went out before this load (a full fence): a poller that armed after the load
    // polls MPI once more before blocking and finds the message; one armed before is woken.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (m_armed[size_t(peer)]->load(std::memory_order_seq_cst) <= 0) return;
    sockaddr_un a;
    socklen_t n = address(m_token, peer, a);
    char one = 1;
    // Best effort: a full queue already holds wake-ups; a lost one costs at most a sleep.
    (void)::sendto(m_fd, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&a), n);
}

} // namespace mpi
} // namespace mofka_py
