// The buffer protocol in one place: Python buffers lent to the core without a
// copy, core-owned bytes shown to Python as read-only memoryviews.
#pragma once

#include "mofka_py/RecordBatch.hpp"

#include <pybind11/pybind11.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace mofka_py::bindings {

namespace py = pybind11;

/// Python buffers whose last C++ reference went away on a core thread; they
/// are released on the next call from Python (never taking the GIL in C++).
class Graveyard {
  public:
    void bury(Py_buffer* b);
    void drain(); // GIL held

  private:
    std::mutex m_mutex;
    std::vector<Py_buffer*> m_dead;
    std::atomic<bool> m_nonEmpty{false};
};
Graveyard& graveyard();

/// Read-only bytes owned by the core (a mapped segment); exposes the buffer protocol.
struct Bytes {
    Owner owner;
    const uint8_t* data;
    size_t size;
};
/// A memoryview of @p p that keeps @p owner alive, without a copy.
py::memoryview viewOf(Owner owner, Piece p);

/// Get a contiguous buffer, with a clear error if the object is not one.
Py_buffer* getBuffer(PyObject* obj, const char* what);

/// The data buffers of one push. Buffers smaller than BatchBuilder::kInlineThreshold
/// are copied by the push and released when this goes out of scope; larger ones are
/// referenced by the batch until it is appended, then released through the graveyard.
class PushData {
  public:
    PushData() = default;
    PushData(const PushData&) = delete;
    PushData& operator=(const PushData&) = delete;
    ~PushData();

    /// Add @p data: None, one buffer, or a list or tuple of buffers.
    void add(py::handle data);

    const DataRef* refs() const { return m_refs.data(); }
    size_t count() const { return m_refs.size(); }
    size_t bytes() const { return m_bytes; }

  private:
    void addOne(PyObject* obj);

    std::vector<DataRef> m_refs;
    std::vector<Py_buffer*> m_local;
    size_t m_bytes = 0;
};

} // namespace mofka_py::bindings
