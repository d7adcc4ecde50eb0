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
        // tcp://host:port, or a cluster's nodes: tcp://host1:port1,host2:port2,...
        std::string list = u.path;
        while (!list.empty() && list.back() == '/') list.pop_back();
        size_t start = 0;
        for (;;) {
            size_t comma = list.find(',', start);
            std::string one = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            auto colon = one.rfind(':');
            std::string port = colon == std::string::npos ? "" : one.substr(colon + 1);
            if (colon == std::string::npos || colon == 0 || port.empty() || port.size() > 5 ||
                port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) == 0 ||
                std::stoul(port) > 65535)
                throw Error(ErrorCode::InvalidArgument,
                            "invalid fabric URL '" + url +
                                "': use tcp://host:port, e.g. tcp://127.0.0.1:7400, or a cluster's nodes "
                                "tcp://host1:port1,host2:port2");
            u.nodes.emplace_back(one.substr(0, colon), uint16_t(std::stoul(port)));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
        u.host = u.nodes.front().first;
        u.port = u.nodes.front().second;
        if (u.nodes.size() == 1) u.nodes.clear();
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
        if (!u.nodes.empty()) return makeClusterClient(u.nodes, t, url);
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
