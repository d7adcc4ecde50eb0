// mofka_py._core.Consumer and what it delivers (Event, EventBatch): views of
// stored bytes, no copies (see buffers.hpp); waits release the GIL (see wait.hpp).
#include "bindings.hpp"
#include "buffers.hpp"
#include "convert.hpp"
#include "wait.hpp"

#include "mofka_py/Consumer.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"

#include <memory>
#include <optional>
#include <string>

namespace mofka_py::bindings {

namespace {

struct PyEvent {
    Event ev;
    std::shared_ptr<Consumer> consumer;
};

struct PyEventBatch {
    Delivery d;
    std::shared_ptr<Consumer> consumer;
};

py::object& orjsonLoads() {
    static py::object* f = new py::object(py::module_::import("orjson").attr("loads"));
    return *f;
}

} // namespace

void bindConsumer(py::module_& m) {
    py::class_<PyEvent>(m, "Event")
        .def_property_readonly("partition", [](const PyEvent& e) { return e.ev.partition; })
        .def_property_readonly("offset", [](const PyEvent& e) { return e.ev.offset; })
        .def_property_readonly("id", [](const PyEvent& e) { return eventId(e.ev.partition, e.ev.offset); })
        .def_property_readonly("timestamp_us", [](const PyEvent& e) { return e.ev.timestampUs; })
        .def_property_readonly("metadata_bytes",
                               [](const PyEvent& e) {
                                   return py::bytes(reinterpret_cast<const char*>(e.ev.metadata.data),
                                                    e.ev.metadata.size);
                               })
        .def_property_readonly("metadata",
                               [](const PyEvent& e) {
                                   py::bytes b(reinterpret_cast<const char*>(e.ev.metadata.data), e.ev.metadata.size);
                                   if (e.ev.metadata.size == 0) return py::object(py::none());
                                   return orjsonLoads()(b);
                               })
        .def_property_readonly("data", [](const PyEvent& e) { return viewOf(e.ev.owner, e.ev.data); })
        .def_property_readonly("data_size", [](const PyEvent& e) { return e.ev.data.size; })
        .def("ack", [](PyEvent& e) { e.consumer->ack(e.ev.partition, e.ev.offset, e.ev.epoch); });

    py::class_<PyEventBatch>(m, "EventBatch")
        .def("__len__", [](const PyEventBatch& b) { return b.d.end - b.d.first; })
        .def_property_readonly("partition", [](const PyEventBatch& b) { return b.d.partition; })
        .def_property_readonly("first_offset", [](const PyEventBatch& b) { return b.d.offsetOf(b.d.first); })
        .def_property_readonly("last_offset", [](const PyEventBatch& b) { return b.d.offsetOf(b.d.end - 1); })
        .def(
            "metadata_view",
            [](const PyEventBatch& b) {
                // Metadata of consecutive events is contiguous in a batch: one view covers all.
                Piece first = b.d.view->metadata(b.d.first);
                Piece last = b.d.view->metadata(b.d.end - 1);
                return viewOf(b.d.owner, {first.data, size_t(last.data + last.size - first.data)});
            },
            "One read-only view over the metadata of all events of this batch, back to back.")
        .def("metadata_lengths",
             [](const PyEventBatch& b) {
                 py::list out;
                 for (uint32_t i = b.d.first; i < b.d.end; ++i) out.append(b.d.view->metadata(i).size);
                 return out;
             })
        .def("uniform_metadata_size",
             [](const PyEventBatch& b) -> py::object {
                 size_t s = b.d.view->metadata(b.d.first).size;
                 for (uint32_t i = b.d.first + 1; i < b.d.end; ++i)
                     if (b.d.view->metadata(i).size != s) return py::none();
                 return py::int_(s);
             })
        .def(
            "data_size",
            [](const PyEventBatch& b) {
                size_t s = 0;
                for (uint32_t i = b.d.first; i < b.d.end; ++i) s += b.consumer->select(b.d.view->eventData(i)).size;
                return s;
            },
            "Total data bytes of the events of this batch (0: metadata only, or data not read).")
        .def(
            "data_views",
            [](const PyEventBatch& b) {
                py::list out(b.d.end - b.d.first);
                for (uint32_t i = b.d.first; i < b.d.end; ++i)
                    out[i - b.d.first] = viewOf(b.d.owner, b.consumer->select(b.d.view->eventData(i)));
                return out;
            },
            "The data of every event of this batch: one read-only view each, as ``batch[i].data``.")
        .def("__getitem__",
             [](const PyEventBatch& b, int64_t i) {
                 int64_t n = int64_t(b.d.end - b.d.first);
                 if (i < 0) i += n;
                 if (i < 0 || i >= n) throw py::index_error("event index out of range");
                 uint32_t k = b.d.first + uint32_t(i);
                 Event ev{b.d.partition,
                          b.d.offsetOf(k),
                          b.d.view->metadata(k),
                          b.consumer->select(b.d.view->eventData(k)),
                          b.d.view->header().firstTimestampUs,
                          b.d.owner,
                          b.d.epoch};
                 return PyEvent{ev, b.consumer};
             })
        .def("ack", [](PyEventBatch& b) { b.consumer->ack(b.d.partition, b.d.offsetOf(b.d.end - 1), b.d.epoch); });

    py::class_<Consumer, std::shared_ptr<Consumer>>(m, "Consumer")
        .def(py::init([](Fabric& f, const std::string& topic, const py::dict& settings) {
                 ConsumerOptions o = consumerOptions(settings);
                 py::gil_scoped_release nogil;
                 return std::make_shared<Consumer>(f.client(), topic, o);
             }),
             py::arg("fabric"), py::arg("topic"), py::arg("settings"))
        .def(
            "pull",
            [](std::shared_ptr<Consumer>& c, py::object timeout) -> py::object {
                int64_t ms = toMs(timeout);
                std::optional<Event> ev = waitInterruptibly(
                    ms,
                    [&](int64_t slice) {
                        auto r = c->pull(slice);
                        return r || !c->exhausted() ? r : std::optional<Event>();
                    },
                    [&] { return c->exhausted(); });
                if (!ev) return py::none();
                return py::cast(PyEvent{std::move(*ev), c});
            },
            py::arg("timeout") = py::none())
        .def(
            "pull_batch",
            [](std::shared_ptr<Consumer>& c, size_t maxEvents, py::object timeout) -> py::object {
                int64_t ms = toMs(timeout);
                std::optional<Delivery> d = waitInterruptibly(
                    ms, [&](int64_t slice) { return c->pullBatch(maxEvents, slice); }, [&] { return c->exhausted(); });
                if (!d) return py::none();
                return py::cast(PyEventBatch{std::move(*d), c});
            },
            py::arg("max_events") = 1 << 20, py::arg("timeout") = py::none())
        .def("ack", &Consumer::ack)
        .def("commit",
             [](Consumer& c) {
                 py::gil_scoped_release nogil;
                 c.commit();
             })
        .def("exhausted", &Consumer::exhausted)
        .def("partitions", &Consumer::partitions)
        .def("member_id", &Consumer::memberId)
        .def("stats",
             [](Consumer& c) {
                 ConsumerStats s = c.stats();
                 py::dict d;
                 d["delivered"] = s.delivered;
                 d["skipped"] = s.skipped;
                 d["rebalances"] = s.rebalances;
                 d["revoked_unacked"] = s.revokedUnacked;
                 d["fenced_commits"] = s.fencedCommits;
                 d["prefetched"] = s.prefetchedEvents;
                 return d;
             })
        .def("close", [](Consumer& c) {
            py::gil_scoped_release nogil;
            c.close();
        });
}

} // namespace mofka_py::bindings
