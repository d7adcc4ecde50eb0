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

MpiFabricObj& mpiOf(mofka_py_mpi_fabric_t h) {
    return *static_cast<MpiFabricObj*>(
        HandleTable::instance().get(reinterpret_cast<uint64_t>(h), Kind::MpiFabric, "mpi_fabric"));
}

void requireMpi(const char* what) {
    int initialised = 0, finalised = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalised);
    if (!initialised || finalised)
        throw Error(ErrorCode::InvalidArgument,
                    std::string(what) + " needs MPI initialised (and not finalised): call MPI_Init_thread with "
                                        "MPI_THREAD_MULTIPLE first, or mofka_py_mpi_init()");
}

} // namespace

extern "C" {

int mofka_py_mpi_options_init(mofka_py_mpi_options_t* o) {
    try {
        need(o, "options");
        *o = mofka_py_mpi_options_t{};
        o->struct_size = sizeof *o;
        o->request_timeout_ms = MpiFabricOptions{}.requestTimeoutMs;
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_mpi_fabric_create_f(int32_t comm, const mofka_py_mpi_options_t* o, mofka_py_mpi_fabric_t* out) {
    try {
        need(out, "mpi_fabric (the output pointer)");
        requireMpi("mofka_py_mpi_fabric_create_f");
        MPI_Comm c = MPI_Comm_f2c(static_cast<MPI_Fint>(comm));
        int size = 0;
        if (c == MPI_COMM_NULL || MPI_Comm_size(c, &size) != MPI_SUCCESS)
            throw Error(ErrorCode::InvalidArgument,
                        "comm " + std::to_string(comm) +
                            " is not a communicator's Fortran handle; pass "
                            "MPI_Comm_c2f(comm) in C or the integer communicator in Fortran");
        MpiFabricOptions opts;
        if (o) {
            checkSize(o->struct_size, sizeof *o, "mofka_py_mpi_options_t");
            if (!o->servers && o->num_servers) need(o->servers, "options->servers");
            if (o->num_servers) opts.servers.assign(o->servers, o->servers + o->num_servers);
            if (o->storage) opts.storage = o->storage;
            opts.colocated = o->colocated != 0;
            if (o->request_timeout_ms) opts.requestTimeoutMs = o->request_timeout_ms;
        }
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
        auto* obj = new MpiFabricObj{std::move(mpi), clients};
        try {
            *out = reinterpret_cast<mofka_py_mpi_fabric_t>(HandleTable::instance().add(Kind::MpiFabric, obj));
        } catch (...) {
            delete obj;
            throw;
        }
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_mpi_fabric_is_server(mofka_py_mpi_fabric_t h, int* is_server) {
    try {
        auto& m = mpiOf(h);
        need(is_server, "is_server");
        *is_server = m.mpi->isServer() ? 1 : 0;
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_mpi_fabric_is_client(mofka_py_mpi_fabric_t h, int* is_client) {
    try {
        auto& m = mpiOf(h);
        need(is_client, "is_client");
        *is_client = m.mpi->isClient() ? 1 : 0;
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_mpi_fabric_fabric(mofka_py_mpi_fabric_t h, mofka_py_fabric_t* fabric) {
    try {
        auto& m = mpiOf(h);
        need(fabric, "fabric (the output pointer)");
        *fabric = newFabricHandle(m.mpi->fabric());
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_mpi_fabric_close(mofka_py_mpi_fabric_t h) {
    try {
        mpiOf(h).close();
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_mpi_fabric_release(mofka_py_mpi_fabric_t h) {
    try {
        std::unique_ptr<MpiFabricObj> owned(static_cast<MpiFabricObj*>(
            HandleTable::instance().remove(reinterpret_cast<uint64_t>(h), Kind::MpiFabric, "mpi_fabric")));
        owned->close();
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_mpi_init(int32_t* comm_world, int32_t* rank, int32_t* size) {
    try {
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
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_mpi_finalize(void) {
    try {
        int finalised = 0;
        MPI_Finalized(&finalised);
        if (g_initialisedHere.exchange(false) && !finalised) MPI_Finalize();
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

} // extern "C"
