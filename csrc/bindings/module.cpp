// pybind11 module mofka_py._core: a thin layer over the C++ core.
// Every wait releases the GIL; Python objects referenced by the core are
// released on Python threads only (see Graveyard).
#include "mofka_py/Consumer.hpp"
#include "mofka_py/Crc32c.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"
#include "transport/tcp/Frame.hpp"
#include "mofka_py/PartitionLog.hpp"
#include "transport/tcp/Sha256.hpp"
#include "mofka_py/TcpServer.hpp"
#include "mofka_py/Producer.hpp"
#ifdef MOFKA_PY_HAVE_MPI
#include "mofka_py/MpiInfo.hpp"
#endif

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <mutex>

namespace py = pybind11;
using namespace mofka_py;

#ifdef MOFKA_PY_HAVE_MPI
void registerMpiFabric(py::module_& m); // fabric_mpi.cpp
#endif

namespace {

/// Python buffers whose last C++ reference went away on a core thread; they
/// are released on the next call from Python (never taking the GIL in C++).
class Graveyard {
  public:
    void bury(Py_buffer* b) {
        std::lock_guard<std::mutex> l(m_mutex);
        m_dead.push_back(b);
        m_nonEmpty = true;
    }
    void drain() { // GIL held
        if (!m_nonEmpty) return;
        std::vector<Py_buffer*> dead;
        {
            std::lock_guard<std::mutex> l(m_mutex);
            dead.swap(m_dead);
            m_nonEmpty = false;
        }
        for (Py_buffer* b : dead) {
            PyBuffer_Release(b);
            delete b;
        }
    }

  private:
    std::mutex m_mutex;
    std::vector<Py_buffer*> m_dead;
    std::atomic<bool> m_nonEmpty{false};
};
Graveyard& graveyard() {
    static Graveyard* g = new Graveyard(); // never destroyed: may outlive the interpreter
    return *g;
}

/// Run @p f with the GIL released, in slices, so Ctrl-C interrupts long waits;
/// stop early when @p done() says waiting is pointless.
template <typename F, typename D>
auto waitInterruptibly(int64_t timeoutMs, F&& f, D&& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs < 0 ? 0 : timeoutMs);
    for (;;) {
        int64_t slice = 100;
        if (timeoutMs >= 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
            slice = std::max<int64_t>(0, std::min<int64_t>(slice, left));
        }
        decltype(f(slice)) r;
        bool stop;
        {
            py::gil_scoped_release nogil;
            r = f(slice);
            stop = !r && done();
        }
        if (r || stop || slice == 0 || (timeoutMs >= 0 && std::chrono::steady_clock::now() >= deadline)) return r;
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
}
/// Same, without an early stop.
template <typename F>
auto waitInterruptibly(int64_t timeoutMs, F&& f) {
    return waitInterruptibly(timeoutMs, std::forward<F>(f), [] { return false; });
}

int64_t toMs(const py::object& timeout) {
    if (timeout.is_none()) return -1;
    double s = timeout.cast<double>();
    if (s < 0) throw Error(ErrorCode::InvalidArgument, "timeout must be >= 0 seconds or None");
    return int64_t(s * 1000.0 + 0.5);
}

/// Read-only bytes owned by the core (a mapped segment); exposes the buffer protocol.
struct Bytes {
    Owner owner;
    const uint8_t* data;
    size_t size;
};
py::memoryview viewOf(Owner owner, Piece p) {
    py::object b = py::cast(Bytes{std::move(owner), p.data, p.size});
    return py::memoryview(b);
}

/// Get a contiguous buffer, with a clear error if the object is not one.
Py_buffer* getBuffer(PyObject* obj, const char* what) {
    auto* b = new Py_buffer;
    if (PyObject_GetBuffer(obj, b, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT) != 0) {
        delete b;
        PyErr_Clear();
        throw Error(ErrorCode::InvalidArgument,
                    std::string(what) + " must be a contiguous buffer (bytes, bytearray, memoryview or numpy array), not " +
                        std::string(Py_TYPE(obj)->tp_name) + "; use numpy.ascontiguousarray() for strided arrays");
    }
    return b;
}

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

BrokerOptions brokerOptions(const std::string& sync, int64_t syncIntervalMs, uint64_t segmentBytes, uint64_t retentionBytes,
                            int64_t retentionMs, uint64_t maxEventBytes, bool repair) {
    BrokerOptions o;
    o.defaults.sync = parseSyncPolicy(sync);
    o.defaults.syncIntervalMs = syncIntervalMs;
    o.defaults.segmentBytes = segmentBytes;
    o.defaults.retentionBytes = retentionBytes;
    o.defaults.retentionMs = retentionMs;
    o.defaults.maxEventBytes = maxEventBytes;
    o.repair = repair;
    return o;
}

/// A broker served over TCP (`mofka-py serve`).
struct PyServer {
    std::shared_ptr<Broker> broker;
    std::unique_ptr<TcpServer> server;
};

void registerErrors(py::module_& m) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const Error& e) {
            py::object cls = py::module_::import("mofka_py.errors").attr(errorCodeName(e.code()));
            PyErr_SetString(cls.ptr(), e.what());
        }
    });
}

} // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "mofka-py native core (C++): partition logs, broker, producer, consumer";
#ifdef MOFKA_PY_VERSION
    m.attr("__version__") = MOFKA_PY_VERSION;
#endif
    registerErrors(m);

    m.def("crc32c", [](py::buffer data, uint32_t crc, bool portable) {
        py::buffer_info bi = data.request();
        size_t n = size_t(bi.size * bi.itemsize);
        py::gil_scoped_release nogil;
        return portable ? crc32cPortable(crc, bi.ptr, n) : crc32c(crc, bi.ptr, n);
    }, py::arg("data"), py::arg("crc") = 0, py::arg("portable") = false,
       "CRC32C of a buffer (hardware instruction when available unless portable=True).");
    m.def("crc32c_is_hardware", &crc32cIsHardware);
    m.def("reserve_memory", [](size_t nbytes) {
        py::gil_scoped_release nogil;
        return reserveSegmentMemory(nbytes);
    }, py::arg("nbytes"), "Pre-fault memory for memory:// segments; returns bytes held in reserve.");
    m.def("reserved_memory", &reservedSegmentMemory, "Bytes of pre-faulted memory not yet used.");
    m.def("partition_for_key", [](py::bytes key, uint32_t n) {
        std::string k = key;
        if (n == 0) throw Error(ErrorCode::InvalidArgument, "partitions must be positive");
        return partitionForKey(k.data(), k.size(), n);
    });

    py::dict build;
#ifdef MOFKA_PY_HAVE_MPI
    build["mpi"] = true;
    build["mpi_home"] = mpiBuildHome();
    m.def("mpi_library_version", &mpiLibraryVersion, "MPI_Get_library_version() of the MPI loaded at run time.");
    m.def("mpi_standard_version", &mpiStandardVersion);
#else
    build["mpi"] = false;
#endif
#ifdef MOFKA_PY_HAVE_MPI
    build["transports"] = py::make_tuple("inproc", "tcp", "mpi");
#else
    build["transports"] = py::make_tuple("inproc", "tcp");
#endif
    m.attr("build_info") = build;

    py::class_<Bytes>(m, "Bytes", py::buffer_protocol())
        .def_buffer([](Bytes& b) {
            return py::buffer_info(const_cast<uint8_t*>(b.data), 1, "B", 1, {py::ssize_t(b.size)}, {py::ssize_t(1)}, true);
        })
        .def("__len__", [](const Bytes& b) { return b.size; });

    py::class_<Fabric>(m, "Fabric")
        .def(py::init([](const std::string& url, const std::string& sync, int64_t syncIntervalMs, uint64_t segmentBytes,
                         uint64_t retentionBytes, int64_t retentionMs, uint64_t maxEventBytes, bool repair,
                         const std::string& token, int64_t requestTimeoutMs, int64_t reconnectTimeoutMs) {
                 BrokerOptions b = brokerOptions(sync, syncIntervalMs, segmentBytes, retentionBytes, retentionMs, maxEventBytes, repair);
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
        .def("create_topic", [](Fabric& f, const std::string& name, int64_t partitions, py::dict cfg) {
                 if (partitions < 1)
                     throw Error(ErrorCode::InvalidArgument, "partitions must be a positive number (got " + std::to_string(partitions) + ")");
                 TopicConfig c;
                 c.setFields = 0; // unset settings come from the fabric's defaults
                 c.partitions = uint32_t(std::min<int64_t>(partitions, INT32_MAX));
                 for (auto kv : cfg) {
                     std::string k = kv.first.cast<std::string>();
                     py::handle v = kv.second;
                     if (k == "segment_bytes") { c.segmentBytes = v.cast<uint64_t>(); c.setFields |= kSegmentBytes; }
                     else if (k == "retention_bytes") { c.retentionBytes = v.cast<uint64_t>(); c.setFields |= kRetentionBytes; }
                     else if (k == "retention_ms") { c.retentionMs = v.cast<int64_t>(); c.setFields |= kRetentionMs; }
                     else if (k == "sync_interval_ms") { c.syncIntervalMs = v.cast<int64_t>(); c.setFields |= kSyncIntervalMs; }
                     else if (k == "max_event_bytes") { c.maxEventBytes = v.cast<uint64_t>(); c.setFields |= kMaxEventBytes; }
                     else if (k == "sync") {
                         c.setFields |= kSync;
                         c.sync = parseSyncPolicy(v.cast<std::string>());
                     } else throw Error(ErrorCode::InvalidArgument, "unknown topic setting '" + k + "'");
                 }
                 py::gil_scoped_release nogil;
                 f.client()->createTopic(name, c);
             })
        .def("topics", [](Fabric& f) { py::gil_scoped_release nogil; return f.client()->listTopics(); })
        .def("describe", [](Fabric& f, const std::string& name) {
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
        .def("partition_count", [](Fabric& f, const std::string& t) {
            py::gil_scoped_release nogil;
            return f.client()->describeTopic(t).config.partitions;
        })
        .def("mark_complete", [](Fabric& f, const std::string& t) { py::gil_scoped_release nogil; f.client()->markComplete(t); })
        .def("is_complete", [](Fabric& f, const std::string& t) { py::gil_scoped_release nogil; return f.client()->isComplete(t); })
        .def("committed", [](Fabric& f, const std::string& g, const std::string& t, uint32_t p) {
            py::gil_scoped_release nogil;
            return f.client()->committed(g, t, p);
        })
        .def("offsets", [](Fabric& f, const std::string& t, uint32_t p) { py::gil_scoped_release nogil; return f.client()->offsets(t, p); })
        .def("groups", [](Fabric& f, const std::string& t) { py::gil_scoped_release nogil; return f.client()->groups(t); })
        .def("describe_group", [](Fabric& f, const std::string& g, const std::string& t) {
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
        .def("reset_group", [](Fabric& f, const std::string& g, const std::string& t,
                               const std::vector<std::pair<uint32_t, uint64_t>>& offsets) {
            py::gil_scoped_release nogil;
            f.client()->resetGroup(g, t, offsets);
        })
        .def("remove_member", [](Fabric& f, const std::string& g, const std::string& t, const std::string& m) {
            py::gil_scoped_release nogil;
            return f.client()->removeMember(g, t, m);
        })
        .def("delete_topic", [](Fabric& f, const std::string& t, bool force) {
            py::gil_scoped_release nogil;
            f.client()->deleteTopic(t, force);
        })
        .def("purge_topic", [](Fabric& f, const std::string& t) {
            py::gil_scoped_release nogil;
            return f.client()->purgeTopic(t);
        })
        .def("alter_topic", [](Fabric& f, const std::string& t, py::object retentionBytes, py::object retentionMs) {
            TopicConfig c;
            c.setFields = 0;
            if (!retentionBytes.is_none()) { c.retentionBytes = retentionBytes.cast<uint64_t>(); c.setFields |= kRetentionBytes; }
            if (!retentionMs.is_none()) { c.retentionMs = retentionMs.cast<int64_t>(); c.setFields |= kRetentionMs; }
            py::gil_scoped_release nogil;
            f.client()->alterTopic(t, c);
        })
        .def("offset_for_time", [](Fabric& f, const std::string& t, uint32_t p, int64_t tsUs) {
            py::gil_scoped_release nogil;
            return f.client()->offsetForTime(t, p, tsUs);
        })
        .def("connected_clients", [](Fabric& f) { py::gil_scoped_release nogil; return f.client()->connectedClients(); })
        .def("connection_problem", [](Fabric& f) { return f.client()->connectionProblem(); })
        .def("url", [](Fabric& f) { return f.client()->url(); })
        .def("close", [](Fabric& f) { py::gil_scoped_release nogil; f.close(); });

    py::class_<PyServer>(m, "Server")
        .def(py::init([](const std::string& url, const std::string& host, uint16_t port, const std::string& token,
                         const std::string& sync, int64_t syncIntervalMs, uint64_t maxFrameBytes, int64_t idleTimeoutMs,
                         uint32_t maxConnections, bool repair, int64_t rejoinGraceMs, int64_t loginTimeoutMs,
                         uint32_t maxPendingLogins, uint32_t maxPendingLoginsPerAddress) {
                 FabricUrl u = parseFabricUrl(url);
                 if (u.scheme == "tcp") throw Error(ErrorCode::InvalidArgument, "serve a memory:// or file:// fabric, not " + url);
                 BrokerOptions o = brokerOptions(sync, syncIntervalMs, 256ull << 20, 0, 0, 64ull << 20, repair);
                 o.directory = u.scheme == "file" ? u.path : "";
                 if (rejoinGraceMs < 0) throw Error(ErrorCode::InvalidArgument, "rejoin_grace_ms must be >= 0");
                 o.rejoinGraceMs = rejoinGraceMs;
                 TcpServerOptions so;
                 so.host = host;
                 so.port = port;
                 so.token = token;
                 so.maxFrameBytes = maxFrameBytes;
                 so.idleTimeoutMs = idleTimeoutMs;
                 so.maxConnections = maxConnections;
                 so.loginTimeoutMs = loginTimeoutMs;
                 so.maxPendingLogins = maxPendingLogins;
                 so.maxPendingLoginsPerAddress = maxPendingLoginsPerAddress;
                 py::gil_scoped_release nogil;
                 auto s = std::make_unique<PyServer>();
                 s->broker = std::make_shared<Broker>(o);
                 try {
                     s->server = std::make_unique<TcpServer>(s->broker, so);
                 } catch (...) {
                     s->broker->close();
                     throw;
                 }
                 return s;
             }),
             py::arg("url"), py::arg("host") = "127.0.0.1", py::arg("port") = 7400, py::arg("token") = "",
             py::arg("sync") = "none", py::arg("sync_interval_ms") = 1000, py::arg("max_frame_bytes") = 1ull << 30,
             py::arg("idle_timeout_ms") = 600000, py::arg("max_connections") = 1024, py::arg("repair") = false,
             py::arg("rejoin_grace_ms") = 3000, py::arg("login_timeout_ms") = 5000, py::arg("max_pending_logins") = 256,
             py::arg("max_pending_logins_per_address") = 64)
        .def_property_readonly("port", [](PyServer& s) { return s.server->port(); })
        .def_property_readonly("connections", [](PyServer& s) { return s.server->connections(); })
        .def_property_readonly("pending_logins", [](PyServer& s) { return s.server->pendingLogins(); })
        .def("poll", [](PyServer& s, int timeoutMs) { py::gil_scoped_release nogil; s.server->poll(timeoutMs); },
             "Run the event loop for up to timeout_ms.")
        .def("shutdown", [](PyServer& s, int drainMs) {
                 py::gil_scoped_release nogil;
                 s.server->shutdown(drainMs);
                 s.broker->close();
             }, py::arg("drain_ms") = 2000, "Stop serving, send queued replies, sync and close the broker.");

    m.def("decode_frame", [](py::bytes data, uint64_t maxBody) {
        std::string d = data;
        return decodeFrameForTest(reinterpret_cast<const uint8_t*>(d.data()), d.size(), maxBody);
    }, py::arg("data"), py::arg("max_body") = 1ull << 20,
       "Decode a request frame as the server does (for fuzzing); raises CorruptionError if malformed.");
    m.def("sha256", [](py::bytes data) {
        std::string d = data;
        Digest h = sha256(d.data(), d.size());
        return py::bytes(reinterpret_cast<const char*>(h.data()), h.size());
    });
    m.def("hmac_sha256", [](py::bytes key, py::bytes data) {
        std::string k = key, d = data;
        Digest h = hmacSha256(k, d.data(), d.size());
        return py::bytes(reinterpret_cast<const char*>(h.data()), h.size());
    });

    py::class_<Future>(m, "Future")
        .def("done", &Future::done)
        .def("result", [](const Future& f, py::object timeout) {
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
                 static py::object* cls = new py::object(py::module_::import("mofka_py._types").attr("EventId"));
                 return (*cls)(id.partition, id.offset);
             }, py::arg("timeout") = py::none());

    py::class_<Producer, std::shared_ptr<Producer>>(m, "Producer")
        .def(py::init([](Fabric& f, const std::string& topic, size_t batchSize, size_t batchBytes, double lingerMs,
                         size_t maxPending, const std::string& selector) {
                 ProducerOptions o;
                 o.batchSize = batchSize;
                 o.batchBytes = batchBytes;
                 o.lingerMs = lingerMs;
                 o.maxPendingBytes = maxPending;
                 if (selector == "round_robin") o.selector = PartitionSelector::RoundRobin;
                 else if (selector == "key_hash") o.selector = PartitionSelector::KeyHash;
                 else throw Error(ErrorCode::InvalidArgument, "selector must be 'key_hash' or 'round_robin'");
                 py::gil_scoped_release nogil;
                 return std::make_shared<Producer>(f.client(), topic, o);
             }))
        .def("push", [](Producer& p, py::handle meta, py::handle data, int64_t partition, py::handle key, bool block) {
                 graveyard().drain();
                 char* mp = nullptr;
                 Py_ssize_t ml = 0;
                 if (PyBytes_AsStringAndSize(meta.ptr(), &mp, &ml) != 0) throw py::error_already_set();
                 std::vector<DataRef> refs;
                 size_t total = size_t(ml);
                 struct Local { // small buffers: copied during push, released right after
                     std::vector<Py_buffer*> v;
                     ~Local() { for (Py_buffer* b : v) { PyBuffer_Release(b); delete b; } }
                 } local;
                 auto addData = [&](PyObject* obj) {
                     Py_buffer* b = getBuffer(obj, "data");
                     if (size_t(b->len) < BatchBuilder::kInlineThreshold) {
                         local.v.push_back(b);
                         refs.push_back({b->buf, size_t(b->len), nullptr});
                     } else {
                         refs.push_back({b->buf, size_t(b->len), Owner(b, [](const void* x) {
                                              graveyard().bury(static_cast<Py_buffer*>(const_cast<void*>(x)));
                                          })});
                     }
                     total += size_t(b->len);
                 };
                 if (!data.is_none()) {
                     if (PyList_Check(data.ptr()) || PyTuple_Check(data.ptr())) {
                         for (auto item : data) addData(item.ptr());
                     } else {
                         addData(data.ptr());
                     }
                 }
                 std::string k;
                 const void* kp = nullptr;
                 if (!key.is_none()) {
                     if (PyUnicode_Check(key.ptr())) k = key.cast<std::string>();
                     else k = py::bytes(py::reinterpret_borrow<py::object>(key)).cast<std::string>();
                     kp = k.data();
                 }
                 if (block && p.wouldBlock(total + 12)) {
                     waitInterruptibly(-1, [&](int64_t slice) { return p.waitForSpace(total + 12, slice); });
                 }
                 return p.push(mp, size_t(ml), refs.data(), refs.size(), partition, kp, k.size(), block);
             }, py::arg("meta"), py::arg("data") = py::none(), py::arg("partition") = -1, py::arg("key") = py::none(),
             py::arg("block") = true)
        .def("push_many", [](Producer& p, py::buffer metas, int64_t partition, bool block) {
                 graveyard().drain();
                 py::buffer_info bi = metas.request();
                 if (bi.ndim < 1) throw Error(ErrorCode::InvalidArgument, "push_many needs an array of records (ndim >= 1)");
                 size_t n = size_t(bi.shape[0]);
                 size_t len = size_t(bi.itemsize);
                 for (py::ssize_t d = 1; d < bi.ndim; ++d) len *= size_t(bi.shape[size_t(d)]);
                 // each record must be contiguous inside itself
                 py::ssize_t expect = bi.itemsize;
                 for (py::ssize_t d = bi.ndim - 1; d >= 1; --d) {
                     if (bi.strides[size_t(d)] != expect)
                         throw Error(ErrorCode::InvalidArgument, "each record of push_many must be contiguous; use numpy.ascontiguousarray()");
                     expect *= bi.shape[size_t(d)];
                 }
                 size_t stride = size_t(bi.strides[0]);
                 auto* base = static_cast<const uint8_t*>(bi.ptr);
                 py::gil_scoped_release nogil;
                 return p.pushMany(base, n, len, stride, partition, block);
             }, py::arg("metas"), py::arg("partition") = -1, py::arg("block") = true)
        .def("push_many_var", [](Producer& p, py::bytes blob, py::buffer lengths, int64_t partition, bool block) {
                 graveyard().drain();
                 char* bp;
                 Py_ssize_t bl;
                 PyBytes_AsStringAndSize(blob.ptr(), &bp, &bl);
                 py::buffer_info li = lengths.request();
                 if (li.itemsize != 8 || li.ndim != 1) throw Error(ErrorCode::InvalidArgument, "lengths must be a 1-D uint64 array");
                 size_t n = size_t(li.shape[0]);
                 auto* lens = static_cast<const uint64_t*>(li.ptr);
                 uint64_t sum = 0;
                 for (size_t i = 0; i < n; ++i) sum += lens[i];
                 if (sum != uint64_t(bl)) throw Error(ErrorCode::InvalidArgument, "lengths do not add up to the metadata size");
                 py::gil_scoped_release nogil;
                 return p.pushManyVar(reinterpret_cast<const uint8_t*>(bp), lens, n, partition, block);
             })
        .def("flush", [](Producer& p, py::object timeout) {
                 graveyard().drain();
                 int64_t ms = toMs(timeout);
                 {
                     py::gil_scoped_release nogil;
                     p.flush(ms);
                 }
                 graveyard().drain();
             }, py::arg("timeout") = py::none())
        .def("close", [](Producer& p, py::object timeout) {
                 int64_t ms = toMs(timeout);
                 try {
                     py::gil_scoped_release nogil;
                     p.close(ms);
                 } catch (...) {
                     graveyard().drain();
                     throw;
                 }
                 graveyard().drain();
             }, py::arg("timeout") = py::none())
        .def("reset", [](Producer& p) {
                 py::gil_scoped_release nogil;
                 p.reset();
             })
        .def_property_readonly("pending_bytes", &Producer::pendingBytes)
        .def_property_readonly("appended_events", &Producer::appendedEvents)
        .def_property_readonly("partitions", &Producer::partitions);

    py::class_<PyEvent>(m, "Event")
        .def_property_readonly("partition", [](const PyEvent& e) { return e.ev.partition; })
        .def_property_readonly("offset", [](const PyEvent& e) { return e.ev.offset; })
        .def_property_readonly("id", [](const PyEvent& e) {
            static py::object* cls = new py::object(py::module_::import("mofka_py._types").attr("EventId"));
            return (*cls)(e.ev.partition, e.ev.offset);
        })
        .def_property_readonly("timestamp_us", [](const PyEvent& e) { return e.ev.timestampUs; })
        .def_property_readonly("metadata_bytes", [](const PyEvent& e) {
            return py::bytes(reinterpret_cast<const char*>(e.ev.metadata.data), e.ev.metadata.size);
        })
        .def_property_readonly("metadata", [](const PyEvent& e) {
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
        .def("metadata_view", [](const PyEventBatch& b) {
            // Metadata of consecutive events is contiguous in a batch: one view covers all.
            Piece first = b.d.view->metadata(b.d.first);
            Piece last = b.d.view->metadata(b.d.end - 1);
            return viewOf(b.d.owner, {first.data, size_t(last.data + last.size - first.data)});
        }, "One read-only view over the metadata of all events of this batch, back to back.")
        .def("metadata_lengths", [](const PyEventBatch& b) {
            py::list out;
            for (uint32_t i = b.d.first; i < b.d.end; ++i) out.append(b.d.view->metadata(i).size);
            return out;
        })
        .def("uniform_metadata_size", [](const PyEventBatch& b) -> py::object {
            size_t s = b.d.view->metadata(b.d.first).size;
            for (uint32_t i = b.d.first + 1; i < b.d.end; ++i)
                if (b.d.view->metadata(i).size != s) return py::none();
            return py::int_(s);
        })
        .def("data_size", [](const PyEventBatch& b) {
            size_t s = 0;
            for (uint32_t i = b.d.first; i < b.d.end; ++i) s += b.consumer->select(b.d.view->eventData(i)).size;
            return s;
        }, "Total data bytes of the events of this batch (0: metadata only, or data not read).")
        .def("data_views", [](const PyEventBatch& b) {
            py::list out(b.d.end - b.d.first);
            for (uint32_t i = b.d.first; i < b.d.end; ++i)
                out[i - b.d.first] = viewOf(b.d.owner, b.consumer->select(b.d.view->eventData(i)));
            return out;
        }, "The data of every event of this batch: one read-only view each, as ``batch[i].data``.")
        .def("__getitem__", [](const PyEventBatch& b, int64_t i) {
            int64_t n = int64_t(b.d.end - b.d.first);
            if (i < 0) i += n;
            if (i < 0 || i >= n) throw py::index_error("event index out of range");
            uint32_t k = b.d.first + uint32_t(i);
            Event ev{b.d.partition, b.d.offsetOf(k), b.d.view->metadata(k), b.consumer->select(b.d.view->eventData(k)),
                     b.d.view->header().firstTimestampUs, b.d.owner, b.d.epoch};
            return PyEvent{ev, b.consumer};
        })
        .def("ack", [](PyEventBatch& b) { b.consumer->ack(b.d.partition, b.d.offsetOf(b.d.end - 1), b.d.epoch); });

    py::class_<Consumer, std::shared_ptr<Consumer>>(m, "Consumer")
        .def(py::init([](Fabric& f, const std::string& topic, const std::string& group, py::object start, py::object data,
                         std::vector<uint32_t> partitions, size_t prefetchBytes, int64_t autoCommitMs,
                         const std::string& memberId, const std::string& onGap, int64_t sessionTimeoutMs,
                         int64_t rebalanceTimeoutMs) {
                 ConsumerOptions o;
                 o.group = group;
                 o.memberId = memberId;
                 if (onGap == "error") o.onGap = GapPolicy::Error;
                 else if (onGap == "earliest") o.onGap = GapPolicy::Earliest;
                 else throw Error(ErrorCode::InvalidArgument, "on_gap must be 'error' or 'earliest' (got '" + onGap + "')");
                 o.sessionTimeoutMs = sessionTimeoutMs;
                 o.rebalanceTimeoutMs = rebalanceTimeoutMs;
                 if (py::isinstance<py::str>(start)) {
                     std::string s = start.cast<std::string>();
                     if (s == "earliest") o.start = StartPosition::Earliest;
                     else if (s == "latest") o.start = StartPosition::Latest;
                     else if (s == "committed") o.start = StartPosition::Committed;
                     else throw Error(ErrorCode::InvalidArgument, "start must be 'earliest', 'latest', 'committed' or an offset (got '" + s + "')");
                 } else if (py::isinstance<py::int_>(start) && !py::isinstance<py::bool_>(start)) {
                     int64_t off = start.cast<int64_t>();
                     if (off < 0) throw Error(ErrorCode::InvalidArgument, "start offset must be >= 0");
                     o.start = StartPosition::Offset;
                     o.startOffset = uint64_t(off);
                 } else {
                     throw Error(ErrorCode::InvalidArgument, "start must be 'earliest', 'latest', 'committed' or an offset");
                 }
                 if (py::isinstance<py::bool_>(data)) {
                     o.data = data.cast<bool>() ? DataMode::Full : DataMode::None;
                 } else if (py::isinstance<py::tuple>(data) && py::len(data) == 2) {
                     auto t = data.cast<py::tuple>();
                     int64_t off = t[0].cast<int64_t>(), len = t[1].cast<int64_t>();
                     if (off < 0 || len < 0) throw Error(ErrorCode::InvalidArgument, "data byte range must be (offset >= 0, size >= 0)");
                     o.data = DataMode::Range;
                     o.rangeOffset = uint64_t(off);
                     o.rangeSize = uint64_t(len);
                 } else {
                     throw Error(ErrorCode::InvalidArgument, "data must be True, False, (offset, size) or a callable");
                 }
                 o.partitions = partitions;
                 o.prefetchBytes = prefetchBytes;
                 o.autoCommitMs = autoCommitMs;
                 py::gil_scoped_release nogil;
                 return std::make_shared<Consumer>(f.client(), topic, o);
             }), py::arg("fabric"), py::arg("topic"), py::arg("group"), py::arg("start"), py::arg("data"), py::arg("partitions"),
             py::arg("prefetch_bytes"), py::arg("auto_commit_ms"), py::arg("member_id") = "", py::arg("on_gap") = "error",
             py::arg("session_timeout_ms") = 10000, py::arg("rebalance_timeout_ms") = 10000)
        .def("pull", [](std::shared_ptr<Consumer>& c, py::object timeout) -> py::object {
                 int64_t ms = toMs(timeout);
                 std::optional<Event> ev = waitInterruptibly(ms, [&](int64_t slice) {
                     auto r = c->pull(slice);
                     return r || !c->exhausted() ? r : std::optional<Event>(); }, [&] { return c->exhausted(); });
                 if (!ev) return py::none();
                 return py::cast(PyEvent{std::move(*ev), c});
             }, py::arg("timeout") = py::none())
        .def("pull_batch", [](std::shared_ptr<Consumer>& c, size_t maxEvents, py::object timeout) -> py::object {
                 int64_t ms = toMs(timeout);
                 std::optional<Delivery> d = waitInterruptibly(ms, [&](int64_t slice) { return c->pullBatch(maxEvents, slice); },
                                                               [&] { return c->exhausted(); });
                 if (!d) return py::none();
                 return py::cast(PyEventBatch{std::move(*d), c});
             }, py::arg("max_events") = 1 << 20, py::arg("timeout") = py::none())
        .def("ack", &Consumer::ack)
        .def("commit", [](Consumer& c) { py::gil_scoped_release nogil; c.commit(); })
        .def("exhausted", &Consumer::exhausted)
        .def("partitions", &Consumer::partitions)
        .def("member_id", &Consumer::memberId)
        .def("stats", [](Consumer& c) {
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
        .def("close", [](Consumer& c) { py::gil_scoped_release nogil; c.close(); });

#ifdef MOFKA_PY_HAVE_MPI
    registerMpiFabric(m);
#endif
}
