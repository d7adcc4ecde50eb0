#include "convert.hpp"
#include "bindings.hpp" // the STL casters (partitions), as in every part

#include "mofka_py/Error.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <functional>
#include <vector>

namespace mofka_py::bindings {

int64_t toMs(const py::object& timeout) {
    if (timeout.is_none()) return -1;
    double s = timeout.cast<double>();
    if (s < 0) throw Error(ErrorCode::InvalidArgument, "timeout must be >= 0 seconds or None");
    return int64_t(s * 1000.0 + 0.5);
}

namespace {

// ---- one table of fields per scope: a setting's name, how it is set from Python, how it reads back ----

template <class T>
struct Field {
    std::string name;
    std::function<void(T&, const std::string&, py::handle)> set; // (options, setting name, value)
    std::function<py::object(const T&)> get;
};

template <class T>
using Fields = std::vector<Field<T>>;

/// A Python value as a C++ one; a value of another type is InvalidArgument naming the setting.
template <class V>
V as(const std::string& name, py::handle v) {
    try {
        return v.cast<V>();
    } catch (const py::cast_error&) {
        throw Error(ErrorCode::InvalidArgument,
                    name + ": " + py::repr(v).cast<std::string>() + " does not fit the C++ option's type");
    }
}

/// A string setting whose None means empty (group, member_id, token).
std::string optionalString(const std::string& name, py::handle v) {
    return v.is_none() ? std::string() : as<std::string>(name, v);
}

/// A field set and read as it is.
template <class T, class V>
Field<T> plain(const char* name, V T::* member) {
    return {name, [member](T& o, const std::string& k, py::handle v) { o.*member = as<V>(k, v); },
            [member](const T& o) { return py::object(py::cast(o.*member)); }};
}

/// The fields of a struct held by another one (e.g. FabricOptions::defaults), those named in
/// `only` (all when empty).
template <class Outer, class Inner>
Fields<Outer> lift(const Fields<Inner>& inner, Inner Outer::* member, std::vector<std::string> only = {}) {
    Fields<Outer> out;
    for (const Field<Inner>& f : inner) {
        if (!only.empty() && std::find(only.begin(), only.end(), f.name) == only.end()) continue;
        auto set = f.set;
        auto get = f.get;
        out.push_back({f.name, [set, member](Outer& o, const std::string& k, py::handle v) { set(o.*member, k, v); },
                       [get, member](const Outer& o) { return get(o.*member); }});
    }
    return out;
}

template <class T>
Fields<T> operator+(Fields<T> a, const Fields<T>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

/// The dict of settings into `o`: every name must be a field of the scope.
template <class T>
T fromDict(const char* scope, const Fields<T>& fields, const py::dict& settings, T o = T{}) {
    for (auto kv : settings) {
        if (!py::isinstance<py::str>(kv.first))
            throw Error(ErrorCode::InvalidArgument, std::string(scope) + " setting names are strings, not " +
                                                        py::repr(kv.first).cast<std::string>());
        std::string k = kv.first.cast<std::string>();
        auto it = std::find_if(fields.begin(), fields.end(), [&](const Field<T>& f) { return f.name == k; });
        if (it == fields.end()) {
            std::string known;
            for (const Field<T>& f : fields) known += (known.empty() ? "" : ", ") + f.name;
            throw Error(ErrorCode::InvalidArgument,
                        "unknown " + std::string(scope) + " setting '" + k + "' (the C++ core knows: " + known + ")");
        }
        it->set(o, k, kv.second);
    }
    return o;
}

template <class T>
py::dict toDict(const Fields<T>& fields, const T& o = T{}) {
    py::dict d;
    for (const Field<T>& f : fields) d[py::str(f.name)] = f.get(o);
    return d;
}

// ---- topic ----

/// A topic field: setting it marks it given (setFields), so the fabric's default does not apply.
template <class V>
Field<TopicConfig> topicField(const char* name, V TopicConfig::* member, TopicField bit) {
    return {name,
            [member, bit](TopicConfig& c, const std::string& k, py::handle v) {
                c.*member = as<V>(k, v);
                c.setFields |= bit;
            },
            [member](const TopicConfig& c) { return py::object(py::cast(c.*member)); }};
}

const Fields<TopicConfig>& topicFields() {
    static const Fields<TopicConfig> f{
        {"partitions",
         [](TopicConfig& c, const std::string& k, py::handle v) {
             int64_t n = as<int64_t>(k, v);
             if (n < 1)
                 throw Error(ErrorCode::InvalidArgument,
                             "partitions must be a positive number (got " + std::to_string(n) + ")");
             c.partitions = uint32_t(std::min<int64_t>(n, INT32_MAX));
         },
         [](const TopicConfig& c) { return py::object(py::int_(c.partitions)); }},
        topicField("segment_bytes", &TopicConfig::segmentBytes, kSegmentBytes),
        topicField("retention_bytes", &TopicConfig::retentionBytes, kRetentionBytes),
        topicField("retention_ms", &TopicConfig::retentionMs, kRetentionMs),
        {"sync",
         [](TopicConfig& c, const std::string& k, py::handle v) {
             c.sync = parseSyncPolicy(as<std::string>(k, v));
             c.setFields |= kSync;
         },
         [](const TopicConfig& c) { return py::object(py::str(syncPolicyName(c.sync))); }},
        topicField("sync_interval_ms", &TopicConfig::syncIntervalMs, kSyncIntervalMs),
        topicField("max_event_bytes", &TopicConfig::maxEventBytes, kMaxEventBytes),
        topicField("replication", &TopicConfig::replication, kReplication),
        topicField("min_insync", &TopicConfig::minInsync, kMinInsync),
    };
    return f;
}

/// The topic settings a fabric takes as defaults for its topics (all but the partition count).
const std::vector<std::string> kTopicDefaults{"segment_bytes", "retention_bytes",  "retention_ms",
                                              "sync",          "sync_interval_ms", "max_event_bytes"};

// ---- fabric ----

const Fields<FabricOptions>& fabricFields() {
    static const Fields<FabricOptions> f =
        Fields<FabricOptions>{
            plain("repair", &FabricOptions::repair),
            {"token", [](FabricOptions& o, const std::string& k, py::handle v) { o.token = optionalString(k, v); },
             [](const FabricOptions& o) { return py::object(py::str(o.token)); }},
            plain("request_timeout_ms", &FabricOptions::requestTimeoutMs),
            plain("reconnect_timeout_ms", &FabricOptions::reconnectTimeoutMs),
        } +
        lift(topicFields(), &FabricOptions::defaults, kTopicDefaults);
    return f;
}

// ---- producer ----

const Fields<ProducerOptions>& producerFields() {
    static const Fields<ProducerOptions> f{
        plain("batch_size", &ProducerOptions::batchSize),
        plain("batch_bytes", &ProducerOptions::batchBytes),
        plain("linger_ms", &ProducerOptions::lingerMs),
        plain("max_pending_bytes", &ProducerOptions::maxPendingBytes),
        {"selector",
         [](ProducerOptions& o, const std::string& k, py::handle v) {
             std::string s = as<std::string>(k, v);
             if (s == "round_robin")
                 o.selector = PartitionSelector::RoundRobin;
             else if (s == "key_hash")
                 o.selector = PartitionSelector::KeyHash;
             else
                 throw Error(ErrorCode::InvalidArgument, "selector must be 'key_hash' or 'round_robin'");
         },
         [](const ProducerOptions& o) {
             return py::object(py::str(o.selector == PartitionSelector::RoundRobin ? "round_robin" : "key_hash"));
         }},
    };
    return f;
}

// ---- consumer ----

void setStart(ConsumerOptions& o, py::handle start) {
    if (start.is_none()) {
        o.start = StartPosition::Committed;
    } else if (py::isinstance<py::str>(start)) {
        std::string s = start.cast<std::string>();
        if (s == "earliest")
            o.start = StartPosition::Earliest;
        else if (s == "latest")
            o.start = StartPosition::Latest;
        else if (s == "committed")
            o.start = StartPosition::Committed;
        else
            throw Error(ErrorCode::InvalidArgument,
                        "start must be 'earliest', 'latest', 'committed' or an offset (got '" + s + "')");
    } else if (py::isinstance<py::int_>(start) && !py::isinstance<py::bool_>(start)) {
        int64_t off = as<int64_t>("start", start);
        if (off < 0) throw Error(ErrorCode::InvalidArgument, "start offset must be >= 0");
        o.start = StartPosition::Offset;
        o.startOffset = uint64_t(off);
    } else {
        throw Error(ErrorCode::InvalidArgument, "start must be 'earliest', 'latest', 'committed' or an offset");
    }
}

py::object getStart(const ConsumerOptions& o) {
    switch (o.start) {
    case StartPosition::Earliest: return py::str("earliest");
    case StartPosition::Latest: return py::str("latest");
    case StartPosition::Committed: return py::str("committed");
    case StartPosition::Offset: break;
    }
    return py::int_(o.startOffset);
}

void setData(ConsumerOptions& o, py::handle data) {
    if (py::isinstance<py::bool_>(data)) {
        o.data = data.cast<bool>() ? DataMode::Full : DataMode::None;
    } else if (py::isinstance<py::tuple>(data) && py::len(data) == 2) {
        auto t = py::reinterpret_borrow<py::tuple>(data);
        int64_t off = as<int64_t>("data offset", t[0]), len = as<int64_t>("data size", t[1]);
        if (off < 0 || len < 0)
            throw Error(ErrorCode::InvalidArgument, "data byte range must be (offset >= 0, size >= 0)");
        o.data = DataMode::Range;
        o.rangeOffset = uint64_t(off);
        o.rangeSize = uint64_t(len);
    } else {
        throw Error(ErrorCode::InvalidArgument, "data must be True, False, (offset, size) or a callable");
    }
}

py::object getData(const ConsumerOptions& o) {
    if (o.data == DataMode::Range) return py::make_tuple(o.rangeOffset, o.rangeSize);
    return py::bool_(o.data == DataMode::Full);
}

const Fields<ConsumerOptions>& consumerFields() {
    static const Fields<ConsumerOptions> f{
        {"group", [](ConsumerOptions& o, const std::string& k, py::handle v) { o.group = optionalString(k, v); },
         [](const ConsumerOptions& o) { return py::object(py::str(o.group)); }},
        {"start", [](ConsumerOptions& o, const std::string&, py::handle v) { setStart(o, v); }, getStart},
        {"data", [](ConsumerOptions& o, const std::string&, py::handle v) { setData(o, v); }, getData},
        {"partitions",
         [](ConsumerOptions& o, const std::string& k, py::handle v) {
             o.partitions = v.is_none() ? std::vector<uint32_t>() : as<std::vector<uint32_t>>(k, v);
         },
         [](const ConsumerOptions& o) { return py::object(py::cast(o.partitions)); }},
        plain("prefetch_bytes", &ConsumerOptions::prefetchBytes),
        plain("auto_commit_ms", &ConsumerOptions::autoCommitMs),
        {"member_id", [](ConsumerOptions& o, const std::string& k, py::handle v) { o.memberId = optionalString(k, v); },
         [](const ConsumerOptions& o) { return py::object(py::str(o.memberId)); }},
        {"on_gap",
         [](ConsumerOptions& o, const std::string& k, py::handle v) {
             std::string s = as<std::string>(k, v);
             if (s == "error")
                 o.onGap = GapPolicy::Error;
             else if (s == "earliest")
                 o.onGap = GapPolicy::Earliest;
             else
                 throw Error(ErrorCode::InvalidArgument, "on_gap must be 'error' or 'earliest' (got '" + s + "')");
         },
         [](const ConsumerOptions& o) {
             return py::object(py::str(o.onGap == GapPolicy::Earliest ? "earliest" : "error"));
         }},
        plain("session_timeout_ms", &ConsumerOptions::sessionTimeoutMs),
        plain("rebalance_timeout_ms", &ConsumerOptions::rebalanceTimeoutMs),
    };
    return f;
}

// ---- service ----

const Fields<ServerOptions>& serverFields() {
    static const Fields<TcpServerOptions> tcp{
        plain("host", &TcpServerOptions::host),
        plain("port", &TcpServerOptions::port),
        {"token", [](TcpServerOptions& o, const std::string& k, py::handle v) { o.token = optionalString(k, v); },
         [](const TcpServerOptions& o) { return py::object(py::str(o.token)); }},
        plain("max_frame_bytes", &TcpServerOptions::maxFrameBytes),
        plain("idle_timeout_ms", &TcpServerOptions::idleTimeoutMs),
        plain("max_connections", &TcpServerOptions::maxConnections),
        plain("login_timeout_ms", &TcpServerOptions::loginTimeoutMs),
        plain("max_pending_logins", &TcpServerOptions::maxPendingLogins),
        plain("max_pending_logins_per_address", &TcpServerOptions::maxPendingLoginsPerAddress),
    };
    static const Fields<BrokerOptions> broker =
        Fields<BrokerOptions>{
            plain("repair", &BrokerOptions::repair),
            {"rejoin_grace_ms",
             [](BrokerOptions& o, const std::string& k, py::handle v) {
                 o.rejoinGraceMs = as<int64_t>(k, v);
                 if (o.rejoinGraceMs < 0) throw Error(ErrorCode::InvalidArgument, "rejoin_grace_ms must be >= 0");
             },
             [](const BrokerOptions& o) { return py::object(py::int_(o.rejoinGraceMs)); }},
        } +
        lift(topicFields(), &BrokerOptions::defaults, {"sync", "sync_interval_ms"});
    static const Fields<ServerOptions> f = lift(tcp, &ServerOptions::tcp) + lift(broker, &ServerOptions::broker);
    return f;
}

// ---- MPI fabric ----

#ifdef MOFKA_PY_HAVE_MPI
const Fields<MpiFabricOptions>& mpiFields() {
    static const Fields<MpiFabricOptions> f =
        Fields<MpiFabricOptions>{
            plain("colocated", &MpiFabricOptions::colocated),
            plain("repair", &MpiFabricOptions::repair),
            plain("request_timeout_ms", &MpiFabricOptions::requestTimeoutMs),
            // the setting is in milliseconds, the field in microseconds (rounded half to even, as Python's round)
            {"spindown_ms",
             [](MpiFabricOptions& o, const std::string& k, py::handle v) {
                 o.spindownUs = int64_t(std::nearbyint(as<double>(k, v) * 1000.0));
             },
             [](const MpiFabricOptions& o) { return py::object(py::float_(double(o.spindownUs) / 1000.0)); }},
        } +
        lift(topicFields(), &MpiFabricOptions::defaults, kTopicDefaults);
    return f;
}
#endif

} // namespace

TopicConfig topicConfig(const py::dict& settings) {
    TopicConfig c;
    c.setFields = 0; // settings not given come from the fabric's defaults
    return fromDict("topic", topicFields(), settings, c);
}

FabricOptions fabricOptions(const py::dict& settings) { return fromDict("fabric", fabricFields(), settings); }

ProducerOptions producerOptions(const py::dict& settings) { return fromDict("producer", producerFields(), settings); }

ConsumerOptions consumerOptions(const py::dict& settings) { return fromDict("consumer", consumerFields(), settings); }

ServerOptions serverOptions(const py::dict& settings) { return fromDict("service", serverFields(), settings); }

#ifdef MOFKA_PY_HAVE_MPI
MpiFabricOptions mpiFabricOptions(const py::dict& settings) { return fromDict("mpi", mpiFields(), settings); }
#endif

py::dict topicSettings(const TopicConfig& config) {
    py::dict d;
    for (const Field<TopicConfig>& f : topicFields())
        if (std::string(f.name) != "partitions") d[py::str(f.name)] = f.get(config);
    return d;
}

py::dict defaults(const std::string& scope) {
    if (scope == "topic") return toDict(topicFields());
    if (scope == "fabric") return toDict(fabricFields());
    if (scope == "producer") return toDict(producerFields());
    if (scope == "consumer") return toDict(consumerFields());
    if (scope == "service") return toDict(serverFields());
#ifdef MOFKA_PY_HAVE_MPI
    if (scope == "mpi") return toDict(mpiFields());
#endif
    throw Error(ErrorCode::InvalidArgument, "no C++ options for scope '" + scope +
                                                "' (scopes with options: topic, fabric, producer, consumer, service"
#ifdef MOFKA_PY_HAVE_MPI
                                                ", mpi"
#endif
                                                ")");
}

py::object eventId(uint32_t partition, uint64_t offset) {
    static py::object* cls = new py::object(py::module_::import("mofka_py._types").attr("EventId"));
    return (*cls)(partition, offset);
}

} // namespace mofka_py::bindings
