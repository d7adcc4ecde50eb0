// Waiting on the core from Python: the GIL is released and Ctrl-C still works.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>

namespace mofka_py::bindings {

namespace py = pybind11;

/// Run @p f with the GIL released, in slices, so Ctrl-C interrupts long waits;
/// stop early when @p done() says waiting is pointless.
template <typename F, typename D>
auto waitInterruptibly(int64_t timeoutMs, F&& f, D&& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs < 0 ? 0 : timeoutMs);
    for (;;) {
        int64_t slice = 100;
        if (timeoutMs >= 0) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
                    .count();
            slice = std::max<int64_t>(0, std::min<int64_t>(slice, left));
        }
        decltype(f(slice)) r;
        bool stop;
        {
            py::gil_scoped_release nogil;
            r = f(slice);
            stop = !r && done();
        }
        if (r || stop || slice == 0 || (timeoutMs >= 0 && std::chrono::steady_clock::now() >= deadline)) return r;
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
}
/// Same, without an early stop.
template <typename F>
auto waitInterruptibly(int64_t timeoutMs, F&& f) {
    return waitInterruptibly(timeoutMs, std::forward<F>(f), [] { return false; });
}

} // namespace mofka_py::bindings
