// Python values -> core options and back, shared by several classes.
#pragma once

#include "mofka_py/Broker.hpp"
#include "mofka_py/Types.hpp"

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace mofka_py::bindings {

namespace py = pybind11;

/// A timeout in seconds (None: wait forever) as milliseconds (-1: forever).
int64_t toMs(const py::object& timeout);

/// The broker options that Fabric, Server and MpiFabric take as keyword arguments.
BrokerOptions brokerOptions(const std::string& sync, int64_t syncIntervalMs, uint64_t segmentBytes,
                            uint64_t retentionBytes, int64_t retentionMs, uint64_t maxEventBytes, bool repair);

/// A mofka_py.EventId.
py::object eventId(uint32_t partition, uint64_t offset);

} // namespace mofka_py::bindings
