#include "mofka_py/MpiInfo.hpp"

#include <mpi.h>

namespace mofka_py {

std::string mpiLibraryVersion() {
    char buf[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(buf, &len);
    std::string s(buf, size_t(len));
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
    return s;
}

std::string mpiStandardVersion() {
    int major = 0, minor = 0;
    MPI_Get_version(&major, &minor);
    return std::to_string(major) + "." + std::to_string(minor);
}

std::string mpiBuildHome() { return MOFKA_PY_MPI_HOME; }

} // namespace mofka_py
