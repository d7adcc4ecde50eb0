// A client of a replicated cluster: one TcpClient per node, requests routed to each partition's
// leader as the nodes report it (ControlOp::ClusterMetadata), resent after a failover.
#include "transport/RemoteClient.hpp"
#include "transport/tcp/TcpClient.hpp"
#include "wire/Control.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace mofka_py {
namespace {

using Clock = std::chrono::steady_clock;
using To = BrokerClient::ControlRoute::To;

/// Errors after which a request is sent again to the partition's (maybe new) leader.
bool retriable(ErrorCode c, bool timeoutToo) {
    return c == ErrorCode::NotLeader || c == ErrorCode::Connection || c == ErrorCode::NotEnoughReplicas ||
           (timeoutToo && c == ErrorCode::Timeout);
}

std::pair<std::string, uint16_t> splitAddress(const std::string& a) {
    auto colon = a.rfind(':');
    return {a.substr(0, colon), uint16_t(std::stoul(a.substr(colon + 1)))};
}

class ClusterClient final : public RemoteClient {
  public:
    ClusterClient(const std::vector<std::pair<std::string, uint16_t>>& nodes, TcpClientOptions opts, std::string url)
    : m_opts(std::move(opts)), m_url(std::move(url)) {
        for (auto& n : nodes) m_addresses.push_back(n.first + ":" + std::to_string(n.second));
        m_nodeOpts = m_opts;
        m_nodeOpts.reconnectTimeoutMs = 0; // this client retries, on whichever node leads
        m_nodeOpts.connectTimeoutMs = std::min<int64_t>(m_opts.connectTimeoutMs, 2000);
        m_nodeOpts.requestTimeoutMs = std::min<int64_t>(m_opts.requestTimeoutMs, 5000);
        view(""); // fail fast when no node answers
    }
    ~ClusterClient() override { close(); }

    AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch) override {
        return produce(topic, partition, batch, m_noCancel);
    }
    AppendResult produce(const std::string& topic, uint32_t partition, SealedBatch& batch,
                         const CancelToken& cancel) override {
        return withLeader(topic, partition, &cancel, true,
                          [&](BrokerClient& c) { return c.produce(topic, partition, batch, cancel); });
    }
    void produceAsync(const std::string& topic, uint32_t partition, SealedBatch& batch, ProduceCallback done) override {
        std::shared_ptr<BrokerClient> c;
        try {
            c = clientFor(leaderAddress(topic, partition));
        } catch (const Error& e) {
            // Reported as a lost connection: the producer resends with produce(), which waits for a leader.
            done(AppendResult{}, std::make_exception_ptr(Error(ErrorCode::Connection, e.what())));
            return;
        }
        c->produceAsync(topic, partition, batch, [this, topic, done](const AppendResult& r, std::exception_ptr err) {
            if (err) {
                try {
                    std::rethrow_exception(err);
                } catch (const Error& e) {
                    if (retriable(e.code(), true)) {
                        forget(topic);
                        done(r, std::make_exception_ptr(Error(ErrorCode::Connection, e.what())));
                        return;
                    }
                } catch (...) {}
            }
            done(r, err);
        });
    }
    std::string connectionProblem() const override {
        std::lock_guard<std::mutex> l(m_mutex);
        return m_problem;
    }
    bool longPollFetch() const override { return true; }
    size_t maxInflightProduce() const override { return 4; }

    std::vector<StoredBatch> fetch(const std::string& topic, uint32_t partition, uint64_t offset, size_t maxBytes,
                                   int64_t timeoutMs) override {
        return withLeader(topic, partition, nullptr, false,
                          [&](BrokerClient& c) { return c.fetch(topic, partition, offset, maxBytes, timeoutMs); });
    }
    uint64_t waitTopicChange(const std::string& topic, uint64_t version, int64_t timeoutMs) override {
        return withLeader(topic, 0, nullptr, false,
                          [&](BrokerClient& c) { return c.waitTopicChange(topic, version, timeoutMs); });
    }
    void wakeTopic(const std::string& topic) override {
        for (auto& c : allClients()) c->wakeTopic(topic);
    }

    std::vector<uint8_t> control(const ControlRoute& route, const std::vector<uint8_t>& body) override {
        if (route.to == To::Every) return controlEvery(route, body);
        if (route.topic.empty()) return withAny([&](BrokerClient& c) { return c.control(route, body); });
        uint32_t p = route.to == To::Partition ? route.partition : 0; // groups: the leader of partition 0
        return withLeader(route.topic, p, nullptr, false, [&](BrokerClient& c) { return c.control(route, body); });
    }

    /// Stored by the coordinator (the leader of partition 0, which fences the member), then
    /// copied to the partition's other replicas, so the node elected after it has the offsets.
    void commit(const std::string& group, const std::string& topic,
                const std::vector<std::pair<uint32_t, uint64_t>>& offsets, const std::string& memberId) override {
        RemoteClient::commit(group, topic, offsets, memberId);
        std::vector<std::string> others;
        uint32_t minInsync = 1;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            auto it = m_routes.find(topic);
            if (it == m_routes.end() || !it->second.cluster || it->second.partitions.empty()) return;
            const ClusterView::Partition& p0 = it->second.partitions[0];
            minInsync = it->second.minInsync;
            for (const std::string& id : p0.replicas) {
                auto a = m_idToAddress.find(id);
                if (id != p0.leader && a != m_idToAddress.end()) others.push_back(a->second);
            }
        }
        uint32_t held = 1;
        std::string why;
        for (const std::string& addr : others) {
            try {
                clientFor(addr)->commit(group, topic, offsets, "");
                ++held;
            } catch (const Error& e) {
                if (e.code() == ErrorCode::Connection) dropClient(addr);
                why = e.what();
            }
        }
        if (held < minInsync)
            throw Error(ErrorCode::NotEnoughReplicas,
                        "the commit of group '" + group + "' on topic '" + topic + "' reached " + std::to_string(held) +
                            " replica(s) of the group's coordinator partition and min_insync is " +
                            std::to_string(minInsync) + " (" + why + "); commit again once the nodes are back");
    }

    /// The coordinator's description, with each partition's offsets from its own leader (the
    /// coordinator only follows the others, a little behind).
    TopicInfo describeTopic(const std::string& name) override {
        TopicInfo info = RemoteClient::describeTopic(name);
        for (PartitionInfo& p : info.partitions) {
            auto o = offsets(name, p.partition);
            p.startOffset = o.first;
            p.endOffset = o.second;
        }
        return info;
    }

    int64_t connectedClients() override {
        return withAny([&](BrokerClient& c) { return c.connectedClients(); });
    }
    void close() override {
        std::map<std::string, std::shared_ptr<BrokerClient>> clients;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            m_closed = true;
            clients.swap(m_clients);
        }
        for (auto& kv : clients) kv.second->close();
    }
    std::string url() const override { return m_url; }

  private:
    struct Route {
        bool cluster = false;
        bool hasTopic = false;
        std::string fallback; ///< a node that answered (for a single broker or an unknown topic)
        uint32_t minInsync = 1;
        std::vector<ClusterView::Partition> partitions;
    };

    std::shared_ptr<BrokerClient> clientFor(const std::string& address) {
        {
            std::lock_guard<std::mutex> l(m_mutex);
            if (m_closed) throw Error(ErrorCode::Closed, "fabric connection is closed");
            auto it = m_clients.find(address);
            if (it != m_clients.end()) return it->second;
        }
        auto hp = splitAddress(address);
        std::shared_ptr<BrokerClient> c;
        try {
            c = makeTcpClient(hp.first, hp.second, m_nodeOpts, "tcp://" + address);
        } catch (const Error& e) {
            std::lock_guard<std::mutex> l(m_mutex);
            m_badUntil[address] = Clock::now() + std::chrono::milliseconds(1000);
            throw;
        }
        std::lock_guard<std::mutex> l(m_mutex);
        auto ins = m_clients.emplace(address, c);
        return ins.first->second;
    }
    void dropClient(const std::string& address) {
        std::shared_ptr<BrokerClient> c;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            auto it = m_clients.find(address);
            if (it == m_clients.end()) return;
            c = it->second;
            m_clients.erase(it);
            m_badUntil[address] = Clock::now() + std::chrono::milliseconds(1000);
        }
        c->close();
    }
    std::vector<std::shared_ptr<BrokerClient>> allClients() {
        std::vector<std::shared_ptr<BrokerClient>> out;
        std::lock_guard<std::mutex> l(m_mutex);
        for (auto& kv : m_clients) out.push_back(kv.second);
        return out;
    }
    /// Known nodes, those that failed lately last.
    std::vector<std::string> addresses() {
        std::lock_guard<std::mutex> l(m_mutex);
        std::vector<std::string> good, bad;
        auto now = Clock::now();
        for (auto& a : m_addresses) {
            auto it = m_badUntil.find(a);
            (it != m_badUntil.end() && it->second > now ? bad : good).push_back(a);
        }
        good.insert(good.end(), bad.begin(), bad.end());
        return good;
    }
    void forget(const std::string& topic) {
        std::lock_guard<std::mutex> l(m_mutex);
        m_routes.erase(topic);
    }
    void noteProblem(const std::string& p) {
        std::lock_guard<std::mutex> l(m_mutex);
        m_problem = p;
    }

    /// Ask every reachable node for its view; per partition, the leader of the highest epoch wins.
    Route view(const std::string& topic) {
        Route route;
        std::string lastError = "no node listed";
        ControlRequest q;
        q.op = ControlOp::ClusterMetadata;
        q.topic = topic;
        std::vector<uint8_t> body = encodeControl(q);
        bool any = false;
        for (const std::string& addr : addresses()) {
            ClusterView v;
            try {
                std::vector<uint8_t> reply = clientFor(addr)->control({To::Coordinator, topic}, body);
                Reader r(reply.data(), reply.size());
                v = readClusterView(r);
            } catch (const Error& e) {
                if (e.code() == ErrorCode::Connection || e.code() == ErrorCode::Timeout) {
                    dropClient(addr);
                    lastError = e.what();
                    continue;
                }
                throw;
            }
            if (!any) route.fallback = addr;
            any = true;
            if (!v.cluster) {
                route.cluster = false; // a single broker: it serves everything
                route.fallback = addr;
                break;
            }
            route.cluster = true;
            {
                std::lock_guard<std::mutex> l(m_mutex);
                m_idToAddress[v.self] = addr;
                for (auto& n : v.nodes) {
                    m_idToAddress[n.id] = n.address;
                    if (std::find(m_addresses.begin(), m_addresses.end(), n.address) == m_addresses.end())
                        m_addresses.push_back(n.address);
                }
            }
            if (!v.hasTopic) continue;
            if (!route.hasTopic) {
                route.hasTopic = true;
                route.minInsync = v.minInsync;
                route.partitions.resize(v.partitions.size());
            }
            for (size_t p = 0; p < v.partitions.size() && p < route.partitions.size(); ++p)
                if (!v.partitions[p].leader.empty() && v.partitions[p].epoch >= route.partitions[p].epoch)
                    route.partitions[p] = v.partitions[p];
        }
        if (!any)
            throw Error(ErrorCode::Connection, "no node of the cluster " + m_url + " answered (last: " + lastError +
                                                   "); are the services running?");
        if (!topic.empty()) {
            std::lock_guard<std::mutex> l(m_mutex);
            m_routes[topic] = route;
        }
        return route;
    }

    /// Where requests for @p partition of @p topic go now; NotLeader while it has none.
    std::string leaderAddress(const std::string& topic, uint32_t partition) {
        Route r;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            auto it = m_routes.find(topic);
            if (it != m_routes.end()) r = it->second;
        }
        if (r.fallback.empty()) r = view(topic);
        if (!r.cluster || !r.hasTopic || partition >= r.partitions.size()) return r.fallback; // its error says why
        const ClusterView::Partition& p = r.partitions[partition];
        if (p.leaderAddress.empty()) {
            forget(topic);
            throw Error(ErrorCode::NotLeader,
                        "partition " + std::to_string(partition) + " of topic '" + topic + "' has no leader yet");
        }
        return p.leaderAddress;
    }

    template <typename F>
    auto withLeader(const std::string& topic, uint32_t partition, const CancelToken* cancel, bool timeoutToo, F&& f)
        -> decltype(f(std::declval<BrokerClient&>())) {
        auto deadline = Clock::now() + std::chrono::milliseconds(m_opts.reconnectTimeoutMs);
        int64_t backoffMs = 20;
        for (;;) {
            std::string addr;
            try {
                addr = leaderAddress(topic, partition);
                auto out = f(*clientFor(addr));
                noteProblem("");
                return out;
            } catch (const Error& e) {
                // A node that just came back without its data may still be named leader for a moment.
                bool stale = e.code() == ErrorCode::TopicNotFound && knownElsewhere(topic, addr);
                if (!retriable(e.code(), timeoutToo) && !stale) throw;
                if (e.code() == ErrorCode::Connection && !addr.empty()) dropClient(addr);
                forget(topic);
                noteProblem(e.what());
                if (Clock::now() >= deadline || (cancel && cancel->cancelled()))
                    throw Error(e.code(),
                                std::string(e.what()) + " (gave up after retrying for " +
                                    std::to_string(m_opts.reconnectTimeoutMs / 1000) +
                                    " s: reconnect_timeout_ms = " + std::to_string(m_opts.reconnectTimeoutMs) + ")");
                std::this_thread::sleep_for(std::chrono::milliseconds(backoffMs));
                backoffMs = std::min<int64_t>(backoffMs * 2, 100);
            }
        }
    }

    /// Whether @p topic is known to the cluster (a node other than @p addr holds it).
    bool knownElsewhere(const std::string& topic, const std::string& addr) {
        if (topic.empty() || addr.empty()) return false;
        Route r = view(topic);
        if (!r.cluster || !r.hasTopic) return false;
        for (auto& p : r.partitions)
            if (!p.leaderAddress.empty() && p.leaderAddress != addr) return true;
        return r.fallback != addr;
    }

    template <typename F>
    auto withAny(F&& f) -> decltype(f(std::declval<BrokerClient&>())) {
        std::string last = "no node listed";
        for (const std::string& addr : addresses()) {
            try {
                return f(*clientFor(addr));
            } catch (const Error& e) {
                if (e.code() != ErrorCode::Connection) throw;
                dropClient(addr);
                last = e.what();
            }
        }
        throw Error(ErrorCode::Connection, "no node of the cluster " + m_url + " answered (last: " + last + ")");
    }

    /// Topic admin on every node that answers (the others take it from etcd when they come back).
    std::vector<uint8_t> controlEvery(const ControlRoute& route, const std::vector<uint8_t>& body) {
        std::optional<std::vector<uint8_t>> answer;
        std::optional<Error> failure;
        std::string last = "no node listed";
        for (const std::string& addr : addresses()) {
            try {
                std::vector<uint8_t> r = clientFor(addr)->control(route, body);
                if (!answer && !failure) answer = std::move(r);
            } catch (const Error& e) {
                if (e.code() == ErrorCode::Connection) {
                    dropClient(addr);
                    last = e.what();
                    continue;
                }
                // Another node may have taken it from etcd first (a create), or be no replica.
                bool tolerated =
                    (answer || failure) && (e.code() == route.tolerate || e.code() == ErrorCode::TopicExists ||
                                            e.code() == ErrorCode::NotLeader);
                if (!tolerated && !answer && !failure) failure = e;
            }
        }
        forget(route.topic);
        if (failure) throw *failure;
        if (answer) return *answer;
        throw Error(ErrorCode::Connection, "no node of the cluster " + m_url + " answered (last: " + last + ")");
    }

    TcpClientOptions m_opts;
    TcpClientOptions m_nodeOpts;
    std::string m_url;
    CancelToken m_noCancel;
    mutable std::mutex m_mutex;
    std::vector<std::string> m_addresses;
    std::map<std::string, std::string> m_idToAddress;
    std::map<std::string, std::shared_ptr<BrokerClient>> m_clients;
    std::map<std::string, Clock::time_point> m_badUntil;
    std::map<std::string, Route> m_routes;
    std::string m_problem;
    bool m_closed = false;
};

} // namespace

std::shared_ptr<BrokerClient> makeClusterClient(const std::vector<std::pair<std::string, uint16_t>>& nodes,
                                                const TcpClientOptions& options, const std::string& url) {
    return std::make_shared<ClusterClient>(nodes, options, url);
}

} // namespace mofka_py
