#include "transport/mpi/MpiProtocol.hpp"
#include "transport/mpi/MpiTransport.hpp"

#include "mofka_py/RecordBatch.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>

namespace mofka_py {
namespace {

using namespace mpi;
using Clock = std::chrono::steady_clock;

class MpiClient final : public BrokerClient {
  public:
    MpiClient(MPI_Comm requests, MPI_Comm replies, std::vector<int> servers, int64_t timeoutMs, std::string url)
    : m_req(requests), m_rep(replies), m_servers(std::move(servers)), m_timeoutMs(timeoutMs), m_url(std::move(url)) {}

    ~MpiClient() override {
        try { close(); } catch (...) {}
    }

    void createTopic(const std::string& name, const TopicConfig& config) override {
        Writer w = request(Op::CreateTopic);
        w.str(name).config(config);
        call(serverFor(name), w);
    }

    std::vector<std::string> listTopics() override {
        std::vector<std::string> all;
        for (int s : m_servers) {
            Writer w = request(Op::ListTopics);
            auto reply = call(s, w);
            Reader r = reader(reply);
            uint32_t n = r.get<uint32_t>();
            for (uint32_t i = 0; i < n; ++i) all.push_back(r.str());
        }
        std::sort(all.begin(), all.end());
        return all;
    }

    TopicInfo describeTopic(const std::string& name) override {
        Writer w = request(Op::DescribeTopic);
        w.str(name);
        auto reply = call(serverFor(name), w);
        Reader r = reader(reply);
        TopicInfo info;
        info.name = r.str();
        info.config = r.config();
        info.complete = r.get<uint8_t>() != 0;
        uint32_t n = r.get<uint32_t>();
        for (uint32_t i = 0; i < n; ++i) {
            PartitionInfo p;
            p.partition = r.get<uint32_t>();
            p.startOffset = r.get<uint64_t>();
            p.endOffset = r.get<uint64_t>();
            p.sizeBytes = r.get<uint64_t>();
            info.partitions.push_back(p);
        }
        return info;
    }

    AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch) override {
        // The CRC is computed here, once, and checked by the server's log.
        batch.header().crc = batchCrc(batch.pieces);
        Writer w = request(Op::Produce);
        w.str(topic).put(partition).put<uint64_t>(batch.length);
        AddressList payload;
        for (const Piece& p : batch.pieces) payload.add(p.data, p.size);
        auto reply = call(serverFor(topic), w, &payload);
        Reader r = reader(reply);
        AppendResult res;
        res.baseOffset = r.get<uint64_t>();
        res.duplicate = r.get<uint8_t>() != 0;
        return res;
    }

    std::vector<StoredBatch> fetch(const std::string& topic, uint32_t partition, uint64_t offset, size_t maxBytes,
                                   int64_t timeoutMs) override {
        Writer w = request(Op::Fetch);
        w.str(topic).put(partition).put(offset).put<uint64_t>(maxBytes).put(timeoutMs);
        int server = serverFor(topic);
        std::vector<StoredBatch> out;
        call(server, w, nullptr, std::max<int64_t>(timeoutMs, 0), [&](Reader& r, int tag, Clock::time_point deadline) {
            uint32_t n = r.get<uint32_t>();
            if (n == 0) return;
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
            receiveInto(server, tag, buf.get(), total, deadline);
            for (auto& sb : out) {
                sb.data = buf.get() + reinterpret_cast<uintptr_t>(sb.data);
                sb.owner = buf;
            }
        });
        return out;
    }

    uint64_t waitTopicChange(const std::string& topic, uint64_t version, int64_t timeoutMs) override {
        Writer w = request(Op::WaitTopicChange);
        w.str(topic).put(version).put(timeoutMs);
        auto reply = call(serverFor(topic), w, nullptr, std::max<int64_t>(timeoutMs, 0));
        return reader(reply).get<uint64_t>();
    }

    std::pair<uint64_t, uint64_t> offsets(const std::string& topic, uint32_t partition) override {
        Writer w = request(Op::Offsets);
        w.str(topic).put(partition);
        auto reply = call(serverFor(topic), w);
        Reader r = reader(reply);
        uint64_t a = r.get<uint64_t>();
        return {a, r.get<uint64_t>()};
    }

    void markComplete(const std::string& topic) override { simple(Op::MarkComplete, topic); }
    void wakeTopic(const std::string& topic) override { simple(Op::WakeTopic, topic); }

    bool isComplete(const std::string& topic) override {
        auto reply = simple(Op::IsComplete, topic);
        return reader(reply).get<uint8_t>() != 0;
    }

    std::string joinGroup(const std::string& group, const std::string& topic, const std::string& member) override {
        Writer w = request(Op::JoinGroup);
        w.str(group).str(topic).str(member);
        auto reply = call(serverFor(topic), w);
        return reader(reply).str();
    }

    void leaveGroup(const std::string& group, const std::string& topic, const std::string& member) override {
        Writer w = request(Op::LeaveGroup);
        w.str(group).str(topic).str(member);
        call(serverFor(topic), w);
    }

    Assignment assignment(const std::string& group, const std::string& topic, const std::string& member) override {
        Writer w = request(Op::Assignment);
        w.str(group).str(topic).str(member);
        auto reply = call(serverFor(topic), w);
        Reader r = reader(reply);
        Assignment a;
        a.generation = r.get<uint64_t>();
        a.pending = r.get<uint32_t>();
        uint32_t n = r.get<uint32_t>();
        for (uint32_t i = 0; i < n; ++i) a.partitions.push_back(r.get<uint32_t>());
        return a;
    }

    void releasePartitions(const std::string& group, const std::string& topic, const std::string& member,
                           const std::vector<uint32_t>& partitions) override {
        Writer w = request(Op::ReleasePartitions);
        w.str(group).str(topic).str(member).put<uint32_t>(uint32_t(partitions.size()));
        for (uint32_t p : partitions) w.put(p);
        call(serverFor(topic), w);
    }

    void commit(const std::string& group, const std::string& topic,
                const std::vector<std::pair<uint32_t, uint64_t>>& offsets) override {
        Writer w = request(Op::Commit);
        w.str(group).str(topic).put<uint32_t>(uint32_t(offsets.size()));
        for (auto& [p, o] : offsets) w.put(p).put(o);
        call(serverFor(topic), w);
    }

    std::optional<uint64_t> committed(const std::string& group, const std::string& topic, uint32_t partition) override {
        Writer w = request(Op::Committed);
        w.str(group).str(topic).put(partition);
        auto reply = call(serverFor(topic), w);
        Reader r = reader(reply);
        bool has = r.get<uint8_t>() != 0;
        uint64_t v = r.get<uint64_t>();
        return has ? std::optional<uint64_t>(v) : std::nullopt;
    }

    std::vector<std::string> groups(const std::string& topic) override {
        auto reply = simple(Op::Groups, topic);
        Reader r = reader(reply);
        std::vector<std::string> out(r.get<uint32_t>());
        for (auto& g : out) g = r.str();
        return out;
    }

    /// Wait for requests in flight, then tell every server this client left.
    void close() override {
        {
            std::unique_lock<std::mutex> l(m_mutex);
            if (m_closed) return;
            m_closed = true;
            m_idle.wait(l, [&] { return m_inflight == 0; });
        }
        if (m_broken) return;
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized) return;
        for (int s : m_servers) {
            Writer w = request(Op::Bye);
            call(s, w, nullptr, 0, nullptr, /*leaving=*/true);
        }
    }

    std::string url() const override { return m_url; }

  private:
    using Body = std::function<void(Reader&, int, Clock::time_point)>;

    int serverFor(const std::string& topic) const { return m_servers[topicHash(topic) % m_servers.size()]; }

    static Writer request(Op op) {
        Writer w;
        w.put(uint8_t(op)).put<int32_t>(0); // the tag is filled in by call()
        return w;
    }

    static Reader reader(const std::vector<uint8_t>& reply) { return Reader(reply.data() + 1, reply.size() - 1); }

    std::vector<uint8_t> simple(Op op, const std::string& topic) {
        Writer w = request(op);
        w.str(topic);
        return call(serverFor(topic), w);
    }

    /// Send a request (and its payload), wait for the reply; @p body reads
    /// what follows the reply (fetch payloads) while the request still holds its tag.
    std::vector<uint8_t> call(int server, Writer& w, AddressList* payload = nullptr, int64_t extraMs = 0,
                              const Body& body = nullptr, bool leaving = false) {
        {
            std::lock_guard<std::mutex> l(m_mutex);
            if (m_closed && !leaving) throw Error(ErrorCode::Closed, "the MPI fabric is closed");
            if (m_broken)
                throw Error(ErrorCode::Connection, "an earlier request to an MPI server timed out; this fabric is unusable");
            ++m_inflight;
        }
        struct Done {
            MpiClient* c;
            ~Done() {
                std::lock_guard<std::mutex> l(c->m_mutex);
                if (--c->m_inflight == 0) c->m_idle.notify_all();
            }
        } done{this};

        int tag = kFirstReplyTag + int(m_nextTag.fetch_add(1) % uint64_t(kLastReplyTag - kFirstReplyTag + 1));
        std::vector<uint8_t>& msg = w.buffer();
        std::memcpy(msg.data() + 1, &tag, sizeof(tag));
        auto deadline = Clock::now() + std::chrono::milliseconds(m_timeoutMs + extraMs);

        MPI_Request sends[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
        check(MPI_Isend(msg.data(), int(msg.size()), MPI_BYTE, server, kRequestTag, m_req, &sends[0]), "MPI_Isend (request)");
        if (payload && !payload->empty()) {
            MPI_Datatype t = payload->commit();
            int rc = MPI_Isend(MPI_BOTTOM, 1, t, server, tag, m_req, &sends[1]);
            MPI_Type_free(&t);
            check(rc, "MPI_Isend (batch)");
        }
        std::vector<uint8_t> reply;
        Backoff backoff;
        bool sent = false, got = false;
        while (!(sent && got)) {
            bool progress = false;
            if (!sent) {
                int flag = 0;
                check(MPI_Testall(2, sends, &flag, MPI_STATUSES_IGNORE), "MPI_Testall (request)");
                if (flag) sent = progress = true;
            }
            if (!got) {
                int flag = 0;
                MPI_Message m;
                MPI_Status st;
                check(MPI_Improbe(server, tag, m_rep, &flag, &m, &st), "MPI_Improbe (reply)");
                if (flag) {
                    int n = 0;
                    MPI_Get_count(&st, MPI_BYTE, &n);
                    reply.resize(size_t(n));
                    check(MPI_Mrecv(reply.data(), n, MPI_BYTE, &m, MPI_STATUS_IGNORE), "MPI_Mrecv (reply)");
                    got = progress = true;
                }
            }
            if (progress) continue;
            if (Clock::now() > deadline) {
                // A late reply could be matched by a later request: this client is done.
                std::lock_guard<std::mutex> l(m_mutex);
                m_broken = true;
                throw Error(ErrorCode::Timeout, "MPI server rank " + std::to_string(server) + " did not answer within " +
                                                    std::to_string((m_timeoutMs + extraMs) / 1000.0) +
                                                    " s; is it alive and inside mofka_py.mpi.fabric()?");
            }
            backoff.idle(!sent);
        }
        if (reply.empty()) throw Error(ErrorCode::Connection, "MPI transport: empty reply");
        if (reply[0] != 0) {
            Reader r(reply.data() + 1, reply.size() - 1);
            auto code = ErrorCode(r.get<int32_t>());
            throw Error(code, r.str());
        }
        if (body) {
            Reader r = reader(reply);
            body(r, tag, deadline);
        }
        return reply;
    }

    /// Receive exactly @p size bytes from @p server on @p tag into @p dst.
    void receiveInto(int server, int tag, uint8_t* dst, size_t size, Clock::time_point deadline) {
        Backoff backoff;
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
                std::lock_guard<std::mutex> l(m_mutex);
                m_broken = true;
                throw Error(ErrorCode::Timeout, "MPI server rank " + std::to_string(server) + " stopped sending fetched batches");
            }
            backoff.idle();
        }
    }

    MPI_Comm m_req, m_rep;
    std::vector<int> m_servers;
    int64_t m_timeoutMs;
    std::string m_url;
    std::atomic<uint64_t> m_nextTag{0};
    std::shared_ptr<BufferPool> m_pool = std::make_shared<BufferPool>(size_t(256) << 20);
    std::mutex m_mutex;
    std::condition_variable m_idle;
    int m_inflight = 0;
    bool m_closed = false;
    bool m_broken = false;
};

} // namespace

std::shared_ptr<BrokerClient> makeMpiClient(MPI_Comm requests, MPI_Comm replies, std::vector<int> servers,
                                            int64_t requestTimeoutMs, std::string url) {
    return std::make_shared<MpiClient>(requests, replies, std::move(servers), requestTimeoutMs, std::move(url));
}

} // namespace mofka_py
