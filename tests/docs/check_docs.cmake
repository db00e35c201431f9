# cmake -DROOT=<source dir> [-DGREETER=<dir of the generated greeter.crpc.h and .pb-c.h>]
#       -P check_docs.cmake
#
# The documentation stands alone and names what exists:
#  1. no Markdown file of the repository (but the benchmark record, see below) and no public
#     header refers to a file outside it (`../shared`, `DESIGN.md`), and every relative Markdown
#     link points to a file or directory that exists;
#  2. the comment of every CRPC_EXTERN function names as `*name` only its own parameters (a
#     comment that promised `*value_len` of a function without one would fail);
#  3. with GREETER: every generated name of the greeter example (`Helloworld__...`,
#     `helloworld__...`, `HELLOWORLD__...`) that a Markdown file or public header mentions is
#     defined by the generated greeter headers (the handler table is
#     `Helloworld__Greeter__Handlers`).
# All problems are listed.
cmake_minimum_required(VERSION 3.18)
if(NOT ROOT)
  message(FATAL_ERROR "check_docs: -DROOT=... is required")
endif()

set(_problems "")

file(GLOB _md RELATIVE "${ROOT}" "${ROOT}/*.md" "${ROOT}/docs/*.md" "${ROOT}/runtime/*.md"
     "${ROOT}/codegen/*.md" "${ROOT}/examples/*/*.md" "${ROOT}/tests/*/*.md" "${ROOT}/idl/*.md")
file(GLOB _headers RELATIVE "${ROOT}" "${ROOT}/runtime/include/crpc/*.h")
list(SORT _md)
list(SORT _headers)
if(NOT _md OR NOT _headers)
  message(FATAL_ERROR "check_docs: no Markdown file or no header under ${ROOT}")
endif()

# read_masked(<var> <file>): the file's text with ';' and brackets masked (CMake lists).
function(read_masked var file)
  file(READ "${file}" _t)
  string(REPLACE ";" "<SC>" _t "${_t}")
  string(REPLACE "[" "<LB>" _t "${_t}")
  string(REPLACE "]" "<RB>" _t "${_t}")
  set(${var} "${_t}" PARENT_SCOPE)
endfunction()

# ---- 1. standalone -------------------------------------------------------------------------------
set(_standalone ${_md} ${_headers})
foreach(_f ${_standalone})
  read_masked(_t "${ROOT}/${_f}")
  foreach(_outside "../shared" "DESIGN.md")
    string(FIND "${_t}" "${_outside}" _at)
    if(NOT _at EQUAL -1)
      string(APPEND _problems "\n${_f}: refers to `${_outside}`, which is outside the repository")
    endif()
  endforeach()
endforeach()
foreach(_f ${_md})
  read_masked(_t "${ROOT}/${_f}")
  get_filename_component(_dir "${ROOT}/${_f}" DIRECTORY)
  string(REGEX MATCHALL "<RB>\\(([^()# \t\n<>]+)(#[^() \t\n]*)?\\)" _links "${_t}")
  foreach(_l ${_links})
    string(REGEX REPLACE "^<RB>\\(([^()# \t\n<>]+).*$" "\\1" _target "${_l}")
    if(_target MATCHES "^[a-z]+:")
      continue() # http:, https:, mailto:
    endif()
    if(NOT EXISTS "${_dir}/${_target}")
      string(APPEND _problems "\n${_f}: link to `${_target}`, which does not exist")
    endif()
  endforeach()
endforeach()

# ---- 2. parameters named in the comments of CRPC_EXTERN functions --------------------------------
foreach(_h ${_headers})
  read_masked(_t "${ROOT}/${_h}")
  while(TRUE)
    string(FIND "${_t}" "CRPC_EXTERN " _at)
    if(_at EQUAL -1)
      break()
    endif()
    string(SUBSTRING "${_t}" 0 ${_at} _before)
    string(SUBSTRING "${_t}" ${_at} -1 _t)
    string(FIND "${_t}" "<SC>" _end)
    string(SUBSTRING "${_t}" 0 ${_end} _decl)
    math(EXPR _next "${_end} + 4")
    string(SUBSTRING "${_t}" ${_next} -1 _t)
    string(FIND "${_decl}" "(" _open)
    if(_open EQUAL -1 OR NOT _before MATCHES "\\*/[ \t\n]*$")
      continue() # an object, or a function without a comment right above it
    endif()
    string(FIND "${_before}" "/*" _cstart REVERSE)
    string(SUBSTRING "${_before}" ${_cstart} -1 _comment)
    string(SUBSTRING "${_decl}" 0 ${_open} _name)
    string(REGEX MATCH "[A-Za-z_][A-Za-z0-9_]*[ \t\n]*$" _name "${_name}")
    string(STRIP "${_name}" _name)
    string(SUBSTRING "${_decl}" ${_open} -1 _params)
    string(REGEX MATCHALL "[^A-Za-z0-9_/*]\\*[a-z_][a-z0-9_]*" _refs "${_comment}")
    foreach(_r ${_refs})
      string(REGEX REPLACE "^.\\*" "" _r "${_r}")
      if(NOT _params MATCHES "[^A-Za-z0-9_]${_r}[^A-Za-z0-9_]")
        string(APPEND _problems
               "\n${_h}: the comment of ${_name}() names `*${_r}`, "
               "which is not one of its parameters")
      endif()
    endforeach()
  endwhile()
endforeach()

# ---- 3. generated names of the greeter example ---------------------------------------------------
if(GREETER)
  set(_defined "")
  foreach(_g greeter.crpc.h greeter.pb-c.h)
    if(NOT EXISTS "${GREETER}/${_g}")
      message(FATAL_ERROR "check_docs: ${GREETER}/${_g} is missing (build the greeter example)")
    endif()
    read_masked(_t "${GREETER}/${_g}")
    string(APPEND _defined "${_t}")
  endforeach()
  foreach(_f ${_md} ${_headers})
    read_masked(_t "${ROOT}/${_f}")
    string(REGEX MATCHALL "(Helloworld|helloworld|HELLOWORLD)__[A-Za-z0-9_]+" _names "${_t}")
    list(REMOVE_DUPLICATES _names)
    foreach(_n ${_names})
      if(NOT _defined MATCHES "(^|[^A-Za-z0-9_])${_n}([^A-Za-z0-9_]|$)")
        string(APPEND _problems
               "\n${_f}: names `${_n}`, which the generated greeter headers do not define")
      endif()
    endforeach()
  endforeach()
endif()

if(_problems)
  message(FATAL_ERROR "check_docs:${_problems}")
endif()
list(LENGTH _md _nmd)
list(LENGTH _headers _nh)
message(STATUS "check_docs: ${_nmd} Markdown files and ${_nh} headers agree")
