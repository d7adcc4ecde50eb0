#include "transport/Factory.hpp"

#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "transport/inproc/InprocClient.hpp"
#include "transport/tcp/TcpClient.hpp"

namespace mofka_py {

FabricUrl parseFabricUrl(const std::string& url) {
    auto bad = [&](const std::string& why) -> Error {
        return Error(ErrorCode::InvalidArgument,
                     "invalid fabric URL '" + url + "': " + why +
                         ". Use memory://, file:///absolute/path, file://relative/path or tcp://host:port");
    };
    auto sep = url.find("://");
    if (sep == std::string::npos) throw bad("it has no scheme");
    FabricUrl u;
    u.scheme = url.substr(0, sep);
    u.path = url.substr(sep + 3);
    if (u.scheme == "memory") return u;
    if (u.scheme == "file") {
        if (u.path.empty()) throw bad("file:// needs a directory");
        if (u.path.rfind("localhost/", 0) == 0) u.path = u.path.substr(9);
        return u;
    }
    if (u.scheme == "tcp") {
        auto colon = u.path.rfind(':');
        std::string port = colon == std::string::npos ? "" : u.path.substr(colon + 1);
        while (!port.empty() && port.back() == '/') port.pop_back();
        if (colon == std::string::npos || colon == 0 || port.empty() || port.size() > 5 ||
            port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) == 0 ||
            std::stoul(port) > 65535)
            throw Error(ErrorCode::InvalidArgument,
                        "invalid fabric URL '" + url + "': use tcp://host:port, e.g. tcp://127.0.0.1:7400");
        u.host = u.path.substr(0, colon);
        u.port = uint16_t(std::stoul(port));
        u.path.clear();
        return u;
    }
    if (u.scheme == "mpi")
        throw Error(ErrorCode::InvalidArgument,
                    "'" + url +
                        "': an MPI fabric is opened collectively inside the job "
                        "(mofka_py.mpi.fabric(comm, ...) in Python, MpiFabric in C++), not by URL");
    throw bad("unknown scheme '" + u.scheme + "'");
}

std::shared_ptr<BrokerClient> openFabricClient(const std::string& url, const FabricOptions& options) {
    FabricUrl u = parseFabricUrl(url);
    if (u.scheme == "tcp") {
        TcpClientOptions t;
        t.token = options.token;
        t.connectTimeoutMs = options.connectTimeoutMs;
        t.requestTimeoutMs = options.requestTimeoutMs;
        t.reconnectTimeoutMs = options.reconnectTimeoutMs;
        return makeTcpClient(u.host, u.port, t, url);
    }
    BrokerOptions o = hostedBrokerOptions(options.defaults, options.repair, u.scheme == "file" ? u.path : "");
    return makeInprocClient(std::make_shared<Broker>(o), url);
}

BrokerOptions hostedBrokerOptions(const TopicConfig& defaults, bool repair, const std::string& directory) {
    BrokerOptions o;
    o.defaults = defaults;
    o.defaults.setFields = ~0u;
    o.repair = repair;
    o.directory = directory;
    return o;
}

} // namespace mofka_py
