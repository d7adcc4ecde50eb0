// Shared by the C API's translation units (CApi.cpp, CApiMpi.cpp, CApiNoMpi.cpp).
#pragma once
#include "capi/Handles.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"
#include "mofka_py/mofka_py.h"

#include <memory>
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

/// The object behind a live handle @p h of @p kind (InvalidArgument naming @p what otherwise).
template <class T, class H>
T& objectOf(H h, Kind kind, const char* what) {
    return *static_cast<T*>(HandleTable::instance().get(reinterpret_cast<uint64_t>(h), kind, what));
}

/// Give @p obj (owned from now on) a handle of @p kind, written to @p out; @p obj is deleted if that fails.
template <class T, class H>
void publish(Kind kind, T* obj, H* out) {
    std::unique_ptr<T> owned(obj);
    *out = reinterpret_cast<H>(HandleTable::instance().add(kind, obj));
    owned.release();
}

/// Unregister a live handle @p h of @p kind; its object, owned by the caller (InvalidArgument otherwise).
template <class T, class H>
std::unique_ptr<T> take(H h, Kind kind, const char* what) {
    return std::unique_ptr<T>(
        static_cast<T*>(HandleTable::instance().remove(reinterpret_cast<uint64_t>(h), kind, what)));
}

} // namespace mofka_py::capi

/// The body of every C entry point: run it, record success, or record the exception in flight.
#define MOFKA_PY_GUARD(...)                                                                                            \
    try {                                                                                                              \
        __VA_ARGS__;                                                                                                   \
        return succeed(MOFKA_PY_OK);                                                                                   \
    } catch (...) {                                                                                                    \
        return failCurrent();                                                                                          \
    }
