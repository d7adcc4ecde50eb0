#include "mofka_py/TcpServer.hpp"

#include "mofka_py/Broker.hpp"

#include "transport/tcp/Frame.hpp"
#include "transport/tcp/Sha256.hpp"

#include "broker/ControlHandler.hpp"
#include "broker/LongPolls.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <random>
#include <set>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace mofka_py {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kStaging = 64 * 1024;
constexpr size_t kKeepBody = 32u << 20; // largest produce buffer a connection keeps for reuse
constexpr size_t kLowatMax = 1u << 20; // wake for at most this much of a large body at a time
constexpr const char* kClientLabel = "mofka-py client";
constexpr const char* kServerLabel = "mofka-py server";
/// Threads that wait for durable produces' syncs (sync=batch): one partition each at a time, so
/// up to this many partitions' fdatasyncs run at once while the event loop goes on.
constexpr size_t kSyncThreads = 4;
/// How long a replicated produce waits for its in-sync replicas (the coordinator drops a follower
/// that lags from the in-sync set well before; BrokerOptions::replicaAckTimeoutMs for the others).
constexpr int64_t kReplicaAckTimeoutMs = 30000;
constexpr uint64_t kSyncedEvent = UINT64_MAX; ///< epoll id of the eventfd the sync threads signal

int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

bool isLoopback(const std::string& host) {
    return host == "127.0.0.1" || host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::string addressText(uint32_t addr) {
    char text[INET_ADDRSTRLEN] = "?";
    in_addr a{};
    a.s_addr = addr;
    inet_ntop(AF_INET, &a, text, sizeof(text));
    return text;
}

/// One reply waiting to be written: owned bytes plus views of stored batches.
struct OutMsg {
    std::vector<uint8_t> head;
    std::vector<iovec> iov;
    std::vector<Owner> owners;
    size_t total = 0;
};

struct Conn {
    int fd = -1;
    uint64_t id = 0;
    uint32_t addr = 0; // peer IPv4 address, network order
    int64_t acceptedAt = 0;
    bool authed = false;
    bool pendingLogin = false; // counted in the login queue (not logged in, not closing)
    bool closing = false; // close once the queue is written
    bool reading = true; // EPOLLIN enabled
    uint8_t nonce[32];
    std::vector<uint8_t> staging = std::vector<uint8_t>(kStaging);
    size_t sBegin = 0, sEnd = 0;
    bool inBody = false;
    FrameHeader cur{};
    std::vector<uint8_t> body;
    std::vector<uint8_t> spare; // the last produce body, kept so the next one is not zero-filled again
    size_t bodyGot = 0;
    int lowat = 1; // SO_RCVLOWAT now set on the socket
    std::deque<OutMsg> out;
    size_t outOff = 0; // bytes of out.front() already written
    size_t queued = 0;
    uint32_t parked = 0;
    uint32_t syncing = 0; // produces written, waiting for their sync before the answer
    int64_t lastActive = 0;
    uint32_t events = EPOLLIN; // what epoll watches now
};

/// Where a long poll's answer goes: a connection and the request's id.
struct PollWho {
    uint64_t conn;
    uint64_t requestId;
};

} // namespace

class TcpServerImpl {
  public:
    TcpServerImpl(std::shared_ptr<Broker> broker, TcpServerOptions opts)
    : m_broker(std::move(broker)), m_opts(std::move(opts)) {
        if (!isLoopback(m_opts.host) && m_opts.token.empty())
            throw Error(ErrorCode::InvalidArgument,
                        "refusing to listen on " + m_opts.host +
                            " without a token: anyone on the network could read and write events. "
                            "Give --token-file, or listen on 127.0.0.1");
        if (m_opts.loginTimeoutMs <= 0)
            throw Error(ErrorCode::InvalidArgument,
                        "the login timeout must be a positive number of milliseconds (got " +
                            std::to_string(m_opts.loginTimeoutMs) + ")");
        if (m_opts.maxConnections == 0 || m_opts.maxPendingLogins == 0 || m_opts.maxPendingLoginsPerAddress == 0)
            throw Error(ErrorCode::InvalidArgument,
                        "max connections, max pending logins and max pending logins per address "
                        "must each be at least 1");
        m_opts.maxPendingLogins = std::min(m_opts.maxPendingLogins, m_opts.maxConnections);
        m_opts.maxPendingLoginsPerAddress = std::min(m_opts.maxPendingLoginsPerAddress, m_opts.maxPendingLogins);
        std::random_device rd;
        m_rng.seed((uint64_t(rd()) << 32) ^ rd());
        m_spareFd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (m_listen < 0) throwError(ErrorCode::Connection, "socket() failed", true);
        int one = 1;
        setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(m_opts.port);
        std::string host = m_opts.host == "localhost" ? "127.0.0.1" : m_opts.host;
        if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
            ::close(m_listen);
            throw Error(ErrorCode::InvalidArgument,
                        "cannot listen on '" + m_opts.host + "': give an IPv4 address such as 127.0.0.1");
        }
        // The kernel's largest accept queue: a burst of connections (every rank of a job, or a
        // flood) overflowing a short one has its handshakes dropped and retried a second later.
        if (bind(m_listen, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(m_listen, SOMAXCONN) != 0) {
            int e = errno;
            ::close(m_listen);
            errno = e;
            throwError(ErrorCode::Connection, "cannot listen on " + m_opts.host + ":" + std::to_string(m_opts.port),
                       true);
        }
        socklen_t len = sizeof(addr);
        getsockname(m_listen, reinterpret_cast<sockaddr*>(&addr), &len);
        m_port = ntohs(addr.sin_port);
        m_epoll = epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = 0;
        epoll_ctl(m_epoll, EPOLL_CTL_ADD, m_listen, &ev);
    }

    ~TcpServerImpl() { shutdown(0); }

    uint16_t port() const { return m_port; }
    size_t connections() const { return m_conns.size(); }
    size_t pendingLogins() const { return m_loginQueue.size(); }

    void poll(int timeoutMs) {
        if (m_epoll < 0) return;
        int64_t until = nowMs() + timeoutMs;
        for (;;) {
            int64_t now = nowMs();
            int wait = int(std::max<int64_t>(0, std::min<int64_t>(until - now, nextDeadline(now) - now)));
            epoll_event evs[64];
            int n = epoll_wait(m_epoll, evs, 64, wait);
            for (int i = 0; i < n; ++i) {
                uint64_t id = evs[i].data.u64;
                if (id == 0) {
                    acceptAll();
                    continue;
                }
                if (id == kSyncedEvent) {
                    answerSynced();
                    continue;
                }
                auto it = m_conns.find(id);
                if (it == m_conns.end()) continue;
                Conn& c = it->second;
                if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                    closeConn(c);
                    continue;
                }
                if (evs[i].events & EPOLLIN) onReadable(c);
                if (m_conns.count(id) && (evs[i].events & EPOLLOUT)) flush(c);
            }
            expire(nowMs());
            reapClosed();
            if (nowMs() >= until) return;
        }
    }

    void shutdown(int drainMs) {
        if (m_epoll < 0) return;
        if (m_listen >= 0) {
            ::close(m_listen);
            m_listen = -1;
        }
        // Produces waiting for their sync get their answers (each wait ends with its partition's sync).
        while (m_syncOutstanding > 0) {
            pollfd p{m_syncedFd, POLLIN, 0};
            ::poll(&p, 1, 100);
            answerSynced();
        }
        stopSyncThreads();
        answerReplicated([](const AwaitingReplicas&) { return true; }, true);
        // Answer parked requests now, then give queued replies a moment to leave.
        m_parked.answerNow(*m_broker, [](const PollWho&, const PollRequest&) { return true; }, replyParked());
        int64_t until = nowMs() + drainMs;
        for (;;) {
            bool pending = false;
            for (auto& kv : m_conns) {
                flush(kv.second);
                pending = pending || !kv.second.out.empty();
            }
            if (!pending || nowMs() >= until) break;
            usleep(1000);
        }
        for (auto& kv : m_conns)
            if (kv.second.fd >= 0) ::close(kv.second.fd);
        m_conns.clear();
        m_loginQueue.clear();
        m_pendingByAddr.clear();
        m_live = 0;
        ::close(m_epoll);
        m_epoll = -1;
        if (m_spareFd >= 0) {
            ::close(m_spareFd);
            m_spareFd = -1;
        }
    }

  private:
    int64_t nextDeadline(int64_t now) const {
        int64_t d = now + 1000; // idle checks once a second
        d = m_parked.nextDeadline(d);
        if (!m_awaitingReplicas.empty()) d = std::min(d, now + 20); // see a lost leadership or lease soon
        // Every login has the same allowance, so the oldest pending one is due first.
        if (!m_loginQueue.empty())
            d = std::min(d, m_conns.at(*m_loginQueue.begin()).acceptedAt + m_opts.loginTimeoutMs);
        if (m_acceptPaused) d = std::min(d, m_acceptResumeAt);
        return d;
    }

    void acceptAll() {
        for (;;) {
            sockaddr_in peer{};
            socklen_t peerLen = sizeof(peer);
            int fd = accept4(m_listen, reinterpret_cast<sockaddr*>(&peer), &peerLen, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if ((errno == EMFILE || errno == ENFILE) && acceptWithoutDescriptors()) continue;
                return;
            }
            admit(fd, peer.sin_addr.s_addr);
        }
    }

    /// Take a new connection from @p addr as a pending login, or refuse it if there is no room.
    void admit(int fd, uint32_t addr) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (!makeRoom(addr)) {
            refuseBusy(fd);
            return;
        }
        uint64_t id = ++m_nextId;
        Conn& c = m_conns[id];
        c.fd = fd;
        c.id = id;
        c.addr = addr;
        c.acceptedAt = c.lastActive = nowMs();
        c.pendingLogin = true;
        m_loginQueue.insert(id);
        m_pendingByAddr[addr].insert(id);
        ++m_live;
        for (auto& b : c.nonce) b = uint8_t(m_rng());
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = id;
        epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &ev);
        Writer w;
        w.bytes(c.nonce, 32).put<uint8_t>(m_opts.token.empty() ? 0 : 1);
        send(c, MsgType::Hello, 0, 0, std::move(w.buf));
    }

    /// Polite refusal of a connection never admitted: one error frame, then close.
    void refuseBusy(int fd, const std::string& why = "") {
        Writer w;
        w.put<uint16_t>(uint16_t(ErrorCode::Connection))
            .str(why.empty()
                     ? "server busy: too many connections (" + std::to_string(m_opts.maxConnections) + "); retry later"
                     : why);
        auto h = encodeHeader(MsgType(uint16_t(MsgType::Hello) | kResponseBit), kFlagError, 0, w.buf.size());
        h.insert(h.end(), w.buf.begin(), w.buf.end());
        ssize_t ignored = ::send(fd, h.data(), h.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
        ::close(fd);
    }

    /**
     * Make room for a newcomer from @p addr; false if every slot is held by a logged-in client.
     *
     * When a cap on pending logins is reached, the oldest pending login makes way rather than
     * the newcomer being refused. An honest client logs in within one round trip of being
     * accepted, while a squatter has sent nothing useful since; refusing newcomers would let
     * whoever holds the cap (and reconnects as soon as it is closed) lock everyone out for a
     * whole login timeout, whereas closing the oldest means a flood has to open a cap's worth
     * of connections within an honest client's round trip to disturb it. The victim comes
     * from the address with the most pending logins, so a flood from some addresses only
     * ever closes its own connections, never a lone client's login from elsewhere.
     */
    bool makeRoom(uint32_t addr) {
        auto mine = m_pendingByAddr.find(addr);
        if (mine != m_pendingByAddr.end() && mine->second.size() >= m_opts.maxPendingLoginsPerAddress) {
            dropPending(m_conns.at(*mine->second.begin()),
                        "closed: too many connections from " + addressText(addr) + " are waiting to log in (limit " +
                            std::to_string(m_opts.maxPendingLoginsPerAddress) +
                            "), and this was the oldest. A mofka-py client logs in at once; retry, and look for a "
                            "process at that address that opens connections without logging in");
            return true;
        }
        if (m_loginQueue.size() < m_opts.maxPendingLogins && m_live < m_opts.maxConnections) return true;
        if (m_loginQueue.empty()) return false;
        dropPending(m_conns.at(oldestFromBusiestAddress()),
                    "closed: too many connections are waiting to log in (limit " +
                        std::to_string(m_opts.maxPendingLogins) + ", " + std::to_string(m_opts.maxConnections) +
                        " connections in all), and this was the oldest from the busiest address; retry");
        return true;
    }

    uint64_t oldestFromBusiestAddress() const {
        const std::set<uint64_t>* busiest = nullptr;
        for (auto& kv : m_pendingByAddr) {
            const auto& ids = kv.second;
            if (!busiest || ids.size() > busiest->size() ||
                (ids.size() == busiest->size() && *ids.begin() < *busiest->begin()))
                busiest = &ids;
        }
        return *busiest->begin();
    }

    /// Close a connection that has not logged in, telling it why (best effort: it may not read).
    void dropPending(Conn& c, const std::string& why) {
        Writer w;
        w.put<uint16_t>(uint16_t(ErrorCode::Connection)).str(why);
        send(c, MsgType::Auth, kFlagError, 0, std::move(w.buf));
        closeConn(c);
    }

    /**
     * accept() failed for want of file descriptors. It allocates the descriptor before it
     * looks for a connection, so this says nothing yet about anyone waiting; and while someone
     * is, the listening socket stays readable and the loop would spin. So: close connections
     * already done with; else accept on the spare descriptor and, if someone was waiting,
     * admit them in place of the oldest pending login (the newcomer may be an honest client)
     * or refuse them politely if every connection is logged in; with no spare, stop accepting
     * for a moment. True if accept() is worth calling again at once.
     */
    bool acceptWithoutDescriptors() {
        size_t before = m_conns.size();
        reapClosed();
        if (m_conns.size() < before) return true;
        if (m_spareFd < 0) m_spareFd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (m_spareFd < 0) {
            pauseAccepting();
            return false;
        }
        ::close(m_spareFd);
        m_spareFd = -1;
        sockaddr_in peer{};
        socklen_t peerLen = sizeof(peer);
        int fd = accept4(m_listen, reinterpret_cast<sockaddr*>(&peer), &peerLen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            m_spareFd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            return false; // nobody waiting (or an error accept() will report again)
        }
        if (!m_loginQueue.empty()) {
            Conn& v = m_conns.at(oldestFromBusiestAddress());
            dropPending(v,
                        "closed: the server is out of file descriptors and this connection had not logged in; retry");
            epoll_ctl(m_epoll, EPOLL_CTL_DEL, v.fd, nullptr);
            ::close(v.fd);
            v.fd = -1;
            m_spareFd = ::open("/dev/null", O_RDONLY | O_CLOEXEC); // takes the descriptor just freed
            admit(fd, peer.sin_addr.s_addr);
            return true;
        }
        refuseBusy(fd, "server busy: out of file descriptors with every connection logged in; retry later "
                       "(the operator may raise `ulimit -n` for mofka-py serve)");
        m_spareFd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        return true;
    }

    void pauseAccepting() {
        epoll_event ev{};
        ev.data.u64 = 0;
        epoll_ctl(m_epoll, EPOLL_CTL_MOD, m_listen, &ev);
        m_acceptPaused = true;
        m_acceptResumeAt = nowMs() + 100;
    }

    /// The connection will be closed: it no longer counts as live nor as a pending login.
    void markClosing(Conn& c) {
        if (!c.closing) {
            c.closing = true;
            --m_live;
        }
        unlistPending(c);
    }

    void unlistPending(Conn& c) {
        if (!c.pendingLogin) return;
        c.pendingLogin = false;
        m_loginQueue.erase(c.id);
        auto it = m_pendingByAddr.find(c.addr);
        it->second.erase(c.id);
        if (it->second.empty()) m_pendingByAddr.erase(it);
    }

    void setLowat(Conn& c, int bytes) {
        if (c.lowat == bytes) return;
        c.lowat = bytes;
        setsockopt(c.fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes));
    }

    /// Read into the staging buffer until it holds @p need bytes; false if the socket has no more now.
    bool fill(Conn& c, size_t need) {
        while (c.sEnd - c.sBegin < need) {
            if (c.sBegin && c.sEnd == c.sBegin) c.sBegin = c.sEnd = 0;
            if (c.staging.size() - c.sBegin < need) {
                std::memmove(c.staging.data(), c.staging.data() + c.sBegin, c.sEnd - c.sBegin);
                c.sEnd -= c.sBegin;
                c.sBegin = 0;
            }
            ssize_t n = ::read(c.fd, c.staging.data() + c.sEnd, c.staging.size() - c.sEnd);
            if (n > 0) {
                c.sEnd += size_t(n);
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
            if (n < 0 && errno == EINTR) continue;
            closeConn(c); // EOF or error: a truncated frame is dropped, nothing written
            return false;
        }
        return true;
    }

    void onReadable(Conn& c) {
        c.lastActive = nowMs();
        while (!c.closing && c.reading) {
            if (!c.inBody) {
                if (!fill(c, kFrameHeaderSize)) return;
                std::memcpy(&c.cur, c.staging.data() + c.sBegin, kFrameHeaderSize);
                c.sBegin += kFrameHeaderSize;
                try {
                    checkFrameHeader(c.cur, c.authed ? m_opts.maxFrameBytes : 64);
                    if (!c.authed && c.cur.type != uint16_t(MsgType::Auth))
                        throw Error(ErrorCode::Auth,
                                    "the first message must be the login (Auth); nothing else is read before it");
                } catch (const Error& e) {
                    fail(c, c.cur.type, c.cur.requestId, e);
                    return;
                }
                if (c.body.capacity() == 0 && c.spare.capacity() >= c.cur.bodyLength) c.body.swap(c.spare);
                c.body.resize(size_t(c.cur.bodyLength));
                c.bodyGot = 0;
                c.inBody = true;
            }
            size_t take = std::min(c.sEnd - c.sBegin, c.body.size() - c.bodyGot);
            std::memcpy(c.body.data() + c.bodyGot, c.staging.data() + c.sBegin, take);
            c.sBegin += take;
            c.bodyGot += take;
            while (c.bodyGot < c.body.size()) {
                if (c.body.size() - c.bodyGot < kStaging) {
                    if (!fill(c, c.body.size() - c.bodyGot)) {
                        // The tail of the body is not all here: wake for the next bytes (a
                        // low-water mark left from the large part could exceed what is still to
                        // come, and the connection would never wake again).
                        setLowat(c, 1);
                        return;
                    }
                    size_t t = c.body.size() - c.bodyGot;
                    std::memcpy(c.body.data() + c.bodyGot, c.staging.data() + c.sBegin, t);
                    c.sBegin += t;
                    c.bodyGot += t;
                    break;
                }
                ssize_t n = ::read(c.fd, c.body.data() + c.bodyGot, c.body.size() - c.bodyGot);
                if (n > 0) {
                    c.bodyGot += size_t(n);
                    continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    // A large body arrives in many segments: wake up once a good part of the rest is
                    // here rather than for each one (each wake-up is an epoll round and a reschedule).
                    setLowat(c, int(std::min<size_t>(c.body.size() - c.bodyGot, kLowatMax)));
                    return;
                }
                if (n < 0 && errno == EINTR) continue;
                closeConn(c);
                return;
            }
            c.inBody = false;
            setLowat(c, 1);
            handle(c);
        }
    }

    void handle(Conn& c) {
        const FrameHeader h = c.cur;
        std::vector<uint8_t> body = std::move(c.body);
        c.body = {};
        if (!c.authed) {
            try {
                if (body.size() != 64) throw Error(ErrorCode::Corruption, "malformed login message");
                const uint8_t* clientNonce = body.data();
                Digest mac;
                std::memcpy(mac.data(), body.data() + 32, 32);
                if (!m_opts.token.empty() &&
                    !digestEqual(mac, loginMac(m_opts.token, c.nonce, clientNonce, kClientLabel)))
                    throw Error(ErrorCode::Auth, "authentication failed: wrong token. Use the token of this server "
                                                 "(--token-file / MOFKA_PY_TOKEN)");
                c.authed = true;
                unlistPending(c);
                Digest reply =
                    m_opts.token.empty() ? Digest{} : loginMac(m_opts.token, c.nonce, clientNonce, kServerLabel);
                send(c, MsgType::AuthOk, 0, h.requestId, std::vector<uint8_t>(reply.begin(), reply.end()));
            } catch (const Error& e) {
                fail(c, h.type, h.requestId, e);
            }
            return;
        }
        Request q;
        try {
            q = decodeRequest(h.type, body.data(), body.size());
        } catch (const Error& e) {
            fail(c, h.type, h.requestId, e); // malformed: answer, close, write nothing
            return;
        }
        try {
            execute(c, h.requestId, q, body);
        } catch (const Error& e) {
            Writer w;
            w.put<uint16_t>(uint16_t(e.code())).str(e.what());
            send(c, q.type, kFlagError, h.requestId, std::move(w.buf));
        } catch (const std::exception& e) {
            Writer w;
            w.put<uint16_t>(uint16_t(ErrorCode::Generic)).str(e.what());
            send(c, q.type, kFlagError, h.requestId, std::move(w.buf));
        }
    }

    void execute(Conn& c, uint64_t rid, Request& q, std::vector<uint8_t>& body) {
        Writer w;
        switch (q.type) {
        case MsgType::Produce: {
            SealedBatch sb;
            sb.head = std::move(body);
            sb.head.resize(q.batchLength);
            sb.length = q.batchLength;
            sb.count = sb.header().count;
            sb.pieces.push_back({sb.head.data(), sb.head.size()});
            Broker::StartedProduce started = m_broker->startProduce(q.topic, q.partition, sb, CrcMode::Verify);
            // The log copied the batch: keep its buffer for this connection's next produce.
            if (sb.head.capacity() <= kKeepBody) {
                c.spare = std::move(sb.head); // its size stays: a resize to the next length zero-fills only growth
            }
            if (!started.done()) {
                // Written, not yet synced (sync=batch) or not yet held by the in-sync replicas: a
                // sync thread answers once it is, while this loop goes on reading and writing other
                // batches, which share that sync; followers waiting for data get it now.
                const bool replicated = bool(started.replica);
                ++c.syncing;
                if (replicated && started.pending.ticket == 0) {
                    // No sync due, only the followers: this loop answers it when their fetches move
                    // the high watermark (no thread hand-off per batch).
                    m_awaitingReplicas.push_back(
                        {c.id, rid, q.topic, q.partition, std::move(started), nowMs() + kReplicaAckTimeoutMs});
                    wakeReplicas(q.topic, q.partition);
                    return;
                }
                awaitSync(Syncing{c.id, rid, q.topic, q.partition, std::move(started)});
                if (replicated) wakeReplicas(q.topic, q.partition);
                return;
            }
            const AppendResult& r = started.result;
            w.put<uint64_t>(r.baseOffset).put<uint8_t>(r.duplicate);
            send(c, q.type, 0, rid, std::move(w.buf));
            topicChanged(q.topic);
            return;
        }
        case MsgType::Fetch:
        case MsgType::WaitTopic: startPoll(c, rid, std::move(q.poll)); return;
        case MsgType::ReplicaFetch: {
            FollowerFetchCheck chk =
                m_broker->followerFetch(q.poll.topic, q.poll.partition, q.node, q.epoch, q.poll.offset, q.prev);
            if (chk.highWatermarkMoved) {
                answerReplicated([&](const AwaitingReplicas& a) {
                    return a.partition == q.poll.partition && a.topic == q.poll.topic;
                });
                topicChanged(q.poll.topic); // its high watermark moved: consumers may read more
            }
            if (chk.diverged) {
                // The follower's last batch is not the leader's: it truncates and asks again.
                w.put<uint8_t>(1).put<uint8_t>(0).put<uint16_t>(0).put<uint32_t>(0);
                w.put<uint64_t>(chk.leaderEnd).put<uint32_t>(0).put<uint32_t>(0);
                break;
            }
            startPoll(c, rid, std::move(q.poll));
            return;
        }
        case MsgType::Control: {
            ControlResult res = handleControl(*m_broker, q.control.data(), q.control.size());
            send(c, q.type, 0, rid, std::move(res.reply));
            if (!res.changedTopic.empty()) topicChanged(res.changedTopic);
            return;
        }
        case MsgType::Status: w.put<uint32_t>(uint32_t(m_live - m_loginQueue.size())); break; // logged-in clients
        default: throw Error(ErrorCode::Corruption, "unexpected message type");
        }
        send(c, q.type, 0, rid, std::move(w.buf));
    }

    /// Answer a fetch or wait now if it can be, else park it (up to maxInflight per connection).
    void startPoll(Conn& c, uint64_t rid, PollRequest q) {
        if (q.kind == PollRequest::Kind::Fetch) q.maxBytes = std::min<uint64_t>(q.maxBytes, m_opts.maxFrameBytes / 2);
        PollWho who{c.id, rid};
        if (c.parked >= m_opts.maxInflight) {
            std::optional<PollAnswer> a = answerPoll(*m_broker, q, q.timeoutMs <= 0);
            if (a) {
                replyPoll(who, q, *a);
                return;
            }
            Writer w;
            w.put<uint16_t>(uint16_t(ErrorCode::BufferFull))
                .str("too many waiting requests on this connection (" + std::to_string(m_opts.maxInflight) + ")");
            send(c, pollType(q), kFlagError, rid, std::move(w.buf));
            return;
        }
        auto reply = [this](const PollWho& w, const PollRequest& r, PollAnswer& a) { replyPoll(w, r, a); };
        if (!m_parked.submit(*m_broker, who, std::move(q), reply)) ++c.parked;
    }

    static MsgType pollType(const PollRequest& q) {
        if (q.replica) return MsgType::ReplicaFetch;
        return q.kind == PollRequest::Kind::Fetch ? MsgType::Fetch : MsgType::WaitTopic;
    }

    /// Send a poll's answer: the stored batches straight from the mapped segments, a version or an error.
    void replyPoll(const PollWho& who, const PollRequest& q, PollAnswer& a) {
        auto it = m_conns.find(who.conn);
        if (it == m_conns.end()) return;
        Conn& c = it->second;
        Writer w;
        if (a.failed) {
            w.put<uint16_t>(uint16_t(a.code)).str(a.message);
            send(c, pollType(q), kFlagError, who.requestId, std::move(w.buf));
            return;
        }
        if (q.kind == PollRequest::Kind::WaitTopic) {
            w.put<uint64_t>(a.version);
            send(c, MsgType::WaitTopic, 0, who.requestId, std::move(w.buf));
            return;
        }
        OutMsg m;
        // A replica's fetch: u8 diverged (0), 7 bytes of padding, the leader's high watermark first.
        if (q.replica)
            w.put<uint8_t>(0).put<uint8_t>(0).put<uint16_t>(0).put<uint32_t>(0).put<uint64_t>(a.highWatermark);
        w.put<uint32_t>(uint32_t(a.batches.size())).put<uint32_t>(0); // 8-byte alignment of the batches that follow
        size_t total = 0;
        for (auto& b : a.batches) {
            w.put<uint64_t>(b.size);
            total += b.size;
        }
        m.head = encodeHeader(MsgType(uint16_t(pollType(q)) | kResponseBit), 0, who.requestId, w.buf.size() + total);
        m.head.insert(m.head.end(), w.buf.begin(), w.buf.end());
        m.iov.push_back({m.head.data(), m.head.size()});
        for (auto& b : a.batches) {
            m.iov.push_back({const_cast<uint8_t*>(b.data), b.size}); // straight from the mapped segment
            m.owners.push_back(b.owner);
        }
        m.total = m.head.size() + total;
        enqueue(c, std::move(m));
    }

    /// The reply function for parked polls: the connection has one waiting request less.
    struct ParkedReply {
        TcpServerImpl* self;
        void operator()(const PollWho& who, const PollRequest& q, PollAnswer& a) const {
            auto it = self->m_conns.find(who.conn);
            if (it == self->m_conns.end()) return;
            --it->second.parked;
            self->replyPoll(who, q, a);
        }
    };
    ParkedReply replyParked() { return ParkedReply{this}; }

    /// A replicated produce written with no sync due, waiting for its in-sync replicas (event loop only).
    struct AwaitingReplicas {
        uint64_t conn;
        uint64_t rid;
        std::string topic;
        uint32_t partition;
        Broker::StartedProduce started;
        int64_t deadlineMs;
    };
    /// Answer the awaiting produces @p which selects that are held by their replicas, failed
    /// (leadership lost, lease lapsed) or past their deadline (@p force: all of them, as NotLeader).
    template <typename Which>
    void answerReplicated(Which&& which, bool force = false) {
        if (m_awaitingReplicas.empty()) return;
        const int64_t now = nowMs();
        std::set<std::string> changed;
        std::vector<AwaitingReplicas> still;
        for (AwaitingReplicas& a : m_awaitingReplicas) {
            if (!which(a)) {
                still.push_back(std::move(a));
                continue;
            }
            Writer w;
            uint32_t flags = 0;
            try {
                std::optional<AppendResult> r = m_broker->pollReplicated(a.started);
                if (!r && !force && now < a.deadlineMs) {
                    still.push_back(std::move(a));
                    continue;
                }
                if (r) {
                    w.put<uint64_t>(r->baseOffset).put<uint8_t>(r->duplicate);
                    changed.insert(a.topic);
                } else {
                    flags = kFlagError;
                    w.put<uint16_t>(uint16_t(force ? ErrorCode::NotLeader : ErrorCode::Timeout))
                        .str(force
                                 ? "the node is stopping before the in-sync replicas held the write; the producer "
                                   "resends it to the new leader"
                                 : "the in-sync replicas of partition " + std::to_string(a.partition) + " of topic '" +
                                       a.topic + "' did not hold the write in time; the producer resends it");
                }
            } catch (const Error& e) {
                flags = kFlagError;
                w.put<uint16_t>(uint16_t(e.code())).str(e.what());
            }
            auto it = m_conns.find(a.conn);
            if (it == m_conns.end()) continue; // the client went away; a resend finds the batch (a duplicate)
            --it->second.syncing;
            send(it->second, MsgType::Produce, flags, a.rid, std::move(w.buf));
        }
        m_awaitingReplicas.swap(still);
        for (const std::string& t : changed) topicChanged(t);
    }

    /// Followers' parked fetches of a partition that just took a write: answer them with it now.
    void wakeReplicas(const std::string& topic, uint32_t partition) {
        m_parked.answerNow(
            *m_broker,
            [&](const PollWho&, const PollRequest& q) {
                return q.replica && q.partition == partition && q.topic == topic;
            },
            replyParked());
    }
    /// Clients' parked polls on a topic that changed. Followers' fetches are left parked: each is
    /// woken by a write to its own partition (wakeReplicas), and waking them all at every answered
    /// produce would send each follower an empty reply and a new fetch per acknowledgement.
    void topicChanged(const std::string& topic) {
        m_parked.answerNow(
            *m_broker, [&](const PollWho&, const PollRequest& q) { return !q.replica && q.topic == topic; },
            replyParked());
    }

    void expire(int64_t now) {
        while (!m_loginQueue.empty()) {
            Conn& c = m_conns.at(*m_loginQueue.begin());
            if (now - c.acceptedAt < m_opts.loginTimeoutMs) break;
            dropPending(c, "closed: no login within " + std::to_string(m_opts.loginTimeoutMs) +
                               " ms of connecting. A mofka-py client logs in at once: is this a mofka-py client, "
                               "and is the network between it and the server healthy?");
        }
        if (m_acceptPaused && now >= m_acceptResumeAt && m_listen >= 0) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = 0;
            epoll_ctl(m_epoll, EPOLL_CTL_MOD, m_listen, &ev);
            m_acceptPaused = false;
            if (m_spareFd < 0) m_spareFd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        m_parked.drop([&](const PollWho& w, const PollRequest&) { return !m_conns.count(w.conn); });
        m_parked.expire(*m_broker, now, replyParked());
        // Role changes and lease deadlines come from other threads: look at the waiting produces again.
        answerReplicated([](const AwaitingReplicas&) { return true; });
        for (auto& kv : m_conns) {
            Conn& c = kv.second;
            if (!c.closing && c.parked == 0 && c.syncing == 0 && c.out.empty() &&
                now - c.lastActive > m_opts.idleTimeoutMs)
                markClosing(c);
        }
    }

    /// A produce written to its partition, waiting for the sync that makes it count.
    struct Syncing {
        uint64_t conn;
        uint64_t rid;
        std::string topic;
        uint32_t partition;
        Broker::StartedProduce started;
    };
    /// Its outcome, for the event loop to answer.
    struct Synced {
        uint64_t conn = 0;
        uint64_t rid = 0;
        std::string topic;
        AppendResult result{};
        bool failed = false;
        uint16_t code = 0;
        std::string message;
    };

    /// Hand a written produce to the sync threads (started on the first one).
    void awaitSync(Syncing s) {
        if (m_syncThreads.empty()) {
            m_syncedFd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (m_syncedFd < 0) throwError(ErrorCode::Generic, "eventfd() failed", true);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = kSyncedEvent;
            epoll_ctl(m_epoll, EPOLL_CTL_ADD, m_syncedFd, &ev);
            for (size_t i = 0; i < kSyncThreads; ++i) m_syncThreads.emplace_back([this] { syncLoop(); });
        }
        ++m_syncOutstanding;
        std::lock_guard<std::mutex> l(m_syncMutex);
        PartitionLog* log = s.started.log;
        auto& waiting = m_syncWaiting[log];
        const bool idle = waiting.empty() && !m_syncBusy.count(log);
        waiting.push_back(std::move(s));
        if (idle) {
            m_syncReady.push_back(log);
            m_syncCv.notify_one();
        }
    }

    /// A sync thread: takes a partition with waiting produces (no other thread is on it), waits for
    /// them in write order (the first wait runs one fdatasync for all of them), hands the outcomes over.
    void syncLoop() {
        std::unique_lock<std::mutex> l(m_syncMutex);
        for (;;) {
            m_syncCv.wait(l, [&] { return m_syncStop || !m_syncReady.empty(); });
            if (m_syncReady.empty()) return; // stopping, nothing left
            PartitionLog* log = m_syncReady.front();
            m_syncReady.pop_front();
            m_syncBusy.insert(log);
            std::vector<Syncing> mine;
            mine.swap(m_syncWaiting[log]);
            m_syncWaiting.erase(log);
            l.unlock();
            // A replicated batch under sync=batch reaches the followers only once synced (the event loop
            // woke their parked fetches at the write, too early): sync first, wake them, then wait for them.
            bool published = false;
            for (Syncing& s : mine) {
                if (!s.started.replica || s.started.pending.ticket == 0) continue;
                try {
                    s.started.log->awaitDurable(s.started.pending);
                    published = true;
                } catch (const std::exception&) {
                    // finishProduce() below meets the same failure and reports it
                }
            }
            if (published) {
                {
                    std::lock_guard<std::mutex> pl(m_syncMutex);
                    m_published.emplace_back(mine.front().topic, mine.front().partition);
                }
                const uint64_t one = 1;
                ssize_t ignored = ::write(m_syncedFd, &one, sizeof one);
                (void)ignored;
            }
            std::vector<Synced> done;
            for (Syncing& s : mine) {
                Synced d;
                d.conn = s.conn;
                d.rid = s.rid;
                d.topic = std::move(s.topic);
                try {
                    d.result = m_broker->finishProduce(s.started);
                } catch (const Error& e) {
                    d.failed = true;
                    d.code = uint16_t(e.code());
                    d.message = e.what();
                } catch (const std::exception& e) {
                    d.failed = true;
                    d.code = uint16_t(ErrorCode::Generic);
                    d.message = e.what();
                }
                done.push_back(std::move(d));
            }
            mine.clear();
            l.lock();
            m_syncBusy.erase(log);
            auto it = m_syncWaiting.find(log);
            if (it != m_syncWaiting.end() && !it->second.empty()) {
                m_syncReady.push_back(log); // written while this thread waited: the next sync's
                m_syncCv.notify_one();
            }
            for (Synced& d : done) m_synced.push_back(std::move(d));
            const uint64_t one = 1;
            ssize_t ignored = ::write(m_syncedFd, &one, sizeof one);
            (void)ignored;
        }
    }

    /// Event loop: answer the produces whose sync ended, and wake the polls waiting for their data.
    void answerSynced() {
        uint64_t n;
        ssize_t ignored = ::read(m_syncedFd, &n, sizeof n);
        (void)ignored;
        std::vector<Synced> done;
        std::vector<std::pair<std::string, uint32_t>> published;
        {
            std::lock_guard<std::mutex> l(m_syncMutex);
            done.swap(m_synced);
            published.swap(m_published);
        }
        for (const auto& tp : published) wakeReplicas(tp.first, tp.second);
        std::set<std::string> changed;
        for (Synced& d : done) {
            --m_syncOutstanding;
            if (!d.failed) changed.insert(d.topic);
            auto it = m_conns.find(d.conn);
            if (it == m_conns.end()) continue; // the client went away; a retry finds the batch (a duplicate)
            Conn& c = it->second;
            --c.syncing;
            Writer w;
            if (d.failed) {
                w.put<uint16_t>(d.code).str(d.message);
                send(c, MsgType::Produce, kFlagError, d.rid, std::move(w.buf));
            } else {
                w.put<uint64_t>(d.result.baseOffset).put<uint8_t>(d.result.duplicate);
                send(c, MsgType::Produce, 0, d.rid, std::move(w.buf));
            }
        }
        for (const std::string& t : changed) topicChanged(t);
    }

    void stopSyncThreads() {
        {
            std::lock_guard<std::mutex> l(m_syncMutex);
            m_syncStop = true;
        }
        m_syncCv.notify_all();
        for (auto& t : m_syncThreads) t.join();
        m_syncThreads.clear();
        if (m_syncedFd >= 0) {
            ::close(m_syncedFd);
            m_syncedFd = -1;
        }
    }

    void send(Conn& c, MsgType type, uint32_t flags, uint64_t rid, std::vector<uint8_t> body) {
        OutMsg m;
        uint16_t t = uint16_t(type) | kResponseBit;
        m.head = encodeHeader(MsgType(t), flags, rid, body.size());
        m.head.insert(m.head.end(), body.begin(), body.end());
        m.iov.push_back({m.head.data(), m.head.size()});
        m.total = m.head.size();
        enqueue(c, std::move(m));
    }

    void enqueue(Conn& c, OutMsg m) {
        c.queued += m.total;
        c.out.push_back(std::move(m));
        flush(c);
    }

    /// An unrecoverable problem with what this client sent: say why, then close.
    void fail(Conn& c, uint16_t type, uint64_t rid, const Error& e) {
        Writer w;
        w.put<uint16_t>(uint16_t(e.code())).str(e.what());
        send(c, MsgType(type & ~kResponseBit), kFlagError, rid, std::move(w.buf));
        markClosing(c);
        c.inBody = false;
        c.sBegin = c.sEnd = 0;
    }

    void flush(Conn& c) {
        if (c.fd < 0) return; // closed at once by acceptWithoutDescriptors(), its number maybe reused
        while (!c.out.empty()) {
            OutMsg& m = c.out.front();
            // Skip what was already written of this message.
            std::vector<iovec> iov;
            size_t skip = c.outOff;
            for (auto& v : m.iov) {
                if (skip >= v.iov_len) {
                    skip -= v.iov_len;
                    continue;
                }
                iov.push_back({static_cast<uint8_t*>(v.iov_base) + skip, v.iov_len - skip});
                skip = 0;
            }
            ssize_t n = ::writev(c.fd, iov.data(), int(std::min<size_t>(iov.size(), IOV_MAX)));
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) continue;
                closeConn(c);
                break;
            }
            c.outOff += size_t(n);
            if (c.outOff == m.total) {
                c.queued -= m.total;
                c.out.pop_front();
                c.outOff = 0;
            }
        }
        bool wantOut = !c.out.empty();
        bool wantIn = !c.closing && c.queued < m_opts.maxQueuedBytes;
        uint32_t events = (wantIn ? uint32_t(EPOLLIN) : 0u) | (wantOut ? uint32_t(EPOLLOUT) : 0u);
        if (events != c.events) {
            epoll_event ev{};
            ev.events = events;
            ev.data.u64 = c.id;
            epoll_ctl(m_epoll, EPOLL_CTL_MOD, c.fd, &ev);
            c.events = events;
        }
        bool resumed = wantIn && !c.reading;
        c.reading = wantIn;
        if (resumed && c.sEnd > c.sBegin) onReadable(c);
    }

    void closeConn(Conn& c) {
        markClosing(c);
        c.out.clear();
    }

    void reapClosed() {
        for (auto it = m_conns.begin(); it != m_conns.end();) {
            Conn& c = it->second;
            if (c.closing && c.out.empty()) {
                if (c.fd >= 0) {
                    epoll_ctl(m_epoll, EPOLL_CTL_DEL, c.fd, nullptr);
                    ::close(c.fd);
                }
                it = m_conns.erase(it);
            } else {
                ++it;
            }
        }
    }

    std::shared_ptr<Broker> m_broker;
    TcpServerOptions m_opts;
    int m_listen = -1;
    int m_epoll = -1;
    uint16_t m_port = 0;
    uint64_t m_nextId = 0;
    std::map<uint64_t, Conn> m_conns;
    size_t m_live = 0; ///< connections not closing
    std::set<uint64_t> m_loginQueue; ///< connections not logged in, oldest (smallest id) first
    std::unordered_map<uint32_t, std::set<uint64_t>> m_pendingByAddr;
    int m_spareFd = -1; ///< given up to accept-and-refuse when descriptors run out
    bool m_acceptPaused = false;
    int64_t m_acceptResumeAt = 0;
    ParkedPolls<PollWho> m_parked; ///< long polls waiting for data, a topic change or their deadline
    std::mt19937_64 m_rng;
    // Durable produces waiting for their sync (see awaitSync()); the sync threads share these.
    std::mutex m_syncMutex;
    std::condition_variable m_syncCv;
    std::map<PartitionLog*, std::vector<Syncing>> m_syncWaiting; ///< per partition, in write order
    std::deque<PartitionLog*> m_syncReady; ///< partitions with waiting produces and no thread on them
    std::set<PartitionLog*> m_syncBusy; ///< partitions a sync thread is on
    std::vector<Synced> m_synced; ///< outcomes the event loop has not answered yet
    std::vector<AwaitingReplicas> m_awaitingReplicas; ///< replicated produces without a sync due (event loop only)
    /// Replicated partitions whose batches were synced: the event loop wakes their followers' fetches.
    std::vector<std::pair<std::string, uint32_t>> m_published;
    bool m_syncStop = false;
    std::vector<std::thread> m_syncThreads;
    int m_syncedFd = -1; ///< eventfd: outcomes are waiting in m_synced
    size_t m_syncOutstanding = 0; ///< produces handed over, not answered (event loop only)
};

TcpServer::TcpServer(std::shared_ptr<Broker> broker, const TcpServerOptions& options)
: m_impl(std::make_unique<TcpServerImpl>(std::move(broker), options)) {}
TcpServer::~TcpServer() = default;
uint16_t TcpServer::port() const { return m_impl->port(); }
void TcpServer::poll(int timeoutMs) { m_impl->poll(timeoutMs); }
void TcpServer::shutdown(int drainMs) { m_impl->shutdown(drainMs); }
size_t TcpServer::connections() const { return m_impl->connections(); }
size_t TcpServer::pendingLogins() const { return m_impl->pendingLogins(); }

} // namespace mofka_py
