# Locate the MPI that the extension must link: the one mpi4py loads at run time.
#  1. MPI_HOME (CMake variable or environment) — a system, Cray or Spack MPI;
#  2. otherwise the prefix of the `mpich` PyPI wheel installed beside the Python
#     that builds us (in the build environment or the venv);
#  3. otherwise whatever find_package(MPI) finds.
# Sets MOFKA_PY_HAVE_MPI, MOFKA_PY_MPI_LIBDIR, MOFKA_PY_MPI4PY_INCLUDE and the
# target mofka_py_mpi (the only code that includes <mpi.h>).
set(MOFKA_PY_HAVE_MPI OFF)
set(MOFKA_PY_MPI_LIBDIR "")
if(NOT MOFKA_PY_ENABLE_MPI)
  return()
endif()

if(NOT Python_EXECUTABLE)
  find_package(Python COMPONENTS Interpreter QUIET)
endif()

if(NOT MPI_HOME AND DEFINED ENV{MPI_HOME})
  set(MPI_HOME "$ENV{MPI_HOME}")
endif()

set(_mofka_mpi_from_wheel OFF)
if(NOT MPI_HOME AND Python_EXECUTABLE)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import importlib.metadata as m, pathlib\nfor f in m.files('mpich') or []:\n    if str(f).replace('\\\\','/').endswith('bin/mpicxx'):\n        print(pathlib.Path(f.locate()).resolve().parent.parent); break"
    OUTPUT_VARIABLE _mofka_wheel_prefix
    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_mofka_wheel_prefix AND EXISTS "${_mofka_wheel_prefix}/bin/mpicxx")
    set(MPI_HOME "${_mofka_wheel_prefix}")
    set(_mofka_mpi_from_wheel ON)
  endif()
endif()

if(MPI_HOME)
  if(EXISTS "${MPI_HOME}/bin/mpicxx")
    set(MPI_CXX_COMPILER "${MPI_HOME}/bin/mpicxx" CACHE FILEPATH "" FORCE)
  elseif(EXISTS "${MPI_HOME}/bin/mpic++")
    set(MPI_CXX_COMPILER "${MPI_HOME}/bin/mpic++" CACHE FILEPATH "" FORCE)
  endif()
  message(STATUS "mofka-py: MPI from ${MPI_HOME} (wheel: ${_mofka_mpi_from_wheel})")
endif()

find_package(MPI COMPONENTS CXX)
if(NOT MPI_CXX_FOUND)
  message(WARNING "mofka-py: no MPI found; building without the MPI transport. "
                  "pip install mpich, or set MPI_HOME to your MPI prefix.")
  return()
endif()

# mpicxx -show adds -Wl,-rpath,<prefix>/lib; for the wheel that prefix is pip's
# temporary build environment, deleted after the build. Drop it; the module
# gets an $ORIGIN-relative rpath instead (see CMakeLists.txt).
set_property(TARGET MPI::MPI_CXX PROPERTY INTERFACE_LINK_OPTIONS "")
if(NOT _mofka_mpi_from_wheel AND MPI_HOME)
  set(MOFKA_PY_MPI_LIBDIR "${MPI_HOME}/lib")
elseif(NOT _mofka_mpi_from_wheel AND MPI_CXX_LIBRARIES)
  list(GET MPI_CXX_LIBRARIES 0 _first_mpi_lib)
  get_filename_component(MOFKA_PY_MPI_LIBDIR "${_first_mpi_lib}" DIRECTORY)
endif()

file(GLOB MOFKA_PY_MPI_SOURCES CONFIGURE_DEPENDS csrc/src/transport/mpi/*.cpp)
add_library(mofka_py_mpi STATIC ${MOFKA_PY_MPI_SOURCES})
target_include_directories(mofka_py_mpi PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/csrc/include>
                                               $<INSTALL_INTERFACE:include> PRIVATE csrc/src)
set_target_properties(mofka_py_mpi PROPERTIES EXPORT_NAME mpi)
add_library(mofka_py::mpi ALIAS mofka_py_mpi)
target_link_libraries(mofka_py_mpi PUBLIC mofka_py_core MPI::MPI_CXX)
target_compile_definitions(mofka_py_mpi PUBLIC MOFKA_PY_MPI_HOME="${MPI_HOME}")
set(MOFKA_PY_HAVE_MPI ON)

if(Python_EXECUTABLE)
  execute_process(COMMAND "${Python_EXECUTABLE}" -c "import mpi4py; print(mpi4py.get_include())"
    OUTPUT_VARIABLE MOFKA_PY_MPI4PY_INCLUDE OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
