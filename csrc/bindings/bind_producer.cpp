// mofka_py._core.Producer and the Future of a push. Data buffers are lent
// without a copy (see buffers.hpp); waits release the GIL (see wait.hpp).
#include "bindings.hpp"
#include "buffers.hpp"
#include "convert.hpp"
#include "wait.hpp"

#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"
#include "mofka_py/Producer.hpp"

#include <string>

namespace mofka_py::bindings {

Future pushEvent(Producer& p, py::handle meta, py::handle data, int64_t partition, py::handle key, bool block) {
    graveyard().drain();
    char* mp = nullptr;
    Py_ssize_t ml = 0;
    if (PyBytes_AsStringAndSize(meta.ptr(), &mp, &ml) != 0) throw py::error_already_set();
    PushData buffers;
    buffers.add(data);
    size_t total = size_t(ml) + buffers.bytes();
    std::string k;
    const void* kp = nullptr;
    if (!key.is_none()) {
        if (PyUnicode_Check(key.ptr()))
            k = key.cast<std::string>();
        else
            k = py::bytes(py::reinterpret_borrow<py::object>(key)).cast<std::string>();
        kp = k.data();
    }
    if (block && p.wouldBlock(total + 12)) {
        waitInterruptibly(-1, [&](int64_t slice) { return p.waitForSpace(total + 12, slice); });
    }
    return p.push(mp, size_t(ml), buffers.refs(), buffers.count(), partition, kp, k.size(), block);
}

void bindProducer(py::module_& m) {
    py::class_<Future>(m, "Future")
        .def("done", &Future::done)
        .def(
            "result",
            [](const Future& f, py::object timeout) {
                graveyard().drain();
                int64_t ms = toMs(timeout);
                bool done = waitInterruptibly(ms, [&](int64_t slice) { return f.waitFor(slice); });
                if (!done)
                    throw Error(ErrorCode::Timeout, "event not stored within " + py::str(timeout).cast<std::string>() +
                                                        " s; call result() again to keep waiting, or producer.flush()");
                EventId id;
                {
                    py::gil_scoped_release nogil;
                    id = f.wait(0); // the id, the append error, or Timeout
                }
                return eventId(id.partition, id.offset);
            },
            py::arg("timeout") = py::none());

    py::class_<Producer, std::shared_ptr<Producer>>(m, "Producer")
        .def(py::init([](Fabric& f, const std::string& topic, const py::dict& settings) {
                 ProducerOptions o = producerOptions(settings);
                 py::gil_scoped_release nogil;
                 return std::make_shared<Producer>(f.client(), topic, o);
             }),
             py::arg("fabric"), py::arg("topic"), py::arg("settings"))
        .def("push", &pushEvent, py::arg("meta"), py::arg("data") = py::none(), py::arg("partition") = -1,
             py::arg("key") = py::none(), py::arg("block") = true)
        .def(
            "push_many",
            [](Producer& p, py::buffer metas, int64_t partition, bool block) {
                graveyard().drain();
                py::buffer_info bi = metas.request();
                if (bi.ndim < 1)
                    throw Error(ErrorCode::InvalidArgument, "push_many needs an array of records (ndim >= 1)");
                size_t n = size_t(bi.shape[0]);
                size_t len = size_t(bi.itemsize);
                for (py::ssize_t d = 1; d < bi.ndim; ++d) len *= size_t(bi.shape[size_t(d)]);
                // each record must be contiguous inside itself
                py::ssize_t expect = bi.itemsize;
                for (py::ssize_t d = bi.ndim - 1; d >= 1; --d) {
                    if (bi.strides[size_t(d)] != expect)
                        throw Error(ErrorCode::InvalidArgument,
                                    "each record of push_many must be contiguous; use numpy.ascontiguousarray()");
                    expect *= bi.shape[size_t(d)];
                }
                size_t stride = size_t(bi.strides[0]);
                auto* base = static_cast<const uint8_t*>(bi.ptr);
                py::gil_scoped_release nogil;
                return p.pushMany(base, n, len, stride, partition, block);
            },
            py::arg("metas"), py::arg("partition") = -1, py::arg("block") = true)
        .def("push_many_var",
             [](Producer& p, py::bytes blob, py::buffer lengths, int64_t partition, bool block) {
                 graveyard().drain();
                 char* bp;
                 Py_ssize_t bl;
                 PyBytes_AsStringAndSize(blob.ptr(), &bp, &bl);
                 py::buffer_info li = lengths.request();
                 if (li.itemsize != 8 || li.ndim != 1)
                     throw Error(ErrorCode::InvalidArgument, "lengths must be a 1-D uint64 array");
                 size_t n = size_t(li.shape[0]);
                 auto* lens = static_cast<const uint64_t*>(li.ptr);
                 uint64_t sum = 0;
                 for (size_t i = 0; i < n; ++i) sum += lens[i];
                 if (sum != uint64_t(bl))
                     throw Error(ErrorCode::InvalidArgument, "lengths do not add up to the metadata size");
                 py::gil_scoped_release nogil;
                 return p.pushManyVar(reinterpret_cast<const uint8_t*>(bp), lens, n, partition, block);
             })
        .def(
            "flush",
            [](Producer& p, py::object timeout) {
                graveyard().drain();
                int64_t ms = toMs(timeout);
                {
                    py::gil_scoped_release nogil;
                    p.flush(ms);
                }
                graveyard().drain();
            },
            py::arg("timeout") = py::none())
        .def(
            "close",
            [](Producer& p, py::object timeout) {
                int64_t ms = toMs(timeout);
                try {
                    py::gil_scoped_release nogil;
                    p.close(ms);
                } catch (...) {
                    graveyard().drain();
                    throw;
                }
                graveyard().drain();
            },
            py::arg("timeout") = py::none())
        .def("reset",
             [](Producer& p) {
                 py::gil_scoped_release nogil;
                 p.reset();
             })
        .def_property_readonly("pending_bytes", &Producer::pendingBytes)
        .def_property_readonly("appended_events", &Producer::appendedEvents)
        .def_property_readonly("partitions", &Producer::partitions);
}

} // namespace mofka_py::bindings
