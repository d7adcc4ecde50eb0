// Python values -> core options and back, shared by several classes.
//
// Settings cross into C++ as ONE dict per scope, keyed by the setting's name in the
// registry (python/mofka_py/_settings.py). One function per scope turns that dict into
// the scope's options struct: a name it does not know is InvalidArgument naming it (a typo
// between Python and C++ is never silently ignored), and fields not given keep the
// struct's C++ default. defaults(scope) is the other direction: the struct's defaults as
// such a dict. Both read the same table of fields per scope (convert.cpp).
#pragma once

#include "mofka_py/Broker.hpp"
#include "mofka_py/Consumer.hpp"
#include "mofka_py/Fabric.hpp"
#include "mofka_py/Producer.hpp"
#include "mofka_py/TcpServer.hpp"
#include "mofka_py/Types.hpp"
#ifdef MOFKA_PY_HAVE_MPI
#include "mofka_py/MpiFabric.hpp"
#endif

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace mofka_py::bindings {

namespace py = pybind11;

/// A timeout in seconds (None: wait forever) as milliseconds (-1: forever).
int64_t toMs(const py::object& timeout);

/// What a served broker takes: the broker's options and the TCP server's.
struct ServerOptions {
    BrokerOptions broker; ///< directory comes from the URL, not from the settings
    TcpServerOptions tcp;
};

/// Scope "topic": the settings given, and only those, marked in setFields (create_topic, alter_topic).
TopicConfig topicConfig(const py::dict& settings);
/// Scope "fabric": connect()'s settings; the topic settings are the fabric's defaults for topics.
FabricOptions fabricOptions(const py::dict& settings);
/// Scope "producer".
ProducerOptions producerOptions(const py::dict& settings);
/// Scope "consumer" (`data` a bool or an (offset, size) range; None for group, member_id, start,
/// partitions means the C++ default).
ConsumerOptions consumerOptions(const py::dict& settings);
/// Scope "service": the served broker's and TCP server's settings (host and port from `listen`).
ServerOptions serverOptions(const py::dict& settings);
#ifdef MOFKA_PY_HAVE_MPI
/// Scope "mpi" (servers and storage are arguments of their own, not settings).
MpiFabricOptions mpiFabricOptions(const py::dict& settings);
#endif

/// A topic's settings (all but the partition count) as a dict keyed by setting names, read
/// through the same table that topicConfig() sets them with (Fabric.describe).
py::dict topicSettings(const TopicConfig& config);

/// The C++ defaults of a scope's options struct as a dict keyed by setting names; the keys are
/// exactly those the scope's conversion takes. InvalidArgument for a scope without a struct.
py::dict defaults(const std::string& scope);

/// A mofka_py.EventId.
py::object eventId(uint32_t partition, uint64_t offset);

} // namespace mofka_py::bindings
