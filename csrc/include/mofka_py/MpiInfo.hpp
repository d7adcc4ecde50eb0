/**
 * @file MpiInfo.hpp
 * @brief What MPI this build links (safe to call before MPI_Init; no <mpi.h> here).
 */
#pragma once
#include <string>

namespace mofka_py {

/// MPI_Get_library_version() of the MPI library loaded at run time.
std::string mpiLibraryVersion();
/// MPI_Get_version() as "major.minor".
std::string mpiStandardVersion();
/// The MPI prefix the extension was built against (MPI_HOME at build time).
std::string mpiBuildHome();

} // namespace mofka_py
