// Shared by the C API's translation units (CApi.cpp, CApiMpi.cpp, CApiNoMpi.cpp).
#pragma once
#include "capi/Handles.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"
#include "mofka_py/mofka_py.h"

#include <string>

namespace mofka_py::capi {

/// What a fabric handle holds.
struct FabricObj {
    Fabric fabric;
};

/// Record a failed call on this thread and return @p status.
int fail(int status, const char* message) noexcept;
/// Record a successful call (status MOFKA_PY_OK or MOFKA_PY_END) and return it.
int succeed(int status) noexcept;
/// The C status of a C++ error code.
int statusOf(ErrorCode code) noexcept;
/// Inside a catch: record the exception in flight and return its status.
int failCurrent() noexcept;
/// Throw InvalidArgument naming @p what when @p p is NULL.
void need(const void* p, const char* what);
/// Throw InvalidArgument when a structure's struct_size is not the one this library knows.
void checkSize(size_t given, size_t expected, const char* type);
/// A new fabric handle for @p fabric.
mofka_py_fabric_t newFabricHandle(Fabric fabric);

} // namespace mofka_py::capi

/// The body of every C entry point: run it, record success, or record the exception in flight.
#define MOFKA_PY_GUARD(...)                                                                                            \
    try {                                                                                                              \
        __VA_ARGS__;                                                                                                   \
        return succeed(MOFKA_PY_OK);                                                                                   \
    } catch (...) {                                                                                                    \
        return failCurrent();                                                                                          \
    }
