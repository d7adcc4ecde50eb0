// The MPI entry points of the C API (built only with the MPI transport; CApiNoMpi.cpp otherwise).
#include "capi/CApi.hpp"
#include "mofka_py/MpiFabric.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

using namespace mofka_py;
using namespace mofka_py::capi;

namespace {

struct MpiFabricObj {
    std::unique_ptr<MpiFabric> mpi;
    MPI_Comm clients = MPI_COMM_NULL; // the client ranks, split as mofka_py.mpi.fabric() does
    void close() {
        mpi->close();
        if (clients != MPI_COMM_NULL) MPI_Comm_free(&clients);
    }
};

std::atomic<bool> g_initialisedHere{false};

MpiFabricObj& mpiOf(mofka_py_mpi_fabric_t h) { return objectOf<MpiFabricObj>(h, Kind::MpiFabric, "mpi_fabric"); }

void requireMpi(const char* what) {
    int initialised = 0, finalised = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalised);
    if (!initialised || finalised)
        throw Error(ErrorCode::InvalidArgument,
                    std::string(what) + " needs MPI initialised (and not finalised): call MPI_Init_thread with "
                                        "MPI_THREAD_MULTIPLE first, or mofka_py_mpi_init()");
}

/// Whether @p c is a valid communicator, asked with errors returned rather than fatal (MPI reports a
/// bad handle through MPI_COMM_WORLD's handler, which aborts by default).
bool validCommunicator(MPI_Comm c) {
    MPI_Errhandler before;
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &before);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int size = 0;
    const bool ok = MPI_Comm_size(c, &size) == MPI_SUCCESS && size > 0;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, before);
    MPI_Errhandler_free(&before);
    return ok;
}

} // namespace

extern "C" {

int mofka_py_mpi_options_init(mofka_py_mpi_options_t* o) {
    MOFKA_PY_GUARD({
        need(o, "options");
        *o = mofka_py_mpi_options_t{};
        o->struct_size = sizeof *o;
        o->request_timeout_ms = MpiFabricOptions{}.requestTimeoutMs;
    })
}

int mofka_py_mpi_fabric_create_f(int32_t comm, const mofka_py_mpi_options_t* o, mofka_py_mpi_fabric_t* out) {
    MOFKA_PY_GUARD({
        need(out, "mpi_fabric (the output pointer)");
        // Every argument is checked before any MPI call (no collective is entered on a bad one).
        MpiFabricOptions opts;
        if (o) {
            checkSize(o->struct_size, sizeof *o, "mofka_py_mpi_options_t");
            if (!o->servers && o->num_servers) need(o->servers, "options->servers");
            if (o->num_servers) opts.servers.assign(o->servers, o->servers + o->num_servers);
            if (o->storage) opts.storage = o->storage;
            opts.colocated = o->colocated != 0;
            if (o->request_timeout_ms) opts.requestTimeoutMs = o->request_timeout_ms;
        }
        requireMpi("mofka_py_mpi_fabric_create_f");
        MPI_Comm c = MPI_Comm_f2c(static_cast<MPI_Fint>(comm));
        if (c == MPI_COMM_NULL || !validCommunicator(c))
            throw Error(ErrorCode::InvalidArgument,
                        "comm " + std::to_string(comm) +
                            " is not a communicator's Fortran handle; pass "
                            "MPI_Comm_c2f(comm) in C or the integer communicator in Fortran");
        // The collectives of mofka_py.mpi.fabric(), in its order (a split of the client ranks,
        // then the fabric), so C/Fortran and Python ranks can share one fabric in one job.
        int rank = 0;
        MPI_Comm_rank(c, &rank);
        std::vector<int> servers = opts.servers.empty() ? std::vector<int>{0} : opts.servers;
        bool isClient = opts.colocated || std::find(servers.begin(), servers.end(), rank) == servers.end();
        MPI_Comm clients = MPI_COMM_NULL;
        MPI_Comm_split(c, isClient ? 0 : MPI_UNDEFINED, rank, &clients);
        std::unique_ptr<MpiFabric> mpi;
        try {
            mpi = std::make_unique<MpiFabric>(c, opts);
        } catch (...) {
            if (clients != MPI_COMM_NULL) MPI_Comm_free(&clients);
            throw;
        }
        publish(Kind::MpiFabric, new MpiFabricObj{std::move(mpi), clients}, out);
    })
}

int mofka_py_mpi_fabric_is_server(mofka_py_mpi_fabric_t h, int* is_server) {
    MOFKA_PY_GUARD({
        auto& m = mpiOf(h);
        need(is_server, "is_server");
        *is_server = m.mpi->isServer() ? 1 : 0;
    })
}

int mofka_py_mpi_fabric_is_client(mofka_py_mpi_fabric_t h, int* is_client) {
    MOFKA_PY_GUARD({
        auto& m = mpiOf(h);
        need(is_client, "is_client");
        *is_client = m.mpi->isClient() ? 1 : 0;
    })
}

int mofka_py_mpi_fabric_fabric(mofka_py_mpi_fabric_t h, mofka_py_fabric_t* fabric) {
    MOFKA_PY_GUARD({
        auto& m = mpiOf(h);
        need(fabric, "fabric (the output pointer)");
        publish(Kind::Fabric, new FabricObj{m.mpi->fabric()}, fabric);
    })
}

int mofka_py_mpi_fabric_close(mofka_py_mpi_fabric_t h) {
    MOFKA_PY_GUARD({ mpiOf(h).close(); })
}

int mofka_py_mpi_fabric_release(mofka_py_mpi_fabric_t h) {
    MOFKA_PY_GUARD({ take<MpiFabricObj>(h, Kind::MpiFabric, "mpi_fabric")->close(); })
}

int mofka_py_mpi_init(int32_t* comm_world, int32_t* rank, int32_t* size) {
    MOFKA_PY_GUARD({
        int initialised = 0;
        MPI_Initialized(&initialised);
        if (!initialised) {
            int provided = 0;
            if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
                throw Error(ErrorCode::Generic, "MPI_Init_thread failed; run under mpiexec");
            g_initialisedHere = true;
            if (provided < MPI_THREAD_MULTIPLE)
                throw Error(ErrorCode::InvalidArgument,
                            "this MPI gives no MPI_THREAD_MULTIPLE, which the MPI fabric needs; use an MPI built "
                            "with thread support (MPICH's default)");
        }
        if (comm_world) *comm_world = static_cast<int32_t>(MPI_Comm_c2f(MPI_COMM_WORLD));
        int r = 0, s = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
        MPI_Comm_size(MPI_COMM_WORLD, &s);
        if (rank) *rank = r;
        if (size) *size = s;
    })
}

int mofka_py_mpi_finalize(void) {
    MOFKA_PY_GUARD({
        int finalised = 0;
        MPI_Finalized(&finalised);
        if (g_initialisedHere.exchange(false) && !finalised) MPI_Finalize();
    })
}

} // extern "C"
