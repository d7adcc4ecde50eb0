#include "transport/mpi/Backoff.hpp"
#include "transport/mpi/BufferPool.hpp"
#include "transport/mpi/MessagePlan.hpp"
#include "transport/mpi/MpiCheck.hpp"
#include "transport/mpi/MpiProtocol.hpp"
#include "transport/mpi/MpiTransport.hpp"
#include "transport/mpi/Placement.hpp"

#include "transport/RemoteClient.hpp"
#include "wire/Control.hpp"
#include "wire/Messages.hpp"
#include "wire/Poll.hpp"

#include "mofka_py/RecordBatch.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <map>

namespace mofka_py {
namespace {

using namespace mpi;
using Clock = std::chrono::steady_clock;

class MpiClient final : public RemoteClient {
  public:
    MpiClient(MPI_Comm requests, MPI_Comm replies, std::vector<int> servers, int64_t timeoutMs, int64_t spindownUs,
              std::string url, std::shared_ptr<WakeChannel> wake)
    : m_req(requests), m_rep(replies), m_servers(std::move(servers)), m_timeoutMs(timeoutMs), m_spindownUs(spindownUs),
      m_url(std::move(url)), m_wake(std::move(wake)) {}

    ~MpiClient() override {
        try {
            close();
        } catch (...) {}
        stopProgress();
    }

    /// Every server gets the topic (all partitions; only its own receive events); the coordinator
    /// goes first: it decides TopicExists and validates the settings (see control()).
    void createTopic(const std::string& name, const TopicConfig& config) override {
        RemoteClient::createTopic(name, config);
        rememberPartitions(name, config.partitions);
    }

    /// Settings and completion from the coordinator, each partition's offsets from its server.
    TopicInfo describeTopic(const std::string& name) override {
        TopicInfo info = describeOn(coordinator(name), name);
        rememberPartitions(name, info.config.partitions);
        if (m_servers.size() == 1) return info;
        std::map<int, TopicInfo> others;
        for (auto& p : info.partitions) {
            int s = partitionServer(name, p.partition);
            if (s == coordinator(name)) continue;
            auto it = others.find(s);
            if (it == others.end()) it = others.emplace(s, describeOn(s, name)).first;
            for (auto& q : it->second.partitions)
                if (q.partition == p.partition) p = q;
        }
        return info;
    }

    AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch) override {
        // The CRC is computed here, once, and checked by the server's log.
        markTraffic(m_traffic);
        batch.header().crc = batchCrc(batch.pieces);
        MessagePlan payload(kProduceMessageBytes);
        Writer w = produceRequest(topic, partition, batch, payload);
        return appendResult(call(partitionServer(topic, partition), w, &payload));
    }

    /// A few batches in flight: the next one is on its way while the server stores this one.
    size_t maxInflightProduce() const override { return 4; }

    /// The server parks a fetch of a caught-up partition and answers it when events arrive:
    /// one message to the consumer instead of wait-for-change, fetch and end-of-topic checks.
    bool longPollFetch() const override { return true; }

    int64_t spindownUs() const override { return m_spindownUs; }

    /// Start the sends and return; a progress thread polls the reply and calls @p done.
    /// Requests from one rank reach a server in order (MPI non-overtaking on one tag),
    /// and the server stores each source's batches in that order.
    void produceAsync(const std::string& topic, uint32_t partition, SealedBatch& batch, ProduceCallback done) override {
        auto a = std::make_unique<AsyncCall>();
        a->done = std::move(done);
        try {
            markTraffic(m_traffic);
            batch.header().crc = batchCrc(batch.pieces);
            MessagePlan payload(kProduceMessageBytes);
            Writer w = produceRequest(topic, partition, batch, payload);
            admit(false);
            a->deadline = Clock::now() + std::chrono::milliseconds(m_timeoutMs);
            try {
                start(a->call, partitionServer(topic, partition), w, &payload);
            } catch (...) {
                leaveInflight();
                throw;
            }
        } catch (...) {
            a->done(AppendResult{}, std::current_exception());
            return;
        }
        std::lock_guard<std::mutex> l(m_amutex);
        m_async.push_back(std::move(a));
        if (!m_progress.joinable()) m_progress = std::thread([this] { progressLoop(); });
        m_acv.notify_one();
    }

    std::vector<StoredBatch> fetch(const std::string& topic, uint32_t partition, uint64_t offset, size_t maxBytes,
                                   int64_t timeoutMs) override {
        Writer w = request(Op::Fetch);
        writePoll(w, {PollRequest::Kind::Fetch, topic, partition, offset, maxBytes, 0, timeoutMs});
        int server = partitionServer(topic, partition);
        std::vector<StoredBatch> out;
        call(server, w, nullptr, std::max<int64_t>(timeoutMs, 0), [&](Reader& r, int tag, Clock::time_point deadline) {
            uint32_t n = r.get<uint32_t>();
            if (n == 0) return;
            markTraffic(m_traffic);
            size_t total = 0;
            for (uint32_t i = 0; i < n; ++i) {
                StoredBatch sb{};
                sb.size = size_t(r.get<uint64_t>());
                sb.baseOffset = r.get<uint64_t>();
                sb.count = r.get<uint32_t>();
                sb.data = reinterpret_cast<const uint8_t*>(total); // an offset until the buffer exists
                total += sb.size;
                out.push_back(sb);
            }
            // A pooled, already-touched buffer (64-aligned: the batches, multiples of 8 long, stay 8-aligned).
            std::shared_ptr<uint8_t> buf = m_pool->get(total);
            if (Reader(r).get<uint32_t>() == 0) { // no payload messages: the bytes are in the reply
                r.get<uint32_t>();
                if (total > kInlineFetchBytes || r.remaining() != total)
                    throw Error(ErrorCode::Corruption,
                                "MPI transport: a fetch reply carries the wrong number of bytes");
                std::memcpy(buf.get(), r.take(total), total);
            } else {
                std::vector<uint64_t> lengths = getLengths(r, total);
                size_t off = 0;
                for (uint64_t n : lengths) {
                    receiveInto(server, tag, buf.get() + off, size_t(n), deadline);
                    off += size_t(n);
                }
            }
            for (auto& sb : out) {
                sb.data = buf.get() + reinterpret_cast<uintptr_t>(sb.data);
                sb.owner = buf;
            }
        });
        return out;
    }

    /**
     * One server: its version as is. Several (the topic's partitions are spread): the
     * waits go to every server holding a partition at once; the first change cancels
     * the others (CancelWait), so the call lasts no longer than the timeout and returns
     * as soon as any partition changed. The version handed out is the sum of the servers'
     * versions (each only grows, so the sum changes whenever one does); the per-server
     * versions behind recent sums are remembered to resume the wait. An unknown sum
     * returns at once with the current versions: a spurious wake, never a missed one.
     */
    uint64_t waitTopicChange(const std::string& topic, uint64_t version, int64_t timeoutMs) override {
        std::vector<int> servers = topicServers(topic);
        if (servers.size() == 1) {
            Writer w = request(Op::WaitTopicChange);
            writePoll(w, {PollRequest::Kind::WaitTopic, topic, 0, 0, 0, version, timeoutMs});
            auto reply = call(servers[0], w, nullptr, std::max<int64_t>(timeoutMs, 0));
            return reader(reply).get<uint64_t>();
        }
        std::vector<uint64_t> seen(servers.size(), UINT64_MAX);
        if (version != UINT64_MAX) {
            std::lock_guard<std::mutex> l(m_vmutex);
            auto& known = m_versions[topic];
            auto it = known.find(version);
            if (it != known.end() && it->second.size() == servers.size())
                seen = it->second;
            else
                timeoutMs = 0;
        }
        Guard g = enter(false);
        std::vector<Call> calls(servers.size());
        for (size_t i = 0; i < servers.size(); ++i) {
            Writer w = request(Op::WaitTopicChange);
            writePoll(w, {PollRequest::Kind::WaitTopic, topic, 0, 0, 0, seen[i], timeoutMs});
            start(calls[i], servers[i], w, nullptr);
        }
        auto deadline = Clock::now() + std::chrono::milliseconds(m_timeoutMs + std::max<int64_t>(timeoutMs, 0));
        std::vector<uint64_t> now(servers.size(), 0);
        std::exception_ptr error;
        std::deque<std::vector<uint8_t>> cancelMsgs;
        std::vector<MPI_Request> cancelReqs;
        bool cancelled = false;
        Backoff backoff = pacer();
        for (;;) {
            bool progress = false, all = true;
            for (size_t i = 0; i < calls.size(); ++i) {
                Call& c = calls[i];
                if (c.sent && c.got) continue;
                if (poll(c)) {
                    progress = true;
                    if (c.got) {
                        bool changed = true;
                        try {
                            now[i] = reader(checked(c.reply)).get<uint64_t>();
                            changed = now[i] != seen[i];
                        } catch (...) {
                            if (!error) error = std::current_exception();
                        }
                        if (changed && !cancelled) {
                            cancelled = true;
                            for (Call& o : calls) {
                                if (o.got) continue;
                                Writer cw = request(Op::CancelWait);
                                std::memcpy(cw.buf.data() + 1, &o.tag, sizeof(o.tag));
                                cancelMsgs.push_back(std::move(cw.buf));
                                auto& m = cancelMsgs.back();
                                cancelReqs.push_back(MPI_REQUEST_NULL);
                                check(MPI_Isend(m.data(), int(m.size()), MPI_BYTE, o.server, kRequestTag, m_req,
                                                &cancelReqs.back()),
                                      "MPI_Isend (cancel)");
                                if (m_wake) m_wake->wake(o.server);
                            }
                        }
                    }
                }
                if (!(c.sent && c.got)) all = false;
            }
            if (all && !cancelReqs.empty()) {
                int flag = 0;
                check(MPI_Testall(int(cancelReqs.size()), cancelReqs.data(), &flag, MPI_STATUSES_IGNORE),
                      "MPI_Testall (cancel)");
                all = flag != 0;
            }
            if (all) break;
            if (progress) continue;
            if (Clock::now() > deadline) {
                for (Call& o : calls)
                    if (!o.got) abandon(o.server, o.tag);
                timedOut(calls[0].server, m_timeoutMs + std::max<int64_t>(timeoutMs, 0));
            }
            backoff.idle();
        }
        if (error) std::rethrow_exception(error);
        uint64_t sum = 0;
        for (uint64_t v : now) sum += v;
        std::lock_guard<std::mutex> l(m_vmutex);
        auto& known = m_versions[topic];
        known[sum] = now;
        while (known.size() > 64) known.erase(known.begin());
        return sum;
    }

    void wakeTopic(const std::string& topic) override {
        for (int s : topicServers(topic)) simple(Op::WakeTopic, topic, s);
    }

    /// One server for a partition or the topic's coordinator; Every: each server (the topic's
    /// metadata lives on all of them), the coordinator first unless coordinatorLast.
    std::vector<uint8_t> control(const ControlRoute& route, const std::vector<uint8_t>& body) override {
        if (route.to == ControlRoute::To::Partition)
            return controlOn(partitionServer(route.topic, route.partition), body);
        int coord = coordinator(route.topic);
        if (route.to == ControlRoute::To::Coordinator) return controlOn(coord, body);
        std::vector<uint8_t> reply;
        if (!route.coordinatorLast) reply = controlOn(coord, body); // decides (e.g. refuses) before the others act
        for (int s : m_servers) {
            if (s == coord) continue;
            try {
                controlOn(s, body);
            } catch (const Error& e) {
                if (e.code() != route.tolerate) throw; // e.g. already there, or already gone (an interrupted call)
            }
        }
        if (route.coordinatorLast) reply = controlOn(coord, body);
        return reply;
    }

    std::vector<uint8_t> controlOn(int server, const std::vector<uint8_t>& body) {
        Writer w = request(Op::Control);
        w.bytes(body.data(), body.size());
        auto reply = call(server, w);
        return std::vector<uint8_t>(reply.begin() + 1, reply.end());
    }

    /// Wait for requests in flight, then tell every server this client left.
    void close() override {
        {
            std::unique_lock<std::mutex> l(m_mutex);
            if (m_closed) return;
            m_closed = true;
            m_idle.wait(l, [&] { return m_inflight == 0; });
        }
        stopProgress();
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized) return;
        bool broken;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            broken = m_broken;
        }
        for (int s : m_servers) {
            Writer w = request(Op::Bye);
            try {
                call(s, w, nullptr, 0, nullptr, /*leaving=*/true);
            } catch (const Error&) {
                // After a timeout, still say goodbye (a server that was only slow can then
                // finish), but a server that is gone must not turn close() into an error.
                if (!broken) throw;
            }
        }
        if (broken) drainAbandoned();
    }

    std::string url() const override { return m_url; }

  private:
    using Body = std::function<void(Reader&, int, Clock::time_point)>;

    /// A produce request: where, how long, and how the batch's pieces travel (see MessagePlan).
    static Writer produceRequest(const std::string& topic, uint32_t partition, const SealedBatch& batch,
                                 MessagePlan& payload) {
        for (const Piece& p : batch.pieces) payload.add(p.data, p.size);
        Writer w = request(Op::Produce);
        w.str(topic).put(partition).put<uint64_t>(batch.length);
        putLengths(w, payload.lengths());
        return w;
    }

    static AppendResult appendResult(const std::vector<uint8_t>& reply) {
        Reader r = reader(reply);
        AppendResult res;
        res.baseOffset = r.get<uint64_t>();
        res.duplicate = r.get<uint8_t>() != 0;
        return res;
    }

    /// One request on its way: its bytes, its sends, its reply.
    struct Call {
        int server = 0;
        int tag = 0;
        std::vector<uint8_t> msg;
        std::vector<MPI_Request> sends; ///< the request, then the payload's messages
        std::vector<uint8_t> reply;
        bool sent = false, got = false;
    };

    /// Count a request in flight (close() waits for none); refuses after close or a timeout
    /// unless @p leaving (the goodbye). Each admit() is matched by one leaveInflight().
    void admit(bool leaving) {
        std::lock_guard<std::mutex> l(m_mutex);
        if (m_closed && !leaving) throw Error(ErrorCode::Closed, "the MPI fabric is closed");
        if (m_broken && !leaving)
            throw Error(ErrorCode::Connection,
                        "an earlier request to an MPI server timed out; this fabric is unusable");
        ++m_inflight;
    }
    void leaveInflight() {
        std::lock_guard<std::mutex> l(m_mutex);
        if (--m_inflight == 0) m_idle.notify_all();
    }
    /// A synchronous request's admit(), left when it goes out of scope.
    struct Guard {
        MpiClient* c;
        ~Guard() { c->leaveInflight(); }
    };
    Guard enter(bool leaving) {
        admit(leaving);
        return Guard{this};
    }

    int partitionServer(const std::string& topic, uint32_t partition) const {
        return m_servers[partitionServerIndex(topic, partition, m_servers.size())];
    }
    int coordinator(const std::string& topic) const { return m_servers[coordinatorIndex(topic, m_servers.size())]; }

    void rememberPartitions(const std::string& topic, uint32_t partitions) {
        std::lock_guard<std::mutex> l(m_vmutex);
        m_partitions[topic] = partitions;
    }

    /// The servers holding at least one partition of @p topic, in index order.
    std::vector<int> topicServers(const std::string& topic) {
        if (m_servers.size() == 1) return m_servers;
        uint32_t parts = 0;
        {
            std::lock_guard<std::mutex> l(m_vmutex);
            auto it = m_partitions.find(topic);
            if (it != m_partitions.end()) parts = it->second;
        }
        if (parts == 0) {
            parts = describeOn(coordinator(topic), topic).config.partitions;
            rememberPartitions(topic, parts);
        }
        if (parts >= m_servers.size()) return m_servers;
        std::vector<int> out;
        for (uint32_t p = 0; p < parts; ++p) out.push_back(partitionServer(topic, p));
        std::sort(out.begin(), out.end());
        return out;
    }

    TopicInfo describeOn(int server, const std::string& name) {
        ControlRequest q;
        q.op = ControlOp::DescribeTopic;
        q.topic = name;
        auto reply = controlOn(server, encodeControl(q));
        Reader r(reply.data(), reply.size());
        return readTopicInfo(r);
    }

    static Writer request(Op op) {
        Writer w;
        w.put(uint8_t(op)).put<int32_t>(0); // the tag is filled in by start()
        return w;
    }

    static Reader reader(const std::vector<uint8_t>& reply) { return Reader(reply.data() + 1, reply.size() - 1); }

    /// The reply, or the server's error thrown.
    static const std::vector<uint8_t>& checked(const std::vector<uint8_t>& reply) {
        if (reply.empty()) throw Error(ErrorCode::Connection, "MPI transport: empty reply");
        if (reply[0] != 0) {
            Reader r(reply.data() + 1, reply.size() - 1);
            auto code = ErrorCode(r.get<int32_t>());
            if (int32_t(code) < 0 || int32_t(code) > int32_t(kLastErrorCode)) code = ErrorCode::Generic;
            throw Error(code, r.str());
        }
        return reply;
    }

    std::vector<uint8_t> simple(Op op, const std::string& topic, int server) {
        Writer w = request(op);
        w.str(topic);
        return call(server, w);
    }

    /// Send a request (and its payload) without waiting.
    void start(Call& c, int server, Writer& w, MessagePlan* payload) {
        c.server = server;
        c.tag = kFirstReplyTag + int(m_nextTag.fetch_add(1) % uint64_t(kLastReplyTag - kFirstReplyTag + 1));
        c.msg = std::move(w.buf);
        std::memcpy(c.msg.data() + 1, &c.tag, sizeof(c.tag));
        c.sends.assign(1, MPI_REQUEST_NULL);
        check(MPI_Isend(c.msg.data(), int(c.msg.size()), MPI_BYTE, server, kRequestTag, m_req, &c.sends[0]),
              "MPI_Isend (request)");
        if (payload && !payload->empty()) payload->isendAll(server, c.tag, m_req, c.sends);
        if (m_wake) {
            // Push the request out (MPI may hold it until the next progress call) before waking the server.
            int flag = 0;
            check(MPI_Testall(int(c.sends.size()), c.sends.data(), &flag, MPI_STATUSES_IGNORE),
                  "MPI_Testall (request)");
            c.sent = flag != 0;
            m_wake->wake(server);
        }
    }

    /// Move a call on (sends done? reply here?); true if anything happened.
    bool poll(Call& c) {
        bool progress = false;
        if (!c.sent) {
            int flag = 0;
            check(MPI_Testall(int(c.sends.size()), c.sends.data(), &flag, MPI_STATUSES_IGNORE),
                  "MPI_Testall (request)");
            if (flag) c.sent = progress = true;
        }
        if (!c.got) {
            int flag = 0;
            MPI_Message m;
            MPI_Status st;
            check(MPI_Improbe(c.server, c.tag, m_rep, &flag, &m, &st), "MPI_Improbe (reply)");
            if (flag) {
                mrecvWhole(m, st, c.reply, "MPI_Mrecv (reply)");
                c.got = progress = true;
            }
        }
        return progress;
    }

    /// A produce started by produceAsync, waiting for its reply.
    struct AsyncCall {
        Call call;
        ProduceCallback done;
        Clock::time_point deadline;
    };

    /// Polls the asynchronous produces (oldest first) until stopProgress(); sleeps while there are none.
    void progressLoop() {
        Backoff backoff = pacer();
        std::unique_lock<std::mutex> l(m_amutex);
        for (;;) {
            m_acv.wait(l, [&] { return m_stopAsync || !m_async.empty(); });
            if (m_async.empty()) return; // stopping, nothing left
            // Only this thread removes entries; new ones are appended under the lock.
            std::vector<AsyncCall*> now;
            for (auto& a : m_async) now.push_back(a.get());
            l.unlock();
            bool progress = false, sending = false;
            std::vector<AsyncCall*> finished;
            std::exception_ptr timeout;
            for (AsyncCall* a : now) {
                Call& c = a->call;
                try {
                    if (poll(c)) progress = true;
                    if (!c.sent) sending = true;
                    if (c.sent && c.got)
                        finished.push_back(a);
                    else if (Clock::now() > a->deadline) {
                        for (AsyncCall* o : now)
                            if (!o->call.got) abandon(o->call.server, o->call.tag);
                        timedOut(c.server, m_timeoutMs);
                    }
                } catch (...) {
                    timeout = std::current_exception(); // fails this and every later call: the fabric is broken
                    break;
                }
            }
            for (AsyncCall* a : finished) {
                AppendResult res{};
                std::exception_ptr err;
                try {
                    res = appendResult(checked(a->call.reply));
                } catch (...) {
                    err = std::current_exception();
                }
                a->done(res, err);
            }
            l.lock();
            for (AsyncCall* a : finished)
                m_async.erase(std::find_if(m_async.begin(), m_async.end(), [&](auto& p) { return p.get() == a; }));
            size_t gone = finished.size();
            if (timeout) {
                std::deque<std::unique_ptr<AsyncCall>> failed;
                failed.swap(m_async);
                l.unlock();
                for (auto& a : failed) a->done(AppendResult{}, timeout);
                gone += failed.size();
                l.lock();
            }
            if (gone) {
                l.unlock();
                for (size_t i = 0; i < gone; ++i) leaveInflight();
                l.lock();
            }
            if (progress || gone) {
                backoff.reset();
            } else {
                l.unlock();
                if (sending)
                    backoff.idleSending(); // the receiver copies; leave it the core
                else
                    backoff.idle();
                l.lock();
            }
        }
    }

    void stopProgress() {
        {
            std::lock_guard<std::mutex> l(m_amutex);
            m_stopAsync = true;
            m_acv.notify_all();
        }
        if (m_progress.joinable() && m_progress.get_id() != std::this_thread::get_id()) m_progress.join();
    }

    /// A request given up on: its late reply (and payload) must not be left unreceived, or it
    /// could match a request of a later fabric whose communicator reuses the context.
    void abandon(int server, int tag) {
        std::lock_guard<std::mutex> l(m_mutex);
        m_abandoned.emplace_back(server, tag);
    }

    /// Receive and drop what arrived for abandoned requests (called after the servers' goodbyes:
    /// a server answers in order, so anything late is here by then). Bounded: a dead server sends nothing.
    void drainAbandoned() {
        std::vector<std::pair<int, int>> left;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            left.swap(m_abandoned);
        }
        auto until = Clock::now() + std::chrono::milliseconds(200);
        Backoff backoff = pacer();
        for (auto& [server, tag] : left) {
            for (;;) {
                int flag = 0;
                MPI_Message m;
                MPI_Status st;
                if (MPI_Improbe(server, tag, m_rep, &flag, &m, &st) != MPI_SUCCESS) break;
                if (flag) {
                    int n = 0;
                    MPI_Get_count(&st, MPI_BYTE, &n);
                    std::vector<uint8_t> junk(size_t(std::max(n, 0)));
                    MPI_Mrecv(junk.data(), n, MPI_BYTE, &m, MPI_STATUS_IGNORE);
                    until = std::max(until, Clock::now() + std::chrono::milliseconds(50)); // a payload may follow
                    continue;
                }
                if (Clock::now() > until) break;
                backoff.idle();
            }
        }
    }

    /// How every poller of this client waits: eagerly while events flow, then sleeping.
    Backoff pacer() const { return Backoff(&m_traffic, m_spindownUs, m_wake.get()); }

    [[noreturn]] void timedOut(int server, int64_t ms) {
        // A late reply could be matched by a later request: this client is done.
        std::lock_guard<std::mutex> l(m_mutex);
        m_broken = true;
        throw Error(ErrorCode::Timeout, "MPI server rank " + std::to_string(server) + " did not answer within " +
                                            std::to_string(ms / 1000.0) +
                                            " s; is it alive and inside mofka_py.mpi.fabric()?");
    }

    /// Send a request (and its payload), wait for the reply; @p body reads
    /// what follows the reply (fetch payloads) while the request still holds its tag.
    std::vector<uint8_t> call(int server, Writer& w, MessagePlan* payload = nullptr, int64_t extraMs = 0,
                              const Body& body = nullptr, bool leaving = false) {
        Guard g = enter(leaving);
        Call c;
        start(c, server, w, payload);
        auto deadline = Clock::now() + std::chrono::milliseconds(m_timeoutMs + extraMs);
        Backoff backoff = pacer();
        while (!(c.sent && c.got)) {
            if (poll(c)) continue;
            if (Clock::now() > deadline) {
                abandon(server, c.tag);
                timedOut(server, m_timeoutMs + extraMs);
            }
            backoff.idle(!c.sent);
        }
        checked(c.reply);
        if (body) {
            Reader r = reader(c.reply);
            body(r, c.tag, deadline);
        }
        return std::move(c.reply);
    }

    /// Receive exactly @p size bytes from @p server on @p tag into @p dst.
    void receiveInto(int server, int tag, uint8_t* dst, size_t size, Clock::time_point deadline) {
        Backoff backoff = pacer();
        for (;;) {
            int flag = 0;
            MPI_Message m;
            MPI_Status st;
            check(MPI_Improbe(server, tag, m_rep, &flag, &m, &st), "MPI_Improbe (batches)");
            if (flag) {
                int n = 0;
                MPI_Get_count(&st, MPI_BYTE, &n);
                if (size_t(n) != size) {
                    MPI_Mrecv(nullptr, 0, MPI_BYTE, &m, MPI_STATUS_IGNORE);
                    throw Error(ErrorCode::Connection, "MPI transport: fetched batches have an unexpected size");
                }
                check(MPI_Mrecv(dst, n, MPI_BYTE, &m, MPI_STATUS_IGNORE), "MPI_Mrecv (batches)");
                return;
            }
            if (Clock::now() > deadline) {
                abandon(server, tag);
                std::lock_guard<std::mutex> l(m_mutex);
                m_broken = true;
                throw Error(ErrorCode::Timeout,
                            "MPI server rank " + std::to_string(server) + " stopped sending fetched batches");
            }
            backoff.idle();
        }
    }

    MPI_Comm m_req, m_rep;
    std::vector<int> m_servers;
    int64_t m_timeoutMs;
    int64_t m_spindownUs;
    Traffic m_traffic{0}; ///< when this rank last produced or fetched events
    std::string m_url;
    std::shared_ptr<WakeChannel> m_wake; ///< this rank's wake-ups (may be null)
    std::atomic<uint64_t> m_nextTag{0};
    std::shared_ptr<BufferPool> m_pool = std::make_shared<BufferPool>(size_t(256) << 20);
    std::mutex m_mutex;
    std::condition_variable m_idle;
    int m_inflight = 0;
    bool m_closed = false;
    bool m_broken = false;
    std::vector<std::pair<int, int>> m_abandoned; ///< (server, tag) of timed-out requests; guarded by m_mutex
    std::mutex m_amutex; ///< guards the asynchronous produces below
    std::condition_variable m_acv;
    std::deque<std::unique_ptr<AsyncCall>> m_async;
    bool m_stopAsync = false;
    std::thread m_progress;
    std::mutex m_vmutex; ///< guards the two caches below
    std::map<std::string, uint32_t> m_partitions; ///< partition count per topic
    std::map<std::string, std::map<uint64_t, std::vector<uint64_t>>> m_versions; ///< sum -> per-server versions
};

} // namespace

std::shared_ptr<BrokerClient> makeMpiClient(MPI_Comm requests, MPI_Comm replies, std::vector<int> servers,
                                            int64_t requestTimeoutMs, int64_t spindownUs, std::string url,
                                            std::shared_ptr<mpi::WakeChannel> wake) {
    return std::make_shared<MpiClient>(requests, replies, std::move(servers), requestTimeoutMs, spindownUs,
                                       std::move(url), std::move(wake));
}

} // namespace mofka_py
