#include "convert.hpp"

#include "mofka_py/Error.hpp"

namespace mofka_py::bindings {

int64_t toMs(const py::object& timeout) {
    if (timeout.is_none()) return -1;
    double s = timeout.cast<double>();
    if (s < 0) throw Error(ErrorCode::InvalidArgument, "timeout must be >= 0 seconds or None");
    return int64_t(s * 1000.0 + 0.5);
}

BrokerOptions brokerOptions(const std::string& sync, int64_t syncIntervalMs, uint64_t segmentBytes,
                            uint64_t retentionBytes, int64_t retentionMs, uint64_t maxEventBytes, bool repair) {
    BrokerOptions o;
    o.defaults.sync = parseSyncPolicy(sync);
    o.defaults.syncIntervalMs = syncIntervalMs;
    o.defaults.segmentBytes = segmentBytes;
    o.defaults.retentionBytes = retentionBytes;
    o.defaults.retentionMs = retentionMs;
    o.defaults.maxEventBytes = maxEventBytes;
    o.repair = repair;
    return o;
}

py::object eventId(uint32_t partition, uint64_t offset) {
    static py::object* cls = new py::object(py::module_::import("mofka_py._types").attr("EventId"));
    return (*cls)(partition, offset);
}

} // namespace mofka_py::bindings
