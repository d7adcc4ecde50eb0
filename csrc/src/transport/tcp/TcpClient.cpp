#include "transport/tcp/TcpClient.hpp"
#include "mofka_py/BrokerClient.hpp"
#include "transport/RemoteClient.hpp"
#include "transport/tcp/Frame.hpp"
#include "transport/tcp/Sha256.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <random>
#include <set>
#include <sys/socket.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>

namespace mofka_py {
namespace {

using Clock = std::chrono::steady_clock;
/// An allocator that leaves new bytes uninitialised: a reply body is overwritten by recv
/// right away, and zero-filling a multi-megabyte fetch reply first costs as much as a copy.
template <typename T>
struct UninitAlloc : std::allocator<T> {
    template <typename U>
    struct rebind {
        using other = UninitAlloc<U>;
    };
    UninitAlloc() = default;
    template <typename U>
    UninitAlloc(const UninitAlloc<U>&) noexcept {}
    template <typename U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... A>
    void construct(U* p, A&&... a) {
        ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
    }
};
using Bytes = std::vector<uint8_t, UninitAlloc<uint8_t>>;
using Body = std::shared_ptr<Bytes>;

/// Read exactly @p n bytes; false on EOF or error.
bool readFull(int fd, void* buf, size_t n) {
    auto p = static_cast<uint8_t*>(buf);
    while (n) {
        ssize_t r = ::recv(fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= size_t(r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        return false;
    }
    return true;
}

bool writeFull(int fd, std::vector<iovec> iov) {
    size_t i = 0;
    for (;;) {
        while (i < iov.size() && iov[i].iov_len == 0) ++i; // an empty body is an empty piece
        if (i == iov.size()) return true;
        msghdr mh{};
        mh.msg_iov = iov.data() + i;
        mh.msg_iovlen = std::min<size_t>(iov.size() - i, IOV_MAX);
        ssize_t w = ::sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        while (w > 0 && i < iov.size()) {
            if (size_t(w) >= iov[i].iov_len) {
                w -= ssize_t(iov[i].iov_len);
                ++i;
            } else {
                iov[i].iov_base = static_cast<uint8_t*>(iov[i].iov_base) + w;
                iov[i].iov_len -= size_t(w);
                w = 0;
            }
        }
    }
    return true;
}

template <typename Buf>
Error errorFromBody(const Buf& body) {
    try {
        Reader r(body.data(), body.size());
        auto code = ErrorCode(r.get<uint16_t>());
        if (uint16_t(code) > uint16_t(kLastErrorCode)) code = ErrorCode::Generic;
        return Error(code, r.str());
    } catch (const Error&) {
        return Error(ErrorCode::Corruption, "the server sent a malformed error reply");
    }
}

/// A client of the TCP service; requests are pipelined on one connection.
class TcpClient final : public RemoteClient {
  public:
    TcpClient(std::string host, uint16_t port, TcpClientOptions opts, std::string url)
    : m_host(std::move(host)), m_port(port), m_opts(std::move(opts)), m_url(std::move(url)) {
        std::random_device rd;
        m_rng.seed((uint64_t(rd()) << 32) ^ rd());
        std::lock_guard<std::mutex> l(m_connMutex);
        connectLocked(); // fail fast at connect() time
    }
    ~TcpClient() override { close(); }

    AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch) override {
        return produce(topic, partition, batch, m_noCancel);
    }
    AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch,
                         const CancelToken& cancel) override {
        // The log computes the CRC of in-process batches; over the network it is set here, checked there.
        batch.header().crc = batchCrc(batch.pieces);
        Writer t;
        t.str(topic).put<uint32_t>(partition);
        uint32_t tl = uint32_t(t.buf.size());
        t.put<uint32_t>(tl);
        std::vector<Piece> pieces = batch.pieces;
        pieces.push_back({t.buf.data(), t.buf.size()});
        Body b = call(MsgType::Produce, pieces, 0, nullptr, {}, &cancel);
        {
            // This producer's stream is back in order: it may pipeline again.
            std::lock_guard<std::mutex> l(m_connMutex);
            m_resendFirst.erase(batch.header().producerId);
        }
        return produceReply(*b);
    }

    static AppendResult produceReply(const Bytes& b) {
        Reader r(b.data(), b.size());
        AppendResult res;
        res.baseOffset = r.get<uint64_t>();
        res.duplicate = r.get<uint8_t>() != 0;
        return res;
    }

    size_t maxInflightProduce() const override { return 4; }
    bool longPollFetch() const override { return true; }

    /// Send now, reply later: one connection keeps requests in order, so batches sent back to
    /// back are stored in that order. After a lost connection a producer's async sends fail
    /// fast until it has resent its failed batches with produce() (no overtaking on a new connection).
    void produceAsync(const std::string& topic, uint32_t partition, SealedBatch& batch, ProduceCallback done) override {
        batch.header().crc = batchCrc(batch.pieces);
        const uint64_t producer = batch.header().producerId;
        int fd;
        uint64_t gen;
        {
            std::lock_guard<std::mutex> l(m_connMutex);
            if (m_closed || m_fd < 0 || m_resendFirst.count(producer)) {
                fd = -1;
                gen = 0;
            } else {
                fd = m_fd;
                gen = m_generation;
            }
        }
        if (fd < 0) {
            done(AppendResult{},
                 std::make_exception_ptr(Error(ErrorCode::Connection, "lost the connection to " + m_url)));
            return;
        }
        Writer t;
        t.str(topic).put<uint32_t>(partition);
        uint32_t tl = uint32_t(t.buf.size());
        t.put<uint32_t>(tl);
        auto pending = std::make_shared<Pending>();
        pending->onProduce = std::move(done);
        pending->producer = producer;
        uint64_t rid;
        {
            std::lock_guard<std::mutex> l(m_pendingMutex);
            rid = ++m_nextRequest;
            m_pending[rid] = pending;
        }
        size_t total = t.buf.size();
        for (auto& p : batch.pieces) total += p.size;
        auto head = encodeHeader(MsgType::Produce, 0, rid, total);
        std::vector<iovec> iov;
        iov.push_back({head.data(), head.size()});
        for (auto& p : batch.pieces) iov.push_back({const_cast<uint8_t*>(p.data), p.size});
        iov.push_back({t.buf.data(), t.buf.size()});
        bool sent;
        {
            std::lock_guard<std::mutex> l(m_sendMutex);
            sent = writeFull(fd, std::move(iov));
        }
        if (!sent) lost(gen); // fails every request of that connection, this one included
    }
    std::vector<StoredBatch> fetch(const std::string& t, uint32_t p, uint64_t o, size_t maxBytes,
                                   int64_t timeoutMs) override {
        Request q;
        q.type = MsgType::Fetch;
        q.poll = {PollRequest::Kind::Fetch, t, p, o, maxBytes, 0, std::max<int64_t>(0, timeoutMs)};
        std::vector<uint8_t> body = encodeRequest(q);
        // A long poll that wakeTopic() may end with "no batches" (count 0 + padding).
        Body b = call(q.type, {{body.data(), body.size()}}, q.poll.timeoutMs, q.poll.timeoutMs > 0 ? &t : nullptr,
                      std::vector<uint8_t>(8, 0));
        Reader r(b->data(), b->size());
        uint32_t n = r.get<uint32_t>();
        r.get<uint32_t>();
        if (n > r.remaining() / 8) throw Error(ErrorCode::Corruption, "malformed fetch reply");
        std::vector<uint64_t> lens(n);
        for (auto& l : lens) l = r.get<uint64_t>();
        std::vector<StoredBatch> out;
        for (uint64_t l : lens) {
            const uint8_t* d = r.take(size_t(l));
            BatchView v(d, size_t(l)); // structure check before anyone trusts the offsets
            out.push_back({b, d, size_t(l), v.baseOffset(), v.count()});
        }
        r.end();
        return out;
    }
    ReplicaFetchReply replicaFetch(const std::string& t, uint32_t p, uint64_t o, size_t maxBytes, int64_t timeoutMs,
                                   const std::string& node, uint64_t epoch, const std::optional<BatchHeader>& prev) {
        Request q;
        q.type = MsgType::ReplicaFetch;
        q.poll = {PollRequest::Kind::Fetch, t, p, o, maxBytes, 0, std::max<int64_t>(0, timeoutMs)};
        q.poll.replica = true;
        q.node = node;
        q.epoch = epoch;
        q.prev = prev;
        std::vector<uint8_t> body = encodeRequest(q);
        Body b = call(q.type, {{body.data(), body.size()}}, q.poll.timeoutMs);
        Reader r(b->data(), b->size());
        ReplicaFetchReply out;
        out.diverged = r.get<uint8_t>() != 0;
        r.get<uint8_t>();
        r.get<uint16_t>();
        r.get<uint32_t>();
        uint64_t v = r.get<uint64_t>();
        if (out.diverged) {
            out.leaderEnd = v;
            return out;
        }
        out.highWatermark = v;
        uint32_t n = r.get<uint32_t>();
        r.get<uint32_t>();
        if (n > r.remaining() / 8) throw Error(ErrorCode::Corruption, "malformed replica fetch reply");
        std::vector<uint64_t> lens(n);
        for (auto& l : lens) l = r.get<uint64_t>();
        for (uint64_t l : lens) {
            const uint8_t* d = r.take(size_t(l));
            BatchView bv(d, size_t(l));
            out.batches.push_back({b, d, size_t(l), bv.baseOffset(), bv.count()});
        }
        r.end();
        return out;
    }
    uint64_t waitTopicChange(const std::string& t, uint64_t version, int64_t timeoutMs) override {
        Request q;
        q.type = MsgType::WaitTopic;
        q.poll = {PollRequest::Kind::WaitTopic, t, 0, 0, 0, version, std::max<int64_t>(0, timeoutMs)};
        std::vector<uint8_t> body = encodeRequest(q);
        Writer woken;
        woken.put<uint64_t>(version);
        Body b = call(q.type, {{body.data(), body.size()}}, q.poll.timeoutMs, &t, std::move(woken.buf));
        Reader r(b->data(), b->size());
        return r.get<uint64_t>();
    }
    std::vector<uint8_t> control(const ControlRoute&, const std::vector<uint8_t>& body) override {
        Request q;
        q.type = MsgType::Control;
        q.control = body;
        Body b = simple(q);
        return std::vector<uint8_t>(b->begin(), b->end());
    }
    /// End this client's long polls on @p topic now (a closing consumer must not wait for the server's timeout).
    void wakeTopic(const std::string& topic) override {
        std::vector<std::shared_ptr<Pending>> woken;
        {
            std::lock_guard<std::mutex> l(m_pendingMutex);
            for (auto it = m_pending.begin(); it != m_pending.end();) {
                if (!it->second->waitTopic.empty() && it->second->waitTopic == topic) {
                    woken.push_back(it->second);
                    it = m_pending.erase(it); // the server's late reply finds nobody waiting
                } else {
                    ++it;
                }
            }
        }
        for (auto& p : woken) {
            std::lock_guard<std::mutex> l(p->m);
            p->body = std::make_shared<Body::element_type>(p->wakeBody.begin(), p->wakeBody.end());
            p->done = true;
            p->cv.notify_all();
        }
    }

    void close() override {
        {
            std::lock_guard<std::mutex> l(m_connMutex);
            if (m_closed) return;
            m_closed = true;
            dropConnectionLocked();
        }
    }
    std::string url() const override { return m_url; }

    /// Connected clients as the server counts them.
    int64_t connectedClients() override {
        Request q;
        q.type = MsgType::Status;
        Body b = simple(q);
        Reader r(b->data(), b->size());
        return r.get<uint32_t>();
    }

  private:
    struct Pending {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        bool failed = false;
        Error error{ErrorCode::Generic, ""};
        Body body;
        std::string waitTopic; ///< a WaitTopic long poll that wakeTopic() may end early
        std::vector<uint8_t> wakeBody; ///< the reply it gets when woken early
        ProduceCallback onProduce; ///< set for produceAsync: called instead of waking a waiter
        uint64_t producer = 0;
    };

    /// Deliver a request's outcome: to its callback (async produce) or its waiting caller.
    static void settle(const std::shared_ptr<Pending>& p, bool failed, const Error& error,
                       std::shared_ptr<Bytes> body) {
        if (p->onProduce) {
            if (failed) {
                p->onProduce(AppendResult{}, std::make_exception_ptr(error));
                return;
            }
            AppendResult r{};
            std::exception_ptr err;
            try {
                r = produceReply(*body);
            } catch (...) {
                err = std::current_exception();
            }
            p->onProduce(r, err);
            return;
        }
        std::lock_guard<std::mutex> l(p->m);
        p->failed = failed;
        if (failed) p->error = error;
        p->body = std::move(body);
        p->done = true;
        p->cv.notify_all();
    }

    Body simple(const Request& q, int64_t waitMs = 0) {
        std::vector<uint8_t> body = encodeRequest(q);
        return call(q.type, {{body.data(), body.size()}}, waitMs);
    }

    /// Send a request and wait for its reply; reconnects and resends while the
    /// connection is lost (the broker drops a produce it already stored).
    Body call(MsgType type, const std::vector<Piece>& pieces, int64_t waitMs, const std::string* waitTopic = nullptr,
              std::vector<uint8_t> wakeBody = {}, const CancelToken* cancel = nullptr) {
        Clock::time_point firstFailure{};
        int64_t backoffMs = 50;
        for (;;) {
            try {
                Body b = attempt(type, pieces, waitMs, waitTopic, wakeBody, cancel);
                noteProblem("");
                return b;
            } catch (const Error& e) {
                if (e.code() != ErrorCode::Connection) throw;
                {
                    std::lock_guard<std::mutex> l(m_connMutex);
                    if (m_closed) throw Error(ErrorCode::Closed, "fabric connection is closed");
                }
                auto now = Clock::now();
                if (firstFailure == Clock::time_point{}) firstFailure = now;
                noteProblem(e.what());
                if (now - firstFailure > std::chrono::milliseconds(m_opts.reconnectTimeoutMs))
                    throw Error(ErrorCode::Connection,
                                std::string(e.what()) + " (gave up after retrying for " +
                                    std::to_string(m_opts.reconnectTimeoutMs / 1000) +
                                    " s: reconnect_timeout_ms = " + std::to_string(m_opts.reconnectTimeoutMs) + ")");
                // Sleep the backoff in slices: a cancelled caller (a producer closing with a timeout) stops at once.
                auto until = now + std::chrono::milliseconds(backoffMs);
                while (Clock::now() < until) {
                    if (cancel && cancel->cancelled())
                        throw Error(ErrorCode::Connection,
                                    std::string(e.what()) + " (gave up: the caller stopped waiting)");
                    std::this_thread::sleep_for(
                        std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(20)));
                }
                if (cancel && cancel->cancelled())
                    throw Error(ErrorCode::Connection,
                                std::string(e.what()) + " (gave up: the caller stopped waiting)");
                backoffMs = std::min<int64_t>(backoffMs * 2, 2000);
            }
        }
    }

    /// Remember what keeps requests from getting through (cleared by the next success).
    void noteProblem(const std::string& what) {
        std::lock_guard<std::mutex> l(m_problemMutex);
        if (what.empty()) {
            m_problem.clear();
            return;
        }
        if (m_problem.empty()) m_problemSince = Clock::now();
        m_problem = what;
    }

  public:
    std::string connectionProblem() const override {
        std::lock_guard<std::mutex> l(m_problemMutex);
        if (m_problem.empty()) return "";
        auto s = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - m_problemSince).count();
        return m_problem + " (retrying for " + std::to_string(s) +
               " s so far; reconnect_timeout_ms = " + std::to_string(m_opts.reconnectTimeoutMs) + ")";
    }

  private:
    Body attempt(MsgType type, const std::vector<Piece>& pieces, int64_t waitMs, const std::string* waitTopic,
                 const std::vector<uint8_t>& wakeBody, const CancelToken* cancel = nullptr) {
        int fd;
        uint64_t gen;
        {
            std::lock_guard<std::mutex> l(m_connMutex);
            if (m_closed) throw Error(ErrorCode::Closed, "fabric connection is closed");
            if (m_fd < 0) connectLocked();
            fd = m_fd;
            gen = m_generation;
        }
        auto pending = std::make_shared<Pending>();
        if (waitTopic) {
            pending->waitTopic = *waitTopic;
            pending->wakeBody = wakeBody;
        }
        uint64_t rid;
        {
            std::lock_guard<std::mutex> l(m_pendingMutex);
            rid = ++m_nextRequest;
            m_pending[rid] = pending;
        }
        size_t total = 0;
        for (auto& p : pieces) total += p.size;
        auto head = encodeHeader(type, 0, rid, total);
        std::vector<iovec> iov;
        iov.push_back({head.data(), head.size()});
        for (auto& p : pieces) iov.push_back({const_cast<uint8_t*>(p.data), p.size});
        bool sent;
        {
            std::lock_guard<std::mutex> l(m_sendMutex);
            sent = writeFull(fd, std::move(iov));
        }
        if (!sent) {
            forget(rid);
            lost(gen);
            throw Error(ErrorCode::Connection, "lost the connection to " + m_url + " while sending");
        }
        std::unique_lock<std::mutex> l(pending->m);
        const auto deadline = Clock::now() + std::chrono::milliseconds(waitMs + m_opts.requestTimeoutMs);
        for (;;) {
            // In slices when the caller may cancel (a producer closing with a timeout stops waiting).
            auto until = cancel ? std::min(deadline, Clock::now() + std::chrono::milliseconds(20)) : deadline;
            if (pending->cv.wait_until(l, until, [&] { return pending->done; })) break;
            if (cancel && cancel->cancelled()) {
                l.unlock();
                forget(rid);
                throw Error(ErrorCode::Connection, "no reply from " + m_url +
                                                       " yet (gave up: the caller stopped waiting; "
                                                       "the request may or may not have been carried out)");
            }
            if (Clock::now() >= deadline) {
                l.unlock();
                forget(rid);
                throw Error(ErrorCode::Timeout, "no reply from " + m_url + " within " +
                                                    std::to_string((waitMs + m_opts.requestTimeoutMs) / 1000) +
                                                    " s; the server may be stopped or overloaded");
            }
        }
        if (pending->failed) throw pending->error;
        return pending->body;
    }

    void forget(uint64_t rid) {
        std::lock_guard<std::mutex> l(m_pendingMutex);
        m_pending.erase(rid);
    }

    void connectLocked() {
        // One budget for connecting and logging in: a port held by something else must fail
        // within it, not after the request timeout.
        const int64_t budgetMs = std::max<int64_t>(1, std::min(m_opts.connectTimeoutMs, m_opts.requestTimeoutMs));
        const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(budgetMs);
        addrinfo hints{}, *res = nullptr;
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(m_host.c_str(), std::to_string(m_port).c_str(), &hints, &res) != 0 || !res)
            throw Error(ErrorCode::InvalidArgument, "cannot resolve host '" + m_host + "' of " + m_url);
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
        if (rc != 0 && errno == EINPROGRESS) {
            pollfd pfd{fd, POLLOUT, 0};
            int err = 0;
            socklen_t el = sizeof(err);
            if (::poll(&pfd, 1, msLeft(deadline)) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
                err == 0)
                rc = 0;
            else
                errno = err ? err : ETIMEDOUT;
        }
        if (rc != 0) {
            int e = errno;
            ::close(fd);
            errno = e;
            throwError(ErrorCode::Connection, "cannot connect to " + m_url + " (is `mofka-py serve` running there?)",
                       true);
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        try {
            handshake(fd, deadline, budgetMs);
        } catch (...) {
            ::close(fd);
            throw;
        }
        // After the login, the receiver thread blocks in recv without a timeout; sends wait at
        // most the request timeout.
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        timeval tv{long(m_opts.requestTimeoutMs / 1000), long((m_opts.requestTimeoutMs % 1000) * 1000)};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (m_receiver.joinable()) m_receiver.join();
        m_fd = fd;
        uint64_t gen = ++m_generation;
        m_receiver = std::thread([this, fd, gen] { receive(fd, gen); });
    }

    static int msLeft(Clock::time_point deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        return int(std::max<int64_t>(0, std::min<int64_t>(left, INT_MAX)));
    }

    /// The first bytes a peer sent, quoted for an error message (printable ASCII, up to a line end).
    static std::string quote(const uint8_t* p, size_t n) {
        std::string out = "\"";
        for (size_t i = 0; i < n && p[i] != '\r' && p[i] != '\n'; ++i) {
            if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
                out += char(p[i]);
            } else {
                char esc[8];
                std::snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
                out += esc;
            }
        }
        return out + "\"";
    }

    std::string hostPort() const { return m_host + ":" + std::to_string(m_port); }

    /**
     * Read one login frame (the greeting or the login reply) from the non-blocking @p fd by
     * @p deadline. Bytes are checked against the frame magic as they come, so a peer that is
     * not a mofka-py server (an SSH banner, an HTTP reply) is named at its first byte rather
     * than after waiting for a whole header.
     */
    std::vector<uint8_t> readLoginFrame(int fd, FrameHeader& h, Clock::time_point deadline, int64_t budgetMs,
                                        const char* what) {
        static_assert(sizeof(kFrameMagic) == 4, "magic is 4 bytes");
        uint8_t magic[4];
        std::memcpy(magic, &kFrameMagic, 4); // as sent: host order, little-endian on every supported platform
        uint8_t head[kFrameHeaderSize];
        size_t got = 0;
        auto readSome = [&](uint8_t* dst, size_t want) -> size_t {
            for (;;) {
                ssize_t r = ::recv(fd, dst, want, 0);
                if (r > 0) return size_t(r);
                if (r == 0)
                    throw Error(ErrorCode::Connection, "connection to " + m_url + " closed during login (" + what +
                                                           (got ? "" : ", before the peer sent a byte") +
                                                           "): is `mofka-py serve` listening at " + hostPort() + "?");
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    throwError(ErrorCode::Connection, "connection to " + m_url + " failed during login", true);
                pollfd pfd{fd, POLLIN, 0};
                if (::poll(&pfd, 1, msLeft(deadline)) == 0) return 0;
            }
        };
        while (got < kFrameHeaderSize) {
            size_t n = readSome(head + got, kFrameHeaderSize - got);
            if (n == 0) {
                if (got == 0)
                    throw Error(ErrorCode::Connection,
                                "the peer at " + hostPort() + " accepted the connection but sent no mofka-py " + what +
                                    " within " + std::to_string(budgetMs) +
                                    " ms: it is probably not a mofka-py service (an HTTP server, for "
                                    "one, waits for the client to speak first), or the service is overloaded; check "
                                    "the URL/port of " +
                                    m_url);
                throw Error(ErrorCode::Connection, "the peer at " + hostPort() + " sent only " + std::to_string(got) +
                                                       " bytes of the mofka-py " + what + " within " +
                                                       std::to_string(budgetMs) + " ms (" + quote(head, got) +
                                                       "); check the URL/port of " + m_url);
            }
            got += n;
            if (std::memcmp(head, magic, std::min<size_t>(got, 4)) != 0)
                throw Error(ErrorCode::Connection, "the peer at " + hostPort() +
                                                       " is not a mofka-py service (it answered " + quote(head, got) +
                                                       "); check the URL/port of " + m_url);
        }
        std::memcpy(&h, head, sizeof(h));
        if (h.version != kFrameVersion)
            throw Error(ErrorCode::Connection, "the mofka-py service at " + hostPort() + " speaks protocol version " +
                                                   std::to_string(h.version) + " and this client version " +
                                                   std::to_string(kFrameVersion) + "; upgrade the older side");
        checkFrameHeader(h, 4096);
        std::vector<uint8_t> body(size_t(h.bodyLength));
        for (size_t off = 0; off < body.size();) {
            size_t n = readSome(body.data() + off, body.size() - off);
            if (n == 0)
                throw Error(ErrorCode::Connection, "the mofka-py " + std::string(what) + " from " + hostPort() +
                                                       " did not arrive whole within " + std::to_string(budgetMs) +
                                                       " ms; the service may be overloaded");
            off += n;
        }
        return body;
    }

    void handshake(int fd, Clock::time_point deadline, int64_t budgetMs) {
        FrameHeader h;
        std::vector<uint8_t> hello = readLoginFrame(fd, h, deadline, budgetMs, "greeting");
        if (h.flags & kFlagError) throw errorFromBody(hello);
        if (h.type != (uint16_t(MsgType::Hello) | kResponseBit) || hello.size() != 33)
            throw Error(ErrorCode::Connection, m_url + " did not greet like a mofka-py server");
        bool authRequired = hello[32] != 0;
        if (authRequired && m_opts.token.empty())
            throw Error(ErrorCode::Auth,
                        m_url + " requires a token: pass token=... to connect() or set MOFKA_PY_TOKEN");
        uint8_t clientNonce[32];
        for (auto& b : clientNonce) b = uint8_t(m_rng());
        Digest mac =
            m_opts.token.empty() ? Digest{} : loginMac(m_opts.token, hello.data(), clientNonce, "mofka-py client");
        Writer w;
        w.bytes(clientNonce, 32).bytes(mac.data(), 32);
        auto head = encodeHeader(MsgType::Auth, 0, 0, w.buf.size());
        // 96 bytes into a fresh socket's empty send buffer: a non-blocking send does not come up short.
        if (!writeFull(fd, {{head.data(), head.size()}, {w.buf.data(), w.buf.size()}}))
            throw Error(ErrorCode::Connection, "connection to " + m_url + " closed during login");
        std::vector<uint8_t> ok = readLoginFrame(fd, h, deadline, budgetMs, "login reply");
        if (h.flags & kFlagError) throw errorFromBody(ok);
        if (ok.size() != 32) throw Error(ErrorCode::Connection, "malformed login reply from " + m_url);
        if (authRequired) {
            Digest theirs;
            std::memcpy(theirs.data(), ok.data(), 32);
            if (!digestEqual(theirs, loginMac(m_opts.token, hello.data(), clientNonce, "mofka-py server")))
                throw Error(ErrorCode::Auth, m_url + " could not prove it knows the token; not sending it any events");
        }
    }

    void receive(int fd, uint64_t gen) {
        for (;;) {
            FrameHeader h;
            if (!readFull(fd, &h, sizeof(h))) break;
            try {
                checkFrameHeader(h, 1ull << 40);
            } catch (const Error&) {
                break;
            }
            auto body = std::make_shared<Bytes>(size_t(h.bodyLength));
            if (!readFull(fd, body->data(), body->size())) break;
            std::shared_ptr<Pending> p;
            {
                std::lock_guard<std::mutex> l(m_pendingMutex);
                auto it = m_pending.find(h.requestId);
                if (it == m_pending.end()) continue; // its caller gave up
                p = it->second;
                m_pending.erase(it);
            }
            bool failed = (h.flags & kFlagError) != 0;
            Error error = failed ? errorFromBody(*body) : Error(ErrorCode::Generic, ""); // before body is moved
            settle(p, failed, error, std::move(body));
        }
        lost(gen);
    }

    /// The connection of generation @p gen is gone: fail its waiters, let the next call reconnect.
    void lost(uint64_t gen) {
        std::map<uint64_t, std::shared_ptr<Pending>> failed;
        {
            std::lock_guard<std::mutex> l(m_connMutex);
            if (gen != m_generation || m_fd < 0) return;
            ::shutdown(m_fd, SHUT_RDWR);
            ::close(m_fd);
            m_fd = -1;
            std::lock_guard<std::mutex> lp(m_pendingMutex);
            failed.swap(m_pending);
            // In the same critical section as the close: no async produce of these producers
            // may overtake their failed batches on a connection opened meanwhile.
            for (auto& kv : failed)
                if (kv.second->onProduce) m_resendFirst.insert(kv.second->producer);
        }
        Error e(ErrorCode::Connection, "lost the connection to " + m_url);
        for (auto& kv : failed) settle(kv.second, true, e, nullptr);
    }

    void dropConnectionLocked() {
        if (m_fd >= 0) ::shutdown(m_fd, SHUT_RDWR);
        if (m_receiver.joinable()) {
            std::thread t = std::move(m_receiver);
            m_connMutex.unlock();
            t.join();
            m_connMutex.lock();
        }
        if (m_fd >= 0) {
            ::close(m_fd);
            m_fd = -1;
        }
    }

    std::string m_host;
    uint16_t m_port;
    TcpClientOptions m_opts;
    std::string m_url;
    std::mutex m_connMutex, m_sendMutex, m_pendingMutex;
    int m_fd = -1;
    uint64_t m_generation = 0;
    bool m_closed = false;
    std::thread m_receiver;
    std::map<uint64_t, std::shared_ptr<Pending>> m_pending;
    std::set<uint64_t> m_resendFirst; ///< producers whose async sends failed: they resend with produce() first
    uint64_t m_nextRequest = 0;
    std::mt19937_64 m_rng;
    mutable std::mutex m_problemMutex;
    std::string m_problem; ///< the last connection error while retrying ("" once through)
    Clock::time_point m_problemSince;
    const CancelToken m_noCancel; ///< for calls nobody cancels
};

} // namespace

ReplicaFetchReply tcpReplicaFetch(BrokerClient& client, const std::string& topic, uint32_t partition, uint64_t offset,
                                  size_t maxBytes, int64_t timeoutMs, const std::string& node, uint64_t epoch,
                                  const std::optional<BatchHeader>& prev) {
    auto* tcp = dynamic_cast<TcpClient*>(&client);
    if (!tcp) throw Error(ErrorCode::InvalidArgument, "a replica fetches from its leader over tcp://");
    return tcp->replicaFetch(topic, partition, offset, maxBytes, timeoutMs, node, epoch, prev);
}

std::shared_ptr<BrokerClient> makeTcpClient(const std::string& host, uint16_t port, const TcpClientOptions& options,
                                            const std::string& url) {
    return std::make_shared<TcpClient>(host, port, options, url);
}

} // namespace mofka_py
