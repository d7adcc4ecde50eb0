// mofka_py._core.MpiFabric: the MPI transport for Python (compiled only with MPI).
// An mpi4py communicator becomes an MPI_Comm through mpi4py's C API.
#include "bindings.hpp"
#include "convert.hpp"

#include "mofka_py/Error.hpp"
#include "mofka_py/MpiFabric.hpp"

#ifdef MOFKA_PY_HAVE_MPI4PY
#include <mpi4py/mpi4py.h>
#endif

namespace mofka_py::bindings {

namespace {

MPI_Comm commFromPython(const py::object& comm) {
#ifdef MOFKA_PY_HAVE_MPI4PY
    static bool imported = false;
    if (!imported) {
        if (import_mpi4py() < 0) throw py::error_already_set();
        imported = true;
    }
    MPI_Comm* c = PyMPIComm_Get(comm.ptr());
    if (!c) {
        PyErr_Clear();
        throw Error(ErrorCode::InvalidArgument, "comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD), not " +
                                                    std::string(Py_TYPE(comm.ptr())->tp_name));
    }
    return *c;
#else
    if (!py::hasattr(comm, "py2f"))
        throw Error(ErrorCode::InvalidArgument, "comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD)");
    return MPI_Comm_f2c(MPI_Fint(comm.attr("py2f")().cast<int>()));
#endif
}

} // namespace

void bindMpiFabric(py::module_& m) {
    py::class_<MpiFabric, std::shared_ptr<MpiFabric>>(m, "MpiFabric")
        .def(py::init(
                 [](py::object comm, std::vector<int> servers, const std::string& storage, const py::dict& settings) {
                     MpiFabricOptions o = mpiFabricOptions(settings);
                     o.servers = std::move(servers);
                     o.storage = storage;
                     MPI_Comm c = commFromPython(comm);
                     py::gil_scoped_release nogil;
                     return std::make_shared<MpiFabric>(c, o);
                 }),
             py::arg("comm"), py::arg("servers"), py::arg("storage"), py::arg("settings"))
        .def_property_readonly("is_server", &MpiFabric::isServer)
        .def_property_readonly("is_client", &MpiFabric::isClient)
        .def_property_readonly("rank", &MpiFabric::rank)
        .def_property_readonly("servers", &MpiFabric::servers, "The server ranks, sorted.")
        .def("partition_server", &MpiFabric::partitionServer, py::arg("topic"), py::arg("partition"),
             "The server rank that stores a partition of a topic (placement only; no request).")
        .def("fabric", &MpiFabric::fabric, "The fabric of a client rank (a _core.Fabric).")
        .def(
            "wait_served",
            [](MpiFabric& f, int64_t timeoutMs) {
                py::gil_scoped_release nogil;
                return f.waitServed(timeoutMs);
            },
            py::arg("timeout_ms"), "On a server rank: wait until every client left; True once they have.")
        .def(
            "close",
            [](MpiFabric& f) {
                py::gil_scoped_release nogil;
                f.close();
            },
            "Collective: leave, stop serving, free the duplicated communicators.");
}

} // namespace mofka_py::bindings
