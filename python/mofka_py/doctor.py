"""Is mofka-py using the same MPI as mpi4py? ``mofka-py doctor`` and the check behind it.

One process can use only one MPI library. The extension ``mofka_py._core`` is
linked against the MPI found at build time (``MPI_HOME``, Spack's ``mpi``, or
the ``mpich`` wheel); mpi4py was built for an MPI of its own. If the two differ
(Open MPI under one, MPICH under the other, or the pip MPICH next to a site
Cray MPICH), communicators handed from mpi4py to mofka-py are meaningless.
:func:`check_mpi_consistency` refuses that with a message saying how to
rebuild; ``mofka-py doctor`` prints what each side was built against and loads.

Nothing here imports mpi4py at module import time: ``import mofka_py`` must not
initialise MPI. :func:`check_mpi_consistency` and the doctor do.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import re
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import _core
from .errors import Error

__all__ = ["MpiLibrary", "MpiReport", "mpi_vendor", "mpi_summary", "compare_mpi", "inspect_mpi",
           "check_mpi_consistency", "add_parser"]

# Most specific first: Cray's string also says MPICH.
_VENDORS: Tuple[Tuple[str, str], ...] = (
    ("cray mpich", "Cray MPICH"),
    ("mvapich", "MVAPICH"),
    ("intel(r) mpi", "Intel MPI"),
    ("intel mpi", "Intel MPI"),
    ("spectrum mpi", "IBM Spectrum MPI"),
    ("open mpi", "Open MPI"),
    ("microsoft mpi", "Microsoft MPI"),
    ("mpich", "MPICH"),
)

# The Spack package providing each vendor's MPI, for the rebuild hint.
_SPACK_MPI = {"Cray MPICH": "cray-mpich", "MVAPICH": "mvapich2", "Intel MPI": "intel-oneapi-mpi",
              "IBM Spectrum MPI": "spectrum-mpi", "Open MPI": "openmpi", "MPICH": "mpich"}

_THREAD_LEVELS = ("MPI_THREAD_SINGLE", "MPI_THREAD_FUNNELED", "MPI_THREAD_SERIALIZED", "MPI_THREAD_MULTIPLE")


@dataclass(frozen=True)
class MpiLibrary:
    """One side's MPI: its ``MPI_Get_library_version()`` text and the file providing it (if known)."""

    version: str
    path: Optional[str] = None

    @property
    def vendor(self) -> str:
        return mpi_vendor(self.version)

    @property
    def summary(self) -> str:
        return mpi_summary(self.version)


def mpi_vendor(version: str) -> str:
    """The MPI implementation named by an ``MPI_Get_library_version()`` string.

    >>> mpi_vendor("Open MPI v4.1.5, package: Open MPI builder Distribution")
    'Open MPI'
    """
    low = version.lower()
    for needle, name in _VENDORS:
        if needle in low:
            return name
    return "unknown"


def mpi_summary(version: str) -> str:
    """Vendor and release number, e.g. ``"MPICH 4.2.0"``, from a library version string."""
    first = version.strip().splitlines()[0] if version.strip() else ""
    m = re.search(r"\d+(?:\.\d+)+[a-z0-9]*", first)
    vendor = mpi_vendor(version)
    if vendor == "unknown":
        return first or "unknown MPI"
    return f"{vendor} {m.group(0)}" if m else vendor


def _normalised(version: str) -> str:
    # MPI libraries pad the string with newlines and spaces differently per binding.
    return " ".join(version.split())


def compare_mpi(extension: MpiLibrary, mpi4py: MpiLibrary) -> List[str]:
    """Why ``mofka_py._core`` and mpi4py cannot share one process; empty when they can.

    A pure function of the two sides' version strings and library files.

    >>> compare_mpi(MpiLibrary("MPICH Version: 4.2.0"), MpiLibrary("MPICH Version: 4.2.0"))
    []
    """
    problems = []
    ext_vendor, m4_vendor = extension.vendor, mpi4py.vendor
    if ext_vendor != m4_vendor:
        problems.append(f"different MPI implementations: mofka_py._core uses {extension.summary}, "
                        f"mpi4py uses {mpi4py.summary}")
    elif _normalised(extension.version) != _normalised(mpi4py.version):
        problems.append(f"different MPI library versions: mofka_py._core uses {extension.summary}, "
                        f"mpi4py uses {mpi4py.summary}")
    if extension.path and mpi4py.path and extension.path != mpi4py.path:
        problems.append(f"two MPI libraries in one process: mofka_py._core calls {extension.path}, "
                        f"mpi4py calls {mpi4py.path}")
    return problems


@dataclass
class MpiReport:
    """What :func:`inspect_mpi` found; ``problems`` is empty when the two sides agree."""

    extension_file: str
    extension_mpi_home: str
    extension: MpiLibrary
    transports: Tuple[str, ...]
    mpi4py_version: str = ""
    mpi4py_file: str = ""
    mpi4py_build: str = ""
    mpi4py: Optional[MpiLibrary] = None
    thread_level: str = ""
    mapped: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.problems


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _provider(module_file: str, symbol: str = "MPI_Get_library_version") -> Optional[str]:
    """The file that provides ``symbol`` to the already loaded extension ``module_file``
    (dlsym through its dependencies, then dladdr), resolved to a real path."""
    try:
        lib = ctypes.CDLL(module_file)
        addr = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
        try:
            dladdr = ctypes.CDLL(None).dladdr
        except AttributeError:  # glibc before 2.34 keeps it in libdl
            dladdr = ctypes.CDLL("libdl.so.2").dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        info = _DlInfo()
        if not addr or not dladdr(addr, ctypes.byref(info)) or not info.dli_fname:
            return None
        return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError):
        return None


def _mapped_mpi_libraries() -> List[str]:
    """Real paths of the libmpi* / libmpich* files mapped into this process (Linux)."""
    found: List[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                path = parts[5].strip() if len(parts) == 6 else ""
                if re.search(r"/lib(mpi|mpich)[^/]*\.so", path):
                    real = os.path.realpath(path)
                    if real not in found:
                        found.append(real)
    except OSError:
        pass
    return found


def _under(path: str, prefix: str) -> bool:
    prefix = os.path.realpath(prefix)
    return os.path.commonpath([path, prefix]) == prefix


def _prefix_of(library: Optional[str]) -> str:
    if not library:
        return "<your MPI prefix>"
    libdir = os.path.dirname(library)
    return os.path.dirname(libdir) if os.path.basename(libdir) in ("lib", "lib64") else libdir


def _rebuild_hint(report: MpiReport) -> str:
    m4 = report.mpi4py
    spack_mpi = _SPACK_MPI.get(m4.vendor if m4 else "", "<mpi>")
    return ("Rebuild mofka-py against the MPI that mpi4py uses: "
            f"MPI_HOME={_prefix_of(m4.path if m4 else None)} pip install --no-build-isolation . "
            f"(from a mofka-py source tree), or with Spack: spack install py-mofka-py ^{spack_mpi} "
            "(the same MPI as py-mpi4py). Or rebuild mpi4py for mofka-py's MPI: "
            f"MPICC={report.extension_mpi_home or '<MPI_HOME>'}/bin/mpicc "
            "pip install --no-binary=mpi4py --force-reinstall mpi4py. "
            "See docs/install-supercomputer.md; `mofka-py doctor` shows both sides.")


def inspect_mpi() -> MpiReport:
    """Find the MPI that ``mofka_py._core`` and mpi4py use; imports (so initialises) ``mpi4py.MPI``.

    Raises :class:`mofka_py.Error` when this build has no MPI or mpi4py is missing.
    """
    info: Dict[str, Any] = dict(getattr(_core, "build_info", {}))
    if not info.get("mpi") or not hasattr(_core, "mpi_library_version"):
        raise Error("this mofka-py was built without MPI support; rebuild it with an MPI: "
                    "pip install mpich && pip install --no-build-isolation . , "
                    "MPI_HOME=<your MPI prefix> pip install --no-build-isolation . , "
                    "or spack install py-mofka-py +mpi")
    ext_file = os.path.realpath(_core.__file__)
    ext = MpiLibrary(_core.mpi_library_version(), _provider(ext_file))
    report = MpiReport(extension_file=ext_file, extension_mpi_home=str(info.get("mpi_home", "")),
                       extension=ext, transports=tuple(info.get("transports", ())))
    try:
        import mpi4py
        from mpi4py import MPI
    except ImportError as exc:
        raise Error(f"mpi4py cannot be imported ({exc}); install it for the MPI mofka-py uses "
                    f"({ext.summary}): pip install mpi4py, or spack install py-mofka-py +mpi") from None
    report.mpi4py_version = getattr(mpi4py, "__version__", "?")
    report.mpi4py_file = os.path.realpath(MPI.__file__)
    config = mpi4py.get_config() if hasattr(mpi4py, "get_config") else {}
    report.mpi4py_build = (f"mpicc={config['mpicc']}" if config.get("mpicc")
                           else f"binary wheel ({os.path.basename(MPI.__file__)})")
    report.mpi4py = MpiLibrary(MPI.Get_library_version(), _provider(report.mpi4py_file))
    if MPI.Is_initialized() and not MPI.Is_finalized():
        level = MPI.Query_thread()
        report.thread_level = _THREAD_LEVELS[level] if 0 <= level < len(_THREAD_LEVELS) else str(level)
        if level < MPI.THREAD_MULTIPLE:
            report.warnings.append(f"MPI gives {report.thread_level}; mofka-py's MPI transport calls MPI "
                                   "from its own threads and needs MPI_THREAD_MULTIPLE "
                                   "(mpi4py.rc.thread_level = 'multiple' before importing mpi4py.MPI)")
    else:
        report.thread_level = "MPI not initialised (mpi4py.rc.initialize is False)"
    report.mapped = _mapped_mpi_libraries()
    report.problems = compare_mpi(ext, report.mpi4py)
    home = report.extension_mpi_home
    if ext.path and home and os.path.isdir(home) and not _under(ext.path, home):
        report.warnings.append(f"mofka_py._core was built against MPI_HOME={home} but calls {ext.path} "
                               "(something loaded another MPI first, e.g. LD_LIBRARY_PATH or an "
                               "earlier import of mpi4py)")
    return report


def check_mpi_consistency() -> MpiReport:
    """Refuse to go on when mofka-py and mpi4py use different MPI libraries.

    Imports ``mpi4py.MPI`` (which initialises MPI). Returns the report when
    both sides agree; raises :class:`mofka_py.Error`, saying how to rebuild,
    when they do not.

    >>> from mofka_py.doctor import check_mpi_consistency
    >>> check_mpi_consistency().extension.summary   # doctest: +SKIP
    'MPICH 4.2.0'
    """
    report = inspect_mpi()
    if report.problems:
        raise Error("mofka-py and mpi4py use different MPI libraries: " + "; ".join(report.problems)
                    + ". " + _rebuild_hint(report))
    return report


def _print_report(report: MpiReport, ranks: List[Tuple[str, bool, List[str]]]) -> None:
    ext, m4 = report.extension, report.mpi4py
    home = report.extension_mpi_home
    if home and not os.path.isdir(home):
        home += "  (gone: the mpich wheel in pip's build environment)"
    rows = [
        ("mofka_py._core", report.extension_file),
        ("  built against", f"MPI_HOME={home}" if home else "?"),
        ("  calls", ext.path or "? (dladdr unavailable)"),
        ("  MPI library", ext.summary),
        ("  transports", ", ".join(report.transports) or "-"),
        (f"mpi4py {report.mpi4py_version}", report.mpi4py_file),
        ("  built against", report.mpi4py_build),
        ("  calls", (m4.path if m4 else None) or "? (dladdr unavailable)"),
        ("  MPI library", m4.summary if m4 else "?"),
        ("  thread level", report.thread_level),
        ("libmpi mapped", ", ".join(report.mapped) or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    print("mofka-py doctor: MPI of the extension and of mpi4py")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for text in report.warnings:
        print(f"warning: {text}")
    if len(ranks) > 1:
        hosts = len({host for host, _, _ in ranks})
        bad = [(i, host, problems) for i, (host, ok, problems) in enumerate(ranks) if not ok]
        print(f"ranks: {len(ranks)} on {hosts} host(s), {len(ranks) - len(bad)} consistent")
        for i, host, problems in bad:
            print(f"  rank {i} on {host}: " + "; ".join(problems))
    if all(ok for _, ok, _ in ranks):
        print(f"result: consistent, mofka_py._core and mpi4py both use {ext.summary}")
    else:
        for text in report.problems:
            print(f"problem: {text}")
        print("result: INCONSISTENT. " + _rebuild_hint(report))


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print which MPI the extension and mpi4py were built against and load; 0 if they agree."""
    report = inspect_mpi()
    from mpi4py import MPI

    mine = (socket.gethostname(), report.consistent, report.problems)
    ranks = [mine]
    comm = MPI.COMM_WORLD if MPI.Is_initialized() and not MPI.Is_finalized() else None
    if comm is not None and comm.Get_size() > 1:
        ranks = comm.gather(mine, root=0)
        ok = comm.bcast(all(r[1] for r in ranks) if comm.Get_rank() == 0 else None, root=0)
        if comm.Get_rank() != 0:
            return 0 if ok else 1
    _print_report(report, ranks)
    sys.stdout.flush()
    return 0 if all(r[1] for r in ranks) else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``mofka-py doctor`` on the CLI's subparsers."""
    p = subparsers.add_parser("doctor", help="check that mofka-py and mpi4py use the same MPI",
                              description="Print the MPI library mofka_py._core and mpi4py were built "
                                          "against and load at run time, the transports compiled in and "
                                          "MPI's thread level. Exit code 0 when consistent, 1 when not. "
                                          "Run it under your launcher too: srun -n 4 python -m mofka_py.cli doctor")
    p.set_defaults(func=cmd_doctor)
    return p
