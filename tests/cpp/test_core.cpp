// C++ tests of the core without Python: the library is usable from a C++ simulation.
// Plain assertions with messages; exits non-zero on the first failure.
#include "log/Sync.hpp"
#include "mofka_py/Broker.hpp"
#include "mofka_py/Consumer.hpp"
#include "mofka_py/Crc32c.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"
#include "mofka_py/PartitionLog.hpp"
#include "mofka_py/Producer.hpp"
#include "mofka_py/TcpServer.hpp"
#include "transport/tcp/Sha256.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace mofka_py;

static int g_checks = 0, g_failed = 0;
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        ++g_checks;                                                                                                    \
        if (!(cond)) {                                                                                                 \
            ++g_failed;                                                                                                \
            std::fprintf(stderr, "[%s:%d] check failed: %s\n", __FILE__, __LINE__, #cond);                             \
        }                                                                                                              \
    } while (0)

static void testCrc() {
    const char* v = "123456789";
    CHECK(crc32c(0, v, 9) == 0xE3069283u);
    std::vector<uint8_t> buf(100000);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 131 + 7);
    for (size_t n : {0ul, 1ul, 7ul, 8ul, 63ul, 24576ul, 49153ul, 100000ul})
        CHECK(crc32c(0, buf.data(), n) == crc32cPortable(0, buf.data(), n));
    uint32_t split = crc32c(crc32c(0, buf.data(), 30000), buf.data() + 30000, 70000);
    CHECK(split == crc32c(0, buf.data(), 100000));
    // Every length around the folding path's block and threshold sizes, at odd offsets, from a
    // running CRC: the fast paths (crc32 instruction, carry-less folding) agree with the table.
    std::minstd_rand rng(7);
    for (auto& b : buf) b = uint8_t(rng());
    bool same = true;
    for (size_t n = 1000; n < 1600; ++n)
        for (size_t off : {0ul, 1ul, 13ul, 64ul}) {
            uint32_t start = uint32_t(rng());
            same = same && crc32c(start, buf.data() + off, n) == crc32cPortable(start, buf.data() + off, n);
        }
    for (size_t n : {4095ul, 4096ul, 4097ul, 65536ul + 255ul, 99000ul})
        same = same && crc32c(0x12345678u, buf.data() + 3, n) == crc32cPortable(0x12345678u, buf.data() + 3, n);
    CHECK(same);
    // Around the hybrid path's block (32 KiB folded beside three 8 KiB crc32 streams: 57344
    // bytes) and several blocks with every kind of tail, from a running CRC.
    std::vector<uint8_t> big(4 * 57344 + 4096);
    for (auto& b : big) b = uint8_t(rng());
    for (size_t n : {57343ul, 57344ul, 57345ul, 57344ul + 127ul, 57344ul + 1024ul, 2 * 57344ul + 1023ul,
                     3 * 57344ul + 129ul, 4 * 57344ul})
        for (size_t off : {0ul, 5ul, 64ul}) {
            uint32_t start = uint32_t(rng());
            same = same && crc32c(start, big.data() + off, n) == crc32cPortable(start, big.data() + off, n);
        }
    CHECK(same);
}

static void testSha() {
    // FIPS 180-2 "abc" and RFC 4231 test case 2.
    Digest d = sha256("abc", 3);
    CHECK(d[0] == 0xba && d[1] == 0x78 && d[31] == 0xad);
    const char* msg = "what do ya want for nothing?";
    Digest h = hmacSha256("Jefe", msg, std::strlen(msg));
    CHECK(h[0] == 0x5b && h[1] == 0xdc && h[31] == 0x43);
}

static void roundTrip(const std::string& url) {
    Fabric fab = Fabric::connect(url);
    TopicConfig cfg;
    cfg.partitions = 3;
    fab.client()->createTopic("t", cfg);
    std::vector<double> field(1000);
    for (size_t i = 0; i < field.size(); ++i) field[i] = double(i) * 0.5;
    {
        Producer prod(fab.client(), "t", ProducerOptions{});
        std::vector<Future> futs;
        for (int i = 0; i < 300; ++i) {
            std::string meta = "{\"i\":" + std::to_string(i) + "}";
            DataRef d{field.data(), field.size() * sizeof(double), nullptr};
            futs.push_back(prod.push(meta.data(), meta.size(), &d, 1, i % 3, nullptr, 0, true));
        }
        prod.flush(-1);
        for (int i = 0; i < 300; ++i) CHECK(futs[size_t(i)].wait(0).partition == uint32_t(i % 3));
        prod.close();
    }
    fab.client()->markComplete("t");
    ConsumerOptions co;
    co.start = StartPosition::Earliest;
    Consumer cons(fab.client(), "t", co);
    int n = 0;
    std::vector<uint64_t> last(3, 0);
    while (auto ev = cons.pull(5000)) {
        CHECK(ev->data.size == field.size() * sizeof(double));
        CHECK(std::memcmp(ev->data.data, field.data(), ev->data.size) == 0);
        CHECK(n < 3 || ev->offset >= last[ev->partition]);
        last[ev->partition] = ev->offset;
        ++n;
    }
    CHECK(n == 300);
    CHECK(cons.exhausted());
    cons.close();
    fab.close();
}

static void testErrors() {
    bool threw = false;
    try {
        Fabric::connect("nope://x");
    } catch (const Error& e) {
        threw = e.code() == ErrorCode::InvalidArgument;
    }
    CHECK(threw);
    Fabric fab = Fabric::connect("memory://");
    threw = false;
    try {
        fab.client()->describeTopic("missing");
    } catch (const Error& e) {
        threw = e.code() == ErrorCode::TopicNotFound;
    }
    CHECK(threw);
    fab.close();
}

/// The bytes of a sealed batch of @p n events (data of @p dataLen bytes each, value @p fill) with its CRC set.
static std::vector<uint8_t> batchBytes(uint64_t producer, uint64_t seq, int n, size_t dataLen, uint8_t fill) {
    BatchBuilder b;
    std::vector<uint8_t> data(dataLen, fill);
    for (int i = 0; i < n; ++i) {
        DataRef d{data.data(), data.size(), nullptr};
        std::string meta = "{\"i\":" + std::to_string(i) + "}";
        b.add(meta.data(), meta.size(), &d, 1, 1000 + i);
    }
    SealedBatch sb = b.seal(producer, seq);
    sb.header().crc = batchCrc(sb.pieces);
    std::vector<uint8_t> out;
    for (const Piece& p : sb.pieces) out.insert(out.end(), p.data, p.data + p.size);
    return out;
}

/// Receiving straight into a log: reservations in order, a failed one dropped and the next moved down.
/// A transport in front of an embedded fabric that keeps 4 appends in flight and takes a
/// random few microseconds to put each one "on the wire" (where it notes the batch's
/// sequence): appends handed over by two threads at once would reach the broker out of turn.
class JitteryClient final : public BrokerClient {
  public:
    explicit JitteryClient(std::shared_ptr<BrokerClient> inner) : m_in(std::move(inner)) {}
    std::vector<uint64_t> wire; ///< sequences in the order they went out
    size_t maxInflightProduce() const override { return 4; }
    void produceAsync(const std::string& topic, uint32_t partition, SealedBatch& batch, ProduceCallback done) override {
        thread_local std::minstd_rand rng(std::random_device{}());
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 40));
        {
            std::lock_guard<std::mutex> l(m_mutex);
            wire.push_back(batch.header().sequence);
        }
        BrokerClient::produceAsync(topic, partition, batch, std::move(done));
    }
    AppendResult produce(const std::string& t, uint32_t p, SealedBatch& b) override { return m_in->produce(t, p, b); }
    void createTopic(const std::string& n, const TopicConfig& c) override { m_in->createTopic(n, c); }
    std::vector<std::string> listTopics() override { return m_in->listTopics(); }
    TopicInfo describeTopic(const std::string& n) override { return m_in->describeTopic(n); }
    std::vector<StoredBatch> fetch(const std::string& t, uint32_t p, uint64_t o, size_t m, int64_t w) override {
        return m_in->fetch(t, p, o, m, w);
    }
    uint64_t waitTopicChange(const std::string& t, uint64_t v, int64_t w) override {
        return m_in->waitTopicChange(t, v, w);
    }
    std::pair<uint64_t, uint64_t> offsets(const std::string& t, uint32_t p) override { return m_in->offsets(t, p); }
    void markComplete(const std::string& t) override { m_in->markComplete(t); }
    bool isComplete(const std::string& t) override { return m_in->isComplete(t); }
    std::string joinGroup(const std::string& g, const std::string& t, const std::string& m) override {
        return m_in->joinGroup(g, t, m);
    }
    void leaveGroup(const std::string& g, const std::string& t, const std::string& m) override {
        m_in->leaveGroup(g, t, m);
    }
    Assignment assignment(const std::string& g, const std::string& t, const MemberHeartbeat& h) override {
        return m_in->assignment(g, t, h);
    }
    void releasePartitions(const std::string& g, const std::string& t, const std::string& m,
                           const std::vector<uint32_t>& ps) override {
        m_in->releasePartitions(g, t, m, ps);
    }
    void commit(const std::string& g, const std::string& t, const std::vector<std::pair<uint32_t, uint64_t>>& o,
                const std::string& m) override {
        m_in->commit(g, t, o, m);
    }
    std::vector<uint8_t> control(const ControlRoute& r, const std::vector<uint8_t>& q) override {
        return m_in->control(r, q);
    }
    std::optional<uint64_t> committed(const std::string& g, const std::string& t, uint32_t p) override {
        return m_in->committed(g, t, p);
    }
    std::vector<std::string> groups(const std::string& t) override { return m_in->groups(t); }
    void close() override { m_in->close(); }
    std::string url() const override { return m_in->url(); }

  private:
    std::shared_ptr<BrokerClient> m_in;
    std::mutex m_mutex;
};

/// flush() from other threads hands batches over too: never two at once, so they go out in sequence.
static void testFlushRacesSender() {
    Fabric fab = Fabric::connect("memory://");
    auto client = std::make_shared<JitteryClient>(fab.client());
    TopicConfig cfg;
    cfg.partitions = 1;
    client->createTopic("race", cfg);
    ProducerOptions po;
    po.batchSize = 3;
    po.lingerMs = 0.05;
    const int n = 6000;
    {
        Producer prod(client, "race", po);
        std::atomic<bool> stop{false};
        std::vector<std::thread> flushers;
        for (int i = 0; i < 3; ++i)
            flushers.emplace_back([&] {
                while (!stop) prod.flush(-1);
            });
        for (int i = 0; i < n; ++i) {
            std::string meta = std::to_string(i);
            prod.push(meta.data(), meta.size(), nullptr, 0, 0, nullptr, 0, true);
        }
        prod.flush(-1);
        stop = true;
        for (auto& t : flushers) t.join();
        prod.close();
    }
    bool inOrder = true;
    for (size_t i = 0; i < client->wire.size(); ++i) inOrder = inOrder && client->wire[i] == i;
    CHECK(inOrder);
    CHECK(client->offsets("race", 0).second == uint64_t(n));
}

static void testReservations() {
    LogOptions o;
    o.segmentBytes = 4 << 20;
    PartitionLog log(o);
    // c comes from another producer: b's refusal leaves a gap in producer 7's stream, not in 8's.
    auto a = batchBytes(7, 0, 3, 1000, 0xA1), b = batchBytes(7, 1, 2, 70000, 0xB2), c = batchBytes(8, 0, 4, 10, 0xC3);
    uint8_t* pa = log.reserve(a.size());
    uint8_t* pb = log.reserve(b.size());
    uint8_t* pc = log.reserve(c.size());
    CHECK(pa && pb == pa + a.size() && pc == pb + b.size());
    bool threw = false;
    try {
        SealedBatch x;
        log.append(x);
    } catch (const Error&) {
        threw = true;
    }
    CHECK(threw); // no append while reservations are open
    std::memcpy(pa, a.data(), a.size());
    std::memcpy(pb, b.data(), b.size());
    pb[b.size() / 2] ^= 1; // damaged in transit
    std::memcpy(pc, c.data(), c.size());
    CHECK(log.endOffset() == 0); // nothing visible before commit
    AppendResult r = log.commitReserved(CrcMode::Verify);
    CHECK(r.baseOffset == 0 && !r.duplicate);
    threw = false;
    try {
        log.commitReserved(CrcMode::Verify);
    } catch (const Error& e) {
        threw = e.code() == ErrorCode::Corruption;
    }
    CHECK(threw); // b refused
    r = log.commitReserved(CrcMode::Verify); // c moves down over b
    CHECK(r.baseOffset == 3 && log.endOffset() == 7);
    auto got = log.read(0, 1 << 20);
    CHECK(got.size() == 2);
    CHECK(got.size() == 2 && got[1].size == c.size() &&
          std::memcmp(got[1].data + 32, c.data() + 32, c.size() - 32) == 0);
    // A resent batch (same producer and sequence) is dropped with its original offsets.
    uint8_t* again = log.reserve(c.size());
    std::memcpy(again, c.data(), c.size());
    r = log.commitReserved(CrcMode::Verify);
    CHECK(r.duplicate && r.baseOffset == 3 && log.endOffset() == 7);
    // Producer 7's next batch after the refused b would leave a gap: refused too, nothing stored.
    auto after = batchBytes(7, 2, 1, 10, 0xE5);
    std::memcpy(log.reserve(after.size()), after.data(), after.size());
    threw = false;
    try {
        log.commitReserved(CrcMode::Verify);
    } catch (const Error& e) {
        threw = e.code() == ErrorCode::OutOfSequence;
    }
    CHECK(threw && log.endOffset() == 7);
    // A CRC computed by the transport as the pieces landed is checked against the header in
    // place of reading the batch again: a wrong one refuses the batch, the right one stores it.
    auto landed = batchBytes(9, 0, 2, 5000, 0xF6);
    const uint32_t good = crc32c(0, landed.data() + kCrcCoverageStart, landed.size() - kCrcCoverageStart);
    std::memcpy(log.reserve(landed.size()), landed.data(), landed.size());
    threw = false;
    try {
        log.commitReserved(CrcMode::Verify, good ^ 1u);
    } catch (const Error& e) {
        threw = e.code() == ErrorCode::Corruption;
    }
    CHECK(threw && log.endOffset() == 7);
    std::memcpy(log.reserve(landed.size()), landed.data(), landed.size());
    r = log.commitReserved(CrcMode::Verify, good);
    CHECK(r.baseOffset == 7 && !r.duplicate && log.endOffset() == 9);
    // Cancelled: nothing stored; the next reservation starts at the end again.
    uint8_t* p = log.reserve(a.size());
    log.cancelReserved();
    CHECK(log.reserve(a.size()) == p);
    log.cancelReserved();
    // Larger than a segment with nothing pending: the log rolls, the batch gets a segment of its own.
    auto big = batchBytes(8, 1, 1, size_t(6) << 20, 0xD4);
    uint8_t* pbig = log.reserve(big.size());
    CHECK(pbig != nullptr);
    // While it is pending, a batch past the segment's size is not reserved: the caller buffers it.
    CHECK(log.reserve(size_t(8) << 20) == nullptr);
    if (pbig) {
        std::memcpy(pbig, big.data(), big.size());
        r = log.commitReserved(CrcMode::Verify);
        CHECK(r.baseOffset == 9 && log.endOffset() == 10);
        auto tail = log.read(9, 64 << 20);
        CHECK(tail.size() == 1 && tail[0].size == big.size() &&
              std::memcmp(tail[0].data + 32, big.data() + 32, big.size() - 32) == 0);
        CHECK(log.read(0, 64 << 20).size() >= 2); // the earlier segment is still there
    }
    // File storage does not reserve.
    char dir[] = "/tmp/mofka-cpp-resv-XXXXXX";
    if (mkdtemp(dir)) {
        LogOptions f;
        f.directory = std::string(dir) + "/p0";
        PartitionLog flog(f);
        CHECK(flog.reserve(a.size()) == nullptr);
        flog.close();
        std::string rm = std::string("rm -rf ") + dir;
        if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir);
    }
}

/// Group rules in the broker: commits fenced by ownership, claims after a restart, the rejoin
/// grace, positions in describeGroup, skipped counts and commits durable across reopen.
static void testGroupRules(const std::string& dir) {
    auto codeOf = [](auto&& f) {
        try {
            f();
        } catch (const Error& e) {
            return int(e.code());
        }
        return -1;
    };
    BrokerOptions o;
    o.directory = dir;
    {
        Broker b(o);
        TopicConfig c;
        c.partitions = 4;
        b.createTopic("g", c);
        MemberHeartbeat a{"a", 10000, {}}, z{"z", 10000, {}};
        b.joinGroup("grp", "g", "a");
        Assignment aa = b.assignment("grp", "g", a);
        CHECK(aa.partitions.size() == 4);
        b.joinGroup("grp", "g", "z");
        Assignment za = b.assignment("grp", "g", z);
        CHECK(za.partitions.empty() && za.pending == 2); // a still holds z's share
        // A member commits only what it owns; a refused commit writes nothing.
        CHECK(codeOf([&] { b.commit("grp", "g", {{1, 5}}, "z"); }) == int(ErrorCode::CommitFailed));
        CHECK(!b.committed("grp", "g", 1));
        b.commit("grp", "g", {{1, 5}, {3, 7}}, "a");
        CHECK(b.committed("grp", "g", 1) == 5u);
        // A live member blocks a reset, named in the error.
        int code = codeOf([&] { b.resetGroup("grp", "g", {{0, 0}}); });
        CHECK(code == int(ErrorCode::GroupActive));
        // Positions reported in heartbeats show in describeGroup, per owner.
        a.owned = {{0, 11}, {1, 5}, {2, 0}, {3, 7}};
        b.assignment("grp", "g", a);
        GroupState st = b.describeGroup("grp", "g");
        CHECK(st.members.size() == 2);
        CHECK(st.partitions[0].owner == std::string("a") && st.partitions[0].position == 11u);
        // Removing a member frees its partitions now and fences its commits.
        MemberHeartbeat y{"y", 10000, {}};
        b.joinGroup("grp", "g", "y");
        b.assignment("grp", "g", y);
        CHECK(b.removeMember("grp", "g", "a"));
        CHECK(!b.removeMember("grp", "g", "a"));
        CHECK(codeOf([&] { b.commit("grp", "g", {{0, 12}}, "a"); }) == int(ErrorCode::CommitFailed));
        Assignment za2 = b.assignment("grp", "g", MemberHeartbeat{"z", 10000, {}});
        CHECK(za2.pending == 0); // nothing held by the removed member any more
        b.leaveGroup("grp", "g", "y");
        b.noteSkipped("grp", "g", 2, 40);
        b.noteSkipped("grp", "g", 2, 2);
        CHECK(b.describeGroup("grp", "g").partitions[2].skipped == 42u);
        b.close();
    }
    {
        // Reopened as a service would be: owners are gone, commits and skipped counts are not.
        o.rejoinGraceMs = 60000;
        Broker b(o);
        GroupState st = b.describeGroup("grp", "g");
        CHECK(st.members.empty() && st.partitions[3].committed == 7u && st.partitions[2].skipped == 42u);
        // During the grace, a returning member keeps what it claims and nobody gets the rest.
        MemberHeartbeat z{"z", 10000, {{1, 5}}};
        Assignment za = b.assignment("grp", "g", z);
        CHECK(za.partitions == std::vector<uint32_t>({1}));
        CHECK(za.pending == 3);
        MemberHeartbeat a{"a", 10000, {{0, 11}, {1, 5}}};
        Assignment aa = b.assignment("grp", "g", a);
        // Two members now (a, z): a's share is 0 and 2; it claimed 0, 1 is z's, 2 waits for the grace.
        CHECK(aa.partitions == std::vector<uint32_t>({0}));
        CHECK(codeOf([&] { b.commit("grp", "g", {{1, 9}}, "a"); }) == int(ErrorCode::CommitFailed));
        b.commit("grp", "g", {{1, 9}}, "z");
        CHECK(b.committed("grp", "g", 1) == 9u);
        b.close();
    }
}

/// Seal @p n events (data of @p dataLen bytes each, value @p fill) of a producer's batch and run @p use on it.
template <class F>
static auto withBatch(uint64_t producer, uint64_t seq, int n, size_t dataLen, uint8_t fill, F&& use) {
    BatchBuilder b;
    std::vector<uint8_t> data(dataLen, fill);
    for (int i = 0; i < n; ++i) {
        DataRef d{data.data(), data.size(), nullptr};
        std::string meta = "{\"i\":" + std::to_string(i) + "}";
        b.add(meta.data(), meta.size(), &d, 1, 1000 + i);
    }
    SealedBatch sb = b.seal(producer, seq);
    return use(sb);
}

/// The StorageError message of @p f, or "" when it throws none.
template <class F>
static std::string storageErrorOf(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        if (e.code() == ErrorCode::Storage) return e.what();
        return std::string("other error: ") + e.what();
    }
    return "";
}

static bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// Events of @p log from offset 0, as the fill byte of each batch's data (one entry per batch).
static std::vector<uint8_t> fills(const PartitionLog& log) {
    std::vector<uint8_t> out;
    for (const StoredBatch& sb : log.read(0, 64 << 20)) {
        BatchView v(sb.data, sb.size);
        out.push_back(v.eventData(0).size ? v.eventData(0).data[0] : 0);
    }
    return out;
}

/// A failed fdatasync (issue 15): the batch fails with nothing stored, the log refuses writes
/// until reopened, reads keep working, and reopening loses no acknowledged event.
static void testSyncFailure(const std::string& dir) {
    LogOptions o;
    o.directory = dir + "/p0";
    o.sync = SyncPolicy::Batch;
    {
        PartitionLog log(o);
        auto put = [&](uint64_t seq, uint8_t fill) {
            return withBatch(5, seq, 3, 100, fill, [&](SealedBatch& sb) { return log.append(sb); });
        };
        CHECK(put(0, 0xA1).baseOffset == 0);
        CHECK(put(1, 0xA2).baseOffset == 3);
        failSyncForTesting(0);
        std::string err = storageErrorOf([&] { put(2, 0xB1); });
        CHECK(contains(err, "cannot sync " + o.directory + "/") && contains(err, "Input/output error"));
        CHECK(contains(err, "this batch was not stored") && contains(err, "takes no more writes until it is reopened"));
        CHECK(log.endOffset() == 6 && log.unwritable() != "");
        CHECK(fills(log) == std::vector<uint8_t>({0xA1, 0xA2})); // earlier events readable, nothing of the failed one
        // Every later write is refused, saying why and what to do; no sync is tried again.
        err = storageErrorOf([&] { put(2, 0xB1); });
        CHECK(contains(err, "is unwritable since a failed sync at " + o.directory));
        CHECK(contains(err, "restart the service or reopen the fabric"));
        err = storageErrorOf([&] { withBatch(6, 0, 1, 10, 0xB2, [&](SealedBatch& sb) { return log.append(sb); }); });
        CHECK(contains(err, "is unwritable since a failed sync"));
        CHECK(contains(storageErrorOf([&] { log.sync(); }), "is unwritable"));
        CHECK(contains(storageErrorOf([&] { log.purge(); }), "is unwritable"));
        // A batch acknowledged before (a producer's retry) still gets its offsets back.
        AppendResult again = put(1, 0xA2);
        CHECK(again.duplicate && again.baseOffset == 3);
        CHECK(log.endOffset() == 6);
        CHECK(storageErrorOf([&] { log.close(); }) == "");
    }
    {
        PartitionLog log(o); // reopened: writable again, every acknowledged event there
        CHECK(log.unwritable() == "" && log.endOffset() == 6);
        CHECK(withBatch(5, 2, 3, 100, 0xB1, [&](SealedBatch& sb) { return log.append(sb); }).baseOffset == 6);
        CHECK(fills(log) == std::vector<uint8_t>({0xA1, 0xA2, 0xB1}));
        log.close();
    }
    // A failed sync of the directory after a new segment file was created (the log rolls on every batch).
    o.directory = dir + "/p1";
    o.segmentBytes = 4096;
    {
        PartitionLog log(o);
        auto put = [&](uint64_t seq, uint8_t fill) {
            return withBatch(5, seq, 1, 3000, fill, [&](SealedBatch& sb) { return log.append(sb); });
        };
        CHECK(put(0, 0xC1).baseOffset == 0);
        failSyncForTesting(1); // the roll syncs the full segment (succeeds), then the directory (fails)
        std::string err = storageErrorOf([&] { put(1, 0xC2); });
        CHECK(contains(err, "cannot sync " + o.directory + ": Input/output error"));
        CHECK(contains(err, "the new segment " + o.directory + "/00000000000000000001.log was not used"));
        CHECK(contains(storageErrorOf([&] { put(1, 0xC2); }), "is unwritable since a failed sync at " + o.directory));
        CHECK(log.endOffset() == 1 && fills(log) == std::vector<uint8_t>({0xC1}));
        log.close();
    }
    {
        PartitionLog log(o);
        CHECK(log.unwritable() == "" && log.endOffset() == 1);
        CHECK(withBatch(5, 1, 1, 3000, 0xC2, [&](SealedBatch& sb) { return log.append(sb); }).baseOffset == 1);
        CHECK(withBatch(5, 2, 1, 3000, 0xC3, [&](SealedBatch& sb) { return log.append(sb); }).baseOffset == 2);
        CHECK(fills(log) == std::vector<uint8_t>({0xC1, 0xC2, 0xC3}));
        log.close();
    }
    // Interval policy: a failed background sync has no caller; the next append reports it.
    o.directory = dir + "/p2";
    o.segmentBytes = 1 << 20;
    o.sync = SyncPolicy::Interval;
    o.syncIntervalMs = 1;
    {
        PartitionLog log(o);
        CHECK(withBatch(5, 0, 1, 10, 0xD1, [&](SealedBatch& sb) { return log.append(sb); }).baseOffset == 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        failSyncForTesting(0);
        log.housekeeping(); // prints the failure on stderr, does not throw
        CHECK(log.unwritable() != "");
        std::string err =
            storageErrorOf([&] { withBatch(5, 1, 1, 10, 0xD2, [&](SealedBatch& sb) { return log.append(sb); }); });
        CHECK(contains(err, "is unwritable since a failed sync at " + o.directory + "/00000000000000000000.log"));
        CHECK(fills(log) == std::vector<uint8_t>({0xD1}));
        CHECK(storageErrorOf([&] { log.close(); }) == ""); // unwritable: the final sync is not tried
    }
    // A failed sync of a directory the new log created (here the one holding "new"): it opens readable, unwritable.
    o.directory = dir + "/new/p0";
    o.sync = SyncPolicy::Batch;
    {
        failSyncForTesting(0);
        PartitionLog log(o);
        CHECK(log.unwritable() == "a failed sync at " + dir + " (Input/output error)");
        CHECK(log.read(0, 1 << 20).empty());
        CHECK(contains(
            storageErrorOf([&] { withBatch(5, 0, 1, 10, 0xE1, [&](SealedBatch& sb) { return log.append(sb); }); }),
            "is unwritable since a failed sync"));
    }
    failSyncForTesting(-1);
}

/// The same through the broker: produce fails and is then refused, fetch keeps working, a reopened
/// broker takes writes again with every acknowledged event; a failed sync while creating a topic.
static void testBrokerSyncFailure(const std::string& dir) {
    BrokerOptions bo;
    bo.directory = dir;
    TopicConfig cfg;
    cfg.partitions = 2;
    cfg.sync = SyncPolicy::Batch;
    cfg.setFields = kSync;
    auto produce = [](Broker& b, const std::string& topic, uint32_t p, uint64_t seq, uint8_t fill) {
        return withBatch(9, seq, 2, 50, fill,
                         [&](SealedBatch& sb) { return b.produce(topic, p, sb, CrcMode::Compute); });
    };
    auto count = [](Broker& b, const std::string& topic, uint32_t p) {
        uint32_t n = 0;
        for (const StoredBatch& sb : b.fetch(topic, p, 0, 64 << 20, 0)) n += sb.count;
        return n;
    };
    {
        Broker b(bo);
        b.createTopic("t", cfg);
        CHECK(produce(b, "t", 0, 0, 1).baseOffset == 0);
        CHECK(produce(b, "t", 1, 0, 1).baseOffset == 0);
        failSyncForTesting(0);
        CHECK(contains(storageErrorOf([&] { produce(b, "t", 0, 1, 2); }), "this batch was not stored"));
        CHECK(contains(storageErrorOf([&] { produce(b, "t", 0, 1, 2); }), "is unwritable since a failed sync"));
        CHECK(count(b, "t", 0) == 2);
        CHECK(produce(b, "t", 1, 1, 2).baseOffset == 2); // the other partition's log had no failed sync
        CHECK(contains(storageErrorOf([&] { b.sync(); }), "is unwritable")); // never reported as synced
        // A failed sync of the topics directory after the topic's directory was renamed into it (the
        // last of the creation's syncs: topic.conf, its directory, then per partition its directory
        // in the topic's and its first segment): the topic exists, its partitions refuse writes.
        failSyncForTesting(2 + 2 * 1);
        TopicConfig one = cfg;
        one.partitions = 1;
        std::string err = storageErrorOf([&] { b.createTopic("u", one); });
        CHECK(contains(err, "topic 'u' was created, but its partitions take no writes since a failed sync at " + dir +
                                "/topics"));
        CHECK(b.listTopics() == std::vector<std::string>({"t", "u"}));
        CHECK(contains(storageErrorOf([&] { produce(b, "u", 0, 0, 3); }),
                       "is unwritable since a failed sync at " + dir + "/topics"));
        CHECK(storageErrorOf([&] { b.close(); }) == "");
    }
    {
        Broker b(bo); // a service restart
        CHECK(count(b, "t", 0) == 2 && count(b, "t", 1) == 4);
        CHECK(produce(b, "t", 0, 1, 2).baseOffset == 2);
        CHECK(produce(b, "u", 0, 0, 3).baseOffset == 0);
        CHECK(count(b, "t", 0) == 4 && count(b, "u", 0) == 2);
        b.close();
    }
    failSyncForTesting(-1);
}

/// One stored batch as a test sees it: producer, sequence, base offset, events, data fill byte.
struct SeenBatch {
    uint64_t producer, sequence, base;
    uint32_t count;
    uint8_t fill;
    bool operator==(const SeenBatch& o) const {
        return producer == o.producer && sequence == o.sequence && base == o.base && count == o.count && fill == o.fill;
    }
};

static std::vector<SeenBatch> seen(const PartitionLog& log, uint64_t from = 0) {
    std::vector<SeenBatch> out;
    for (const StoredBatch& sb : log.read(from, 1ull << 40)) {
        BatchView v(sb.data, sb.size);
        const BatchHeader& h = v.header();
        bool same = v.crcOk();
        for (uint32_t i = 0; i < h.count; ++i) {
            auto d = v.eventData(i);
            for (size_t j = 0; j < d.size; ++j) same = same && d.data[j] == d.data[0];
            same = same && d.size && d.data[0] == v.eventData(0).data[0];
        }
        out.push_back({h.producerId, h.sequence, sb.baseOffset, h.count, same ? v.eventData(0).data[0] : uint8_t(0)});
    }
    return out;
}

/// Group commit (sync=batch, file storage): concurrent writers share fdatasyncs, every acknowledged
/// batch is readable in offset order with its contents, a failed group sync fails all of its
/// batches (none readable, none kept on disk), and a reopened log recovers exactly what was acknowledged.
static void testGroupCommit(const std::string& dir) {
    LogOptions o;
    o.sync = SyncPolicy::Batch;
    auto fillOf = [](int t, int k) { return uint8_t(1 + (t * 37 + k) % 250); };
    auto eventsOf = [](int t, int k) { return 1 + (t + k) % 3; };

    // Many threads appending durable batches to one partition (small segments: it rolls meanwhile).
    o.directory = dir + "/many";
    o.segmentBytes = 16 << 10;
    const int kThreads = 8, kBatches = 60;
    std::vector<SeenBatch> acked;
    {
        PartitionLog log(o);
        std::mutex m;
        const uint64_t syncs0 = syncCountForTesting();
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t)
            threads.emplace_back([&, t] {
                for (int k = 0; k < kBatches; ++k) {
                    int n = eventsOf(t, k);
                    AppendResult r =
                        withBatch(100 + t, k, n, 200, fillOf(t, k), [&](SealedBatch& sb) { return log.append(sb); });
                    std::lock_guard<std::mutex> g(m);
                    acked.push_back({uint64_t(100 + t), uint64_t(k), r.baseOffset, uint32_t(n), fillOf(t, k)});
                }
            });
        for (auto& th : threads) th.join();
        const uint64_t syncs = syncCountForTesting() - syncs0;
        std::sort(acked.begin(), acked.end(), [](const SeenBatch& a, const SeenBatch& b) { return a.base < b.base; });
        CHECK(acked.size() == size_t(kThreads * kBatches));
        uint64_t next = 0;
        bool dense = true;
        for (auto& b : acked) {
            dense = dense && b.base == next;
            next = b.base + b.count;
        }
        CHECK(dense && log.endOffset() == next);
        CHECK(seen(log) == acked); // every acknowledged batch, in offset order, with its contents
        // Each producer's batches in its sequence order.
        std::map<uint64_t, int64_t> last;
        bool ordered = true;
        for (auto& b : acked) {
            auto it = last.find(b.producer);
            ordered = ordered && int64_t(b.sequence) == (it == last.end() ? 0 : it->second + 1);
            last[b.producer] = int64_t(b.sequence);
        }
        CHECK(ordered);
        CHECK(syncs <= uint64_t(kThreads * kBatches) + 64); // never more than one per batch (+ segment rolls)
        std::printf("group commit: %d threads, %d durable batches, %llu syncs\n", kThreads, kThreads * kBatches,
                    static_cast<unsigned long long>(syncs));
        // A producer's retry gets its original offsets.
        AppendResult again =
            withBatch(103, 5, eventsOf(3, 5), 200, fillOf(3, 5), [&](SealedBatch& sb) { return log.append(sb); });
        CHECK(again.duplicate);
        log.close();
    }
    {
        PartitionLog log(o);
        CHECK(seen(log) == acked && log.unwritable() == "");
    }

    // Batches written without waiting are neither readable nor acknowledged until a sync covers
    // them; one sync covers every batch written before it, whichever threads wait.
    o.directory = dir + "/group";
    o.segmentBytes = 1 << 20;
    {
        PartitionLog log(o);
        CHECK(withBatch(7, 0, 2, 50, 0x11, [&](SealedBatch& sb) { return log.append(sb); }).baseOffset == 0);
        std::vector<PartitionLog::Pending> pend(12);
        std::vector<std::thread> writers;
        std::mutex wm; // writers of one producer must write in sequence order: one thread per producer here
        for (int t = 0; t < 4; ++t)
            writers.emplace_back([&, t] {
                for (int k = 0; k < 3; ++k)
                    pend[size_t(t * 3 + k)] = withBatch(20 + t, k, 1, 64, uint8_t(0x20 + t * 3 + k),
                                                        [&](SealedBatch& sb) { return log.appendNoWait(sb); });
            });
        for (auto& th : writers) th.join();
        (void)wm;
        bool waiting = true;
        for (auto& p : pend) waiting = waiting && p.ticket != 0 && !p.result.duplicate;
        CHECK(waiting);
        CHECK(log.endOffset() == 2 && seen(log).size() == 1); // written, not visible
        // The same batch sent again while its original waits: a duplicate, acknowledged with it.
        PartitionLog::Pending dup =
            withBatch(21, 2, 1, 64, 0x25, [&](SealedBatch& sb) { return log.appendNoWait(sb); });
        CHECK(dup.result.duplicate && dup.result.baseOffset == pend[5].result.baseOffset && dup.ticket != 0);
        const uint64_t syncs0 = syncCountForTesting();
        std::vector<std::thread> waiters;
        std::vector<AppendResult> got(pend.size());
        for (size_t i = 0; i < pend.size(); ++i) waiters.emplace_back([&, i] { got[i] = log.awaitDurable(pend[i]); });
        for (auto& th : waiters) th.join();
        CHECK(syncCountForTesting() - syncs0 == 1); // one fdatasync for the twelve batches
        CHECK(log.awaitDurable(dup).baseOffset == pend[5].result.baseOffset);
        CHECK(log.endOffset() == 14);
        std::vector<SeenBatch> all = seen(log);
        CHECK(all.size() == 13);
        bool match = true;
        for (size_t i = 0; i < pend.size(); ++i) {
            match = match && got[i].baseOffset == pend[i].result.baseOffset;
            bool found = false;
            for (auto& b : all)
                found = found || (b.base == got[i].baseOffset && b.fill == uint8_t(0x20 + i) &&
                                  b.producer == 20 + i / 3 && b.sequence == i % 3);
            match = match && found;
        }
        CHECK(match);
        log.close();
    }

    // A failed group sync fails every batch written since the last good sync: none readable, none
    // acknowledged, cut off the file; the log refuses writes until reopened, then recovers the rest.
    o.directory = dir + "/failed";
    {
        PartitionLog log(o);
        for (uint64_t k = 0; k < 2; ++k)
            CHECK(withBatch(30, k, 1, 64, uint8_t(0x30 + k), [&](SealedBatch& sb) {
                      return log.append(sb);
                  }).baseOffset == k);
        std::vector<PartitionLog::Pending> pend;
        for (uint64_t k = 2; k < 7; ++k)
            pend.push_back(
                withBatch(30, k, 1, 64, uint8_t(0x30 + k), [&](SealedBatch& sb) { return log.appendNoWait(sb); }));
        pend.push_back(withBatch(31, 0, 2, 64, 0x40, [&](SealedBatch& sb) { return log.appendNoWait(sb); }));
        CHECK(pend.back().result.baseOffset == 7 && log.endOffset() == 2);
        failSyncForTesting(0);
        std::string err = storageErrorOf([&] { log.awaitDurable(pend[2]); });
        CHECK(contains(err, "cannot sync " + o.directory + "/00000000000000000000.log: Input/output error"));
        CHECK(contains(
            err, "this batch was not stored, nor any of the 5 other batches written since the last successful sync"));
        CHECK(contains(err, "takes no more writes until it is reopened"));
        bool allFailed = true;
        for (auto& p : pend) allFailed = allFailed && storageErrorOf([&] { log.awaitDurable(p); }) == err;
        CHECK(allFailed);
        CHECK(log.endOffset() == 2 && log.unwritable() != "");
        CHECK(fills(log) == std::vector<uint8_t>({0x30, 0x31}));
        // A retry of a lost batch is not a duplicate (it was never stored): refused as unwritable.
        CHECK(contains(
            storageErrorOf([&] { withBatch(30, 3, 1, 64, 0x33, [&](SealedBatch& sb) { return log.append(sb); }); }),
            "is unwritable since a failed sync"));
        // A retry of a batch acknowledged before still gets its offsets.
        AppendResult again = withBatch(30, 1, 1, 64, 0x31, [&](SealedBatch& sb) { return log.append(sb); });
        CHECK(again.duplicate && again.baseOffset == 1);
        struct stat st;
        CHECK(::stat((o.directory + "/00000000000000000000.log").c_str(), &st) == 0 &&
              uint64_t(st.st_size) == log.sizeBytes()); // the lost batches are off the file
        CHECK(storageErrorOf([&] { log.close(); }) == "");
    }
    {
        PartitionLog log(o);
        CHECK(log.unwritable() == "" && log.endOffset() == 2);
        // The producer resends what was lost: new batches now, stored in sequence.
        CHECK(withBatch(30, 2, 1, 64, 0x32, [&](SealedBatch& sb) { return log.append(sb); }).baseOffset == 2);
        CHECK(withBatch(31, 0, 2, 64, 0x40, [&](SealedBatch& sb) { return log.append(sb); }).baseOffset == 3);
        CHECK(fills(log) == std::vector<uint8_t>({0x30, 0x31, 0x32, 0x40}));
        log.close();
    }

    // Threads appending when a sync fails: exactly the acknowledged batches are readable, now and
    // after reopening; everything after the failure is refused.
    o.directory = dir + "/failing";
    o.segmentBytes = 16 << 10;
    {
        std::vector<SeenBatch> ok;
        int refused = 0;
        {
            PartitionLog log(o);
            std::mutex m;
            failSyncForTesting(40);
            std::vector<std::thread> threads;
            for (int t = 0; t < kThreads; ++t)
                threads.emplace_back([&, t] {
                    for (int k = 0; k < kBatches; ++k) {
                        int n = eventsOf(t, k);
                        try {
                            AppendResult r = withBatch(200 + t, k, n, 200, fillOf(t, k),
                                                       [&](SealedBatch& sb) { return log.append(sb); });
                            std::lock_guard<std::mutex> g(m);
                            ok.push_back({uint64_t(200 + t), uint64_t(k), r.baseOffset, uint32_t(n), fillOf(t, k)});
                        } catch (const Error& e) {
                            std::lock_guard<std::mutex> g(m);
                            refused += e.code() == ErrorCode::Storage;
                            break; // this producer's later batches would be out of sequence
                        }
                    }
                });
            for (auto& th : threads) th.join();
            failSyncForTesting(-1);
            std::sort(ok.begin(), ok.end(), [](const SeenBatch& a, const SeenBatch& b) { return a.base < b.base; });
            CHECK(refused == kThreads && log.unwritable() != "");
            CHECK(seen(log) == ok);
            CHECK(storageErrorOf([&] { log.close(); }) == "");
        }
        PartitionLog log(o);
        CHECK(seen(log) == ok && log.unwritable() == "");
        uint64_t end = ok.empty() ? 0 : ok.back().base + ok.back().count;
        CHECK(log.endOffset() == end);
        CHECK(withBatch(300, 0, 1, 10, 0x77, [&](SealedBatch& sb) { return log.append(sb); }).baseOffset == end);
    }
    failSyncForTesting(-1);
}

/// Group commit through the TCP service: the event loop writes durable batches and goes on while
/// sync threads wait for their partition's fdatasync; concurrent producers' events are all stored
/// where they were acknowledged; a failed sync fails the produce; shutdown answers what waits.
static void testTcpGroupCommit(const std::string& dir) {
    BrokerOptions bo;
    bo.directory = dir;
    auto broker = std::make_shared<Broker>(bo);
    TopicConfig cfg;
    cfg.partitions = 2;
    cfg.sync = SyncPolicy::Batch;
    cfg.setFields = kSync;
    broker->createTopic("t", cfg);
    TcpServerOptions so;
    so.port = 0;
    TcpServer server(broker, so);
    std::atomic<bool> stop{false};
    std::thread loop([&] {
        while (!stop) server.poll(20);
    });
    const std::string url = "tcp://127.0.0.1:" + std::to_string(server.port());
    const int kProducers = 6, kEvents = 150;
    std::vector<std::vector<EventId>> ids(kProducers);
    std::atomic<int> failures{0};
    const uint64_t syncs0 = syncCountForTesting();
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p)
        producers.emplace_back([&, p] {
            try {
                Fabric fab = Fabric::connect(url);
                ProducerOptions po;
                po.lingerMs = 0;
                Producer prod(fab.client(), "t", po);
                std::vector<Future> futs;
                for (uint32_t i = 0; i < uint32_t(kEvents); ++i) {
                    uint32_t v[2] = {uint32_t(p), i};
                    DataRef d{v, sizeof v, nullptr};
                    futs.push_back(prod.push("{}", 2, &d, 1, int64_t((p + i) % 2), nullptr, 0, true));
                    if (i % 4 != 3) futs.back().wait(-1); // mostly one event per batch, as the compute pool sends
                }
                prod.flush(-1);
                for (auto& f : futs) ids[size_t(p)].push_back(f.wait(-1));
                prod.close();
                fab.close();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "producer %d: %s\n", p, e.what());
                ++failures;
            }
        });
    for (auto& t : producers) t.join();
    const uint64_t syncs = syncCountForTesting() - syncs0;
    CHECK(failures == 0);
    // Every event is stored at the offset it was acknowledged with; offsets dense per partition.
    size_t events = 0, batches = 0;
    bool dense = true, where = true;
    for (uint32_t part = 0; part < 2; ++part) {
        uint64_t next = 0;
        for (const StoredBatch& sb : broker->fetch("t", part, 0, 1ull << 40, 0)) {
            ++batches;
            BatchView v(sb.data, sb.size);
            dense = dense && sb.baseOffset == next && v.crcOk();
            for (uint32_t j = 0; j < sb.count; ++j) {
                Piece d = v.eventData(j);
                uint32_t val[2] = {UINT32_MAX, UINT32_MAX};
                if (d.size == sizeof val) std::memcpy(val, d.data, sizeof val);
                where = where && val[0] < uint32_t(kProducers) && val[1] < ids[val[0]].size() &&
                        ids[val[0]][val[1]].partition == part && ids[val[0]][val[1]].offset == sb.baseOffset + j;
                ++events;
            }
            next = sb.baseOffset + sb.count;
        }
    }
    CHECK(dense && where && events == size_t(kProducers * kEvents));
    CHECK(syncs <= batches); // at most one fdatasync per stored batch
    std::printf("group commit over TCP: %d producers, %zu durable batches, %llu syncs\n", kProducers, batches,
                static_cast<unsigned long long>(syncs));
    // A failed sync: the produce fails with it, and the partition refuses writes until reopened.
    {
        Fabric fab = Fabric::connect(url);
        Producer prod(fab.client(), "t", ProducerOptions{});
        failSyncForTesting(0);
        Future f = prod.push("{}", 2, nullptr, 0, 0, nullptr, 0, true);
        std::string err = storageErrorOf([&] {
            prod.flush(-1);
            f.wait(-1);
        });
        CHECK(contains(err, "this batch was not stored") && contains(err, "takes no more writes until it is reopened"));
        Future g = prod.push("{}", 2, nullptr, 0, 1, nullptr, 0, true); // the other partition did not fail
        std::string ok = storageErrorOf([&] { g.wait(-1); });
        CHECK(ok == "");
        prod.close(0);
        fab.close();
    }
    failSyncForTesting(-1);
    stop = true;
    loop.join();
    server.shutdown(1000);
    broker->close();
}

template <class F>
static int errorCodeOf(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return int(e.code());
    }
    return -1;
}

/// Append a producer's batch of @p n events (data of @p dataLen bytes each, value @p fill).
static AppendResult put(PartitionLog& log, uint64_t producer, uint64_t seq, int n, size_t dataLen, uint8_t fill) {
    return withBatch(producer, seq, n, dataLen, fill, [&](SealedBatch& sb) { return log.append(sb); });
}

/// Copy the batches of @p leader from @p from onwards into @p follower; returns how many.
static size_t replicate(const PartitionLog& leader, PartitionLog& follower, uint64_t from) {
    size_t n = 0;
    for (const StoredBatch& sb : leader.readUnlimited(from, 1ull << 40)) {
        follower.appendReplica(sb.data, sb.size);
        ++n;
    }
    return n;
}

/// True if both logs hold byte-identical batches (headers included) at the same offsets.
static bool sameBatches(const PartitionLog& a, const PartitionLog& b) {
    auto x = a.readUnlimited(0, 1ull << 40), y = b.readUnlimited(0, 1ull << 40);
    if (x.size() != y.size() || a.endOffset() != b.endOffset()) return false;
    for (size_t i = 0; i < x.size(); ++i)
        if (x[i].baseOffset != y[i].baseOffset || x[i].size != y[i].size ||
            std::memcmp(x[i].data, y[i].data, x[i].size) != 0)
            return false;
    return true;
}

/// Base offsets of the segment files in @p dir, and whether a truncation's temporary file is there.
static std::vector<uint64_t> segmentFiles(const std::string& dir, bool* leftover = nullptr) {
    std::vector<uint64_t> out;
    if (leftover) *leftover = false;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            std::string n = e->d_name;
            if (n.size() == 24 && n.compare(20, 4, ".log") == 0) out.push_back(std::stoull(n.substr(0, 20)));
            if (leftover && n.find(".truncating") != std::string::npos) *leftover = true;
        }
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// Replication primitives (issue 16) on memory (@p dir empty) or file storage: appendReplica copies
/// a leader's batches byte for byte and refuses bad ones, a follower answers resends as duplicates,
/// truncateTo drops a diverged tail (readers' views intact), batchEndingAt, the visible end.
static void testReplicaLog(const std::string& dir) {
    LogOptions lo, fo;
    if (!dir.empty()) {
        lo.directory = dir + "/leader";
        fo.directory = dir + "/follower";
        lo.sync = fo.sync = SyncPolicy::Batch;
    }
    PartitionLog leader(lo);
    PartitionLog follower(fo);
    put(leader, 1, 0, 3, 100, 0x11); // [0, 3)
    put(leader, 2, 0, 2, 5000, 0x21); // [3, 5)
    put(leader, 1, 1, 4, 10, 0x12); // [5, 9)
    put(leader, 2, 1, 1, 20000, 0x22); // [9, 10)
    const uint64_t syncs0 = syncCountForTesting();
    CHECK(replicate(leader, follower, 0) == 4);
    CHECK(syncCountForTesting() == syncs0); // no sync per replicated batch, whatever the policy
    CHECK(follower.endOffset() == 10 && sameBatches(leader, follower));
    follower.sync();

    // Refused, nothing written: a batch already there, one past the end, a flipped bit, a short one.
    const uint64_t size0 = follower.sizeBytes();
    auto held = leader.readUnlimited(0, 1 << 30);
    CHECK(errorCodeOf([&] { follower.appendReplica(held[1].data, held[1].size); }) == int(ErrorCode::InvalidArgument));
    put(leader, 1, 2, 2, 300, 0x13); // [10, 12)
    auto tail = leader.readUnlimited(10, 1);
    std::vector<uint8_t> next(tail[0].data, tail[0].data + tail[0].size);
    std::vector<uint8_t> bad = next;
    reinterpret_cast<BatchHeader*>(bad.data())->baseOffset = 11;
    CHECK(errorCodeOf([&] { follower.appendReplica(bad.data(), bad.size()); }) == int(ErrorCode::InvalidArgument));
    bad = next;
    bad[bad.size() - 9] ^= 0x04;
    CHECK(errorCodeOf([&] { follower.appendReplica(bad.data(), bad.size()); }) == int(ErrorCode::Corruption));
    bad = next;
    bad[40] ^= 0x01; // the producer id, covered by the CRC
    CHECK(errorCodeOf([&] { follower.appendReplica(bad.data(), bad.size()); }) == int(ErrorCode::Corruption));
    CHECK(errorCodeOf([&] { follower.appendReplica(next.data(), next.size() - 8); }) == int(ErrorCode::Corruption));
    CHECK(errorCodeOf([&] { follower.appendReplica(next.data(), 40); }) == int(ErrorCode::Corruption));
    CHECK(follower.endOffset() == 10 && follower.sizeBytes() == size0 && follower.read(10, 1 << 30).empty());
    CHECK(follower.appendReplica(next.data(), next.size()).baseOffset == 10);
    CHECK(sameBatches(leader, follower));

    // A producer resending a replicated batch to the follower gets its original offsets back;
    // its next batch follows on; a batch past a gap in its sequence is refused.
    AppendResult again = put(follower, 2, 1, 1, 20000, 0x22);
    CHECK(again.duplicate && again.baseOffset == 9 && follower.endOffset() == 12);
    CHECK(errorCodeOf([&] { put(follower, 1, 4, 1, 10, 0x15); }) == int(ErrorCode::OutOfSequence));

    // batchEndingAt: the batch whose last event is offset - 1.
    auto e = follower.batchEndingAt(5);
    CHECK(e && e->baseOffset == 3 && e->count == 2 && e->producerId == 2 && e->sequence == 0);
    CHECK(follower.batchEndingAt(3) && follower.batchEndingAt(3)->baseOffset == 0);
    CHECK(follower.batchEndingAt(12) && follower.batchEndingAt(12)->baseOffset == 10);
    CHECK(follower.batchEndingAt(10) && follower.batchEndingAt(10)->length == held[3].size);
    CHECK(!follower.batchEndingAt(0) && !follower.batchEndingAt(4) && !follower.batchEndingAt(6));
    CHECK(!follower.batchEndingAt(8) && !follower.batchEndingAt(13) && !follower.batchEndingAt(UINT64_MAX));

    // The visible end (a leader's high watermark): whole batches below it only.
    CHECK(leader.visibleEnd() == UINT64_MAX && leader.visibleEndOffset() == 12);
    leader.setVisibleEnd(5);
    CHECK(leader.visibleEnd() == 5 && leader.visibleEndOffset() == 5 && leader.endOffset() == 12);
    auto vis = leader.read(0, 1 << 30);
    CHECK(vis.size() == 2 && vis.back().baseOffset == 3);
    CHECK(leader.read(5, 1 << 30).empty() && leader.readUnlimited(5, 1 << 30).size() == 3);
    leader.setVisibleEnd(7); // inside [5, 9): that batch stays hidden
    CHECK(leader.visibleEndOffset() == 7 && leader.read(5, 1 << 30).empty() && leader.read(3, 1 << 30).size() == 1);
    auto now = std::chrono::steady_clock::now;
    CHECK(leader.waitFor(4, now()));
    CHECK(!leader.waitFor(5, now() + std::chrono::milliseconds(20)));
    std::atomic<int> woke{-1};
    auto t0 = now();
    std::thread waiter([&] { woke = leader.waitFor(9, now() + std::chrono::seconds(20)) ? 1 : 0; });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    CHECK(woke == -1);
    leader.setVisibleEnd(9);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    CHECK(woke == -1); // [5, 9) visible now, but the waiter waits for offset 9
    leader.setVisibleEnd(10);
    waiter.join();
    CHECK(woke == 1 && now() - t0 < std::chrono::seconds(10));
    CHECK(leader.read(9, 1 << 30).size() == 1 && leader.read(0, 1 << 30).size() == 4);
    put(leader, 2, 2, 1, 10, 0x23); // [12, 13): appended past the limit, hidden
    CHECK(leader.read(10, 1 << 30).empty() && leader.endOffset() == 13 && leader.visibleEndOffset() == 10);
    leader.setVisibleEnd(UINT64_MAX);
    CHECK(leader.read(10, 1 << 30).size() == 2 && leader.visibleEndOffset() == 13);
    leader.setVisibleEnd(12);
    CHECK(leader.read(0, 1 << 30).size() == 5 && leader.visibleEnd() == 12);
    leader.setVisibleEnd(UINT64_MAX);

    // Truncation: the leader dies, the follower becomes leader with a different tail from 5 on.
    std::vector<StoredBatch> views = follower.read(0, 1 << 30); // a reader holding every batch
    std::vector<std::vector<uint8_t>> before;
    for (const StoredBatch& sb : views) before.emplace_back(sb.data, sb.data + sb.size);
    CHECK(errorCodeOf([&] { follower.truncateTo(6); }) == int(ErrorCode::InvalidArgument)); // inside [5, 9)
    CHECK(errorCodeOf([&] { follower.truncateTo(13); }) == int(ErrorCode::InvalidArgument));
    CHECK(follower.endOffset() == 12 && follower.read(0, 1 << 30).size() == 5);
    CHECK(follower.truncateTo(12) == 0);
    CHECK(follower.truncateTo(5) == 7);
    CHECK(follower.endOffset() == 5 && follower.read(0, 1 << 30).size() == 2 && follower.read(5, 1 << 30).empty());
    CHECK(follower.batchEndingAt(5) && !follower.batchEndingAt(10) && !follower.batchEndingAt(12));
    // Dropped batches are forgotten by the dedupe state: appended again. Kept ones still are duplicates.
    AppendResult r = put(follower, 1, 1, 4, 10, 0x52);
    CHECK(!r.duplicate && r.baseOffset == 5);
    r = put(follower, 2, 0, 2, 5000, 0x21);
    CHECK(r.duplicate && r.baseOffset == 3);
    r = put(follower, 2, 1, 1, 64, 0x53);
    CHECK(!r.duplicate && r.baseOffset == 9);
    CHECK(put(follower, 3, 0, 2, 7000, 0x54).baseOffset == 10 && follower.endOffset() == 12);
    // The reader's views are untouched, dropped batches included.
    bool intact = views.size() == before.size();
    for (size_t i = 0; intact && i < views.size(); ++i)
        intact = views[i].size == before[i].size() && std::memcmp(views[i].data, before[i].data(), views[i].size) == 0;
    CHECK(intact);
    views.clear();
    // The old leader follows: truncated where it diverged, then fed the new leader's batches.
    CHECK(leader.truncateTo(5) == 8);
    CHECK(replicate(follower, leader, 5) == 3 && sameBatches(leader, follower));
    // Without readers the segment is cut in place; a second round of the same.
    CHECK(follower.truncateTo(9) == 3 && follower.endOffset() == 9);
    CHECK(put(follower, 3, 0, 1, 10, 0x55).baseOffset == 9); // producer 3's batch was dropped
    CHECK(leader.truncateTo(9) == 3 && replicate(follower, leader, 9) == 1 && sameBatches(leader, follower));
    // The whole log, from its start.
    CHECK(follower.truncateTo(0) == 10 && follower.endOffset() == 0 && follower.read(0, 1 << 30).empty());
    CHECK(!put(follower, 1, 0, 3, 100, 0x11).duplicate && follower.endOffset() == 3);

    // A reservation open (in memory): neither replicas nor truncations meanwhile.
    if (dir.empty()) {
        uint8_t* p = follower.reserve(next.size());
        CHECK(p != nullptr);
        auto first = leader.readUnlimited(3, 1);
        CHECK(errorCodeOf([&] { follower.appendReplica(first[0].data, first[0].size); }) ==
              int(ErrorCode::InvalidArgument));
        CHECK(errorCodeOf([&] { follower.truncateTo(0); }) == int(ErrorCode::InvalidArgument));
        follower.cancelReserved();
        CHECK(follower.endOffset() == 3);
    }
    // After a purge the start moved: truncating below it is refused, to it is fine.
    follower.purge();
    CHECK(errorCodeOf([&] { follower.truncateTo(0); }) == int(ErrorCode::InvalidArgument));
    CHECK(follower.truncateTo(3) == 0 && follower.startOffset() == 3);
    CHECK(!follower.batchEndingAt(3));
    leader.close();
    follower.close();
}

/// truncateTo across segments (4 KiB segments, one event per batch): later segments removed,
/// views of dropped data intact, a reopened file log recovers the truncated end and dedupe state.
static void testReplicaSegments(const std::string& dir) {
    LogOptions o;
    o.segmentBytes = 4096;
    if (!dir.empty()) o.directory = dir + "/segments";
    const bool file = !dir.empty();
    auto fillsOf = [](const PartitionLog& log) {
        std::vector<uint8_t> out;
        for (const StoredBatch& sb : log.readUnlimited(0, 1ull << 40)) {
            BatchView v(sb.data, sb.size);
            if (!v.crcOk()) out.push_back(0);
            for (uint32_t i = 0; i < v.count(); ++i) out.push_back(v.eventData(i).data[0]);
        }
        return out;
    };
    auto upTo = [](int n) {
        std::vector<uint8_t> v;
        for (int i = 0; i < n; ++i) v.push_back(uint8_t(i + 1));
        return v;
    };
    {
        PartitionLog log(o);
        for (int i = 0; i < 30; ++i) CHECK(put(log, 5, uint64_t(i), 1, 1000, uint8_t(i + 1)).baseOffset == uint64_t(i));
        if (file) CHECK(segmentFiles(o.directory).size() >= 8);
        // A replicated batch that needs a new segment, damaged: refused before anything is rolled or written.
        auto src = log.readUnlimited(29, 1);
        auto segs0 = file ? segmentFiles(o.directory) : std::vector<uint64_t>();
        std::vector<uint8_t> last(src[0].data, src[0].data + src[0].size);
        reinterpret_cast<BatchHeader*>(last.data())->baseOffset = 30;
        last[last.size() - 20] ^= 0x80;
        CHECK(errorCodeOf([&] { log.appendReplica(last.data(), last.size()); }) == int(ErrorCode::Corruption));
        CHECK(log.endOffset() == 30 && (!file || segmentFiles(o.directory) == segs0));
        std::vector<StoredBatch> views = log.read(0, 1ull << 40);
        std::vector<std::vector<uint8_t>> before;
        for (const StoredBatch& sb : views) before.emplace_back(sb.data, sb.data + sb.size);
        // Inside a segment (a batch boundary, not a segment's start): later segments go, that one is cut.
        CHECK(log.truncateTo(10) == 20 && log.endOffset() == 10 && fillsOf(log) == upTo(10));
        bool leftover = true;
        if (file) {
            auto segs = segmentFiles(o.directory, &leftover);
            CHECK(!segs.empty() && segs.back() < 10 && segs.back() > 0 && !leftover);
        }
        // Different batches after the cut, across new segments.
        for (int i = 10; i < 20; ++i)
            CHECK(put(log, 6, uint64_t(i - 10), 1, 1000, uint8_t(0x80 + i)).baseOffset == uint64_t(i));
        bool intact = true;
        for (size_t i = 0; i < views.size(); ++i)
            intact = intact && std::memcmp(views[i].data, before[i].data(), views[i].size) == 0;
        CHECK(intact);
        views.clear();
        // Exactly at a segment's start (the last one: where a batch does not follow its predecessor
        // in memory): that segment goes whole.
        uint64_t segBase = 0;
        for (uint64_t off = 19; off > 10 && !segBase; --off) {
            auto prev = log.read(off - 1, 1), cur = log.read(off, 1);
            if (prev[0].data + prev[0].size != cur[0].data) segBase = off;
        }
        CHECK(segBase > 10 && (!file || segBase == segmentFiles(o.directory).back()));
        CHECK(log.truncateTo(segBase) == 20 - segBase && log.endOffset() == segBase);
        if (file) CHECK(segmentFiles(o.directory).back() < segBase);
        // Producer 5's batch 10 was dropped: appended again; its batch 9 is a duplicate.
        CHECK(errorCodeOf([&] { put(log, 5, 12, 1, 1000, 1); }) == int(ErrorCode::OutOfSequence));
        AppendResult r = put(log, 5, 9, 1, 1000, 10);
        CHECK(r.duplicate && r.baseOffset == 9);
        r = put(log, 5, 10, 1, 1000, 0x40);
        CHECK(!r.duplicate && r.baseOffset == segBase);
        CHECK(log.truncateTo(segBase) == 1);
        log.close();
    }
    if (!file) return;
    {
        PartitionLog log(o); // reopened: the truncated end, cleanly
        std::vector<uint8_t> want = upTo(10);
        for (int i = 10; i < 20; ++i) want.push_back(uint8_t(0x80 + i));
        want.resize(log.endOffset());
        CHECK(log.unwritable() == "" && log.endOffset() > 10 && log.endOffset() < 20 && fillsOf(log) == want);
        const uint64_t end = log.endOffset();
        // Dedupe state as rebuilt: producer 6's last kept batch is a duplicate, its first dropped one is new.
        AppendResult r = put(log, 6, end - 11, 1, 1000, uint8_t(0x80 + end - 1));
        CHECK(r.duplicate && r.baseOffset == end - 1);
        r = put(log, 6, end - 10, 1, 1000, 0x41);
        CHECK(!r.duplicate && r.baseOffset == end);
        r = put(log, 5, 10, 1, 1000, 0x42);
        CHECK(!r.duplicate && r.baseOffset == end + 1);
        log.close();
    }
}

/// The dedupe window after truncateTo: batches the dropped ones had pushed out of a producer's
/// window come back with their offsets, as a reopen would rebuild them.
static void testReplicaDedupe(const std::string& dir) {
    LogOptions o;
    if (!dir.empty()) o.directory = dir + "/dedupe";
    {
        PartitionLog log(o);
        for (int i = 0; i < 20; ++i) put(log, 3, uint64_t(i), 1, 10, uint8_t(i + 1));
        put(log, 4, 0, 1, 10, 0x44); // [20, 21)
        CHECK(log.truncateTo(18) == 3);
        AppendResult r = put(log, 3, 2, 1, 10, 3); // pushed out before, back in the window now
        CHECK(r.duplicate && r.baseOffset == 2);
        r = put(log, 3, 1, 1, 10, 2); // stored, older than the window
        CHECK(r.duplicate && r.baseOffset == UINT64_MAX);
        r = put(log, 4, 0, 1, 10, 0x44); // producer 4 had only dropped batches: forgotten
        CHECK(!r.duplicate && r.baseOffset == 18);
        CHECK(log.truncateTo(3) == 16); // every batch in producer 3's window dropped
        r = put(log, 3, 2, 1, 10, 3);
        CHECK(r.duplicate && r.baseOffset == 2);
        r = put(log, 3, 0, 1, 10, 1);
        CHECK(r.duplicate && r.baseOffset == 0);
        r = put(log, 3, 3, 1, 10, 0x33);
        CHECK(!r.duplicate && r.baseOffset == 3);
        log.close();
    }
    if (dir.empty()) return;
    PartitionLog log(o);
    AppendResult r = put(log, 3, 3, 1, 10, 0x33);
    CHECK(r.duplicate && r.baseOffset == 3 && log.endOffset() == 4);
    r = put(log, 4, 0, 1, 10, 0x44);
    CHECK(!r.duplicate && r.baseOffset == 4);
    log.close();
}

/// truncateTo and appendReplica under group commit: written but unsynced batches are published first.
static void testReplicaGroupCommit(const std::string& dir) {
    LogOptions o;
    o.directory = dir + "/group";
    o.sync = SyncPolicy::Batch;
    PartitionLog log(o);
    put(log, 7, 0, 2, 10, 1);
    PartitionLog::Pending pending =
        withBatch(7, 1, 3, 10, 2, [&](SealedBatch& sb) { return log.appendNoWait(sb, CrcMode::Compute); });
    CHECK(pending.ticket != 0 && log.endOffset() == 2);
    CHECK(log.truncateTo(2) == 3 && log.endOffset() == 2);
    AppendResult r = log.awaitDurable(pending);
    CHECK(r.baseOffset == 2 && !r.duplicate);
    pending = withBatch(7, 1, 3, 10, 2, [&](SealedBatch& sb) { return log.appendNoWait(sb, CrcMode::Compute); });
    PartitionLog source(LogOptions{});
    put(source, 7, 0, 2, 10, 1);
    put(source, 7, 1, 3, 10, 2);
    put(source, 8, 0, 1, 10, 3);
    auto third = source.readUnlimited(5, 1);
    CHECK(log.appendReplica(third[0].data, third[0].size).baseOffset == 5); // after the pending batch, synced first
    CHECK(log.awaitDurable(pending).baseOffset == 2 && log.endOffset() == 6 && sameBatches(log, source));
    log.close();
}

/// Issue 18: a clean close records a recovery point; reopening reads it instead of the segments
/// (only a tail written since is checked), old batches are checked on first use, damage in an old
/// segment surfaces as Corruption at read and from verify(), repair and a truncation still work.
static void testRecoveryPoint(const std::string& dir) {
    LogOptions o;
    o.segmentBytes = 4096;
    o.directory = dir + "/rp";
    auto flipByte = [](const std::string& path, long at) {
        FILE* f = std::fopen(path.c_str(), "r+b");
        CHECK(f != nullptr);
        if (!f) return;
        std::fseek(f, at, SEEK_SET);
        int c = std::fgetc(f);
        std::fseek(f, at, SEEK_SET);
        std::fputc(c ^ 0x20, f);
        std::fclose(f);
    };
    auto pointExists = [&] { return access((o.directory + "/recovery-point").c_str(), F_OK) == 0; };
    uint64_t total = 0;
    {
        PartitionLog log(o);
        CHECK(!log.openStats().fromRecoveryPoint);
        for (int i = 0; i < 40; ++i) put(log, 5, uint64_t(i), 1, 1000, uint8_t(i + 1));
        total = log.sizeBytes();
        log.close();
    }
    CHECK(pointExists());
    const auto segs = segmentFiles(o.directory);
    CHECK(segs.size() >= 8);
    {
        PartitionLog log(o);
        LogOpenStats st = log.openStats();
        CHECK(st.fromRecoveryPoint && st.checkedBytes == 0 && st.deferredBytes == total);
        CHECK(log.endOffset() == 40 && log.sizeBytes() == total);
        std::vector<uint8_t> want;
        for (int i = 0; i < 40; ++i) want.push_back(uint8_t(i + 1));
        CHECK(fills(log) == want); // every batch checked on this first read
        // The producer's dedupe window came back from the recovery point.
        AppendResult again = put(log, 5, 39, 1, 1000, 40);
        CHECK(again.duplicate && again.baseOffset == 39);
        CHECK(put(log, 5, 40, 1, 1000, 41).baseOffset == 40);
        std::vector<std::pair<uint64_t, uint64_t>> progress;
        CHECK(log.verify([&](uint64_t done, uint64_t all) { progress.emplace_back(done, all); }) == log.sizeBytes());
        CHECK(!progress.empty() && progress.back().first == progress.back().second);
        // A crash (kill -9) after more appends: a copy of the files as they are now, recovery point
        // from the last close, 5 batches past it.
        for (int i = 41; i < 46; ++i) put(log, 5, uint64_t(i), 1, 1000, uint8_t(i + 1));
        std::string cp = "cp -r " + o.directory + " " + dir + "/crashed";
        CHECK(std::system(cp.c_str()) == 0);
        log.close();
    }
    {
        LogOptions c = o;
        c.directory = dir + "/crashed";
        PartitionLog log(c);
        LogOpenStats st = log.openStats();
        CHECK(st.fromRecoveryPoint && st.deferredBytes == total && st.checkedBytes > 0 && st.checkedBytes < total);
        CHECK(log.endOffset() == 46);
        CHECK(fills(log).size() == 46);
    }
    // A bit flipped in the data of a batch in an old segment: the open does not see it, the first
    // read and verify() do, naming the file; repair truncates there.
    const std::string third = o.directory + "/" + [&] {
        char name[32];
        std::snprintf(name, sizeof name, "%020llu.log", (unsigned long long)segs[2]);
        return std::string(name);
    }();
    flipByte(third, 700);
    {
        PartitionLog log(o);
        CHECK(log.openStats().fromRecoveryPoint && log.openStats().checkedBytes == 0);
        std::string msg;
        try {
            for (uint64_t off = 0; off < log.endOffset(); ++off) log.read(off, 1);
        } catch (const Error& e) {
            msg = e.code() == ErrorCode::Corruption ? e.what() : "";
        }
        CHECK(contains(msg, third) && contains(msg, "repair=True"));
        CHECK(log.read(0, 1).size() == 1); // batches before the damage still read
        CHECK(errorCodeOf([&] { log.verify(); }) == int(ErrorCode::Corruption));
    }
    {
        LogOptions r = o;
        r.repair = true;
        PartitionLog log(r);
        CHECK(!log.openStats().fromRecoveryPoint && log.endOffset() == segs[2]);
        log.close();
    }
    {
        PartitionLog log(o); // the repaired log's own recovery point
        CHECK(log.openStats().fromRecoveryPoint && log.endOffset() == segs[2] && log.verify() == log.sizeBytes());
        // A header field outside the CRC (the base offset) of a batch in the second segment: the
        // segment's index is built on first use, which checks the offsets.
        log.close();
    }
    const std::string second = o.directory + "/" + [&] {
        char name[32];
        std::snprintf(name, sizeof name, "%020llu.log", (unsigned long long)segs[1]);
        return std::string(name);
    }();
    flipByte(second, 16); // BatchHeader::baseOffset of its first batch
    {
        PartitionLog log(o);
        CHECK(log.openStats().checkedBytes == 0);
        CHECK(log.read(0, 1).size() == 1);
        CHECK(errorCodeOf([&] { log.read(segs[1], 1); }) == int(ErrorCode::Corruption));
    }
    flipByte(second, 16); // back as it was
    // truncateTo() removes the recovery point before it changes a file; close records a new one.
    {
        PartitionLog log(o);
        CHECK(log.truncateTo(3) > 0);
        CHECK(!pointExists());
        log.close();
        CHECK(pointExists());
    }
    {
        PartitionLog log(o);
        CHECK(log.openStats().fromRecoveryPoint && log.endOffset() == 3 && fills(log).size() == 3);
    }
    // While the log is open, housekeeping records a recovery point once the interval passed (syncs and
    // file written without the lock): a crash right after it checks nothing at open.
    {
        LogOptions h = o;
        h.directory = dir + "/hk";
        h.recoveryPointIntervalMs = 1;
        PartitionLog log(h);
        for (int i = 0; i < 12; ++i) put(log, 3, uint64_t(i), 1, 1000, 9);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        log.housekeeping();
        CHECK(access((h.directory + "/recovery-point").c_str(), F_OK) == 0);
        std::string cp = "cp -r " + h.directory + " " + dir + "/hk-crashed";
        CHECK(std::system(cp.c_str()) == 0);
    }
    {
        LogOptions c = o;
        c.directory = dir + "/hk-crashed";
        PartitionLog log(c);
        CHECK(log.openStats().fromRecoveryPoint && log.openStats().checkedBytes == 0 && log.endOffset() == 12);
    }
    // A recorded segment found shorter than recorded: the record is ignored, everything checked.
    {
        PartitionLog log(o);
        for (int i = 0; i < 10; ++i) put(log, 9, uint64_t(i), 1, 1000, 7);
        log.close();
    }
    const auto now = segmentFiles(o.directory);
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.log", (unsigned long long)now.back());
    const std::string lastPath = o.directory + "/" + name;
    struct stat sb{};
    CHECK(::stat(lastPath.c_str(), &sb) == 0 && truncate(lastPath.c_str(), sb.st_size - 8) == 0);
    {
        PartitionLog log(o);
        CHECK(!log.openStats().fromRecoveryPoint && log.openStats().checkedBytes == log.sizeBytes());
        CHECK(log.endOffset() == 12); // the torn last batch dropped
    }
}

int main() {
    testCrc();
    testSha();
    roundTrip("memory://");
    char dir[] = "/tmp/mofka-cpp-test-XXXXXX";
    if (!mkdtemp(dir)) return 2;
    roundTrip(std::string("file://") + dir + "/fab");
    {
        Fabric again = Fabric::connect(std::string("file://") + dir + "/fab"); // reopens what was written
        CHECK(again.client()->describeTopic("t").partitions.size() == 3);
        again.close();
    }
    std::string rm = std::string("rm -rf ") + dir;
    if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir);
    testErrors();
    testReservations();
    testReplicaLog("");
    testReplicaSegments("");
    testReplicaDedupe("");
    testFlushRacesSender();
    {
        char gdir[] = "/tmp/mofka-cpp-groups-XXXXXX";
        if (!mkdtemp(gdir)) return 2;
        testGroupRules(std::string(gdir) + "/fab");
        std::string rmg = std::string("rm -rf ") + gdir;
        if (std::system(rmg.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", gdir);
    }
    {
        char sdir[] = "/tmp/mofka-cpp-sync-XXXXXX";
        if (!mkdtemp(sdir)) return 2;
        testSyncFailure(sdir);
        testBrokerSyncFailure(std::string(sdir) + "/fab");
        testGroupCommit(std::string(sdir) + "/group");
        testTcpGroupCommit(std::string(sdir) + "/tcp");
        testReplicaLog(std::string(sdir) + "/replica");
        testReplicaSegments(std::string(sdir) + "/replica");
        testReplicaDedupe(std::string(sdir) + "/replica");
        testReplicaGroupCommit(std::string(sdir) + "/replica");
        testRecoveryPoint(sdir);
        std::string rms = std::string("rm -rf ") + sdir;
        if (std::system(rms.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", sdir);
    }
    std::printf("C++ core tests: %d checks passed, %d failed\n", g_checks - g_failed, g_failed);
    return g_failed ? 1 : 0;
}
