// pybind11 module mofka_py._core: a thin layer over the C++ core.
// Every wait releases the GIL (wait.hpp); Python objects referenced by the core
// are released on Python threads only (Graveyard in buffers.hpp).
#include "bindings.hpp"

using namespace mofka_py::bindings;

PYBIND11_MODULE(_core, m) {
    m.doc() = "mofka-py native core (C++): partition logs, broker, producer, consumer";
#ifdef MOFKA_PY_VERSION
    m.attr("__version__") = MOFKA_PY_VERSION;
#endif
    bindErrors(m);
    bindFunctions(m);
    bindBytes(m);
    // Classes before the classes whose signatures name them (docstrings show Python names).
    bindFabric(m);
    bindServer(m);
    bindTesting(m);
    bindProducer(m);
    bindConsumer(m);
    bindDiaspora(m);
#ifdef MOFKA_PY_HAVE_MPI
    bindMpiFabric(m);
#endif
}
