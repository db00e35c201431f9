# cmake -DLIB=libcrpc.so -DNM=nm -DHEADERS=runtime/include/crpc -P check_exports.cmake
#
# The dynamic symbols libcrpc.so defines must be exactly the functions (and objects) that the
# public headers declare with CRPC_EXTERN: an extra one is an internal symbol leaking into the ABI,
# a missing one is a public function users cannot link.
cmake_minimum_required(VERSION 3.18)
foreach(_v LIB NM HEADERS)
  if(NOT ${_v})
    message(FATAL_ERROR "check_exports: -D${_v}=... is required")
  endif()
endforeach()


# Symbols the linker itself defines in every shared object; they are not crpc's.
set(_linker_symbols _init _fini _edata _end __bss_start)

# --- declared: the name in every `CRPC_EXTERN ... name(` / `CRPC_EXTERN ... name;` ------------
# strip_comments(<var>): removes /* ... */ and // ... comments from the text in <var>.
function(strip_comments var)
  set(_in "${${var}}")
  set(_out "")
  while(TRUE)
    string(FIND "${_in}" "/*" _open)
    if(_open EQUAL -1)
      break()
    endif()
    string(SUBSTRING "${_in}" 0 ${_open} _head)
    string(APPEND _out "${_head} ")
    math(EXPR _after "${_open} + 2")
    string(SUBSTRING "${_in}" ${_after} -1 _in)
    string(FIND "${_in}" "*/" _close)
    if(_close EQUAL -1)
      message(FATAL_ERROR "check_exports: unterminated comment")
    endif()
    math(EXPR _after "${_close} + 2")
    string(SUBSTRING "${_in}" ${_after} -1 _in)
  endwhile()
  string(APPEND _out "${_in}")
  string(REGEX REPLACE "//[^\n]*" "" _out "${_out}")
  set(${var} "${_out}" PARENT_SCOPE)
endfunction()

file(GLOB _headers "${HEADERS}/*.h")
if(NOT _headers)
  message(FATAL_ERROR "check_exports: no headers in ${HEADERS}")
endif()
set(_declared)
foreach(_h ${_headers})
  file(READ "${_h}" _text)
  strip_comments(_text)
  # Preprocessor lines (the #define of CRPC_EXTERN itself, X-macro tables) declare nothing.
  string(REGEX REPLACE "\\\\\n" " " _text "${_text}")
  string(REGEX REPLACE "(^|\n)[ \t]*#[^\n]*" "\n" _text "${_text}")
  string(REGEX MATCHALL "CRPC_EXTERN[^;]*;" _decls "${_text}")
  foreach(_d ${_decls})
    string(REGEX REPLACE "[ \t\n]+" " " _d "${_d}")
    if(_d MATCHES "^CRPC_EXTERN [^(]*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*) ?\\(")
      list(APPEND _declared "${CMAKE_MATCH_1}")           # a function
    elseif(_d MATCHES "([A-Za-z_][A-Za-z0-9_]*) ?(\\[[^]]*\\])? ?;$")
      list(APPEND _declared "${CMAKE_MATCH_1}")           # an object
    else()
      message(FATAL_ERROR "check_exports: cannot read the declaration `${_d}` in ${_h}")
    endif()
  endforeach()
endforeach()
list(REMOVE_DUPLICATES _declared)
list(SORT _declared)

# --- exported: what the dynamic symbol table defines -----------------------------------------
execute_process(COMMAND "${NM}" -D --defined-only "${LIB}"
  OUTPUT_VARIABLE _nm ERROR_VARIABLE _err RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "check_exports: ${NM} -D --defined-only ${LIB} failed: ${_err}")
endif()
string(REPLACE "\n" ";" _lines "${_nm}")
set(_exported)
foreach(_l ${_lines})
  # "<address> <type> <name>[@@VERSION]"
  if(_l MATCHES "^[0-9a-fA-F]* *[A-Za-z] ([^ @]+)")
    list(FIND _linker_symbols "${CMAKE_MATCH_1}" _i)
    if(_i EQUAL -1)
      list(APPEND _exported "${CMAKE_MATCH_1}")
    endif()
  endif()
endforeach()
list(REMOVE_DUPLICATES _exported)
list(SORT _exported)

# --- compare ---------------------------------------------------------------------------------
list(LENGTH _declared _nd)
if(_nd LESS 10 OR NOT "crpc_version" IN_LIST _declared)
  message(FATAL_ERROR "check_exports: found only ${_nd} declarations (${_declared}): "
                      "the header parser is broken")
endif()
set(_leaked ${_exported})
list(REMOVE_ITEM _leaked ${_declared})
set(_missing ${_declared})
if(_exported)
  list(REMOVE_ITEM _missing ${_exported})
endif()
if(_leaked OR _missing)
  string(REPLACE ";" "\n  " _leaked "${_leaked}")
  string(REPLACE ";" "\n  " _missing "${_missing}")
  message(FATAL_ERROR "check_exports: ${LIB} does not export exactly the CRPC_EXTERN API\n"
    "exported but not declared CRPC_EXTERN in ${HEADERS} (internal symbols leaking):\n  ${_leaked}\n"
    "declared CRPC_EXTERN but not exported (missing, or not built):\n  ${_missing}\n")
endif()
message(STATUS "check_exports: ${_nd} symbols, exactly the CRPC_EXTERN declarations")
