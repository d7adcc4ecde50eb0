"""One name per setting, one check per scope (issue 15): the registry in mofka_py._settings is what
connect(), create_topic, producer, consumer, mofka_py.mpi.fabric, serve, the CLI and the bridge take;
docs/configuration.md is generated from it; the C++ defaults are the registry's."""
from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import pytest

import mofka_py as mp
from mofka_py import _core, _settings, mpi, service
from mofka_py.bridge.config import ConfigError, load_config
from mofka_py.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _own(scope):
    return [s for s in _settings.SETTINGS if s.scope == scope]


def test_docs_configuration_md_is_generated_from_the_registry():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == _settings.markdown(), (
        "docs/configuration.md differs from the settings registry: regenerate it with "
        "`mofka-py settings --markdown > docs/configuration.md`")


def test_readme_links_the_configuration_page():
    using_it = (ROOT / "README.md").read_text().split("## Using it", 1)[1].split("\n## ", 1)[0]
    assert "docs/configuration.md" in using_it


def test_names_are_unique_within_what_each_scope_takes():
    for scope in _settings.SCOPES:
        names = [s.name for s in _settings.SETTINGS if s.scope == scope or scope in s.also]
        assert len(names) == len(set(names)), scope


def test_cli_flags_and_cpp_fields_use_the_same_words():
    for s in _settings.SETTINGS:
        if s.cli and s.kind != "bool" and "," not in s.cli:
            assert s.cli == "--" + s.name.replace("_", "-"), s
        field = re.fullmatch(r"\w+::(\w+)", s.cpp)
        if field and s.cpp_scale == 1:
            camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), s.name)
            assert field.group(1) == camel, s


# ---- every setting is taken by the API the registry says takes it, with the registry's default ----

def _signature_defaults(fn):
    return {n: p.default for n, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("scope, fn", [
    ("fabric", mp.connect), ("producer", mp.Topic.producer), ("consumer", mp.Topic.consumer),
    ("mpi", mpi.fabric.__wrapped__), ("service", service.serve),
])
def test_api_defaults_are_the_registry_defaults(scope, fn):
    sig = _signature_defaults(fn)
    for name, s in _settings.settings(scope).items():
        if s.scope == "topic" and name == "partitions":
            continue
        assert name in sig, f"{fn.__qualname__} has no {name}"
        assert sig[name] == s.default, f"{fn.__qualname__}({name}={sig[name]!r}) but the registry says {s.default!r}"


@pytest.mark.parametrize("name", sorted(_settings.settings("fabric")))
def test_connect_takes_every_fabric_setting(name):
    with mp.connect("memory://", **{name: _settings.setting("fabric", name).default}) as fab:
        fab.create_topic("t")


@pytest.mark.parametrize("name", [s.name for s in _own("topic")])
def test_create_topic_takes_every_topic_setting(mem_fab, name):
    default = _settings.setting("topic", name).default
    topic = mem_fab.create_topic("t", **{name: default})
    if name != "partitions":
        assert topic.describe()[name] == default


@pytest.mark.parametrize("name", [s.name for s in _own("producer")])
def test_producer_takes_every_producer_setting(mem_fab, name):
    topic = mem_fab.create_topic("t")
    with topic.producer(**{name: _settings.setting("producer", name).default}) as prod:
        prod.push({"x": 1}).result(timeout=10)


@pytest.mark.parametrize("name", [s.name for s in _own("consumer")])
def test_consumer_takes_every_consumer_setting(mem_fab, name):
    topic = mem_fab.create_topic("t")
    with topic.consumer(**{name: _settings.setting("consumer", name).default}) as cons:
        assert cons.pull(timeout=0.0) is None


@pytest.mark.parametrize("name", [s.name for s in _own("rule")])
def test_bridge_rules_take_every_rule_setting(name):
    s = _settings.setting("rule", name)
    value = s.default if s.default is not None else "my-group"
    cfg = load_config({"bridge": {"site": "lab"}, "endpoints": {"a": {"url": "memory://"}, "b": {"url": "memory://"}},
                       "rules": [{"name": "r", "from": "a/x", "to": "b/y", name: value}]})
    assert getattr(cfg.rules[0], name) == value


def test_bridge_rule_defaults_are_the_registry_defaults():
    cfg = load_config({"bridge": {"site": "lab"}, "endpoints": {"a": {"url": "memory://"}, "b": {"url": "memory://"}},
                       "rules": [{"name": "r", "from": "a/x", "to": "b/y"}]})
    for s in _own("rule"):
        expected = {"group": "mofka-bridge.lab.r"}.get(s.name, s.default)
        assert getattr(cfg.rules[0], s.name) == expected, s.name


# ---- the C++ defaults are the registry's ----

_HEADERS = "\n".join(p.read_text() for p in sorted((ROOT / "csrc" / "include" / "mofka_py").glob("*.hpp")))
_ENUMS = {"SyncPolicy::None": "none", "SyncPolicy::Batch": "batch", "SyncPolicy::Interval": "interval",
          "PartitionSelector::KeyHash": "key_hash", "PartitionSelector::RoundRobin": "round_robin",
          "GapPolicy::Error": "error", "GapPolicy::Earliest": "earliest", "true": True, "false": False}


def _cpp_default(struct: str, field: str):
    body = re.search(r"struct " + struct + r" \{(.*?)\n\};", _HEADERS, re.S)
    assert body, f"struct {struct} not found in csrc/include/mofka_py"
    m = re.search(r"\b" + field + r"\s*=\s*([^;]+);", body.group(1))
    assert m, f"{struct}::{field} has no default in its header"
    expr = m.group(1).strip()
    if expr in _ENUMS:
        return _ENUMS[expr]
    return eval(re.sub(r"(?<=\d)(ull|ul|u|ll|l)\b", "", expr, flags=re.I), {})  # noqa: S307 - a header literal


@pytest.mark.parametrize("s", [s for s in _settings.SETTINGS if re.fullmatch(r"\w+::\w+", s.cpp)
                               and s.kind in ("int", "number", "bool", "choice")], ids=lambda s: f"{s.scope}.{s.name}")
def test_cpp_header_default_is_the_registry_default(s):
    struct, field = s.cpp.split("::")
    want = s.default * s.cpp_scale if s.kind in ("int", "number") else s.default
    assert _cpp_default(struct, field) == want


# Settings cross into C++ as one dict per scope (csrc/bindings/convert.cpp); _core.defaults(scope) is the
# C++ options struct's defaults keyed by the same names.
_CPP_SCOPES = ["topic", "fabric", "producer", "consumer", "service", "mpi"]
# C++ options of a scope that are not its settings: the service's address comes from `listen`, its
# token from the command line; the others are fixed by mofka_py.service.
_CPP_ONLY = {"service": {"host", "port", "token", "max_frame_bytes", "idle_timeout_ms", "repair", "rejoin_grace_ms"}}
# A registry default of None is the C++ empty value.
_NONE_IN_CPP = {"start": "committed", "partitions": []}


def _needs_struct(scope):
    if scope == "mpi" and not _core.build_info["mpi"]:
        pytest.skip("built without MPI")


@pytest.mark.parametrize("scope", _CPP_SCOPES, ids=lambda s: f"{s}_options")  # an id "mpi" means mpiexec
def test_cpp_defaults_are_the_registry_defaults(scope):
    _needs_struct(scope)
    cpp = _core.defaults(scope)
    crossing = _settings.native(scope, _settings.defaults(scope))
    assert crossing, scope
    assert set(cpp) == set(crossing) | _CPP_ONLY.get(scope, set())
    for name, default in crossing.items():
        want = _NONE_IN_CPP.get(name, "") if default is None else default
        assert cpp[name] == want, f"_core.defaults({scope!r})[{name!r}]"
    if scope == "service":
        assert f"{cpp['host']}:{cpp['port']}" == _settings.setting("service", "listen").default


def test_every_scope_with_a_cpp_struct_has_cpp_defaults():
    scopes = {sc for s in _settings.SETTINGS if re.fullmatch(r"\w+::\w+", s.cpp) for sc in (s.scope, *s.also)}
    assert scopes - {"rule"} <= set(_CPP_SCOPES)
    with pytest.raises(mp.InvalidArgument, match=re.escape("no C++ options for scope 'rule'")):
        _core.defaults("rule")


def _native_makers():
    fab = _core.Fabric("memory://", {})
    fab.create_topic("t", {})

    def server(d):
        _core.Server("memory://", {"port": 0, **d}).shutdown(0)

    makers = {"fabric": lambda d: _core.Fabric("memory://", d).close(),
              "topic": lambda d: fab.create_topic(f"t{len(fab.topics())}", d),
              "producer": lambda d: _core.Producer(fab, "t", d).close(None),
              "consumer": lambda d: _core.Consumer(fab, "t", d).close(),
              "service": server}
    if _core.build_info["mpi"]:
        def mpi_fabric(d):
            # the settings are converted before the communicator is looked at (so before any
            # collective): taken, they get as far as refusing comm=None
            try:
                _core.MpiFabric(None, [0], "memory://", d)
            except mp.InvalidArgument as exc:
                if not str(exc).startswith("comm must be an mpi4py communicator"):
                    raise
        makers["mpi"] = mpi_fabric
    return makers


def test_each_native_class_takes_its_cpp_defaults_and_the_registry_defaults():
    for scope, make in _native_makers().items():
        make(_core.defaults(scope))
        make(_settings.native(scope, _settings.defaults(scope)))


def test_a_setting_name_the_cpp_core_does_not_know_is_refused():
    for scope, make in _native_makers().items():
        with pytest.raises(mp.InvalidArgument, match=f"unknown {scope} setting 'linger' \\(the C\\+\\+ core knows: "):
            make({"linger": 1})
        name = next(iter(_core.defaults(scope)))
        with pytest.raises(mp.InvalidArgument, match=f"^{name}: .* does not fit"):
            make({name: object()})


# ---- bad values: InvalidArgument naming the setting, its range and what was given ----

@pytest.mark.parametrize("scope, name, value, says", [
    ("fabric", "request_timeout_ms", 0, "between 1 and 1000000000"),
    ("fabric", "reconnect_timeout_ms", 2.5, "integer"),
    ("topic", "sync", "always", "'none', 'batch', 'interval'"),
    ("topic", "segment_bytes", 100, "between 4096 and"),
    ("producer", "linger_ms", -1, "between 0 and 3600000"),
    ("consumer", "session_timeout_ms", 10, "between 100 and 3600000"),
    ("mpi", "spindown_ms", -1, "between 0 and"),
    ("service", "max_connections", 0, "between 1 and"),
    ("rule", "data", "all", "'forward', 'drop', 'metadata'"),
])
def test_bad_values_name_setting_range_and_value(scope, name, value, says):
    with pytest.raises(mp.InvalidArgument) as ei:
        _settings.validate(scope, {name: value})
    msg = str(ei.value)
    assert msg.startswith(name) and says in msg and repr(value) in msg, msg


def test_unknown_setting_is_refused_with_the_known_ones(mem_fab):
    with pytest.raises(mp.InvalidArgument, match=r"unknown topic setting 'linger_ms' \(known: .*segment_bytes"):
        mem_fab.create_topic("t", linger_ms=5)
    assert mem_fab.topics() == []


def test_mpi_fabric_checks_what_connect_checks_before_any_collective():
    for bad in ({"segment_bytes": 10}, {"sync": "always"}, {"max_event_bytes": 0}, {"repair": "yes"},
                {"request_timeout_ms": 0}):
        with pytest.raises(mp.InvalidArgument, match=next(iter(bad))):
            with mpi.fabric(None, **bad):
                pass


def test_serve_checks_its_settings_before_listening():
    with pytest.raises(mp.InvalidArgument, match="login_timeout_ms must be an integer number of milliseconds"):
        service.serve(None, login_timeout_ms=0)
    with pytest.raises(mp.InvalidArgument, match="listen must be HOST:PORT"):
        service.serve(None, listen="nowhere")


def test_bridge_rule_bad_value_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match=r"rule 'r': batch_size must be an integer number of events between 1 and"):
        load_config({"bridge": {"site": "lab"}, "endpoints": {"a": {"url": "memory://"}, "b": {"url": "memory://"}},
                     "rules": [{"name": "r", "from": "a/x", "to": "b/y", "batch_size": 0}]})


# ---- the command line takes its flags' choices and ranges from the registry ----

@pytest.mark.parametrize("argv, says", [
    (["topic", "create", "t", "--sync", "often"], "sync must be one of 'none', 'batch', 'interval' (got 'often')"),
    (["topic", "create", "t", "--retention-ms", "-1"], "retention_ms must be an integer number of milliseconds"),
    (["topic", "alter", "t", "--retention-bytes", "x"], "'x' is not a whole number"),
    (["serve", "--max-connections", "0"], "max_connections must be an integer number between 1 and 2^32-1"),
    (["serve", "--sync-interval-ms", "0"], "sync_interval_ms must be an integer number of milliseconds between 1"),
])
def test_cli_flags_check_with_the_registry(capsys, argv, says):
    with pytest.raises(SystemExit) as ei:
        build_parser().parse_args(argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert says.replace("'", "") in err.replace("'", ""), err


def test_cli_flag_defaults_and_help_come_from_the_registry():
    args = build_parser().parse_args(["serve"])
    for name in ("login_timeout_ms", "max_connections", "max_pending_logins", "max_pending_logins_per_address",
                 "sync", "sync_interval_ms"):
        assert getattr(args, name) == _settings.setting("service", name).default, name
    assert build_parser().parse_args(["topic", "create", "t"]).partitions == 1


def test_settings_command_lists_every_setting(capsys):
    from mofka_py.cli import main

    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    for s in _settings.SETTINGS:
        assert s.name in out
    assert main(["settings", "--markdown"]) == 0
    assert capsys.readouterr().out == _settings.markdown()


# ---- old names: one more release, with a DeprecationWarning naming the new one ----

@pytest.mark.parametrize("old, new, value", [("request_timeout", "request_timeout_ms", 2.5),
                                             ("reconnect_timeout", "reconnect_timeout_ms", 10)])
def test_connect_old_timeout_names_warn_and_still_work(old, new, value):
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated .* use {new}") as rec:
        with mp.connect("memory://", **{old: value}) as fab:
            fab.create_topic("t")
    assert rec[0].filename == __file__, "the warning points at the caller"
    values = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _settings.take_deprecated("fabric", {old: value}, values, api="connect")
    assert values == {new: round(value * 1000)}


def test_connect_old_and_new_name_together_is_refused():
    with pytest.raises(mp.InvalidArgument, match="request_timeout is the deprecated name of request_timeout_ms"):
        mp.connect("memory://", request_timeout=1, request_timeout_ms=500)


def test_connect_still_refuses_unknown_keywords():
    with pytest.raises(TypeError, match="unexpected keyword argument 'request_timeout_s'"):
        mp.connect("memory://", request_timeout_s=1)


def test_mpi_fabric_old_request_timeout_warns():
    with pytest.warns(DeprecationWarning, match="request_timeout is deprecated .* use request_timeout_ms"):
        with pytest.raises(mp.InvalidArgument, match="sync"):   # stops before MPI: checked first
            with mpi.fabric(None, request_timeout=1.5, sync="bogus"):
                pass


def test_serve_old_login_timeout_warns():
    with pytest.warns(DeprecationWarning, match="login_timeout is deprecated .* use login_timeout_ms"):
        with pytest.raises(mp.InvalidArgument, match="login_timeout_ms .* \\(got 0\\)"):
            service.serve(None, login_timeout=0.0001)


def test_bridge_batch_events_warns_and_becomes_batch_size(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[bridge]\nsite = "lab"\n[endpoints.a]\nurl = "memory://"\n[endpoints.b]\nurl = "memory://"\n'
                    '[[rules]]\nname = "r"\nfrom = "a/x"\nto = "b/y"\nbatch_events = 300\n')
    with pytest.warns(DeprecationWarning, match=r"b\.toml:11: rule 'r': batch_events is deprecated .* use batch_size"):
        cfg = load_config(path)
    assert cfg.rules[0].batch_size == 300
    path.write_text(path.read_text() + "batch_size = 200\n")
    with pytest.raises(ConfigError, match="batch_events is the deprecated name of batch_size"):
        load_config(path)
