# cmake -DINCLUDE=runtime/include -DCC="gcc|clang" -DCXX="g++|clang++" -DWORK=<dir>
#       [-DFLAGS="-I/opt/uv/include|..."]
#       [-DGEN_DIRS="<dir>|..." -DGEN_HEADERS="a.crpc.h|..." -DGEN_CXX_HEADERS="a.crpc.h|..."]
#       -P check_headers.cmake
# (lists are joined with '|').
#
# Every public header (INCLUDE/crpc/*.h) compiles on its own, included twice, with every C compiler
# in CC under -std=c99 and -std=c11 and with every C++ compiler in CXX under -std=c++11, each with
# -Wall -Wextra -Wpedantic -Werror; so does <crpc/crpc.h> next to <uv.h> in either order (C99
# forbids a repeated typedef, C11 and C++ allow it). The generated headers GEN_HEADERS (relative
# to the GEN_DIRS, all on the include path) get the same C checks, and GEN_CXX_HEADERS the C++
# one, each also with -DCRPC_WARN_DEPRECATED (the deprecated aliases' attribute). The public
# headers are globbed, so crpc/types.h and crpc/gen.h are among them. All failures are listed.
cmake_minimum_required(VERSION 3.18)
foreach(_v INCLUDE CC WORK)
  if(NOT ${_v})
    message(FATAL_ERROR "check_headers: -D${_v}=... is required")
  endif()
endforeach()

foreach(_v CC CXX FLAGS GEN_DIRS GEN_HEADERS GEN_CXX_HEADERS)
  string(REPLACE "|" ";" ${_v} "${${_v}}")
endforeach()
set(_gen_includes)
foreach(_d ${GEN_DIRS})
  list(APPEND _gen_includes "-I${_d}")
endforeach()

file(GLOB _public RELATIVE "${INCLUDE}" "${INCLUDE}/crpc/*.h")
list(SORT _public)
if(NOT _public)
  message(FATAL_ERROR "check_headers: no header in ${INCLUDE}/crpc")
endif()
file(MAKE_DIRECTORY "${WORK}")

set(_warn -Wall -Wextra -Wpedantic -Werror -fsyntax-only)
set(_failures "")
set(_count 0)

# check(<compiler> <lang: c|c++> <std> <name> <source text> <extra flags...>)
function(check compiler lang std name text)
  string(MAKE_C_IDENTIFIER "${name}" _id)
  get_filename_component(_cname "${compiler}" NAME)
  if(lang STREQUAL "c")
    set(_src "${WORK}/${_id}.${_cname}.${std}.c")
  else()
    set(_src "${WORK}/${_id}.${_cname}.${std}.cc")
  endif()
  file(WRITE "${_src}" "${text}")
  execute_process(
    COMMAND "${compiler}" -x ${lang} -std=${std} ${_warn} "-I${INCLUDE}" ${FLAGS} ${ARGN} "${_src}"
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  math(EXPR _n "${_count} + 1")
  set(_count ${_n} PARENT_SCOPE)
  if(NOT _rc EQUAL 0)
    set(_failures "${_failures}\n--- ${_cname} -std=${std}: ${name}\n${_out}" PARENT_SCOPE)
  endif()
endfunction()

# A declaration after the includes: a header of macros only must not leave the unit empty.
set(_tail "typedef int crpc_header_check_unit;\n")

foreach(_h ${_public})
  set(_text "#include <${_h}>\n#include <${_h}>\n${_tail}")
  foreach(_cc ${CC})
    foreach(_std c99 c11)
      check("${_cc}" c ${_std} "${_h}" "${_text}")
    endforeach()
  endforeach()
  foreach(_cxx ${CXX})
    check("${_cxx}" c++ c++11 "${_h}" "${_text}")
  endforeach()
endforeach()

# Next to libuv: the loop type crpc declares must agree with <uv.h>'s, before and after it.
string(CONCAT _use "int crpc_header_check_use(crpc_server *srv)\n{\n"
                     "  uv_loop_t *loop = crpc_server_loop(srv);\n  return loop != NULL;\n}\n")
set(_uv_first "#include <uv.h>\n#include <crpc/crpc.h>\n${_use}")
set(_uv_last "#include <crpc/crpc.h>\n#include <uv.h>\n${_use}")
foreach(_cc ${CC})
  foreach(_std c99 c11)
    check("${_cc}" c ${_std} "uv.h then crpc/crpc.h" "${_uv_first}" -D_POSIX_C_SOURCE=200809L)
    check("${_cc}" c ${_std} "crpc/crpc.h then uv.h" "${_uv_last}" -D_POSIX_C_SOURCE=200809L)
  endforeach()
endforeach()
foreach(_cxx ${CXX})
  check("${_cxx}" c++ c++11 "uv.h then crpc/crpc.h" "${_uv_first}")
  check("${_cxx}" c++ c++11 "crpc/crpc.h then uv.h" "${_uv_last}")
endforeach()

foreach(_h ${GEN_HEADERS})
  set(_text "#include \"${_h}\"\n#include \"${_h}\"\n${_tail}")
  foreach(_cc ${CC})
    foreach(_std c99 c11)
      check("${_cc}" c ${_std} "generated ${_h}" "${_text}" ${_gen_includes})
      check("${_cc}" c ${_std} "generated ${_h} -DCRPC_WARN_DEPRECATED" "${_text}"
            ${_gen_includes} -DCRPC_WARN_DEPRECATED)
    endforeach()
  endforeach()
endforeach()
foreach(_h ${GEN_CXX_HEADERS})
  set(_text "#include \"${_h}\"\n#include \"${_h}\"\n${_tail}")
  foreach(_cxx ${CXX})
    check("${_cxx}" c++ c++11 "generated ${_h}" "${_text}" ${_gen_includes})
    check("${_cxx}" c++ c++11 "generated ${_h} -DCRPC_WARN_DEPRECATED" "${_text}"
          ${_gen_includes} -DCRPC_WARN_DEPRECATED)
  endforeach()
endforeach()

if(_failures)
  message(FATAL_ERROR "check_headers: failed to compile alone:${_failures}")
endif()
message(STATUS "check_headers: ${_count} compilations, all clean (C: ${CC}; C++: ${CXX})")
