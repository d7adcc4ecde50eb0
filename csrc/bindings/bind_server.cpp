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
        .def(py::init([](const std::string& url, const std::string& host, uint16_t port, const std::string& token,
                         const std::string& sync, int64_t syncIntervalMs, uint64_t maxFrameBytes, int64_t idleTimeoutMs,
                         uint32_t maxConnections, bool repair, int64_t rejoinGraceMs, int64_t loginTimeoutMs,
                         uint32_t maxPendingLogins, uint32_t maxPendingLoginsPerAddress) {
                 FabricUrl u = parseFabricUrl(url);
                 if (u.scheme == "tcp")
                     throw Error(ErrorCode::InvalidArgument, "serve a memory:// or file:// fabric, not " + url);
                 BrokerOptions o = brokerOptions(sync, syncIntervalMs, 256ull << 20, 0, 0, 64ull << 20, repair);
                 o.directory = u.scheme == "file" ? u.path : "";
                 if (rejoinGraceMs < 0) throw Error(ErrorCode::InvalidArgument, "rejoin_grace_ms must be >= 0");
                 o.rejoinGraceMs = rejoinGraceMs;
                 TcpServerOptions so;
                 so.host = host;
                 so.port = port;
                 so.token = token;
                 so.maxFrameBytes = maxFrameBytes;
                 so.idleTimeoutMs = idleTimeoutMs;
                 so.maxConnections = maxConnections;
                 so.loginTimeoutMs = loginTimeoutMs;
                 so.maxPendingLogins = maxPendingLogins;
                 so.maxPendingLoginsPerAddress = maxPendingLoginsPerAddress;
                 py::gil_scoped_release nogil;
                 auto s = std::make_unique<PyServer>();
                 s->broker = std::make_shared<Broker>(o);
                 try {
                     s->server = std::make_unique<TcpServer>(s->broker, so);
                 } catch (...) {
                     s->broker->close();
                     throw;
                 }
                 return s;
             }),
             py::arg("url"), py::arg("host") = "127.0.0.1", py::arg("port") = 7400, py::arg("token") = "",
             py::arg("sync") = "none", py::arg("sync_interval_ms") = 1000, py::arg("max_frame_bytes") = 1ull << 30,
             py::arg("idle_timeout_ms") = 600000, py::arg("max_connections") = 1024, py::arg("repair") = false,
             py::arg("rejoin_grace_ms") = 3000, py::arg("login_timeout_ms") = 5000, py::arg("max_pending_logins") = 256,
             py::arg("max_pending_logins_per_address") = 64)
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
