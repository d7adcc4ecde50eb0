// mofka_py._core.FutureUint: the future of a push through the Diaspora Stream API
// layer (python/mofka_py/diaspora). The core push makes it directly, so the layer
// adds no Python object per event; its wait() speaks Diaspora (milliseconds, None
// when the time runs out, errors raised as the layer's DiasporaError classes).
#include "bindings.hpp"
#include "buffers.hpp"
#include "wait.hpp"

#include "mofka_py/Error.hpp"
#include "mofka_py/Producer.hpp"

#include <cmath>
#include <string>

namespace mofka_py::bindings {

namespace {

/// The outcome of one push, as Diaspora's FutureUint.
struct DiasporaFuture {
    Future future;
};

/// What the Python layer hands over when it is imported (FutureUint._configure).
struct Hooks {
    py::object translate; ///< mofka_py.diaspora.errors.translate: a mofka-py error -> its DiasporaError class
    py::object yes, no; ///< the two values of `completed` (the layer's Flag: a bool that can also be called)
};

Hooks& hooks() {
    static auto* h = new Hooks(); // never destroyed: Python objects must not be released after the interpreter
    return *h;
}

/// Raise the mofka-py exception @p exc as the layer's DiasporaError class for it.
[[noreturn]] void raiseTranslated(const py::object& exc) {
    py::object out = hooks().translate ? hooks().translate(exc) : exc;
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(out.ptr())), out.ptr());
    throw py::error_already_set();
}

[[noreturn]] void raiseError(ErrorCode code, const std::string& message) { raiseTranslated(errorClass(code)(message)); }

/// A Diaspora timeout (milliseconds; negative: no limit) in milliseconds for the core (-1: no limit).
int64_t timeoutMs(py::handle timeout) {
    PyObject* o = timeout.ptr();
    if (PyLong_Check(o) && !PyBool_Check(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow != 0) return overflow > 0 ? int64_t(1) << 62 : -1;
        return v < 0 ? -1 : int64_t(v);
    }
    if (PyFloat_Check(o) && !std::isnan(PyFloat_AS_DOUBLE(o))) {
        double v = PyFloat_AS_DOUBLE(o);
        if (v < 0) return -1;
        return v >= 4.6e18 ? int64_t(1) << 62 : int64_t(v + 0.5);
    }
    raiseError(ErrorCode::InvalidArgument, "timeout_ms must be a number of milliseconds, negative for no limit (got " +
                                               py::repr(timeout).cast<std::string>() + ")");
}

} // namespace

void bindDiaspora(py::module_& m) {
    py::class_<DiasporaFuture>(m, "FutureUint",
                               "The future of a pushed event (Diaspora Stream API): wait() gives its event id, "
                               "its offset in its partition.")
        .def(
            "wait",
            [](const DiasporaFuture& d, py::handle timeout) -> py::object {
                graveyard().drain();
                int64_t ms = timeoutMs(timeout);
                if (!waitInterruptibly(ms, [&](int64_t slice) { return d.future.waitFor(slice); })) return py::none();
                try {
                    EventId id;
                    {
                        py::gil_scoped_release nogil;
                        id = d.future.wait(0); // the id, or the push's error
                    }
                    return py::int_(id.offset);
                } catch (const Error& e) {
                    raiseError(e.code(), e.what());
                }
            },
            py::arg("timeout_ms") = -1,
            "The event id once the event is stored, or None if timeout_ms passed first (negative: wait as long as "
            "it takes). Raises DiasporaError if the push failed.")
        .def_property_readonly(
            "completed",
            [](const DiasporaFuture& d) -> py::object {
                bool done = d.future.done();
                const py::object& flag = done ? hooks().yes : hooks().no;
                return flag ? flag : py::bool_(done);
            },
            "Whether the event is stored (or failed); future.completed and future.completed() both work.")
        .def_static(
            "_configure",
            [](py::object translate, py::object yes, py::object no) {
                hooks() = Hooks{std::move(translate), std::move(yes), std::move(no)};
            },
            py::arg("translate"), py::arg("yes"), py::arg("no"),
            "Called once by mofka_py.diaspora: its error translator and the two values of completed.");

    auto producer = py::reinterpret_borrow<py::class_<Producer, std::shared_ptr<Producer>>>(m.attr("Producer"));
    producer.def(
        "push_diaspora",
        [](Producer& p, py::handle meta, py::handle data, int64_t partition) {
            return DiasporaFuture{pushEvent(p, meta, data, partition, py::none(), true)};
        },
        py::arg("meta"), py::arg("data") = py::none(), py::arg("partition") = -1,
        "push(meta, data, partition) returning the Diaspora layer's FutureUint (blocks while memory is full).");
}

} // namespace mofka_py::bindings
