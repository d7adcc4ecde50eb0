# CTest test `installed_package`: install this build into a scratch prefix, then configure,
# build and run tests/cpp/package_consumer against it with find_package(mofka_py CONFIG).
# Arguments (-D): MOFKA_PY_BUILD, MOFKA_PY_CONSUMER, MOFKA_PY_WORK, MOFKA_PY_VERSION, MOFKA_PY_GENERATOR.
file(REMOVE_RECURSE "${MOFKA_PY_WORK}")
set(_prefix "${MOFKA_PY_WORK}/prefix")
set(_build "${MOFKA_PY_WORK}/build")

function(_run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${what}: OK")
  set(_last_output "${out}" PARENT_SCOPE)
endfunction()

_run("install" "${CMAKE_COMMAND}" --install "${MOFKA_PY_BUILD}" --prefix "${_prefix}")
if(NOT EXISTS "${_prefix}/include/mofka_py/Version.hpp")
  message(FATAL_ERROR "mofka_py/Version.hpp was not installed")
endif()
_run("configure the consumer" "${CMAKE_COMMAND}" -S "${MOFKA_PY_CONSUMER}" -B "${_build}" -G "${MOFKA_PY_GENERATOR}"
     "-DCMAKE_PREFIX_PATH=${_prefix}" "-DMOFKA_PY_EXPECTED_VERSION=${MOFKA_PY_VERSION}" -DCMAKE_BUILD_TYPE=Release)
_run("build the consumer" "${CMAKE_COMMAND}" --build "${_build}")
_run("run the consumer" "${_build}/consumer")
message(STATUS "${_last_output}")
_run("run the C API consumer" "${_build}/c_consumer")
message(STATUS "${_last_output}")
if(NOT EXISTS "${_prefix}/include/mofka_py/mofka_py.h")
  message(FATAL_ERROR "mofka_py/mofka_py.h was not installed")
endif()
file(GLOB _pc "${_prefix}/lib*/pkgconfig/mofka_py_c.pc")
if(NOT _pc)
  message(FATAL_ERROR "the pkg-config file mofka_py_c.pc was not installed")
endif()
