"""The mofka-py command line, run as a subprocess (python -m mofka_py.cli)."""
from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

import mofka_py as mp

from _helpers import end_offsets, tree


def cli(*args, stdin: bytes = b"", cwd=None, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if k != "MOFKA_PY_URL"}
    return subprocess.run([sys.executable, "-m", "mofka_py.cli", *args], input=stdin, capture_output=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def url(tmp_path):
    return f"file://{tmp_path / 'fab'}"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout.decode()}\nstderr: {r.stderr.decode()}"
    return r


def test_topic_create_produce_consume_round_trip(url, tmp_path):
    ok(cli("--url", url, "topic", "create", "t", "--partitions", "2", cwd=tmp_path))
    records = [{"i": i, "name": f"ev{i}", "nested": {"v": [i, i * 0.5]}} for i in range(25)]
    lines = b"\n".join(orjson.dumps(r) for r in records) + b"\n\n"  # blank lines are skipped
    r = ok(cli("--url", url, "produce", "t", stdin=lines, cwd=tmp_path))
    assert b"25" in r.stderr
    r = ok(cli("--url", url, "consume", "t", cwd=tmp_path))
    out = [orjson.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == 25
    assert sorted((o["metadata"] for o in out), key=lambda m: m["i"]) == records
    assert {o["partition"] for o in out} == {0, 1}
    for p in (0, 1):
        offs = [o["offset"] for o in out if o["partition"] == p]
        assert offs == list(range(len(offs)))
    # The fabric was released by every command: it opens here, with the same events.
    with mp.connect(url) as fab:
        assert sum(end_offsets(fab.topic("t"))) == 25


def test_produce_to_partition_and_with_key_then_consume_with_group(url, tmp_path):
    ok(cli("--url", url, "topic", "create", "k", "--partitions", "3", cwd=tmp_path))
    ok(cli("--url", url, "produce", "k", "--partition", "2", stdin=b'{"a":1}\n{"a":2}\n', cwd=tmp_path))
    ok(cli("--url", url, "produce", "k", "--key", "sensor-7", stdin=b'{"b":1}\n{"b":2}\n', cwd=tmp_path))
    with mp.connect(url) as fab:
        e = end_offsets(fab.topic("k"))
    kp = mp._core.partition_for_key(b"sensor-7", 3)
    expected = [0, 0, 2]
    expected[kp] += 2
    assert e == expected
    r = ok(cli("--url", url, "consume", "k", "--group", "g", "--max", "3", cwd=tmp_path))
    assert len(r.stdout.splitlines()) == 3
    r = ok(cli("--url", url, "consume", "k", "--group", "g", cwd=tmp_path))
    assert len(r.stdout.splitlines()) == 1, "the group resumes after the 3 acknowledged events"
    r = ok(cli("--url", url, "consume", "k", "--start", "1", "--data", cwd=tmp_path))
    out = [orjson.loads(line) for line in r.stdout.splitlines()]
    assert all(o["offset"] >= 1 for o in out) and len(out) == 2
    assert all(o["data_size"] == 0 for o in out)


def test_bad_json_line_produces_nothing(url, tmp_path):
    ok(cli("--url", url, "topic", "create", "t", cwd=tmp_path))
    fab_dir = tmp_path / "fab"
    before = tree(fab_dir)
    r = cli("--url", url, "produce", "t", stdin=b'{"ok":1}\n{"ok":2}\nnot json\n{"ok":3}\n', cwd=tmp_path)
    assert r.returncode != 0
    assert b"line 3" in r.stderr
    assert {k: v for k, v in tree(fab_dir).items() if k != "LOCK"} == {k: v for k, v in before.items() if k != "LOCK"}
    with mp.connect(url) as fab:
        assert end_offsets(fab.topic("t")) == [0]
    r = ok(cli("--url", url, "consume", "t", cwd=tmp_path))
    assert r.stdout == b""


def test_topic_list_and_describe(url, tmp_path):
    ok(cli("--url", url, "topic", "create", "beta", "--partitions", "3", "--retention-bytes", "1000000", cwd=tmp_path))
    ok(cli("--url", url, "topic", "create", "alpha", cwd=tmp_path))
    r = ok(cli("--url", url, "topic", "list", cwd=tmp_path))
    assert r.stdout.decode().split() == ["alpha", "beta"]
    ok(cli("--url", url, "produce", "beta", "--partition", "1", stdin=b"[1]\n[2]\n", cwd=tmp_path))
    r = ok(cli("--url", url, "topic", "describe", "beta", cwd=tmp_path))
    text = r.stdout.decode()
    assert "beta" in text and "complete=False" in text and "retention_bytes=1000000" in text
    rows = [line.split() for line in text.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert [row[:3] for row in rows] == [["0", "0", "0"], ["1", "0", "2"], ["2", "0", "0"]]


def test_errors_exit_non_zero(url, tmp_path):
    ok(cli("--url", url, "topic", "create", "t", cwd=tmp_path))
    r = cli("--url", url, "topic", "create", "t", cwd=tmp_path)
    assert r.returncode == 1 and b"TopicExists" in r.stderr
    r = cli("--url", url, "topic", "describe", "missing", cwd=tmp_path)
    assert r.returncode == 1 and b"TopicNotFound" in r.stderr
    r = cli("--url", url, "produce", "missing", stdin=b"{}\n", cwd=tmp_path)
    assert r.returncode == 1 and b"TopicNotFound" in r.stderr
    r = cli("--url", url, "topic", "create", "bad/name", cwd=tmp_path)
    assert r.returncode == 1 and b"InvalidArgument" in r.stderr
    r = cli("--url", url, "topic", "create", "zero", "--partitions", "0", cwd=tmp_path)
    assert r.returncode == 2 and b"partitions must be an integer number between 1 and 65536 (got 0)" in r.stderr  # usage error
    r = cli("topic", "list", cwd=tmp_path)  # no URL at all
    assert r.returncode == 1 and b"--url" in r.stderr
    r = cli("--url", "bogus://x", "topic", "list", cwd=tmp_path)
    assert r.returncode == 1
    r = cli("--url", url, "topic", "create", cwd=tmp_path)
    assert r.returncode == 2
    with mp.connect(url) as fab:
        assert fab.topics() == ["t"]


def test_url_from_environment(tmp_path):
    env = dict(os.environ, MOFKA_PY_URL=f"file://{tmp_path / 'envfab'}")
    r = subprocess.run([sys.executable, "-m", "mofka_py.cli", "topic", "create", "e"], capture_output=True,
                       env=env, cwd=tmp_path, timeout=120)
    ok(r)
    assert (tmp_path / "envfab" / "topics" / "e" / "topic.conf").exists()


def test_demo_runs(tmp_path):
    r = ok(cli("demo", "--frames", "50", "--frame-size", "32", cwd=tmp_path))
    assert b"demo OK" in r.stdout


def test_bench_runs(tmp_path):
    r = ok(cli("bench", "--events", "2000", cwd=tmp_path))
    assert b"events/s" in r.stdout
    r = ok(cli("bench", "--events", "300", "--size", "4096", "--partitions", "2", cwd=tmp_path))


def test_mofka_py_entry_point_main():
    from mofka_py import cli as cli_mod

    parser = cli_mod.build_parser()
    args = parser.parse_args(["--url", "memory://", "topic", "list"])
    assert args.command == "topic" and args.action == "list"
    assert cli_mod.main(["--url", "memory://", "topic", "list"]) == 0


def test_group_list_describe_and_reset(url, tmp_path):
    ok(cli("--url", url, "topic", "create", "g2", "--partitions", "2", cwd=tmp_path))
    lines = b"".join(orjson.dumps({"i": i}) + b"\n" for i in range(10))
    ok(cli("--url", url, "produce", "g2", stdin=lines, cwd=tmp_path))
    ok(cli("--url", url, "consume", "g2", "--group", "readers", "--max", "4", cwd=tmp_path))
    r = ok(cli("--url", url, "group", "list", cwd=tmp_path))
    row = [ln for ln in r.stdout.decode().splitlines() if "readers" in ln]
    assert row and row[0].split()[1:4] == ["g2", "0", "6"], r.stdout.decode()  # topic, live members, lag
    r = ok(cli("--url", url, "group", "describe", "readers", cwd=tmp_path))
    text = r.stdout.decode()
    assert "lag 6" in text
    with mp.connect(url) as fab:
        committed = {p["partition"]: p["committed"] for p in fab.topic("g2").describe_group("readers")["partitions"]}
    assert sum(committed.values()) == 4
    # A reset without --execute only shows the plan.
    r = ok(cli("--url", url, "group", "reset", "readers", "--topic", "g2", "--to-earliest", cwd=tmp_path))
    assert b"dry run" in r.stdout
    with mp.connect(url) as fab:
        assert fab.topic("g2").describe_group("readers")["lag"] == 6
    ok(cli("--url", url, "group", "reset", "readers", "--topic", "g2", "--to-earliest", "--execute", cwd=tmp_path))
    r = ok(cli("--url", url, "consume", "g2", "--group", "readers", cwd=tmp_path))
    assert len(r.stdout.splitlines()) == 10, "the group reads everything again after the reset"
    ok(cli("--url", url, "group", "reset", "readers", "--topic", "g2", "--offsets", "0=2,1=5", "--execute",
           cwd=tmp_path))
    r = ok(cli("--url", url, "group", "describe", "readers", "--topic", "g2", cwd=tmp_path))
    assert "lag 3" in r.stdout.decode()
    for bad in (["--to-offset", "99"], ["--offsets", "zero=1"], [], ["--to-earliest", "--to-latest"]):
        r = cli("--url", url, "group", "reset", "readers", "--topic", "g2", *bad, "--execute", cwd=tmp_path)
        assert r.returncode == 1 and b"InvalidArgument" in r.stderr, (bad, r.stderr)
    r = cli("--url", url, "group", "describe", "nobody", cwd=tmp_path)
    assert r.returncode == 1 and b"no consumer group 'nobody'" in r.stderr


def test_cli_conventions(url, tmp_path):
    """Global options after the subcommand too, --version, help when run alone, a help text and
    default for every option, options only where they apply."""
    from mofka_py import cli as cli_mod

    r = ok(cli(cwd=tmp_path))
    assert b"usage: mofka-py" in r.stdout and b"COMMAND" in r.stdout
    r = ok(cli("--version", cwd=tmp_path))
    assert r.stdout.startswith(b"mofka-py ") and mp.__version__.encode() in r.stdout
    ok(cli("topic", "create", "t", "--partitions", "2", "--url", url, cwd=tmp_path))  # --url after the subcommand
    r = ok(cli("topic", "list", "--url", url, cwd=tmp_path))
    assert r.stdout.split() == [b"t"]
    r = ok(cli("topic", "list", "--help", cwd=tmp_path))
    assert b"--partitions" not in r.stdout
    r = ok(cli("bench", "--help", cwd=tmp_path))
    assert b"(default: 200000)" in r.stdout
    # Every option of every command says what it does.
    parser = cli_mod.build_parser()

    def walk(p, path):
        for action in p._actions:
            if isinstance(action, __import__("argparse")._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, path + [name])
            elif action.option_strings and action.dest != "help":
                yield path, action

    missing = [(" ".join(path), a.option_strings[0]) for path, a in walk(parser, []) if not a.help]
    assert not missing, f"options without a help text: {missing}"


@pytest.mark.parametrize("args, text", [
    (["bench", "--events", "-5"], b"must be at least 1"), (["bench", "--size", "x"], b"not a whole number"),
    (["consume", "t", "--max", "0"], b"must be at least 1"), (["produce", "t", "--partition", "-1"], b"must be 0 or more"),
])
def test_cli_refuses_bad_numbers_before_doing_anything(url, tmp_path, args, text):
    r = cli("--url", url, *args, cwd=tmp_path)
    assert r.returncode == 2 and text in r.stderr, r.stderr


def test_bench_and_demo_leave_nothing_behind(url, tmp_path):
    ok(cli("--url", url, "bench", "--events", "2000", "--size", "64", cwd=tmp_path))
    ok(cli("--url", url, "demo", "--frames", "40", "--frame-size", "32", cwd=tmp_path))
    with mp.connect(url) as fab:
        assert fab.topics() == [], "bench/demo left their topics in the user's fabric"
    ok(cli("--url", url, "bench", "--events", "100", "--keep", cwd=tmp_path))
    with mp.connect(url) as fab:
        assert len(fab.topics()) == 1


def test_topic_delete_purge_alter_commands(url, tmp_path):
    ok(cli("--url", url, "topic", "create", "d", "--partitions", "2", cwd=tmp_path))
    ok(cli("--url", url, "produce", "d", stdin=b'{"a":1}\n{"a":2}\n{"a":3}\n', cwd=tmp_path))
    r = ok(cli("--url", url, "topic", "alter", "d", "--retention-ms", "3600000", cwd=tmp_path))
    assert b"retention_ms=3600000" in r.stdout
    r = cli("--url", url, "topic", "purge", "d", cwd=tmp_path)  # no terminal: needs --yes
    assert r.returncode == 1 and b"--yes" in r.stderr
    r = ok(cli("--url", url, "topic", "purge", "d", "--yes", cwd=tmp_path))
    assert b"purged 3 event(s)" in r.stdout
    ok(cli("--url", url, "topic", "delete", "d", "--yes", cwd=tmp_path))
    r = ok(cli("--url", url, "topic", "list", cwd=tmp_path))
    assert r.stdout == b""
    r = cli("--url", url, "topic", "delete", "d", "--yes", cwd=tmp_path)
    assert r.returncode == 1 and b"TopicNotFound" in r.stderr
