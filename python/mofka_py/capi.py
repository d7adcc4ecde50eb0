"""Where the C and Fortran API of this installation live, and a cffi handle on it.

The C API (``mofka_py/mofka_py.h``, ``libmofka_py_c``) ships inside the package: ``include/``
holds the header (and the Fortran module ``mofka_py.mod`` when gfortran built it), ``lib/``
the libraries and ``lib/pkgconfig/mofka_py_c.pc``. Build a C program against it with::

    cc sim.c $(mofka-py capi --cflags --libs)

or ``PKG_CONFIG_PATH=$(mofka-py capi --pkg-config-path) pkg-config --cflags --libs mofka_py_c``.
From Python, :func:`load` opens the library with cffi in ABI mode (the tests drive every C
function that way).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Tuple

from .errors import Error

__all__ = ["package_dir", "include_dir", "library_dir", "library_path", "header_path", "pkg_config_dir",
           "fortran_library_path", "cdef", "load", "compile_flags", "link_flags", "fortran_link_flags"]


def package_dir() -> Path:
    """The installed ``mofka_py`` package directory."""
    return Path(__file__).resolve().parent


def include_dir() -> Path:
    """The directory to put on the include path (holds ``mofka_py/mofka_py.h``)."""
    return package_dir() / "include"


def library_dir() -> Path:
    """The directory holding ``libmofka_py_c.so`` (and ``libmofka_py_fortran.so``)."""
    return package_dir() / "lib"


def header_path() -> Path:
    """The C header ``mofka_py/mofka_py.h``."""
    return include_dir() / "mofka_py" / "mofka_py.h"


def pkg_config_dir() -> Path:
    """The directory of ``mofka_py_c.pc`` (for ``PKG_CONFIG_PATH``)."""
    return library_dir() / "pkgconfig"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise Error(f"{what} is not in this installation ({path}); reinstall mofka-py from source "
                    "(scripts/bootstrap.sh or pip install --no-build-isolation .)")
    return path


def library_path() -> Path:
    """The shared library of the C API."""
    return _need(library_dir() / "libmofka_py_c.so", "the C API library libmofka_py_c.so")


def fortran_library_path() -> Optional[Path]:
    """The Fortran module's library, or None when no Fortran compiler was found at build time."""
    p = library_dir() / "libmofka_py_fortran.so"
    return p if p.exists() else None


def compile_flags() -> str:
    """Compiler flags for a C program (the include directory; also where ``mofka_py.mod`` is)."""
    return f"-I{include_dir()}"


def link_flags() -> str:
    """Linker flags for a C program (with an rpath, so it runs without LD_LIBRARY_PATH)."""
    lib = library_dir()
    return f"-L{lib} -Wl,-rpath,{lib} -lmofka_py_c"


def cdef(header: Optional[Path] = None) -> str:
    """The header's declarations as cffi's ``cdef`` takes them (between its cffi markers)."""
    text = _need(header or header_path(), "the C header mofka_py.h").read_text()
    start, end = text.find("/* cffi-begin"), text.find("/* cffi-end */")
    if start < 0 or end < 0:
        raise Error("mofka_py.h has no cffi-begin/cffi-end markers; it is not the header of this package")
    body = text[text.index("*/", start) + 2:end]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    body = body.replace("MOFKA_PY_API ", "")
    return body


def load(path: Optional[Path] = None) -> Tuple[Any, Any]:
    """Open the C library with cffi (ABI mode): returns ``(ffi, lib)``. Needs the ``cffi`` package."""
    try:
        import cffi
    except ImportError as e:  # pragma: no cover - cffi is a test dependency
        raise Error("mofka_py.capi.load needs cffi: pip install cffi") from e
    ffi = cffi.FFI()
    ffi.cdef(cdef())
    lib = ffi.dlopen(str(path or library_path()))
    return ffi, lib


def fortran_link_flags() -> str:
    """Linker flags for a Fortran program using the module ``mofka_py``."""
    lib = library_dir()
    return f"-L{lib} -Wl,-rpath,{lib} -lmofka_py_fortran -lmofka_py_c"


def add_parser(subparsers: Any) -> Any:
    """Register ``mofka-py capi`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "capi", help="compiler and linker flags for the C and Fortran API",
        description="Print what a C or Fortran program needs to use this installation's C API "
                    "(mofka_py/mofka_py.h, libmofka_py_c) or Fortran module (mofka_py.mod, libmofka_py_fortran): "
                    "cc sim.c $(mofka-py capi --cflags --libs); gfortran sim.f90 $(mofka-py capi --cflags "
                    "--fortran-libs). Without options: a summary of what is installed.")
    p.add_argument("--cflags", action="store_true", help="the include flag (header and Fortran module)")
    p.add_argument("--libs", action="store_true", help="linker flags for the C library (with an rpath)")
    p.add_argument("--fortran-libs", action="store_true", help="linker flags for the Fortran module's library")
    p.add_argument("--pkg-config-path", action="store_true", help="the directory of mofka_py_c.pc")
    p.set_defaults(func=_cmd_capi)
    return p


def _cmd_capi(args: Any) -> int:
    words = []
    if args.cflags:
        _need(header_path(), "the C header mofka_py.h")
        words.append(compile_flags())
    if args.libs:
        library_path()
        words.append(link_flags())
    if args.fortran_libs:
        if fortran_library_path() is None:
            raise Error("this installation has no Fortran module: no Fortran compiler was found when it was "
                        "built. Install one (e.g. apt-get install gfortran) and reinstall mofka-py")
        words.append(fortran_link_flags())
    if args.pkg_config_path:
        words.append(str(pkg_config_dir()))
    if words:
        print(" ".join(words))
        return 0
    fortran = fortran_library_path()
    print(f"header:          {header_path()}{'' if header_path().exists() else ' (missing)'}")
    lib = library_dir() / "libmofka_py_c.so"
    print(f"C library:       {lib}{'' if lib.exists() else ' (missing)'}")
    print(f"Fortran library: {fortran if fortran else 'not built (no Fortran compiler at build time)'}")
    print(f"pkg-config:      PKG_CONFIG_PATH={pkg_config_dir()} pkg-config --cflags --libs mofka_py_c")
    return 0
