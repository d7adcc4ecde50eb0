// mofka_py._core.Server: a broker served over TCP (`mofka-py serve`).
#include "bindings.hpp"
#include "convert.hpp"

#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"
#include "mofka_py/ReplicaFetcher.hpp"
#include "mofka_py/TcpServer.hpp"

#include <memory>
#include <string>

namespace mofka_py::bindings {

namespace {

struct PyServer {
    std::shared_ptr<Broker> broker;
    std::unique_ptr<TcpServer> server;
};

ReplicaRole::Kind roleKind(const std::string& k) {
    if (k == "leader") return ReplicaRole::Kind::Leader;
    if (k == "follower") return ReplicaRole::Kind::Follower;
    if (k == "offline") return ReplicaRole::Kind::Offline;
    throw Error(ErrorCode::InvalidArgument, "a replica role is 'leader', 'follower' or 'offline' (got '" + k + "')");
}
const char* roleName(ReplicaRole::Kind k) {
    return k == ReplicaRole::Kind::Leader ? "leader" : k == ReplicaRole::Kind::Follower ? "follower" : "offline";
}

} // namespace

void bindServer(py::module_& m) {
    py::class_<ReplicaFetcher>(m, "ReplicaFetcher")
        .def(
            "stop",
            [](ReplicaFetcher& f) {
                py::gil_scoped_release nogil;
                f.stop();
            },
            "Stop copying (returns once the fetch thread ended).")
        .def_property_readonly("last_error", &ReplicaFetcher::lastError)
        .def_property_readonly("appended_batches", &ReplicaFetcher::appendedBatches)
        .def_property_readonly("truncations", &ReplicaFetcher::truncations);
    py::class_<PyServer>(m, "Server")
        .def(py::init([](const std::string& url, const py::dict& settings, const std::string& nodeId) {
                 FabricUrl u = parseFabricUrl(url);
                 if (u.scheme == "tcp")
                     throw Error(ErrorCode::InvalidArgument, "serve a memory:// or file:// fabric, not " + url);
                 ServerOptions o = serverOptions(settings);
                 o.broker.directory = u.scheme == "file" ? u.path : "";
                 o.broker.nodeId = nodeId;
                 py::gil_scoped_release nogil;
                 auto s = std::make_unique<PyServer>();
                 s->broker = std::make_shared<Broker>(o.broker);
                 try {
                     s->server = std::make_unique<TcpServer>(s->broker, o.tcp);
                 } catch (...) {
                     s->broker->close();
                     throw;
                 }
                 return s;
             }),
             py::arg("url"), py::arg("settings"), py::arg("node_id") = "",
             "Serve a memory:// or file:// fabric; settings: the service's (host and port from listen), by name; "
             "node_id: this node's id in a replicated cluster (its partitions then take requests only as "
             "set_replica_role says).")
        .def(
            "set_replica_role",
            [](PyServer& s, const std::string& topic, uint32_t partition, const std::string& kind, uint64_t epoch,
               const std::string& leader, const std::string& leaderAddress, const std::vector<std::string>& replicas,
               const std::vector<std::string>& isr) {
                ReplicaRole r;
                r.kind = roleKind(kind);
                r.epoch = epoch;
                r.leader = leader;
                r.leaderAddress = leaderAddress;
                r.replicas = replicas;
                r.isr = isr;
                py::gil_scoped_release nogil;
                s.broker->setReplicaRole(topic, partition, r);
            },
            py::arg("topic"), py::arg("partition"), py::arg("kind"), py::arg("epoch"), py::arg("leader"),
            py::arg("leader_address"), py::arg("replicas"), py::arg("isr"),
            "Set a partition's role here: 'leader', 'follower' or 'offline', under the leader's epoch.")
        .def(
            "replica_status",
            [](PyServer& s, const std::string& topic, uint32_t partition) {
                ReplicaStatus st;
                {
                    py::gil_scoped_release nogil;
                    st = s.broker->replicaStatus(topic, partition);
                }
                py::list followers;
                for (auto& f : st.followers) {
                    py::dict d;
                    d["node"] = f.node;
                    d["position"] = f.position;
                    d["known"] = f.known;
                    d["since_fetch_ms"] = f.sinceFetchMs;
                    d["since_caught_up_ms"] = f.sinceCaughtUpMs;
                    followers.append(d);
                }
                py::dict d;
                d["kind"] = roleName(st.role.kind);
                d["epoch"] = st.role.epoch;
                d["leader"] = st.role.leader;
                d["leader_address"] = st.role.leaderAddress;
                d["replicas"] = st.role.replicas;
                d["isr"] = st.role.isr;
                d["end_offset"] = st.endOffset;
                d["high_watermark"] = st.highWatermark;
                d["followers"] = followers;
                return d;
            },
            py::arg("topic"), py::arg("partition"), "A partition's replication state on this node, as a dict.")
        .def(
            "set_lease_deadline", [](PyServer& s, int64_t ns) { s.broker->setLeaseDeadline(ns); }, py::arg("steady_ns"),
            "Until when (time.monotonic_ns()) this node's leadership lease holds; its leaders refuse writes after.")
        .def(
            "set_cluster_nodes",
            [](PyServer& s, const std::vector<std::pair<std::string, std::string>>& nodes) {
                s.broker->setClusterNodes(nodes);
            },
            py::arg("nodes"), "The live nodes [(id, 'host:port')] that clients are told about.")
        .def(
            "topics",
            [](PyServer& s) {
                py::gil_scoped_release nogil;
                return s.broker->listTopics();
            },
            "Names of the topics this node holds.")
        .def(
            "topic_layout",
            [](PyServer& s, const std::string& name) {
                TopicInfo i;
                {
                    py::gil_scoped_release nogil;
                    i = s.broker->describeTopic(name);
                }
                py::dict d = topicSettings(i.config);
                d["partitions"] = i.config.partitions;
                d["replication"] = i.config.replication;
                d["min_insync"] = i.config.minInsync;
                return d;
            },
            py::arg("name"), "A topic's partitions and settings on this node.")
        .def(
            "create_local_topic",
            [](PyServer& s, const std::string& name, const py::dict& settings) {
                TopicConfig c = topicConfig(settings);
                py::gil_scoped_release nogil;
                s.broker->createTopic(name, c);
            },
            py::arg("name"), py::arg("settings"), "Create a topic on this node only (the coordinator, from etcd).")
        .def(
            "delete_local_topic",
            [](PyServer& s, const std::string& name) {
                py::gil_scoped_release nogil;
                s.broker->deleteTopic(name, true);
            },
            py::arg("name"), "Delete a topic on this node only (the coordinator, from etcd).")
        .def(
            "start_follower",
            [](PyServer& s, const std::string& topic, uint32_t partition, uint64_t epoch, const std::string& host,
               uint16_t port, const std::string& token) {
                ReplicaFetcherOptions o;
                o.token = token;
                py::gil_scoped_release nogil;
                return std::make_unique<ReplicaFetcher>(s.broker, topic, partition, epoch, host, port, o);
            },
            py::arg("topic"), py::arg("partition"), py::arg("epoch"), py::arg("host"), py::arg("port"),
            py::arg("token") = "", "Copy a partition from its leader of epoch `epoch` (a ReplicaFetcher) until stop().")
        .def_property_readonly("port", [](PyServer& s) { return s.server->port(); })
        .def_property_readonly("connections", [](PyServer& s) { return s.server->connections(); })
        .def_property_readonly("pending_logins", [](PyServer& s) { return s.server->pendingLogins(); })
        .def(
            "poll",
            [](PyServer& s, int timeoutMs) {
                py::gil_scoped_release nogil;
                s.server->poll(timeoutMs);
            },
            "Run the event loop for up to timeout_ms.")
        .def(
            "shutdown",
            [](PyServer& s, int drainMs) {
                py::gil_scoped_release nogil;
                s.server->shutdown(drainMs);
                s.broker->close();
            },
            py::arg("drain_ms") = 2000, "Stop serving, send queued replies, sync and close the broker.");
}

} // namespace mofka_py::bindings
