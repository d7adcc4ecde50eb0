// MPI return codes as mofka_py errors, at one place.
#pragma once
#include "mofka_py/Error.hpp"

#include <mpi.h>

#include <string>

namespace mofka_py {
namespace mpi {

/// Throw a mofka_py Error if an MPI call failed (the communicators use MPI_ERRORS_RETURN).
inline void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(ErrorCode::Connection,
                std::string("MPI transport: ") + what + " failed: " + std::string(msg, size_t(len)));
}

} // namespace mpi
} // namespace mofka_py
