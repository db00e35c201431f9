# cmake -DLIB=libcrpc.so.X.Y.Z -DREADELF=readelf -DVERSION_H=crpc/version.h -P check_soname.cmake
#
# The shared library's soname is libcrpc.so.MAJOR.MINOR (0.x: a minor release may break the ABI)
# and its file name ends in MAJOR.MINOR.PATCH, both from the macros in crpc/version.h.
cmake_minimum_required(VERSION 3.18)
file(STRINGS "${VERSION_H}" _ver REGEX "^#define CRPC_VERSION_(MAJOR|MINOR|PATCH) ")
foreach(_part MAJOR MINOR PATCH)
  if(NOT _ver MATCHES "#define CRPC_VERSION_${_part} ([0-9]+)")
    message(FATAL_ERROR "check_soname: no CRPC_VERSION_${_part} in ${VERSION_H}")
  endif()
  set(_${_part} ${CMAKE_MATCH_1})
endforeach()


execute_process(COMMAND "${READELF}" -d "${LIB}" OUTPUT_VARIABLE _dyn RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0 OR NOT _dyn MATCHES "\\(SONAME\\)[^[]*\\[([^]]*)\\]")
  message(FATAL_ERROR "check_soname: no SONAME in ${LIB}")
endif()
set(_soname "${CMAKE_MATCH_1}")
set(_want "libcrpc.so.${_MAJOR}.${_MINOR}")
if(NOT _soname STREQUAL _want)
  message(FATAL_ERROR "check_soname: SONAME is ${_soname}, want ${_want}")
endif()
get_filename_component(_real "${LIB}" REALPATH)
get_filename_component(_name "${_real}" NAME)
if(NOT _name STREQUAL "${_want}.${_PATCH}")
  message(FATAL_ERROR "check_soname: the library file is ${_name}, want ${_want}.${_PATCH}")
endif()
message(STATUS "check_soname: ${_soname} (${_name})")
