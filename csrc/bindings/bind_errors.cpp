// C++ mofka_py::Error -> the mofka_py.errors class named after its code.
#include "bindings.hpp"

#include "mofka_py/Error.hpp"

namespace mofka_py::bindings {

py::object errorClass(ErrorCode code) { return py::module_::import("mofka_py.errors").attr(errorCodeName(code)); }

void bindErrors(py::module_& m) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const Error& e) {
            PyErr_SetString(errorClass(e.code()).ptr(), e.what());
        }
    });
}

} // namespace mofka_py::bindings
