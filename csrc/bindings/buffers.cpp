#include "buffers.hpp"

#include "bindings.hpp"
#include "mofka_py/Error.hpp"

#include <string>

namespace mofka_py::bindings {

void Graveyard::bury(Py_buffer* b) {
    std::lock_guard<std::mutex> l(m_mutex);
    m_dead.push_back(b);
    m_nonEmpty = true;
}

void Graveyard::drain() {
    if (!m_nonEmpty) return;
    std::vector<Py_buffer*> dead;
    {
        std::lock_guard<std::mutex> l(m_mutex);
        dead.swap(m_dead);
        m_nonEmpty = false;
    }
    for (Py_buffer* b : dead) {
        PyBuffer_Release(b);
        delete b;
    }
}

Graveyard& graveyard() {
    static Graveyard* g = new Graveyard(); // never destroyed: may outlive the interpreter
    return *g;
}

py::memoryview viewOf(Owner owner, Piece p) {
    py::object b = py::cast(Bytes{std::move(owner), p.data, p.size});
    return py::memoryview(b);
}

Py_buffer* getBuffer(PyObject* obj, const char* what) {
    auto* b = new Py_buffer;
    if (PyObject_GetBuffer(obj, b, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT) != 0) {
        delete b;
        PyErr_Clear();
        throw Error(ErrorCode::InvalidArgument,
                    std::string(what) +
                        " must be a contiguous buffer (bytes, bytearray, memoryview or numpy array), not " +
                        std::string(Py_TYPE(obj)->tp_name) + "; use numpy.ascontiguousarray() for strided arrays");
    }
    return b;
}

PushData::~PushData() {
    for (Py_buffer* b : m_local) {
        PyBuffer_Release(b);
        delete b;
    }
}

void PushData::add(py::handle data) {
    if (data.is_none()) return;
    if (PyList_Check(data.ptr()) || PyTuple_Check(data.ptr())) {
        for (auto item : data) addOne(item.ptr());
    } else {
        addOne(data.ptr());
    }
}

void PushData::addOne(PyObject* obj) {
    Py_buffer* b = getBuffer(obj, "data");
    if (size_t(b->len) < BatchBuilder::kInlineThreshold) {
        m_local.push_back(b);
        m_refs.push_back({b->buf, size_t(b->len), nullptr});
    } else {
        m_refs.push_back({b->buf, size_t(b->len), Owner(b, [](const void* x) {
                              graveyard().bury(static_cast<Py_buffer*>(const_cast<void*>(x)));
                          })});
    }
    m_bytes += size_t(b->len);
}

void bindBytes(py::module_& m) {
    py::class_<Bytes>(m, "Bytes", py::buffer_protocol())
        .def_buffer([](Bytes& b) {
            return py::buffer_info(const_cast<uint8_t*>(b.data), 1, "B", 1, {py::ssize_t(b.size)}, {py::ssize_t(1)},
                                   true);
        })
        .def("__len__", [](const Bytes& b) { return b.size; });
}

} // namespace mofka_py::bindings
