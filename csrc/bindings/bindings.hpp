// The pieces of the pybind11 module mofka_py._core, one function a class (or a
// family of functions); module.cpp calls them in the order types must exist.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h> // in every part alike: type casters must agree across files

#include <cstdint>

namespace mofka_py {
class Future;
class Producer;
enum class ErrorCode : int;
} // namespace mofka_py

namespace mofka_py::bindings {

namespace py = pybind11;

void bindErrors(py::module_& m); // bind_errors.cpp: C++ Error -> mofka_py.errors classes
/// The mofka_py.errors class a C++ Error of @p code is raised as (bind_errors.cpp).
py::object errorClass(ErrorCode code);
void bindFunctions(py::module_& m); // bind_functions.cpp: crc32c, memory reserve, key hash, build_info
void bindBytes(py::module_& m); // buffers.cpp: read-only views of core-owned bytes
void bindFabric(py::module_& m); // bind_fabric.cpp
void bindServer(py::module_& m); // bind_server.cpp: a broker served over TCP
void bindTesting(py::module_& m); // bind_testing.cpp: internals for fuzzing (frame decoder, SHA-256)
void bindProducer(py::module_& m); // bind_producer.cpp: Future, Producer
void bindConsumer(py::module_& m); // bind_consumer.cpp: Event, EventBatch, Consumer
void bindDiaspora(py::module_& m); // bind_diaspora.cpp: the Diaspora Stream API's push future

/// One push from Python (bind_producer.cpp): Producer.push and the Diaspora layer's push share it.
Future pushEvent(Producer& p, py::handle meta, py::handle data, int64_t partition, py::handle key, bool block);
#ifdef MOFKA_PY_HAVE_MPI
void bindMpiFabric(py::module_& m); // bind_fabric_mpi.cpp
#endif

} // namespace mofka_py::bindings
