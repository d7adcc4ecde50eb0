#include "mofka_py/TcpServer.hpp"

#include "mofka_py/Frame.hpp"
#include "mofka_py/Sha256.hpp"

#include "broker/ControlHandler.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fcntl.h>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <random>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mofka_py {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kStaging = 64 * 1024;
constexpr size_t kKeepBody = 32u << 20; // largest produce buffer a connection keeps for reuse
constexpr size_t kLowatMax = 1u << 20; // wake for at most this much of a large body at a time
constexpr const char* kClientLabel = "mofka-py client";
constexpr const char* kServerLabel = "mofka-py server";

int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

bool isLoopback(const std::string& host) {
    return host == "127.0.0.1" || host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
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
    bool authed = false;
    bool closing = false;      // close once the queue is written
    bool reading = true;       // EPOLLIN enabled
    uint8_t nonce[32];
    std::vector<uint8_t> staging = std::vector<uint8_t>(kStaging);
    size_t sBegin = 0, sEnd = 0;
    bool inBody = false;
    FrameHeader cur{};
    std::vector<uint8_t> body;
    std::vector<uint8_t> spare; // the last produce body, kept so the next one is not zero-filled again
    size_t bodyGot = 0;
    int lowat = 1;             // SO_RCVLOWAT now set on the socket
    std::deque<OutMsg> out;
    size_t outOff = 0;         // bytes of out.front() already written
    size_t queued = 0;
    uint32_t parked = 0;
    int64_t lastActive = 0;
    uint32_t events = EPOLLIN; // what epoll watches now
};

struct Parked {
    uint64_t conn;
    uint64_t requestId;
    Request req;
    int64_t deadline;
};


} // namespace

class TcpServerImpl {
  public:
    TcpServerImpl(std::shared_ptr<Broker> broker, TcpServerOptions opts) : m_broker(std::move(broker)), m_opts(std::move(opts)) {
        if (!isLoopback(m_opts.host) && m_opts.token.empty())
            throw Error(ErrorCode::InvalidArgument, "refusing to listen on " + m_opts.host +
                                                        " without a token: anyone on the network could read and write events. "
                                                        "Give --token-file, or listen on 127.0.0.1");
        std::random_device rd;
        m_rng.seed((uint64_t(rd()) << 32) ^ rd());
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
            throw Error(ErrorCode::InvalidArgument, "cannot listen on '" + m_opts.host + "': give an IPv4 address such as 127.0.0.1");
        }
        if (bind(m_listen, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(m_listen, 128) != 0) {
            int e = errno;
            ::close(m_listen);
            errno = e;
            throwError(ErrorCode::Connection, "cannot listen on " + m_opts.host + ":" + std::to_string(m_opts.port), true);
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
                if (id == 0) { acceptAll(); continue; }
                auto it = m_conns.find(id);
                if (it == m_conns.end()) continue;
                Conn& c = it->second;
                if (evs[i].events & (EPOLLERR | EPOLLHUP)) { closeConn(c); continue; }
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
        if (m_listen >= 0) { ::close(m_listen); m_listen = -1; }
        // Answer parked requests now, then give queued replies a moment to leave.
        for (auto& p : m_parked) answerParked(p, true);
        m_parked.clear();
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
        for (auto& kv : m_conns) ::close(kv.second.fd);
        m_conns.clear();
        ::close(m_epoll);
        m_epoll = -1;
    }

  private:
    int64_t nextDeadline(int64_t now) const {
        int64_t d = now + 1000; // idle checks once a second
        for (auto& p : m_parked) d = std::min(d, p.deadline);
        return d;
    }

    void acceptAll() {
        for (;;) {
            int fd = accept4(m_listen, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (m_conns.size() >= m_opts.maxConnections) {
                // Polite refusal: one error frame, then close.
                Writer w;
                w.put<uint16_t>(uint16_t(ErrorCode::Connection)).str("server busy: too many connections (" +
                                                                    std::to_string(m_opts.maxConnections) + "); retry later");
                auto h = encodeHeader(MsgType(uint16_t(MsgType::Hello) | kResponseBit), kFlagError, 0, w.buf.size());
                h.insert(h.end(), w.buf.begin(), w.buf.end());
                ssize_t ignored = ::send(fd, h.data(), h.size(), MSG_NOSIGNAL);
                (void)ignored;
                ::close(fd);
                continue;
            }
            uint64_t id = ++m_nextId;
            Conn& c = m_conns[id];
            c.fd = fd;
            c.id = id;
            c.lastActive = nowMs();
            for (auto& b : c.nonce) b = uint8_t(m_rng());
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = id;
            epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &ev);
            Writer w;
            w.bytes(c.nonce, 32).put<uint8_t>(m_opts.token.empty() ? 0 : 1);
            send(c, MsgType::Hello, 0, 0, std::move(w.buf));
        }
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
            if (n > 0) { c.sEnd += size_t(n); continue; }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
            if (n < 0 && errno == EINTR) continue;
            c.closing = true; // EOF or error: a truncated frame is dropped, nothing written
            c.out.clear();
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
                        throw Error(ErrorCode::Auth, "the first message must be the login (Auth); nothing else is read before it");
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
                    if (!fill(c, c.body.size() - c.bodyGot)) return;
                    size_t t = c.body.size() - c.bodyGot;
                    std::memcpy(c.body.data() + c.bodyGot, c.staging.data() + c.sBegin, t);
                    c.sBegin += t;
                    c.bodyGot += t;
                    break;
                }
                ssize_t n = ::read(c.fd, c.body.data() + c.bodyGot, c.body.size() - c.bodyGot);
                if (n > 0) { c.bodyGot += size_t(n); continue; }
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    // A large body arrives in many segments: wake up once a good part of the rest is
                    // here rather than for each one (each wake-up is an epoll round and a reschedule).
                    setLowat(c, int(std::min<size_t>(c.body.size() - c.bodyGot, kLowatMax)));
                    return;
                }
                if (n < 0 && errno == EINTR) continue;
                c.closing = true;
                c.out.clear();
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
                if (!m_opts.token.empty() && !digestEqual(mac, loginMac(m_opts.token, c.nonce, clientNonce, kClientLabel)))
                    throw Error(ErrorCode::Auth, "authentication failed: wrong token. Use the token of this server (--token-file / MOFKA_PY_TOKEN)");
                c.authed = true;
                Digest reply = m_opts.token.empty() ? Digest{} : loginMac(m_opts.token, c.nonce, clientNonce, kServerLabel);
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
        case MsgType::CreateTopic: m_broker->createTopic(q.name, q.config); break;
        case MsgType::ListTopics: w.strs(m_broker->listTopics()); break;
        case MsgType::DescribeTopic: writeTopicInfo(w, m_broker->describeTopic(q.topic)); break;
        case MsgType::Produce: {
            SealedBatch sb;
            sb.head = std::move(body);
            sb.head.resize(q.batchLength);
            sb.length = q.batchLength;
            sb.count = sb.header().count;
            sb.pieces.push_back({sb.head.data(), sb.head.size()});
            AppendResult r = m_broker->produce(q.topic, q.partition, sb, CrcMode::Verify);
            // The log copied the batch: keep its buffer for this connection's next produce.
            if (sb.head.capacity() <= kKeepBody) {
                c.spare = std::move(sb.head); // its size stays: a resize to the next length zero-fills only growth
            }
            w.put<uint64_t>(r.baseOffset).put<uint8_t>(r.duplicate);
            send(c, q.type, 0, rid, std::move(w.buf));
            topicChanged(q.topic);
            return;
        }
        case MsgType::Fetch:
            if (!answerFetch(c, rid, q, false)) park(c, rid, q);
            return;
        case MsgType::WaitTopic:
            if (!answerWait(c, rid, q, false)) park(c, rid, q);
            return;
        case MsgType::Offsets: {
            auto o = m_broker->offsets(q.topic, q.partition);
            w.put<uint64_t>(o.first).put<uint64_t>(o.second);
            break;
        }
        case MsgType::MarkComplete:
            m_broker->markComplete(q.topic);
            send(c, q.type, 0, rid, {});
            topicChanged(q.topic);
            return;
        case MsgType::IsComplete: w.put<uint8_t>(m_broker->isComplete(q.topic)); break;
        case MsgType::JoinGroup: w.str(m_broker->joinGroup(q.group, q.topic, q.member)); break;
        case MsgType::LeaveGroup: m_broker->leaveGroup(q.group, q.topic, q.member); break;
        case MsgType::Assignment: writeAssignment(w, m_broker->assignment(q.group, q.topic, q.heartbeat)); break;
        case MsgType::Release: m_broker->releasePartitions(q.group, q.topic, q.member, q.partitions); break;
        case MsgType::Commit: m_broker->commit(q.group, q.topic, q.offsets, q.member); break;
        case MsgType::Control: w.buf = handleControl(*m_broker, q.control.data(), q.control.size()); break;
        case MsgType::Committed: {
            auto v = m_broker->committed(q.group, q.topic, q.partition);
            w.put<uint8_t>(v.has_value()).put<uint64_t>(v.value_or(0));
            break;
        }
        case MsgType::Groups: w.strs(m_broker->groups(q.topic)); break;
        case MsgType::Status: w.put<uint32_t>(uint32_t(m_conns.size())); break;
        default: throw Error(ErrorCode::Corruption, "unexpected message type");
        }
        send(c, q.type, 0, rid, std::move(w.buf));
    }

    /// Reply to a fetch if there is data (or @p force); false means "park it".
    bool answerFetch(Conn& c, uint64_t rid, const Request& q, bool force) {
        auto batches = m_broker->fetch(q.topic, q.partition, q.offset, size_t(std::min<uint64_t>(q.maxBytes, m_opts.maxFrameBytes / 2)), 0);
        if (batches.empty() && q.timeoutMs > 0 && !force && !m_broker->isComplete(q.topic)) return false;
        OutMsg m;
        Writer w;
        w.put<uint32_t>(uint32_t(batches.size())).put<uint32_t>(0); // 8-byte alignment of the batches that follow
        size_t total = 0;
        for (auto& b : batches) { w.put<uint64_t>(b.size); total += b.size; }
        m.head = encodeHeader(MsgType(uint16_t(q.type) | kResponseBit), 0, rid, w.buf.size() + total);
        m.head.insert(m.head.end(), w.buf.begin(), w.buf.end());
        m.iov.push_back({m.head.data(), m.head.size()});
        for (auto& b : batches) {
            m.iov.push_back({const_cast<uint8_t*>(b.data), b.size}); // straight from the mapped segment
            m.owners.push_back(b.owner);
        }
        m.total = m.head.size() + total;
        enqueue(c, std::move(m));
        return true;
    }

    bool answerWait(Conn& c, uint64_t rid, const Request& q, bool force) {
        uint64_t v = m_broker->waitTopicChange(q.topic, UINT64_MAX, 0);
        if (v == q.version && q.timeoutMs > 0 && !force) return false;
        Writer w;
        w.put<uint64_t>(v);
        send(c, q.type, 0, rid, std::move(w.buf));
        return true;
    }

    void park(Conn& c, uint64_t rid, const Request& q) {
        if (c.parked >= m_opts.maxInflight) {
            Writer w;
            w.put<uint16_t>(uint16_t(ErrorCode::BufferFull)).str("too many waiting requests on this connection (" +
                                                                 std::to_string(m_opts.maxInflight) + ")");
            send(c, q.type, kFlagError, rid, std::move(w.buf));
            return;
        }
        ++c.parked;
        m_parked.push_back({c.id, rid, q, nowMs() + q.timeoutMs});
    }

    void answerParked(Parked& p, bool force) {
        auto it = m_conns.find(p.conn);
        if (it == m_conns.end()) return;
        Conn& c = it->second;
        --c.parked;
        try {
            if (p.req.type == MsgType::Fetch) answerFetch(c, p.requestId, p.req, true);
            else answerWait(c, p.requestId, p.req, true);
        } catch (const Error& e) {
            Writer w;
            w.put<uint16_t>(uint16_t(e.code())).str(e.what());
            send(c, p.req.type, kFlagError, p.requestId, std::move(w.buf));
        }
        (void)force;
    }

    void topicChanged(const std::string& topic) {
        std::vector<Parked> ready;
        for (auto it = m_parked.begin(); it != m_parked.end();) {
            if (it->req.topic == topic) { ready.push_back(std::move(*it)); it = m_parked.erase(it); }
            else ++it;
        }
        for (auto& p : ready) answerParked(p, true);
    }

    void expire(int64_t now) {
        std::vector<Parked> due;
        for (auto it = m_parked.begin(); it != m_parked.end();) {
            if (it->deadline <= now || !m_conns.count(it->conn)) { due.push_back(std::move(*it)); it = m_parked.erase(it); }
            else ++it;
        }
        for (auto& p : due) answerParked(p, true);
        for (auto& kv : m_conns) {
            Conn& c = kv.second;
            if (!c.closing && c.parked == 0 && c.out.empty() && now - c.lastActive > m_opts.idleTimeoutMs) c.closing = true;
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
        c.closing = true;
        c.inBody = false;
        c.sBegin = c.sEnd = 0;
    }

    void flush(Conn& c) {
        while (!c.out.empty()) {
            OutMsg& m = c.out.front();
            // Skip what was already written of this message.
            std::vector<iovec> iov;
            size_t skip = c.outOff;
            for (auto& v : m.iov) {
                if (skip >= v.iov_len) { skip -= v.iov_len; continue; }
                iov.push_back({static_cast<uint8_t*>(v.iov_base) + skip, v.iov_len - skip});
                skip = 0;
            }
            ssize_t n = ::writev(c.fd, iov.data(), int(std::min<size_t>(iov.size(), IOV_MAX)));
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) continue;
                c.out.clear();
                c.closing = true;
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
        c.closing = true;
        c.out.clear();
    }

    void reapClosed() {
        for (auto it = m_conns.begin(); it != m_conns.end();) {
            Conn& c = it->second;
            if (c.closing && c.out.empty()) {
                epoll_ctl(m_epoll, EPOLL_CTL_DEL, c.fd, nullptr);
                ::close(c.fd);
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
    std::vector<Parked> m_parked;
    std::mt19937_64 m_rng;
};

TcpServer::TcpServer(std::shared_ptr<Broker> broker, const TcpServerOptions& options)
: m_impl(std::make_unique<TcpServerImpl>(std::move(broker), options)) {}
TcpServer::~TcpServer() = default;
uint16_t TcpServer::port() const { return m_impl->port(); }
void TcpServer::poll(int timeoutMs) { m_impl->poll(timeoutMs); }
void TcpServer::shutdown(int drainMs) { m_impl->shutdown(drainMs); }
size_t TcpServer::connections() const { return m_impl->connections(); }

} // namespace mofka_py
