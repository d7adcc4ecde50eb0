# mofka-py's Spack recipe: spack repo add ./spack && spack install py-mofka-py ^<your mpi>
# See docs/install-supercomputer.md.

from spack.package import *


class PyMofkaPy(PythonPackage):
    """HPC-native event fabric for science: partitioned, persistent event logs
    with a C++ core, MPI and TCP transports and a Python API (pybind11)."""

    homepage = "https://github.com/mofka-py/mofka-py"
    git = "https://github.com/mofka-py/mofka-py.git"

    license("Apache-2.0")

    # No release tarball yet; releases will be added here with their sha256, named as in the
    # file VERSION of that release (the one version source: the Python package, the C++ package
    # and mofka_py.__version__ all read it).
    version("develop", branch="main")

    variant("mpi", default=True,
            description="MPI transport and mofka_py.mpi, linked against Spack's MPI (with py-mpi4py)")
    variant("kafka", default=False,
            description="Kafka sink/source of the bridge (py-confluent-kafka)")
    variant("fortran", default=True,
            description="Fortran 2008 module mofka_py (mofka_py.mod, libmofka_py_fortran) over the C API")

    # pyproject.toml requires no MPI: the build uses the MPI it finds (MPI_HOME first), and the
    # `mpich` wheel is only an extra. Here the MPI is Spack's `mpi` (MPI_HOME below, with
    # MOFKA_PY_ENABLE_MPI=ON so that a broken MPI stops the build), mpi4py is py-mpi4py built
    # for that same MPI, and ~mpi turns the MPI transport off.
    depends_on("cxx", type="build")
    depends_on("fortran", type="build", when="+fortran")
    depends_on("pkgconfig", type="run")
    depends_on("cmake@3.18:", type="build")
    depends_on("py-scikit-build-core@0.10:+pyproject", type="build")
    depends_on("py-pybind11@2.12:", type="build")
    depends_on("python@3.9:", type=("build", "run"))
    depends_on("py-numpy@1.22:", type=("build", "run"))
    depends_on("py-orjson@3.8:", type=("build", "run"))

    depends_on("mpi", when="+mpi")
    # Also a build dependency: the bindings include mpi4py.h to accept communicators.
    depends_on("py-mpi4py@4:", type=("build", "run"), when="+mpi")
    depends_on("py-confluent-kafka", type=("build", "run"), when="+kafka")

    # spack install --test=root
    depends_on("py-pytest@7:", type="test")
    depends_on("py-hypothesis@6:", type="test")

    # Importing mofka_py does not initialise MPI, so these are safe on a login node.
    import_modules = ["mofka_py", "mofka_py.api", "mofka_py.cli", "mofka_py.doctor"]

    def config_settings(self, spec, prefix):
        settings = {
            "cmake.build-type": "Release",
            "cmake.define.MOFKA_PY_ENABLE_MPI": "ON" if spec.satisfies("+mpi") else "OFF",
            # ON: a missing Fortran compiler is an error rather than a build without the module.
            "cmake.define.MOFKA_PY_ENABLE_FORTRAN": "ON" if spec.satisfies("+fortran") else "OFF",
        }
        if spec.satisfies("+mpi"):
            mpi = spec["mpi"]
            settings["cmake.define.MPI_HOME"] = str(mpi.prefix)
            # Cray MPICH has no mpicxx in its prefix: Spack points mpicxx at the CC wrapper.
            mpicxx = getattr(mpi, "mpicxx", None)
            if mpicxx:
                settings["cmake.define.MPI_CXX_COMPILER"] = str(mpicxx)
        return settings

    def setup_build_environment(self, env):
        # The extension must link the MPI that py-mpi4py loads, never another one found on
        # PATH: FindMpiForMofka.cmake takes MPI_HOME first and records it in
        # mofka_py._core.build_info["mpi_home"] (shown by `mofka-py doctor`).
        if self.spec.satisfies("+mpi"):
            env.set("MPI_HOME", str(self.spec["mpi"].prefix))

    def setup_run_environment(self, env):
        # The C API (mofka_py/mofka_py.h, libmofka_py_c) and the Fortran module ship inside the Python
        # package: after `spack load py-mofka-py`, `pkg-config --cflags --libs mofka_py_c` finds them
        # (the .pc file adds an rpath, so programs run without LD_LIBRARY_PATH).
        for pc in find(self.prefix, "mofka_py_c.pc"):
            env.prepend_path("PKG_CONFIG_PATH", pc.rsplit("/", 1)[0])

    @run_after("install")
    @on_package_attributes(run_tests=True)
    def run_unit_tests(self):
        """The unit tests against the installed package (run outside the source tree)."""
        source = self.stage.source_path
        with working_dir("spack-test", create=True):
            self.spec["python"].command(
                "-m", "pytest", "-q", "-c", join_path(source, "pyproject.toml"),
                "--rootdir", source, join_path(source, "tests", "unit"))
