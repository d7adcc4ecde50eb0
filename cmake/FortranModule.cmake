# The Fortran module `mofka_py` (csrc/fortran/mofka_py.f90): iso_c_binding interfaces over the C
# API, built as libmofka_py_fortran (linking mofka_py_c) plus the compiled module mofka_py.mod.
#
# MOFKA_PY_ENABLE_FORTRAN (CMake cache variable; the environment variable of that name wins when set):
#   AUTO (default) build it when a Fortran compiler is found, skip it otherwise;
#   ON   build it, fail when no Fortran compiler is found;
#   OFF  never build it.
# Sets MOFKA_PY_HAVE_FORTRAN (ON/OFF) for the caller (the C++ package exports mofka_py_fortran
# as mofka_py::fortran when it is ON).
#
# Installed: by the Python build (SKBUILD_PROJECT_NAME) the library in mofka_py/lib next to
# libmofka_py_c and mofka_py.mod in mofka_py/include (mofka_py.capi finds both); by
# `cmake --install` the module in CMAKE_INSTALL_INCLUDEDIR (the library itself is installed with
# the other exported targets by the caller). A .mod file is specific to the compiler (and its
# version) that wrote it: Fortran programs using it must be built with the same compiler.

include(${CMAKE_CURRENT_LIST_DIR}/AutoOption.cmake)
mofka_py_auto_option(MOFKA_PY_ENABLE_FORTRAN
                     "Build the Fortran module over the C API: AUTO (when a Fortran compiler is found), ON or OFF")
set(_mofka_fortran_mode "${MOFKA_PY_ENABLE_FORTRAN_MODE}")
if(_mofka_fortran_mode MATCHES "^(1|TRUE|YES|Y)$")
  set(_mofka_fortran_mode ON)
elseif(_mofka_fortran_mode MATCHES "^(0|FALSE|NO|N)$")
  set(_mofka_fortran_mode OFF)
endif()
if(NOT _mofka_fortran_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "MOFKA_PY_ENABLE_FORTRAN must be AUTO, ON or OFF, not '${MOFKA_PY_ENABLE_FORTRAN}'")
endif()

set(MOFKA_PY_HAVE_FORTRAN OFF)
set(_mofka_fortran_why "")
if(_mofka_fortran_mode STREQUAL "OFF")
  set(_mofka_fortran_why "MOFKA_PY_ENABLE_FORTRAN=OFF")
else()
  include(CheckLanguage)
  check_language(Fortran)
  if(CMAKE_Fortran_COMPILER)
    set(MOFKA_PY_HAVE_FORTRAN ON)
  elseif(_mofka_fortran_mode STREQUAL "ON")
    message(FATAL_ERROR "MOFKA_PY_ENABLE_FORTRAN=ON but no Fortran compiler was found: install one "
                        "(e.g. apt-get install gfortran) or point FC / CMAKE_Fortran_COMPILER at it, "
                        "or set MOFKA_PY_ENABLE_FORTRAN=AUTO or OFF")
  else()
    set(_mofka_fortran_why "no Fortran compiler found (install gfortran, or set FC; MOFKA_PY_ENABLE_FORTRAN=ON "
                           "makes this an error)")
  endif()
endif()

if(MOFKA_PY_HAVE_FORTRAN)
  enable_language(Fortran)
  set(MOFKA_PY_FORTRAN_MODULE_DIR "${CMAKE_CURRENT_BINARY_DIR}/fortran-modules")
  add_library(mofka_py_fortran SHARED csrc/fortran/mofka_py.f90)
  add_library(mofka_py::fortran ALIAS mofka_py_fortran)
  # PUBLIC: programs call the bind(c) interfaces of the module, i.e. libmofka_py_c itself.
  target_link_libraries(mofka_py_fortran PUBLIC mofka_py_c)
  target_include_directories(mofka_py_fortran PUBLIC $<BUILD_INTERFACE:${MOFKA_PY_FORTRAN_MODULE_DIR}>
                                                     $<INSTALL_INTERFACE:include>)
  set_target_properties(mofka_py_fortran PROPERTIES EXPORT_NAME fortran
                        Fortran_MODULE_DIRECTORY "${MOFKA_PY_FORTRAN_MODULE_DIR}")
  if(CMAKE_Fortran_COMPILER_ID STREQUAL "GNU")
    # The module is standard Fortran 2008 (iso_c_binding only): keep it so.
    target_compile_options(mofka_py_fortran PRIVATE -std=f2008 -Wall -Wextra)
  endif()
  if(SKBUILD_PROJECT_NAME)
    # In the wheel: next to libmofka_py_c, found through $ORIGIN (one file: wheels hold no symlinks).
    set_target_properties(mofka_py_fortran PROPERTIES INSTALL_RPATH "$ORIGIN" BUILD_WITH_INSTALL_RPATH ON)
    install(TARGETS mofka_py_fortran LIBRARY DESTINATION mofka_py/lib)
    install(FILES "${MOFKA_PY_FORTRAN_MODULE_DIR}/mofka_py.mod" DESTINATION mofka_py/include)
  else()
    include(GNUInstallDirs)
    set_target_properties(mofka_py_fortran PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${MOFKA_PY_C_ABI_MAJOR}
                          INSTALL_RPATH "$ORIGIN")
    # The library is installed (and exported as mofka_py::fortran) with the other targets.
    install(FILES "${MOFKA_PY_FORTRAN_MODULE_DIR}/mofka_py.mod" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
  message(STATUS "mofka-py: Fortran module: built (${CMAKE_Fortran_COMPILER_ID} ${CMAKE_Fortran_COMPILER_VERSION}, "
                 "${CMAKE_Fortran_COMPILER})")
else()
  message(STATUS "mofka-py: Fortran module: not built: ${_mofka_fortran_why}")
endif()
