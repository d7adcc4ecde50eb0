// Module-level functions: CRC32C, the memory:// segment reservoir, key hashing, build_info.
#include "bindings.hpp"
#include "convert.hpp"

#include "mofka_py/Crc32c.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/PartitionLog.hpp"
#include "mofka_py/Producer.hpp"
#ifdef MOFKA_PY_HAVE_MPI
#include "mofka_py/MpiInfo.hpp"
#endif

#include <string>

namespace mofka_py::bindings {

void bindFunctions(py::module_& m) {
    m.def(
        "crc32c",
        [](py::buffer data, uint32_t crc, bool portable) {
            py::buffer_info bi = data.request();
            size_t n = size_t(bi.size * bi.itemsize);
            py::gil_scoped_release nogil;
            return portable ? crc32cPortable(crc, bi.ptr, n) : crc32c(crc, bi.ptr, n);
        },
        py::arg("data"), py::arg("crc") = 0, py::arg("portable") = false,
        "CRC32C of a buffer (hardware instruction when available unless portable=True).");
    m.def("crc32c_is_hardware", &crc32cIsHardware);
    m.def("defaults", &defaults, py::arg("scope"),
          "The C++ defaults of a scope's options struct (topic, fabric, producer, consumer, service, mpi), "
          "keyed by setting names: exactly the names the scope's settings dict may hold.");
    m.def(
        "reserve_memory",
        [](size_t nbytes) {
            py::gil_scoped_release nogil;
            return reserveSegmentMemory(nbytes);
        },
        py::arg("nbytes"), "Pre-fault memory for memory:// segments; returns bytes held in reserve.");
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
}

} // namespace mofka_py::bindings
