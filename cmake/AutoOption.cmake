# mofka_py_auto_option(NAME DOC): the cache option NAME, AUTO (default), ON or OFF, which the environment
# variable of the same name overrides when set (pip builds pass settings that way and reuse their build
# directory). Sets NAME_MODE in the caller to the value in upper case; each caller says what it accepts.
include_guard(GLOBAL)
function(mofka_py_auto_option name doc)
  set(${name} "AUTO" CACHE STRING "${doc}")
  if(DEFINED ENV{${name}} AND NOT "$ENV{${name}}" STREQUAL "")
    set(${name} "$ENV{${name}}" CACHE STRING "" FORCE)
  endif()
  set_property(CACHE ${name} PROPERTY STRINGS AUTO ON OFF)
  string(TOUPPER "${${name}}" mode)
  set(${name}_MODE "${mode}" PARENT_SCOPE)
endfunction()
