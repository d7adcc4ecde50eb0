"""The bridge's librdkafka log filter: one line per kind of problem, not one per retry."""
from __future__ import annotations

import logging

import pytest

kafka = pytest.importorskip("mofka_py.bridge.kafka")

REFUSED = ("[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: "
           "Connection refused (after {} in state CONNECT{})")


def test_repeats_differing_in_timing_or_librdkafkas_own_count_are_one_message():
    out = []
    hooks = kafka.KafkaHooks("cloud", kafka.RepeatLimiter(30, sink=lambda level, text: out.append((level, text)),
                                                          clock=lambda: 0.0))
    hooks.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", REFUSED.format("0ms", ""))
    hooks.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", REFUSED.format("12ms", ""))
    hooks.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1",
              REFUSED.format("0ms", ", 1 identical error(s) suppressed"))
    # The same broker under its node id once librdkafka knows it (CI saw both within one outage).
    hooks.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1",
              REFUSED.format("0ms", "").replace("127.0.0.1:9/bootstrap: Connect", "127.0.0.1:9/111: Connect"))
    hooks.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1",
              "127.0.0.1:9/1: Disconnected: connection closed by peer (after 6444ms in state UP)")
    assert [text for _, text in out] == [
        "Kafka endpoint 'cloud': " + REFUSED.format("0ms", "")[len("[thrd:127.0.0.1:9/bootstrap]: "):],
        "Kafka endpoint 'cloud': 127.0.0.1:9/1: Disconnected: connection closed by peer (after 6444ms in state UP)"]
    assert all(level == logging.WARNING for level, _ in out)   # librdkafka retries these: warnings
