"""The Diaspora Stream API's documented examples (producer, consumer, a topic with a validator, a
partition selector and a serializer, data selection with a selector and an allocator, a named consumer
restarted after acknowledging part of a topic) against mofka_py.diaspora on file:// and on a real
`mofka-py serve` over tcp://."""
from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

import mofka_py as mp
from mofka_py.diaspora import (
    AdaptiveBatchSize,
    ByteArrayAllocator,
    DataDescriptor,
    Driver,
    Exception,
    FullDataSelector,
    Ordering,
    PartitionSelector,
    Serializer,
    Validator,
)

from service_helpers import Service, free_port

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@pytest.fixture(params=["files", "tcp"])
def backend(request, tmp_path):
    """(backend, options) of a Diaspora driver: the files backend in tmp_path, or a real service."""
    if request.param == "files":
        yield "files", {"root_path": str(tmp_path / "diaspora-data")}
        return
    svc = Service(tmp_path / "svc", free_port()).start()
    try:
        yield "mofka_py", {"url": svc.url}
    finally:
        gc.collect()   # the test's drivers, producers and consumers go while the service is there to hear it
        svc.stop()


def run_script(code: str, *args: str) -> str:
    """Run a Diaspora program in a new process; its stdout (fails the test if it fails)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class EnergyValidator(Validator):
    """The documentation's validator: an unsigned ``energy`` below ``energy_max``."""

    def validate(self, metadata, data):
        energy = metadata.get("energy")
        if not isinstance(energy, int) or not 0 <= energy < self.params["energy_max"]:
            raise ValueError(f"energy must be an integer in [0, {self.params['energy_max']})")


class EnergyPartitionSelector(PartitionSelector):
    """The documentation's selector: energies in equal bins, one bin per partition."""

    def select_partition(self, metadata, requested):
        n = len(self.partitions)
        return metadata["energy"] * n // self.params["energy_max"]


class EnergySerializer(Serializer):
    """The documentation's serializer: the energy alone, in one byte."""

    def serialize(self, metadata):
        return bytes([metadata["energy"]])

    def deserialize(self, raw):
        return {"energy": raw[0]}


COMPONENTS = "test_diaspora:EnergyValidator"


def test_producer_then_consumer_examples(backend):
    kind, options = backend
    driver = Driver(backend=kind, options=options)
    driver.create_topic("my_topic")
    topic = driver.open_topic("my_topic")
    producer = topic.producer()
    ids = []
    for i in range(100):
        future = producer.push(metadata={"x": i * 42, "name": "bob"}, data=bytes())
        ids.append(future.wait())
    assert ids == list(range(100))
    assert producer.flush().wait(-1) is True

    consumer = topic.consumer(name="my_consumer")
    for i in range(100):
        event = consumer.pull().wait(-1)
        assert event.metadata == {"x": i * 42, "name": "bob"}
        assert event.event_id == i and event.partition == {"index": 0}
        assert [bytes(d) for d in event.data] == [b""]
        if (i + 1) % 10 == 0:
            event.acknowledge()
    future = consumer.pull()
    assert future.wait(timeout_ms=100) is None     # nothing more: the wait times out, and can be retried
    assert not future.completed and future.completed() is False
    producer.push('{"x": -1}').wait(-1)             # metadata as JSON text
    assert future.wait(-1).metadata == {"x": -1}
    assert future.completed and future.completed()


def test_energy_topic_example(backend):
    """The documentation's energy topic: components recorded with the topic, a producer with every
    option, events with one and several buffers, a consumer selecting data above an energy."""
    kind, options = backend
    driver = Driver(backend=kind, options=options)
    driver.create_topic("collisions", options={"num_partitions": 4},
                        validator=Validator.from_metadata(type="test_diaspora:EnergyValidator", energy_max=100),
                        partition_selector=EnergyPartitionSelector(energy_max=100),
                        serializer=EnergySerializer())
    listed = driver.list_topics()["collisions"]
    assert listed["num_partitions"] == 4
    assert listed["validator"] == {"type": COMPONENTS, "energy_max": 100}
    assert listed["serializer"]["type"] == "test_diaspora:EnergySerializer"

    topic = Driver(backend=kind, options=options).open_topic("collisions")   # a second driver finds them
    assert topic.partitions == [{"index": i} for i in range(4)]
    assert isinstance(topic.validator, EnergyValidator)
    pool = driver.make_thread_pool(4)
    producer = topic.producer(name="app1", batch_size=AdaptiveBatchSize, max_num_batches=2, thread_pool=pool,
                              ordering=Ordering.Strict)
    assert producer.thread_pool is pool and producer.name == "app1"
    data1 = b"abcd"
    data2 = bytearray("efgh", encoding="ascii")
    data4 = [data1, data2, memoryview(data1)]
    assert producer.push(metadata='{"energy": 42}', data=data1).wait() == 0
    producer.push(metadata={"energy": 10}, data=data4)
    producer.push(metadata={"energy": 99}, data=data2)
    with pytest.raises(Exception) as refused:
        producer.push(metadata={"energy": 100}, data=data1)
    assert isinstance(refused.value, mp.InvalidArgument) and "energy must be" in str(refused.value)
    assert producer.flush().wait(-1)
    stored = {p["partition"]: p["end_offset"] for p in driver.fabric.topic("collisions").describe()["partitions"]}
    assert stored == {0: 1, 1: 1, 2: 0, 3: 1}, "each event in its energy bin, the refused one nowhere"
    # One byte of metadata per event: the serializer's.
    with driver.fabric.topic("collisions").consumer(start="earliest", partitions=[1]) as raw:
        assert raw.pull(timeout=10).metadata_bytes == bytes([42])

    allocated = []

    def data_selector(metadata, descriptor):
        return descriptor if metadata["energy"] > 20 else None

    def data_allocator(metadata, descriptor):
        allocated.append(descriptor.size)
        return [bytearray(descriptor.size)]

    consumer = topic.consumer(name="app2", thread_pool=driver.make_thread_pool(0), batch_size=AdaptiveBatchSize,
                              data_selector=data_selector, data_allocator=data_allocator)
    got = {}
    for _ in range(3):
        future = consumer.pull()
        event = future.wait(-1)
        assert future.completed
        got[event.metadata["energy"]] = [bytes(b) for b in event.data]
        event.acknowledge()
    assert got == {42: [b"abcd"], 10: [], 99: [b"efgh"]}
    assert sorted(allocated) == [4, 4], "the allocator is asked for selected data only"


def test_data_descriptor_views_select_those_bytes(backend):
    """Sub, strided and unstructured views (the examples of DataDescriptor's documentation), and the
    image rectangle of the consumer documentation, on stored events; into allocators' buffers and as views."""
    kind, options = backend
    driver = Driver(backend=kind, options=options)
    driver.create_topic("images")
    topic = driver.open_topic("images")
    W, H, x, y, w, h = 16, 12, 3, 4, 5, 6
    image = bytes(range(W * H))
    producer = topic.producer()
    views = {
        "sub": lambda d: d.make_sub_view(offset=4, size=8),
        "strided": lambda d: d.make_stride_view(offset=1, num_blocks=5, block_size=2, gap_size=3),
        "unstructured": lambda d: d.make_unstructured_view(segments=[(1, 3), (7, 5), (14, 2)]),
        "composed": lambda d: d.make_sub_view(offset=2, size=20).make_strided_view(offset=1, num_blocks=3,
                                                                                   block_size=4, gap_size=2),
        "all": lambda d: d,
        "none": lambda d: None,
    }
    for name in views:
        producer.push({"view": name}, data=ALPHABET)
    producer.push({"view": "rectangle"}, data=image)
    producer.flush().wait(-1)
    expected = {"sub": b"EFGHIJKL", "strided": b"BCGHLMQRVW", "unstructured": b"BCDHIJKLOP",
                "composed": b"DEFGJKLMPQRS", "all": ALPHABET, "none": b"",
                "rectangle": b"".join(image[(y + r) * W + x:(y + r) * W + x + w] for r in range(h))}

    def selector(metadata, descriptor):
        if metadata["view"] == "rectangle":
            assert descriptor.size == W * H
            rows = descriptor.make_sub_view(offset=y * W + x, size=W * h)
            return rows.make_stride_view(offset=0, num_blocks=h, block_size=w, gap_size=W - w)
        return views[metadata["view"]](descriptor)

    def split_allocator(metadata, descriptor):   # non-contiguous destination memory
        half = descriptor.size // 2
        return [bytearray(half), bytearray(descriptor.size - half)]

    for group, allocator in (("split", split_allocator), ("views", None), ("bytearray", ByteArrayAllocator)):
        consumer = topic.consumer(group, data_selector=selector, data_allocator=allocator)
        for _ in expected:
            event = consumer.pull().wait(-1)
            got = b"".join(bytes(b) for b in event.data)
            assert got == expected[event.metadata["view"]], (group, event.metadata)
    full = topic.consumer("full", data_selector=FullDataSelector, data_allocator=ByteArrayAllocator)
    event = full.pull().wait(-1)
    assert event.data == [bytearray(ALPHABET)] and isinstance(event.data[0], bytearray)


def test_descriptor_refuses_views_out_of_bounds():
    d = DataDescriptor("loc", 1024)
    assert d.make_sub_view(offset=1200, size=200).size == 0
    assert d.make_sub_view(offset=900, size=200).size == 124
    with pytest.raises(Exception):
        d.make_stride_view(offset=0, num_blocks=4, block_size=128, gap_size=192)
    with pytest.raises(Exception) as bad:
        d.make_unstructured_view(segments=[(0, 200), (100, 200)])
    assert isinstance(bad.value, mp.InvalidArgument) and "increasing order" in str(bad.value)
    assert d.make_sub_view(offset=100, size=200).flatten() == [(100, 200)]


CONSUME = """
import os, sys
from mofka_py.diaspora import Driver
backend, option, value, count, crash = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def consume():
    driver = Driver(backend=backend, options={option: value})
    consumer = driver.open_topic("restart").consumer(name="my_consumer", options={"member_id": "m1"})
    for _ in range(count):
        event = consumer.pull().wait(-1)
        print(event.metadata["i"], flush=True)
        event.acknowledge()
    if crash == "crash":
        os._exit(0)                               # no close: what was acknowledged must be stored already
consume()
"""


@pytest.mark.parametrize("crash", ["exit", "crash"])
def test_named_consumer_restarts_after_its_last_acknowledged_event(backend, crash):
    kind, options = backend
    (option, value), = options.items()
    with Driver(backend=kind, options=options) as driver:
        driver.create_topic("restart", options={"num_partitions": 1})
        producer = driver.open_topic("restart").producer()
        for i in range(50):
            producer.push({"i": i})
        assert producer.flush().wait(-1)
        producer.close()
    first = run_script(CONSUME, kind, option, value, "20", crash).split()
    second = run_script(CONSUME, kind, option, value, "30", crash).split()
    assert first == [str(i) for i in range(20)]
    assert second == [str(i) for i in range(20, 50)], "resumed after the 20 acknowledged events, none again"
    with Driver(backend=kind, options=options) as driver:
        consumer = driver.open_topic("restart").consumer("my_consumer")
        assert consumer.pull().wait(timeout_ms=200) is None
        consumer.close()


def test_end_of_a_complete_topic_and_iteration(backend):
    kind, options = backend
    driver = Driver(backend=kind, options=options)
    driver.create_topic("finite", options={"num_partitions": 2})
    topic = driver.open_topic("finite")
    producer = topic.producer("p")
    for i in range(10):
        producer.push({"i": i}, partition=i)       # requested partition, modulo 2 by the default selector
    producer.flush().wait(-1)
    driver.fabric.topic("finite").mark_complete()
    events = list(topic.consumer("it"))
    assert sorted(e.metadata["i"] for e in events) == list(range(10))
    assert all(e.partition["index"] == e.metadata["i"] % 2 for e in events)
    consumer = topic.consumer("pull")
    seen = []
    consumer.process(lambda e: seen.append(e.metadata["i"]), timeout_ms=-1)
    assert sorted(seen) == list(range(10))
    end = consumer.pull().wait(-1)
    assert end.event_id is None and end.data == []


def test_bad_input_raises_the_diaspora_exception_and_writes_nothing(backend):
    kind, options = backend
    with pytest.raises(Exception) as unknown:
        Driver(backend="simple:libdiaspora-simple-backend.so", options={})
    assert isinstance(unknown.value, mp.Error) and "'mofka_py'" in str(unknown.value)
    driver = Driver(backend=kind, options=options)
    assert not driver.topic_exists("t")
    with pytest.raises(Exception) as missing:
        driver.open_topic("t")
    assert isinstance(missing.value, mp.TopicNotFound)
    driver.create_topic("t", validator=Validator.from_metadata(type="schema", schema={"required": ["a"]}))
    assert driver.topic_exists("t") and "t" in driver.list_topics()
    with pytest.raises(Exception) as exists:
        driver.create_topic("t")
    assert isinstance(exists.value, mp.TopicExists)
    with pytest.raises(Exception) as plugin:
        Validator.from_metadata(type="energy_validator:libenergy_validator.so")
    assert "module:Class" in str(plugin.value) or "package.module:ClassName" in str(plugin.value)
    producer = driver.open_topic("t").producer()
    for metadata, data, what in (({"b": 1}, b"", "required field 'a'"), ("{not json", b"", "JSON"),
                                 ({"a": 1}, "text", "str")):
        with pytest.raises(Exception) as bad:
            producer.push(metadata, data)
        assert isinstance(bad.value, mp.InvalidArgument) and what in str(bad.value), bad.value
    stored = producer.push({"a": 1})
    assert stored.wait(-1) == 0, "nothing of the refused events was written"
    assert stored.completed and stored.completed() is True and stored.wait(0) == 0
    flushed = producer.flush()
    for timeout in ("soon", True, None, float("nan")):
        # The core push's future and the Python flush future parse a timeout alike.
        for future in (stored, flushed):
            with pytest.raises(Exception) as bad_wait:
                future.wait(timeout)
            assert isinstance(bad_wait.value, Exception) and isinstance(bad_wait.value, mp.InvalidArgument)
            assert "milliseconds" in str(bad_wait.value)
    producer.close()
    with pytest.raises(Exception) as closed:
        producer.push({"a": 2})
    assert isinstance(closed.value, Exception) and isinstance(closed.value, mp.Closed), closed.value


def test_a_driver_collected_while_the_fabric_table_is_locked_is_released_later(tmp_path):
    # A garbage collection can run inside Driver creation (in the lock guarding the table of shared
    # fabrics): a driver freed by it must not wait for that lock (a deadlock), nor be forgotten.
    from mofka_py.diaspora import driver as drv

    d = Driver(backend="files", options={"root_path": str(tmp_path / "a")})
    url = d._url
    d.cycle = d   # only the cycle collector frees it
    del d
    with drv._shared_lock:
        gc.collect()
        assert url in drv._shared
    Driver(backend="files", options={"root_path": str(tmp_path / "b")}).close()
    assert url not in drv._shared, "the holder of the lock made the release garbage collection left"
