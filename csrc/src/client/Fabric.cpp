#include "mofka_py/Fabric.hpp"

#include "mofka_py/Error.hpp"

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
            port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) == 0 || std::stoul(port) > 65535)
            throw Error(ErrorCode::InvalidArgument, "invalid fabric URL '" + url + "': use tcp://host:port, e.g. tcp://127.0.0.1:7400");
        u.host = u.path.substr(0, colon);
        u.port = uint16_t(std::stoul(port));
        u.path.clear();
        return u;
    }
    if (u.scheme == "mpi")
        throw Error(ErrorCode::InvalidArgument,
                    "'" + url + "': the " + u.scheme + ":// transport is not available in this build of mofka-py");
    throw bad("unknown scheme '" + u.scheme + "'");
}

Fabric Fabric::connect(const std::string& url, const BrokerOptions& options, const TcpClientOptions& tcp) {
    FabricUrl u = parseFabricUrl(url);
    if (u.scheme == "tcp") return Fabric(makeTcpClient(u.host, u.port, tcp, url));
    BrokerOptions o = options;
    o.directory = u.scheme == "file" ? u.path : "";
    return Fabric(makeInprocClient(std::make_shared<Broker>(o), url));
}

} // namespace mofka_py
