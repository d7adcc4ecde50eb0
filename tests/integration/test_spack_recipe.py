"""The Spack recipe spack/packages/py-mofka-py/package.py, loaded without Spack.

A stand-in ``spack.package`` module records the directives the recipe's class
body calls; fake specs drive its ``config_settings`` and
``setup_build_environment``.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "spack" / "packages" / "py-mofka-py" / "package.py"


class Recorder:
    """What the recipe's class body declared, in order."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, tuple, Dict[str, Any]]] = []

    def directive(self, kind: str):
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((kind, args, kwargs))
        return record

    def of(self, kind: str) -> List[Tuple[tuple, Dict[str, Any]]]:
        return [(a, k) for c, a, k in self.calls if c == kind]


def _fake_spack_package(rec: Recorder) -> types.ModuleType:
    mod = types.ModuleType("spack.package")

    class PythonPackage:
        def __init__(self, spec: Any = None) -> None:
            self.spec = spec

    def run_after(*_phases: str, **_kw: Any):
        return lambda fn: fn

    def on_package_attributes(**_attrs: Any):
        return lambda fn: fn

    @contextlib.contextmanager
    def working_dir(path: str, create: bool = False):
        rec.calls.append(("working_dir", (path,), {"create": create}))
        yield

    names = {
        "PythonPackage": PythonPackage,
        "run_after": run_after,
        "run_before": run_after,
        "on_package_attributes": on_package_attributes,
        "working_dir": working_dir,
        "join_path": lambda *parts: "/".join(parts),
        # llnl.util.filesystem.find: files named so under a directory, recursively.
        "find": lambda root, name: sorted(str(p) for p in Path(root).rglob(name)),
    }
    for kind in ("version", "variant", "depends_on", "license", "maintainers", "conflicts",
                 "extends", "provides", "requires", "patch", "resource"):
        names[kind] = rec.directive(kind)
    for name, value in names.items():
        setattr(mod, name, value)
    mod.__all__ = list(names)
    return mod


@pytest.fixture
def recipe(monkeypatch):
    rec = Recorder()
    spack = types.ModuleType("spack")
    package = _fake_spack_package(rec)
    spack.package = package  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spack", spack)
    monkeypatch.setitem(sys.modules, "spack.package", package)
    spec = importlib.util.spec_from_file_location("spack_recipe_py_mofka_py", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PyMofkaPy, rec


class FakeMpiSpec:
    def __init__(self, prefix: str, mpicxx: Optional[str]) -> None:
        self.prefix = prefix
        if mpicxx:
            self.mpicxx = mpicxx


class FakeSpec:
    """Enough of a concrete spec: variants for satisfies(), dependencies by name."""

    def __init__(self, variants: Dict[str, bool], deps: Dict[str, Any]) -> None:
        self.variants = variants
        self.deps = deps

    def satisfies(self, constraint: str) -> bool:
        sign, name = constraint[0], constraint[1:]
        assert sign in "+~" and name in self.variants, f"unexpected constraint {constraint!r}"
        return self.variants[name] == (sign == "+")

    def __getitem__(self, name: str) -> Any:
        return self.deps[name]


class FakeEnv:
    def __init__(self) -> None:
        self.values: Dict[str, str] = {}

    def set(self, name: str, value: Any) -> None:
        self.values[name] = str(value)

    def prepend_path(self, name: str, value: Any) -> None:
        self.values[name] = f"{value}:{self.values.get(name, '')}".rstrip(":")

    append_path = prepend_path


def _spec(mpi: bool, mpicxx: Optional[str] = "/opt/mpich-4.2/bin/mpicxx", fortran: bool = True) -> FakeSpec:
    deps = {"mpi": FakeMpiSpec("/opt/mpich-4.2", mpicxx)} if mpi else {}
    return FakeSpec({"mpi": mpi, "kafka": False, "fortran": fortran}, deps)


def _deps(rec: Recorder) -> Dict[str, List[Dict[str, Any]]]:
    """depends_on() calls by package name; each entry holds the full spec string too."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for args, kwargs in rec.of("depends_on"):
        name = args[0].split("@")[0].split("+")[0].split("~")[0]
        out.setdefault(name, []).append(dict(kwargs, spec=args[0]))
    return out


def _types(kwargs: Dict[str, Any]) -> Tuple[str, ...]:
    t = kwargs.get("type", ("build", "link"))
    return (t,) if isinstance(t, str) else tuple(t)


def test_recipe_imports_only_spack_package():
    tree = ast.parse(RECIPE.read_text(), filename=str(RECIPE))
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports, "the recipe should import from spack.package"
    for node in imports:
        assert isinstance(node, ast.ImportFrom) and node.module == "spack.package", ast.dump(node)


def test_repo_yaml_declares_a_namespace():
    text = (ROOT / "spack" / "repo.yaml").read_text()
    assert "repo:" in text and "namespace:" in text


def test_class_is_a_python_package(recipe):
    cls, _ = recipe
    assert cls.__name__ == "PyMofkaPy"
    assert cls.__mro__[1].__name__ == "PythonPackage"
    assert cls.git.endswith(".git")


def test_variants(recipe):
    _, rec = recipe
    variants = {args[0]: kwargs for args, kwargs in rec.of("variant")}
    assert variants["mpi"]["default"] is True
    assert "kafka" in variants and variants["kafka"]["default"] is False
    assert all(kw.get("description") for kw in variants.values())


@pytest.mark.parametrize("fortran", [True, False])
def test_fortran_variant_builds_the_module_or_not(recipe, fortran):
    cls, rec = recipe
    variants = {args[0]: kwargs for args, kwargs in rec.of("variant")}
    assert variants["fortran"]["default"] is True
    (fc,) = _deps(rec)["fortran"]
    assert fc["when"] == "+fortran" and _types(fc) == ("build",)
    spec = _spec(mpi=False, fortran=fortran)
    settings = cls(spec).config_settings(spec, "/opt/py-mofka-py")
    # ON: a missing Fortran compiler fails the build instead of leaving the module out.
    assert settings["cmake.define.MOFKA_PY_ENABLE_FORTRAN"] == ("ON" if fortran else "OFF")


def test_run_environment_points_pkg_config_at_the_c_api(recipe, tmp_path):
    cls, _ = recipe
    pc_dir = tmp_path / "lib" / "python3.11" / "site-packages" / "mofka_py" / "lib" / "pkgconfig"
    pc_dir.mkdir(parents=True)
    (pc_dir / "mofka_py_c.pc").write_text("Name: mofka_py_c\n")
    pkg = cls(_spec(mpi=False))
    pkg.prefix = str(tmp_path)
    env = FakeEnv()
    pkg.setup_run_environment(env)
    assert env.values["PKG_CONFIG_PATH"] == str(pc_dir)


def test_develop_version_from_git(recipe):
    cls, rec = recipe
    versions = {args[0]: kwargs for args, kwargs in rec.of("version")}
    assert "develop" in versions
    assert versions["develop"].get("branch") or versions["develop"].get("git")
    assert cls.git


def test_dependencies(recipe):
    _, rec = recipe
    deps = _deps(rec)
    assert [kw.get("when") for kw in deps["mpi"]] == ["+mpi"]
    (m4,) = deps["py-mpi4py"]
    assert m4["when"] == "+mpi" and {"build", "run"} <= set(_types(m4))
    (kafka,) = deps["py-confluent-kafka"]
    assert kafka["when"] == "+kafka" and "run" in _types(kafka)
    (sbc,) = deps["py-scikit-build-core"]
    assert "+pyproject" in sbc["spec"] and _types(sbc) == ("build",)
    (cmake,) = deps["cmake"]
    assert _types(cmake) == ("build",)
    (pybind11,) = deps["py-pybind11"]
    assert "build" in _types(pybind11)
    for runtime in ("py-numpy", "py-orjson"):
        (dep,) = deps[runtime]
        assert "run" in _types(dep) and "when" not in dep
    for test_dep in ("py-pytest", "py-hypothesis"):
        (dep,) = deps[test_dep]
        assert _types(dep) == ("test",)


def test_config_settings_with_mpi_use_spacks_mpi(recipe):
    cls, _ = recipe
    spec = _spec(mpi=True)
    settings = cls(spec).config_settings(spec, "/opt/py-mofka-py")
    assert settings["cmake.define.MOFKA_PY_ENABLE_MPI"] == "ON"
    assert settings["cmake.define.MPI_HOME"] == "/opt/mpich-4.2"
    assert settings["cmake.define.MPI_CXX_COMPILER"] == "/opt/mpich-4.2/bin/mpicxx"


def test_config_settings_without_mpicxx_still_set_mpi_home(recipe):
    cls, _ = recipe
    spec = _spec(mpi=True, mpicxx=None)
    settings = cls(spec).config_settings(spec, "/opt/py-mofka-py")
    assert settings["cmake.define.MPI_HOME"] == "/opt/mpich-4.2"
    assert "cmake.define.MPI_CXX_COMPILER" not in settings


def test_config_settings_without_mpi(recipe):
    cls, _ = recipe
    spec = _spec(mpi=False)
    settings = cls(spec).config_settings(spec, "/opt/py-mofka-py")
    assert settings["cmake.define.MOFKA_PY_ENABLE_MPI"] == "OFF"
    assert not any("MPI_HOME" in key or "MPI_CXX" in key for key in settings)


@pytest.mark.parametrize("mpi", [True, False])
def test_build_environment_sets_mpi_home(recipe, mpi):
    cls, _ = recipe
    env = FakeEnv()
    cls(_spec(mpi=mpi)).setup_build_environment(env)
    if mpi:
        assert env.values["MPI_HOME"] == "/opt/mpich-4.2"
    else:
        assert "MPI_HOME" not in env.values


def test_install_time_tests_run_the_unit_tests(recipe):
    cls, rec = recipe
    ran: List[tuple] = []
    python = types.SimpleNamespace(command=lambda *args, **kw: ran.append(args))
    spec = FakeSpec({"mpi": False, "kafka": False, "fortran": False}, {"python": python})
    pkg = cls(spec)
    pkg.stage = types.SimpleNamespace(source_path="/stage/src")
    pkg.run_unit_tests()
    (args,) = ran
    assert args[:2] == ("-m", "pytest") and "/stage/src/tests/unit" in args
    assert ("working_dir", ("spack-test",), {"create": True}) in rec.calls
