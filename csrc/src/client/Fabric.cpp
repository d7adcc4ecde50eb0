#include "mofka_py/Fabric.hpp"

#include "mofka_py/Error.hpp"

namespace mofka_py {

FabricUrl parseFabricUrl(const std::string& url) {
    auto bad = [&](const std::string& why) -> Error {
        return Error(ErrorCode::InvalidArgument,
                     "invalid fabric URL '" + url + "': " + why +
                         ". Use memory://, file:///absolute/path or file://relative/path");
    };
    auto sep = url.find("://");
    if (sep == std::string::npos) throw bad("it has no scheme");
    FabricUrl u{url.substr(0, sep), url.substr(sep + 3)};
    if (u.scheme == "memory") return u;
    if (u.scheme == "file") {
        if (u.path.empty()) throw bad("file:// needs a directory");
        if (u.path.rfind("localhost/", 0) == 0) u.path = u.path.substr(9);
        return u;
    }
    if (u.scheme == "tcp" || u.scheme == "mpi")
        throw Error(ErrorCode::InvalidArgument,
                    "'" + url + "': the " + u.scheme + ":// transport is not available in this build of mofka-py");
    throw bad("unknown scheme '" + u.scheme + "'");
}

Fabric Fabric::connect(const std::string& url, const BrokerOptions& options) {
    FabricUrl u = parseFabricUrl(url);
    BrokerOptions o = options;
    o.directory = u.scheme == "file" ? u.path : "";
    return Fabric(makeInprocClient(std::make_shared<Broker>(o), url));
}

} // namespace mofka_py
