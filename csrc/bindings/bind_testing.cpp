// Internals exposed to the tests: the TCP frame decoder (for fuzzing) and SHA-256 / HMAC.
#include "bindings.hpp"

#include "transport/tcp/Frame.hpp"
#include "transport/tcp/Sha256.hpp"

#include <string>

namespace mofka_py::bindings {

void bindTesting(py::module_& m) {
    m.def(
        "decode_frame",
        [](py::bytes data, uint64_t maxBody) {
            std::string d = data;
            return decodeFrameForTest(reinterpret_cast<const uint8_t*>(d.data()), d.size(), maxBody);
        },
        py::arg("data"), py::arg("max_body") = 1ull << 20,
        "Decode a request frame as the server does (for fuzzing); raises CorruptionError if malformed.");
    m.def("sha256", [](py::bytes data) {
        std::string d = data;
        Digest h = sha256(d.data(), d.size());
        return py::bytes(reinterpret_cast<const char*>(h.data()), h.size());
    });
    m.def("hmac_sha256", [](py::bytes key, py::bytes data) {
        std::string k = key, d = data;
        Digest h = hmacSha256(k, d.data(), d.size());
        return py::bytes(reinterpret_cast<const char*>(h.data()), h.size());
    });
}

} // namespace mofka_py::bindings
