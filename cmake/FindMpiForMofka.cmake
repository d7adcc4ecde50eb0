# Locate the MPI that the extension must link: the one mpi4py loads at run time.
#
# MOFKA_PY_ENABLE_MPI (CMake cache variable; the environment variable of that name wins when set):
#   AUTO (default)  build the MPI transport if an MPI is found, else build without it and say so;
#   ON              an MPI is required: the configure fails when none is found;
#   OFF             no MPI transport (embedded and TCP only).
#
# Where the MPI comes from, first match wins:
#   1. MPI_HOME (CMake variable or environment): a system, Cray or Spack MPI. On a Cray, the
#      cray-mpich module's CRAY_MPICH_DIR counts as MPI_HOME.
#   2. An MPI compiler wrapper (mpicxx, mpic++, mpiCC, mpicc) on PATH, as a loaded module puts
#      it there. A distribution's MPI under /usr is skipped when the `mpich` wheel is installed
#      beside the building Python: mpi4py would load the wheel's MPI, not that one (BUILD-NOTES).
#   3. The `mpich` PyPI wheel installed beside the Python that builds us (in the venv, or in the
#      build environment).
#   4. Whatever find_package(MPI) finds on its own (e.g. a compiler that is itself an MPI wrapper).
#
# Sets MOFKA_PY_HAVE_MPI, MOFKA_PY_MPI_LIBDIR, MOFKA_PY_MPI4PY_INCLUDE, MOFKA_PY_MPI_FOUND_BY and
# the target mofka_py_mpi (the only code that includes <mpi.h>).
set(MOFKA_PY_HAVE_MPI OFF)
set(MOFKA_PY_MPI_LIBDIR "")
set(MOFKA_PY_MPI_FOUND_BY "")

include(${CMAKE_CURRENT_LIST_DIR}/AutoOption.cmake)
mofka_py_auto_option(MOFKA_PY_ENABLE_MPI "Build the MPI transport: AUTO (if an MPI is found), ON (required) or OFF")
set(_mofka_mpi_mode "${MOFKA_PY_ENABLE_MPI_MODE}")
if(_mofka_mpi_mode STREQUAL "AUTO")
  set(_mofka_mpi_required OFF)
elseif(MOFKA_PY_ENABLE_MPI)
  set(_mofka_mpi_required ON)
else()
  message(STATUS "mofka-py: MPI transport off (MOFKA_PY_ENABLE_MPI=${MOFKA_PY_ENABLE_MPI})")
  return()
endif()

if(NOT Python_EXECUTABLE)
  find_package(Python COMPONENTS Interpreter QUIET)
endif()

# The mpich wheel's prefix, if that wheel is installed beside the building Python.
set(_mofka_wheel_prefix "")
if(Python_EXECUTABLE)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import importlib.metadata as m, pathlib\nfor f in m.files('mpich') or []:\n    if str(f).replace('\\\\','/').endswith('bin/mpicxx'):\n        print(pathlib.Path(f.locate()).resolve().parent.parent); break"
    OUTPUT_VARIABLE _mofka_wheel_prefix
    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_mofka_wheel_prefix AND NOT EXISTS "${_mofka_wheel_prefix}/bin/mpicxx")
    set(_mofka_wheel_prefix "")
  endif()
endif()

# 1. MPI_HOME
if(NOT MPI_HOME AND DEFINED ENV{MPI_HOME} AND NOT "$ENV{MPI_HOME}" STREQUAL "")
  set(MPI_HOME "$ENV{MPI_HOME}")
endif()
if(MPI_HOME)
  set(MOFKA_PY_MPI_FOUND_BY "MPI_HOME")
elseif(DEFINED ENV{CRAY_MPICH_DIR} AND NOT "$ENV{CRAY_MPICH_DIR}" STREQUAL "")
  set(MPI_HOME "$ENV{CRAY_MPICH_DIR}")
  set(MOFKA_PY_MPI_FOUND_BY "the cray-mpich module (CRAY_MPICH_DIR)")
endif()

# 2. A wrapper on PATH (a loaded module)
set(_mofka_skipped_system_mpi "")
if(NOT MOFKA_PY_MPI_FOUND_BY)
  unset(MOFKA_PY_PATH_MPI_WRAPPER CACHE)
  find_program(MOFKA_PY_PATH_MPI_WRAPPER NAMES mpicxx mpic++ mpiCC mpicc NAMES_PER_DIR PATHS ENV PATH NO_DEFAULT_PATH)
  if(MOFKA_PY_PATH_MPI_WRAPPER)
    get_filename_component(_mofka_path_bin "${MOFKA_PY_PATH_MPI_WRAPPER}" DIRECTORY)
    get_filename_component(_mofka_path_prefix "${_mofka_path_bin}" DIRECTORY)
    get_filename_component(_mofka_path_prefix_real "${_mofka_path_prefix}" REALPATH)
    if(_mofka_wheel_prefix AND _mofka_path_prefix_real STREQUAL _mofka_wheel_prefix)
      # The wheel's own wrapper (an activated venv): step 3 takes it.
    elseif(_mofka_wheel_prefix AND _mofka_path_prefix_real MATCHES "^(/usr|/usr/local|/)$")
      set(_mofka_skipped_system_mpi "${MOFKA_PY_PATH_MPI_WRAPPER}")
    else()
      set(MPI_HOME "${_mofka_path_prefix}")
      set(MOFKA_PY_MPI_FOUND_BY "${MOFKA_PY_PATH_MPI_WRAPPER} on PATH")
    endif()
  endif()
  unset(MOFKA_PY_PATH_MPI_WRAPPER CACHE)
endif()

# 3. The mpich wheel
set(_mofka_mpi_from_wheel OFF)
if(NOT MOFKA_PY_MPI_FOUND_BY AND _mofka_wheel_prefix)
  set(MPI_HOME "${_mofka_wheel_prefix}")
  set(_mofka_mpi_from_wheel ON)
  set(MOFKA_PY_MPI_FOUND_BY "the mpich wheel of ${Python_EXECUTABLE}")
  if(_mofka_skipped_system_mpi)
    message(STATUS "mofka-py: not using ${_mofka_skipped_system_mpi} (a system MPI; mpi4py loads the mpich "
                   "wheel's MPI). Set MPI_HOME to use a system MPI.")
  endif()
endif()

if(MPI_HOME)
  foreach(_wrapper mpicxx mpic++ mpiCC)
    if(EXISTS "${MPI_HOME}/bin/${_wrapper}")
      set(MPI_CXX_COMPILER "${MPI_HOME}/bin/${_wrapper}" CACHE FILEPATH "" FORCE)
      break()
    endif()
  endforeach()
elseif(NOT MOFKA_PY_MPI_FOUND_BY)
  # 4. find_package(MPI) on its own
  set(MOFKA_PY_MPI_FOUND_BY "find_package(MPI)")
endif()

find_package(MPI COMPONENTS CXX QUIET)
if(NOT MPI_CXX_FOUND)
  if(MPI_HOME)
    set(_mofka_looked "${MOFKA_PY_MPI_FOUND_BY} gave ${MPI_HOME}, which holds no usable MPI")
  else()
    set(_mofka_looked "MPI_HOME not set, no mpicxx/mpic++/mpiCC/mpicc on PATH, no mpich wheel for ${Python_EXECUTABLE}, find_package(MPI) found nothing")
  endif()
  if(_mofka_mpi_required)
    message(FATAL_ERROR
      "mofka-py: MOFKA_PY_ENABLE_MPI=${MOFKA_PY_ENABLE_MPI} but no usable MPI C++ library was found "
      "(${_mofka_looked}). Set MPI_HOME to your MPI's prefix (the directory holding bin/mpicxx, "
      "include/mpi.h, lib/libmpi.so), load your site's MPI module, or `pip install mpich` into the build "
      "environment; or configure with MOFKA_PY_ENABLE_MPI=AUTO or OFF to build without the MPI transport.")
  endif()
  message(WARNING
    "mofka-py: no MPI found; building WITHOUT the MPI transport (mofka_py.mpi will raise mofka_py.Error). "
    "To build it: set MPI_HOME to your MPI prefix, load an MPI module, or `pip install mpich mpi4py` "
    "first and build with --no-build-isolation. MOFKA_PY_ENABLE_MPI=ON makes a missing MPI an error.")
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
message(STATUS "mofka-py: MPI transport ON: MPI ${MPI_CXX_VERSION}, ${MPI_CXX_COMPILER}, found by ${MOFKA_PY_MPI_FOUND_BY}")

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
