// The MPI entry points of the C API in a library built without the MPI transport: each one
// fails with a message saying how to get a build with MPI.
#include "capi/CApi.hpp"

#include <cstring>

using namespace mofka_py::capi;

namespace {
int noMpi() {
    return fail(MOFKA_PY_ERR_GENERIC, "this libmofka_py_c was built without MPI (no MPI was found when it was "
                                      "compiled); rebuild with MPI_HOME set to your MPI prefix or an MPI module "
                                      "loaded (mofka-py doctor shows what a build has)");
}
} // namespace

extern "C" {
int mofka_py_mpi_options_init(mofka_py_mpi_options_t* o) {
    if (!o) return fail(MOFKA_PY_ERR_INVALID_ARGUMENT, "options is NULL; pass a valid pointer");
    std::memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->request_timeout_ms = 60000;
    return succeed(MOFKA_PY_OK);
}
int mofka_py_mpi_fabric_create_f(int32_t, const mofka_py_mpi_options_t*, mofka_py_mpi_fabric_t*) { return noMpi(); }
int mofka_py_mpi_fabric_is_server(mofka_py_mpi_fabric_t, int*) { return noMpi(); }
int mofka_py_mpi_fabric_is_client(mofka_py_mpi_fabric_t, int*) { return noMpi(); }
int mofka_py_mpi_fabric_fabric(mofka_py_mpi_fabric_t, mofka_py_fabric_t*) { return noMpi(); }
int mofka_py_mpi_fabric_close(mofka_py_mpi_fabric_t) { return noMpi(); }
int mofka_py_mpi_fabric_release(mofka_py_mpi_fabric_t) { return noMpi(); }
int mofka_py_mpi_init(int32_t*, int32_t*, int32_t*) { return noMpi(); }
int mofka_py_mpi_finalize(void) { return noMpi(); }
}
