#include "transport/mpi/Backoff.hpp"
#include "transport/mpi/BufferPool.hpp"
#include "transport/mpi/MessagePlan.hpp"
#include "transport/mpi/MpiCheck.hpp"
#include "transport/mpi/MpiProtocol.hpp"
#include "transport/mpi/MpiTransport.hpp"

#include "broker/ControlHandler.hpp"
#include "broker/LongPolls.hpp"
#include "wire/Messages.hpp"

#include "mofka_py/Crc32c.hpp"
#include "mofka_py/RecordBatch.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <list>

namespace mofka_py {

using namespace mpi;
using Clock = std::chrono::steady_clock;

struct MpiServer::State {
    MPI_Comm req, rep;
    std::shared_ptr<Broker> broker;
    int clients;
    int64_t spindownUs;
    std::shared_ptr<WakeChannel> wake; ///< may be null
    int byes = 0;
    Traffic traffic{0}; ///< when events last came in or went out

    /// Receive buffers of produced batches, reused (warm pages) batch after batch.
    std::shared_ptr<BufferPool> pool = std::make_shared<BufferPool>(size_t(256) << 20);

    /// A reply being sent; its buffers and the stored batches it reads stay alive until done.
    struct Send {
        std::vector<MPI_Request> reqs; ///< the reply, then its payload's messages
        std::vector<uint8_t> head;
        std::vector<Owner> keep;
    };
    /// A produced batch being received.
    struct Incoming {
        std::vector<MPI_Request> reqs; ///< one per payload message
        int src, tag;
        std::string topic;
        uint32_t partition;
        SealedBatch batch;
        std::shared_ptr<uint8_t> body;
        bool direct = false; ///< received straight into the partition's log (a reservation)
        // The CRC of what has landed so far, message by message (see land()).
        uint8_t* base = nullptr; ///< where the batch is received
        std::vector<uint64_t> lengths; ///< of its messages
        size_t landed = 0; ///< messages received and checked
        uint64_t landedBytes = 0;
        uint32_t crc = 0; ///< CRC32C of the covered bytes among them (direct receives)
        bool damage = false; ///< test hook: flip a bit of the last byte once it has landed

        /// Fold every message received since the last call into the CRC while it is still in
        /// cache; true once the whole batch is here.
        bool land() {
            while (landed < reqs.size()) {
                int flag = 0;
                check(MPI_Test(&reqs[landed], &flag, MPI_STATUS_IGNORE), "receiving a record batch");
                if (!flag) return false;
                uint64_t from = std::max<uint64_t>(landedBytes, kCrcCoverageStart);
                landedBytes += lengths[landed++];
                if (damage && landed == reqs.size()) base[landedBytes - 1] ^= 0x01;
                // A buffered batch is checked by the log as it copies it in (Broker::produce): only a
                // batch received straight into the log is checked here.
                if (direct && landedBytes > from) crc = crc32c(crc, base + from, size_t(landedBytes - from));
            }
            return true;
        }
    };
    /// Where a long poll's answer goes: the client rank and the request's tag.
    struct PollWho {
        int src, tag;
    };
    std::list<Send> sends;
    std::list<Incoming> incoming;
    /// Test hook (MOFKA_PY_TEST_DAMAGE_MPI_BATCH=<bytes>): every produced batch of at least this
    /// many bytes has a bit flipped once it has landed, a transfer fault the check must catch. 0: off.
    uint64_t damageFrom = [] {
        const char* v = std::getenv("MOFKA_PY_TEST_DAMAGE_MPI_BATCH");
        return v ? std::strtoull(v, nullptr, 10) : 0ull;
    }();
    ParkedPolls<PollWho> parked; ///< fetches and waits that found nothing yet (long polls)

    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::atomic<bool> stopping{false};
    std::exception_ptr error;

    static Writer ok() {
        Writer w;
        w.put<uint8_t>(0);
        return w;
    }

    void send(int dst, int tag, Writer& w) {
        Send& s = sends.emplace_back();
        s.head = std::move(w.buf);
        s.reqs.assign(1, MPI_REQUEST_NULL);
        check(MPI_Isend(s.head.data(), int(s.head.size()), MPI_BYTE, dst, tag, rep, &s.reqs[0]), "MPI_Isend (reply)");
        if (wake) {
            int flag = 0; // push the reply out (MPI may hold it until the next progress call), then wake
            check(MPI_Test(&s.reqs[0], &flag, MPI_STATUS_IGNORE), "MPI_Test (reply)");
            wake->wake(dst);
        }
    }

    void sendError(int dst, int tag, ErrorCode code, const std::string& msg) {
        Writer w;
        w.put<uint8_t>(1).put<int32_t>(int32_t(code)).str(msg);
        send(dst, tag, w);
    }

    /// The reply of a fetch: sizes and message lengths first, then the stored bytes straight
    /// from the log (batches adjacent in a segment travel as one contiguous message).
    void sendBatches(int dst, int tag, const std::vector<StoredBatch>& batches) {
        if (!batches.empty()) markTraffic(traffic);
        Writer w = ok();
        w.put<uint32_t>(uint32_t(batches.size()));
        MessagePlan where;
        std::vector<Owner> keep;
        size_t total = 0;
        for (const StoredBatch& b : batches) {
            w.put<uint64_t>(b.size).put(b.baseOffset).put(b.count);
            where.add(b.data, b.size);
            keep.push_back(b.owner);
            total += b.size;
        }
        if (batches.empty()) {
            send(dst, tag, w);
            return;
        }
        if (total <= kInlineFetchBytes) {
            // Small: the stored bytes ride in the reply itself (no payload messages), one
            // message less on the way to a waiting consumer.
            putLengths(w, {});
            for (const StoredBatch& b : batches) w.bytes(b.data, b.size);
            send(dst, tag, w);
            return;
        }
        putLengths(w, where.lengths());
        send(dst, tag, w);
        Send& s = sends.back();
        s.keep = std::move(keep);
        where.isendAll(dst, tag, rep, s.reqs);
    }

    void startProduce(int src, int tag, Reader& r) {
        markTraffic(traffic);
        std::string topic = r.str();
        uint32_t partition = r.get<uint32_t>();
        uint64_t length = r.get<uint64_t>();
        const uint32_t nmsg = Reader(r).get<uint32_t>(); // how many messages to take off the wire, come what may
        std::vector<uint64_t> lengths;
        std::string problem;
        if (length < kBatchHeaderSize || length > uint64_t(INT_MAX) || length % 8 != 0) {
            problem = "record batch of invalid length " + std::to_string(length);
        } else {
            try {
                lengths = getLengths(r, length);
            } catch (const Error& e) {
                problem = e.what();
            }
        }
        if (!problem.empty()) {
            // Take the payload's messages off the wire anyway (so they match nothing later), then refuse it.
            for (uint32_t i = 0; i < std::min<uint32_t>(nmsg, 1u << 16); ++i) {
                MPI_Message m;
                MPI_Status st;
                check(MPI_Mprobe(src, tag, req, &m, &st), "MPI_Mprobe (batch)");
                std::vector<uint8_t> junk;
                mrecvWhole(m, st, junk, "MPI_Mrecv (batch)");
            }
            sendError(src, tag, ErrorCode::InvalidArgument, problem);
            return;
        }
        Incoming& in = incoming.emplace_back();
        in.src = src;
        in.tag = tag;
        in.topic = std::move(topic);
        in.partition = partition;
        in.batch.length = length;
        in.damage = damageFrom != 0 && length >= damageFrom;
        // In memory, and no earlier batch of this partition waiting to be copied in: receive
        // straight into the log, past its end (MPI's copy is then the only one). Otherwise the
        // whole batch goes into one pooled (warm) buffer and the log copies it when it is here.
        bool buffered = std::any_of(incoming.begin(), std::prev(incoming.end()), [&](const Incoming& o) {
            return !o.direct && o.partition == in.partition && o.topic == in.topic;
        });
        uint8_t* dst = nullptr;
        if (!buffered) {
            try {
                dst = broker->reserve(in.topic, in.partition, length);
            } catch (const Error&) {
                dst = nullptr; // unknown topic or partition: received, then refused by the normal path
            }
        }
        if (dst) {
            in.direct = true;
            in.base = dst;
        } else {
            in.body = pool->get(size_t(length));
            in.base = in.body.get();
        }
        irecvAll(in.base, lengths, src, tag, req, in.reqs);
        in.lengths = std::move(lengths);
    }

    void finishProduce(Incoming& in) {
        if (in.direct) {
            AppendResult res = broker->commitReserved(in.topic, in.partition, CrcMode::Verify, in.crc);
            Writer w = ok();
            w.put(res.baseOffset).put<uint8_t>(res.duplicate ? 1 : 0);
            send(in.src, in.tag, w);
            return;
        }
        in.batch.head.assign(in.body.get(), in.body.get() + kBatchHeaderSize);
        in.batch.pieces.push_back({in.batch.head.data(), kBatchHeaderSize});
        if (in.batch.length > kBatchHeaderSize)
            in.batch.pieces.push_back({in.body.get() + kBatchHeaderSize, size_t(in.batch.length) - kBatchHeaderSize});
        const BatchHeader& h = in.batch.header();
        if (h.magic != kBatchMagic || h.length != in.batch.length || h.lengthCheck != lengthCheck(h.length))
            throw Error(ErrorCode::Corruption, "malformed record batch received over MPI; it was not stored");
        in.batch.count = h.count;
        AppendResult res = broker->produce(in.topic, in.partition, in.batch, CrcMode::Verify);
        Writer w = ok();
        w.put(res.baseOffset).put<uint8_t>(res.duplicate ? 1 : 0);
        send(in.src, in.tag, w);
    }

    /// Send a poll's answer: the batches, the topic's version or the error.
    void replyPoll(const PollWho& who, const PollRequest& q, PollAnswer& a) {
        if (a.failed) {
            sendError(who.src, who.tag, a.code, a.message);
        } else if (q.kind == PollRequest::Kind::Fetch) {
            sendBatches(who.src, who.tag, a.batches);
        } else {
            Writer w = ok();
            w.put(a.version);
            send(who.src, who.tag, w);
        }
    }

    auto replier() {
        return [this](const PollWho& who, const PollRequest& q, PollAnswer& a) { replyPoll(who, q, a); };
    }

    void handle(int src, const std::vector<uint8_t>& msg) {
        Reader r(msg.data(), msg.size());
        Op op = Op(r.get<uint8_t>());
        int tag = r.get<int32_t>();
        try {
            dispatch(op, src, tag, r);
        } catch (const Error& e) {
            sendError(src, tag, e.code(), e.what());
        } catch (const std::exception& e) {
            sendError(src, tag, ErrorCode::Generic, e.what());
        }
    }

    void dispatch(Op op, int src, int tag, Reader& r) {
        Writer w = ok();
        switch (op) {
        case Op::Produce: startProduce(src, tag, r); return;
        case Op::Fetch:
        case Op::WaitTopicChange:
            parked.submit(*broker, PollWho{src, tag},
                          readPoll(r, op == Op::Fetch ? PollRequest::Kind::Fetch : PollRequest::Kind::WaitTopic),
                          replier());
            return;
        case Op::WakeTopic: {
            // A consumer is closing: end this rank's long polls on the topic now (an empty
            // answer) rather than at their timeout.
            std::string t = r.str();
            broker->wakeTopic(t);
            parked.answerNow(
                *broker, [&](const PollWho& w, const PollRequest& q) { return w.src == src && q.topic == t; },
                replier());
            break;
        }
        case Op::Control: {
            size_t n = r.remaining();
            ControlResult res = handleControl(*broker, r.take(n), n); // parked requests are polled every round
            w.bytes(res.reply.data(), res.reply.size());
            break;
        }
        case Op::Bye: ++byes; break;
        case Op::CancelWait:
            // One-way (no reply of its own): the client got a change from another server and
            // wants its wait here answered now. It may have been answered already.
            parked.answerNow(
                *broker,
                [&](const PollWho& w, const PollRequest& q) {
                    return w.src == src && w.tag == tag && q.kind == PollRequest::Kind::WaitTopic;
                },
                replier());
            return;
        default: throw Error(ErrorCode::InvalidArgument, "unknown MPI request " + std::to_string(int(op)));
        }
        send(src, tag, w);
    }

    /// One pass over everything; true if anything happened.
    bool poll() {
        bool progress = false;
        for (int i = 0; i < 64; ++i) {
            int flag = 0;
            MPI_Message m;
            MPI_Status st;
            check(MPI_Improbe(MPI_ANY_SOURCE, kRequestTag, req, &flag, &m, &st), "MPI_Improbe (request)");
            if (!flag) break;
            std::vector<uint8_t> msg;
            mrecvWhole(m, st, msg, "MPI_Mrecv (request)");
            handle(st.MPI_SOURCE, msg);
            progress = true;
        }
        // A source may have several batches in flight: store them in the order they were
        // sent (the log drops a producer's batch whose sequence is not past the last one).
        // Likewise a partition's batches are stored in arrival order (its reservations are
        // committed in the order they were made).
        std::vector<int> waiting; // sources with an earlier batch still arriving
        std::vector<std::pair<const std::string*, uint32_t>> blocked; // partitions likewise
        auto isBlocked = [&](const Incoming& in) {
            return std::any_of(blocked.begin(), blocked.end(),
                               [&](auto& b) { return b.second == in.partition && *b.first == in.topic; });
        };
        for (auto it = incoming.begin(); it != incoming.end();) {
            if (std::find(waiting.begin(), waiting.end(), it->src) != waiting.end() || isBlocked(*it)) {
                waiting.push_back(it->src);
                blocked.emplace_back(&it->topic, it->partition);
                ++it;
                continue;
            }
            bool here = true;
            std::exception_ptr failed; // the transfer failed: answered below
            try {
                here = it->land();
            } catch (...) {
                failed = std::current_exception();
            }
            if (!here) {
                waiting.push_back(it->src);
                blocked.emplace_back(&it->topic, it->partition);
                ++it;
                continue;
            }
            try {
                if (failed) {
                    if (it->direct) broker->cancelReserved(it->topic, it->partition);
                    std::rethrow_exception(failed);
                }
                finishProduce(*it);
            } catch (const Error& e) {
                sendError(it->src, it->tag, e.code(), e.what());
            } catch (const std::exception& e) {
                sendError(it->src, it->tag, ErrorCode::Generic, e.what());
            }
            it = incoming.erase(it);
            progress = true;
        }
        if (!parked.empty() && parked.poll(*broker, steadyMs(), replier()) > 0) progress = true;
        for (auto it = sends.begin(); it != sends.end();) {
            int flag = 0;
            check(MPI_Testall(int(it->reqs.size()), it->reqs.data(), &flag, MPI_STATUSES_IGNORE),
                  "MPI_Testall (reply)");
            if (flag) {
                it = sends.erase(it);
                progress = true;
            } else {
                ++it;
            }
        }
        return progress;
    }

    bool finished() const { return byes >= clients && sends.empty() && incoming.empty() && parked.empty(); }
};

MpiServer::MpiServer(MPI_Comm requests, MPI_Comm replies, std::shared_ptr<Broker> broker, int clients,
                     int64_t spindownUs, std::shared_ptr<WakeChannel> wake)
: m_state(new State{requests, replies, std::move(broker), clients, spindownUs, std::move(wake)}) {
    m_thread = std::thread([this] { run(); });
}

MpiServer::~MpiServer() {
    try {
        join();
    } catch (...) {}
}

void MpiServer::run() {
    State& s = *m_state;
    Backoff backoff(&s.traffic, s.spindownUs, s.wake.get());
    try {
        while (!s.finished() && !s.stopping) {
            if (s.poll())
                backoff.reset();
            else
                backoff.idle(!s.incoming.empty() || !s.sends.empty());
        }
    } catch (...) {
        std::lock_guard<std::mutex> l(s.mutex);
        s.error = std::current_exception();
    }
    std::lock_guard<std::mutex> l(s.mutex);
    s.done = true;
    s.cv.notify_all();
}

void MpiServer::stop() {
    m_state->stopping = true;
    if (m_thread.joinable()) m_thread.join();
}

bool MpiServer::waitDone(int64_t timeoutMs) {
    State& s = *m_state;
    std::unique_lock<std::mutex> l(s.mutex);
    if (timeoutMs < 0)
        s.cv.wait(l, [&] { return s.done; });
    else
        s.cv.wait_for(l, std::chrono::milliseconds(timeoutMs), [&] { return s.done; });
    return s.done;
}

void MpiServer::join() {
    if (m_thread.joinable()) {
        waitDone(-1);
        m_thread.join();
    }
    std::exception_ptr e;
    {
        std::lock_guard<std::mutex> l(m_state->mutex);
        e = m_state->error;
        m_state->error = nullptr;
    }
    if (e) std::rethrow_exception(e);
}

} // namespace mofka_py
