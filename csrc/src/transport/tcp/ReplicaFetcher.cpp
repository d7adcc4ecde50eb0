#include "mofka_py/ReplicaFetcher.hpp"

#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "transport/tcp/TcpClient.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

namespace mofka_py {

struct ReplicaFetcher::Impl {
    std::shared_ptr<Broker> broker;
    std::string topic;
    uint32_t partition;
    uint64_t epoch;
    std::string host;
    uint16_t port;
    ReplicaFetcherOptions opts;
    std::atomic<bool> stopping{false};
    std::atomic<uint64_t> appended{0};
    std::atomic<uint64_t> truncated{0};
    mutable std::mutex m;
    std::condition_variable cv;
    std::string lastError;
    std::shared_ptr<BrokerClient> client;
    std::thread thread;

    void setError(const std::string& e) {
        std::lock_guard<std::mutex> l(m);
        lastError = e;
    }
    /// Sleep up to @p ms unless stopped.
    void pause(int64_t ms) {
        std::unique_lock<std::mutex> l(m);
        cv.wait_for(l, std::chrono::milliseconds(ms), [&] { return stopping.load(); });
    }

    std::chrono::steady_clock::time_point lastOffsetsCopy{};

    /// The follower of a topic's partition 0 may become its groups' coordinator: besides the
    /// commits clients copy to it, it takes the leader's committed offsets about once a second, so
    /// a replica that joined late (restarted empty, reassigned) has them too.
    void copyGroupOffsets(BrokerClient& leader) {
        auto now = std::chrono::steady_clock::now();
        if (now - lastOffsetsCopy < std::chrono::seconds(1)) return;
        lastOffsetsCopy = now;
        uint32_t n = broker->partitionCount(topic);
        for (const std::string& g : leader.groups(topic)) {
            std::vector<std::pair<uint32_t, uint64_t>> changed;
            for (uint32_t p = 0; p < n; ++p) {
                std::optional<uint64_t> theirs = leader.committed(g, topic, p);
                if (theirs && broker->committed(g, topic, p) != theirs) changed.emplace_back(p, *theirs);
            }
            if (!changed.empty()) broker->commit(g, topic, changed);
        }
    }

    void run() {
        int64_t backoffMs = 20;
        while (!stopping) {
            try {
                std::shared_ptr<BrokerClient> c;
                {
                    std::lock_guard<std::mutex> l(m);
                    if (!client) {
                        TcpClientOptions t;
                        t.token = opts.token;
                        t.connectTimeoutMs = opts.connectTimeoutMs;
                        t.requestTimeoutMs = opts.pollMs + 2000;
                        t.reconnectTimeoutMs = 0; // this loop retries, against the leader it is told
                        std::string url = "tcp://" + host + ":" + std::to_string(port);
                        client = makeTcpClient(host, port, t, url);
                    }
                    c = client;
                }
                uint64_t end = broker->replicaMarks(topic, partition).first;
                std::optional<BatchHeader> prev = broker->batchEndingAt(topic, partition, end);
                ReplicaFetchReply r = tcpReplicaFetch(*c, topic, partition, end, opts.maxBytes, opts.pollMs,
                                                      broker->nodeId(), epoch, prev);
                if (r.diverged) {
                    // Drop the last local batch (and anything past the leader's end), then ask again:
                    // the loop ends at the longest prefix both logs share, batch by batch.
                    uint64_t target = prev ? prev->baseOffset : end;
                    target = std::min(target, broker->batchBoundaryAtOrBefore(topic, partition, r.leaderEnd));
                    broker->truncateReplica(topic, partition, epoch, target);
                    ++truncated;
                    continue;
                }
                broker->appendFromLeader(topic, partition, epoch, r.batches, r.highWatermark);
                appended += r.batches.size();
                if (partition == 0) copyGroupOffsets(*c);
                setError("");
                backoffMs = 20;
            } catch (const std::exception& e) {
                if (stopping) break;
                setError(e.what());
                {
                    std::lock_guard<std::mutex> l(m);
                    client.reset(); // reconnect next time
                }
                pause(backoffMs);
                backoffMs = std::min<int64_t>(backoffMs * 2, 200);
            }
        }
    }
};

ReplicaFetcher::ReplicaFetcher(std::shared_ptr<Broker> broker, std::string topic, uint32_t partition, uint64_t epoch,
                               std::string host, uint16_t port, ReplicaFetcherOptions options)
: m_impl(std::make_unique<Impl>()) {
    if (!broker || broker->nodeId().empty())
        throw Error(ErrorCode::InvalidArgument, "a replica fetcher needs a cluster broker (a node id)");
    m_impl->broker = std::move(broker);
    m_impl->topic = std::move(topic);
    m_impl->partition = partition;
    m_impl->epoch = epoch;
    m_impl->host = std::move(host);
    m_impl->port = port;
    m_impl->opts = std::move(options);
    m_impl->broker->replicaMarks(m_impl->topic, partition); // unknown topic/partition: an error here
    Impl* impl = m_impl.get();
    m_impl->thread = std::thread([impl] { impl->run(); });
}

ReplicaFetcher::~ReplicaFetcher() { stop(); }

void ReplicaFetcher::stop() {
    if (!m_impl || !m_impl->thread.joinable()) return;
    std::shared_ptr<BrokerClient> c;
    {
        std::lock_guard<std::mutex> l(m_impl->m);
        m_impl->stopping = true;
        c = m_impl->client;
    }
    m_impl->cv.notify_all();
    if (c) c->close(); // ends a long poll in flight
    m_impl->thread.join();
}

std::string ReplicaFetcher::lastError() const {
    std::lock_guard<std::mutex> l(m_impl->m);
    return m_impl->lastError;
}

uint64_t ReplicaFetcher::appendedBatches() const { return m_impl->appended; }
uint64_t ReplicaFetcher::truncations() const { return m_impl->truncated; }

} // namespace mofka_py
