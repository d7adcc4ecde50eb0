// mofka_py._core.Server: a broker served over TCP (`mofka-py serve`).
#include "bindings.hpp"
#include "convert.hpp"

#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"
#include "mofka_py/TcpServer.hpp"

#include <memory>
#include <string>

namespace mofka_py::bindings {

namespace {

struct PyServer {
    std::shared_ptr<Broker> broker;
    std::unique_ptr<TcpServer> server;
};

} // namespace

void bindServer(py::module_& m) {
    py::class_<PyServer>(m, "Server")
        .def(py::init([](const std::string& url, const py::dict& settings) {
                 FabricUrl u = parseFabricUrl(url);
                 if (u.scheme == "tcp")
                     throw Error(ErrorCode::InvalidArgument, "serve a memory:// or file:// fabric, not " + url);
                 ServerOptions o = serverOptions(settings);
                 o.broker.directory = u.scheme == "file" ? u.path : "";
                 py::gil_scoped_release nogil;
                 auto s = std::make_unique<PyServer>();
                 s->broker = std::make_shared<Broker>(o.broker);
                 try {
                     s->server = std::make_unique<TcpServer>(s->broker, o.tcp);
                 } catch (...) {
                     s->broker->close();
                     throw;
                 }
                 return s;
             }),
             py::arg("url"), py::arg("settings"),
             "Serve a memory:// or file:// fabric; settings: the service's (host and port from listen), by name.")
        .def_property_readonly("port", [](PyServer& s) { return s.server->port(); })
        .def_property_readonly("connections", [](PyServer& s) { return s.server->connections(); })
        .def_property_readonly("pending_logins", [](PyServer& s) { return s.server->pendingLogins(); })
        .def(
            "poll",
            [](PyServer& s, int timeoutMs) {
                py::gil_scoped_release nogil;
                s.server->poll(timeoutMs);
            },
            "Run the event loop for up to timeout_ms.")
        .def(
            "shutdown",
            [](PyServer& s, int drainMs) {
                py::gil_scoped_release nogil;
                s.server->shutdown(drainMs);
                s.broker->close();
            },
            py::arg("drain_ms") = 2000, "Stop serving, send queued replies, sync and close the broker.");
}

} // namespace mofka_py::bindings
