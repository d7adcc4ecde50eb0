// mofka_py._core.Fabric: a connection to a fabric (memory://, file://, tcp://) and its admin calls.
#include "bindings.hpp"
#include "convert.hpp"

#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"

#include <algorithm>
#include <climits>
#include <string>

namespace mofka_py::bindings {

void bindFabric(py::module_& m) {
    py::class_<Fabric>(m, "Fabric")
        .def(py::init([](const std::string& url, const std::string& sync, int64_t syncIntervalMs, uint64_t segmentBytes,
                         uint64_t retentionBytes, int64_t retentionMs, uint64_t maxEventBytes, bool repair,
                         const std::string& token, int64_t requestTimeoutMs, int64_t reconnectTimeoutMs) {
                 BrokerOptions b = brokerOptions(sync, syncIntervalMs, segmentBytes, retentionBytes, retentionMs,
                                                 maxEventBytes, repair);
                 FabricOptions o;
                 o.defaults = b.defaults;
                 o.repair = repair;
                 o.token = token;
                 o.requestTimeoutMs = requestTimeoutMs;
                 o.reconnectTimeoutMs = reconnectTimeoutMs;
                 py::gil_scoped_release nogil;
                 return Fabric::connect(url, o);
             }),
             py::arg("url"), py::arg("sync"), py::arg("sync_interval_ms"), py::arg("segment_bytes"),
             py::arg("retention_bytes"), py::arg("retention_ms"), py::arg("max_event_bytes"), py::arg("repair"),
             py::arg("token") = "", py::arg("request_timeout_ms") = 30000, py::arg("reconnect_timeout_ms") = 300000)
        .def("create_topic",
             [](Fabric& f, const std::string& name, int64_t partitions, py::dict cfg) {
                 if (partitions < 1)
                     throw Error(ErrorCode::InvalidArgument,
                                 "partitions must be a positive number (got " + std::to_string(partitions) + ")");
                 TopicConfig c;
                 c.setFields = 0; // unset settings come from the fabric's defaults
                 c.partitions = uint32_t(std::min<int64_t>(partitions, INT32_MAX));
                 for (auto kv : cfg) {
                     std::string k = kv.first.cast<std::string>();
                     py::handle v = kv.second;
                     if (k == "segment_bytes") {
                         c.segmentBytes = v.cast<uint64_t>();
                         c.setFields |= kSegmentBytes;
                     } else if (k == "retention_bytes") {
                         c.retentionBytes = v.cast<uint64_t>();
                         c.setFields |= kRetentionBytes;
                     } else if (k == "retention_ms") {
                         c.retentionMs = v.cast<int64_t>();
                         c.setFields |= kRetentionMs;
                     } else if (k == "sync_interval_ms") {
                         c.syncIntervalMs = v.cast<int64_t>();
                         c.setFields |= kSyncIntervalMs;
                     } else if (k == "max_event_bytes") {
                         c.maxEventBytes = v.cast<uint64_t>();
                         c.setFields |= kMaxEventBytes;
                     } else if (k == "sync") {
                         c.setFields |= kSync;
                         c.sync = parseSyncPolicy(v.cast<std::string>());
                     } else
                         throw Error(ErrorCode::InvalidArgument, "unknown topic setting '" + k + "'");
                 }
                 py::gil_scoped_release nogil;
                 f.client()->createTopic(name, c);
             })
        .def("topics",
             [](Fabric& f) {
                 py::gil_scoped_release nogil;
                 return f.client()->listTopics();
             })
        .def("describe",
             [](Fabric& f, const std::string& name) {
                 TopicInfo info;
                 {
                     py::gil_scoped_release nogil;
                     info = f.client()->describeTopic(name);
                 }
                 py::list parts;
                 for (auto& p : info.partitions) {
                     py::dict d;
                     d["partition"] = p.partition;
                     d["start_offset"] = p.startOffset;
                     d["end_offset"] = p.endOffset;
                     d["size_bytes"] = p.sizeBytes;
                     parts.append(d);
                 }
                 const char* sync = syncPolicyName(info.config.sync);
                 py::dict d;
                 d["name"] = info.name;
                 d["partitions"] = parts;
                 d["complete"] = info.complete;
                 d["segment_bytes"] = info.config.segmentBytes;
                 d["retention_bytes"] = info.config.retentionBytes;
                 d["retention_ms"] = info.config.retentionMs;
                 d["sync"] = sync;
                 d["sync_interval_ms"] = info.config.syncIntervalMs;
                 d["max_event_bytes"] = info.config.maxEventBytes;
                 return d;
             })
        .def("partition_count",
             [](Fabric& f, const std::string& t) {
                 py::gil_scoped_release nogil;
                 return f.client()->describeTopic(t).config.partitions;
             })
        .def("mark_complete",
             [](Fabric& f, const std::string& t) {
                 py::gil_scoped_release nogil;
                 f.client()->markComplete(t);
             })
        .def("is_complete",
             [](Fabric& f, const std::string& t) {
                 py::gil_scoped_release nogil;
                 return f.client()->isComplete(t);
             })
        .def("committed",
             [](Fabric& f, const std::string& g, const std::string& t, uint32_t p) {
                 py::gil_scoped_release nogil;
                 return f.client()->committed(g, t, p);
             })
        .def("offsets",
             [](Fabric& f, const std::string& t, uint32_t p) {
                 py::gil_scoped_release nogil;
                 return f.client()->offsets(t, p);
             })
        .def("groups",
             [](Fabric& f, const std::string& t) {
                 py::gil_scoped_release nogil;
                 return f.client()->groups(t);
             })
        .def("describe_group",
             [](Fabric& f, const std::string& g, const std::string& t) {
                 GroupState st;
                 {
                     py::gil_scoped_release nogil;
                     st = f.client()->describeGroup(g, t);
                 }
                 py::list members, parts;
                 for (auto& m : st.members) {
                     py::dict d;
                     d["id"] = m.id;
                     d["partitions"] = m.partitions;
                     d["idle_ms"] = m.idleMs;
                     d["session_timeout_ms"] = m.sessionTimeoutMs;
                     members.append(d);
                 }
                 for (auto& p : st.partitions) {
                     py::dict d;
                     d["partition"] = p.partition;
                     d["committed"] = p.committed ? py::object(py::int_(*p.committed)) : py::object(py::none());
                     d["skipped"] = p.skipped;
                     d["owner"] = p.owner ? py::object(py::str(*p.owner)) : py::object(py::none());
                     d["position"] = p.owner ? py::object(py::int_(p.position)) : py::object(py::none());
                     parts.append(d);
                 }
                 py::dict d;
                 d["group"] = st.group;
                 d["topic"] = st.topic;
                 d["generation"] = st.generation;
                 d["members"] = members;
                 d["partitions"] = parts;
                 return d;
             })
        .def("reset_group",
             [](Fabric& f, const std::string& g, const std::string& t,
                const std::vector<std::pair<uint32_t, uint64_t>>& offsets) {
                 py::gil_scoped_release nogil;
                 f.client()->resetGroup(g, t, offsets);
             })
        .def("remove_member",
             [](Fabric& f, const std::string& g, const std::string& t, const std::string& m) {
                 py::gil_scoped_release nogil;
                 return f.client()->removeMember(g, t, m);
             })
        .def("delete_topic",
             [](Fabric& f, const std::string& t, bool force) {
                 py::gil_scoped_release nogil;
                 f.client()->deleteTopic(t, force);
             })
        .def("purge_topic",
             [](Fabric& f, const std::string& t) {
                 py::gil_scoped_release nogil;
                 return f.client()->purgeTopic(t);
             })
        .def("alter_topic",
             [](Fabric& f, const std::string& t, py::object retentionBytes, py::object retentionMs) {
                 TopicConfig c;
                 c.setFields = 0;
                 if (!retentionBytes.is_none()) {
                     c.retentionBytes = retentionBytes.cast<uint64_t>();
                     c.setFields |= kRetentionBytes;
                 }
                 if (!retentionMs.is_none()) {
                     c.retentionMs = retentionMs.cast<int64_t>();
                     c.setFields |= kRetentionMs;
                 }
                 py::gil_scoped_release nogil;
                 f.client()->alterTopic(t, c);
             })
        .def("offset_for_time",
             [](Fabric& f, const std::string& t, uint32_t p, int64_t tsUs) {
                 py::gil_scoped_release nogil;
                 return f.client()->offsetForTime(t, p, tsUs);
             })
        .def("connected_clients",
             [](Fabric& f) {
                 py::gil_scoped_release nogil;
                 return f.client()->connectedClients();
             })
        .def("connection_problem", [](Fabric& f) { return f.client()->connectionProblem(); })
        .def("url", [](Fabric& f) { return f.client()->url(); })
        .def("close", [](Fabric& f) {
            py::gil_scoped_release nogil;
            f.close();
        });
}

} // namespace mofka_py::bindings
