// mofka_py._core.Fabric: a connection to a fabric (memory://, file://, tcp://) and its admin calls.
#include "bindings.hpp"
#include "convert.hpp"

#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"

#include <string>

namespace mofka_py::bindings {

void bindFabric(py::module_& m) {
    py::class_<Fabric>(m, "Fabric")
        .def(py::init([](const std::string& url, const py::dict& settings) {
                 FabricOptions o = fabricOptions(settings);
                 py::gil_scoped_release nogil;
                 return Fabric::connect(url, o);
             }),
             py::arg("url"), py::arg("settings"), "Open a fabric; settings: the fabric scope's, by name.")
        .def(
            "create_topic",
            [](Fabric& f, const std::string& name, const py::dict& settings) {
                TopicConfig c = topicConfig(settings);
                py::gil_scoped_release nogil;
                f.client()->createTopic(name, c);
            },
            py::arg("name"), py::arg("settings"),
            "Create a topic; settings: the topic scope's given ones (the others are the fabric's).")
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
                 py::dict d;
                 d["name"] = info.name;
                 d["partitions"] = parts;
                 d["complete"] = info.complete;
                 for (auto kv : topicSettings(info.config)) d[kv.first] = kv.second;
                 return d;
             })
        .def(
            "verify",
            [](Fabric& f, py::object progress) {
                std::shared_ptr<Broker> broker = f.client()->localBroker();
                if (!broker)
                    throw Error(ErrorCode::InvalidArgument,
                                "verify checks the files of an embedded fabric: open it with file:///path (for a "
                                "tcp:// service, verify its --data-dir while it is stopped)");
                std::function<void(uint64_t, uint64_t)> report;
                if (!progress.is_none())
                    report = [&progress](uint64_t done, uint64_t total) {
                        py::gil_scoped_acquire gil;
                        progress(done, total);
                    };
                py::gil_scoped_release nogil;
                return broker->verify(report);
            },
            py::arg("progress") = py::none(),
            "Check every stored batch (headers, offsets, CRC32C); progress(done, total) in bytes. Returns the bytes "
            "checked; raises CorruptionError naming the first damaged batch.")
        .def("open_stats",
             [](Fabric& f) -> py::object {
                 std::shared_ptr<Broker> broker = f.client()->localBroker();
                 if (!broker) return py::none();
                 LogOpenStats st = broker->openStats();
                 py::dict d;
                 d["from_recovery_point"] = st.fromRecoveryPoint;
                 d["checked_bytes"] = st.checkedBytes;
                 d["deferred_bytes"] = st.deferredBytes;
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
        .def(
            "alter_topic",
            [](Fabric& f, const std::string& t, const py::dict& settings) {
                TopicConfig c = topicConfig(settings);
                py::gil_scoped_release nogil;
                f.client()->alterTopic(t, c);
            },
            py::arg("topic"), py::arg("settings"), "Change the retention settings given.")
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
