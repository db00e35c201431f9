# crpc_generate(): generate protobuf-c messages and crpc stubs for .proto files and add them to a
# target.
#
#   crpc_generate(TARGET <target> PROTOS <a.proto> [<b.proto> ...]
#                 [IMPORT_DIRS <dir> ...] [OUT_DIR <dir>] [LINK <library>])
#
# For every <dir>/<rel>.proto in PROTOS (<dir> being the first IMPORT_DIRS entry that contains it)
# protoc runs once, with protoc-c and protoc-gen-crpc, writing
#   OUT_DIR/<rel>.pb-c.h  OUT_DIR/<rel>.pb-c.c  OUT_DIR/<rel>.crpc.h  OUT_DIR/<rel>.crpc.c
# (the .crpc pair is written for every file, also without services; neither pair for a file
# that sets option (pb_c_file).no_generate = true, as protoc-c writes nothing for it). All four
# are added to <target>'s sources, OUT_DIR to its include path (PUBLIC), and <target> is linked
# (PUBLIC) to LINK (default: the in-tree `crpc` target, else crpc::crpc).
#
# Imports. protoc-c's <rel>.pb-c.h includes the .pb-c.h of every file <rel>.proto imports, so
# those must be generated and compiled too. crpc_generate() finds them itself: at configure time
# it asks protoc for each proto's transitive imports (--dependency_out) and generates the
# protobuf-c pair (no crpc pair) of every import that PROTOS does not list, including
# google/protobuf/*.proto (Debian's libprotobuf-c ships no code for them), but not of an import
# that sets no_generate (protobuf-c/protobuf-c.proto, whose options a .proto imports to set
# c_package or no_generate: protoc-c writes no code for it, nor includes it). An import that an
# earlier crpc_generate() call generated for another library target is not generated again:
# <target> is linked to that library instead (one program, one copy of empty.pb-c.c). The
# directory holding google/protobuf/*.proto is always searched last.
#
# Defaults: IMPORT_DIRS: the directory of each proto. OUT_DIR: ${CMAKE_CURRENT_BINARY_DIR}/
# <target>_crpc. Changing a .proto re-runs CMake (to see new imports) and regenerates; so does
# rebuilding the plugin.
#
# Tools: CRPC_PROTOC (protoc), CRPC_PROTOC_GEN_C (protoc-gen-c) and CRPC_PROTOC_GEN_CRPC
# (protoc-gen-crpc; by default the in-tree target `protoc-gen-crpc`, then an imported
# crpc::protoc-gen-crpc target, then one found on PATH) may be set to override.
include_guard(GLOBAL)

function(_crpc_find_tools)
  find_program(CRPC_PROTOC protoc REQUIRED)
  find_program(CRPC_PROTOC_GEN_C protoc-gen-c REQUIRED)
  find_path(CRPC_PROTOBUF_INCLUDE_DIR google/protobuf/empty.proto
    HINTS /usr/include /usr/local/include REQUIRED)
endfunction()

# _crpc_plugin(<path-var> <depends-var>): the plugin to run and what the command depends on.
function(_crpc_plugin path_var dep_var)
  if(CRPC_PROTOC_GEN_CRPC)
    set(_path "${CRPC_PROTOC_GEN_CRPC}")
    set(_dep "${CRPC_PROTOC_GEN_CRPC}")
  elseif(TARGET protoc-gen-crpc)
    set(_path "$<TARGET_FILE:protoc-gen-crpc>")
    set(_dep protoc-gen-crpc)
  elseif(TARGET crpc::protoc-gen-crpc)
    set(_path "$<TARGET_FILE:crpc::protoc-gen-crpc>")
    set(_dep crpc::protoc-gen-crpc)
  else()
    find_program(_crpc_plugin_exe protoc-gen-crpc REQUIRED)
    set(_path "${_crpc_plugin_exe}")
    set(_dep "${_crpc_plugin_exe}")
  endif()
  set(${path_var} "${_path}" PARENT_SCOPE)
  set(${dep_var} "${_dep}" PARENT_SCOPE)
endfunction()

# _crpc_relative(<out-var> <abs-file> <dirs...>): the file's name relative to the first dir
# that contains it, as protoc names it; empty when none does.
function(_crpc_relative out_var file)
  set(_rel "")
  foreach(_dir ${ARGN})
    string(LENGTH "${_dir}/" _len)
    string(SUBSTRING "${file}" 0 ${_len} _head)
    if(_head STREQUAL "${_dir}/")
      string(SUBSTRING "${file}" ${_len} -1 _rel)
      break()
    endif()
  endforeach()
  set(${out_var} "${_rel}" PARENT_SCOPE)
endfunction()

# _crpc_imports(<out-var> <abs-proto> <include-flags...>): the absolute paths of every file the
# proto imports, directly or not (protoc --dependency_out, at configure time).
function(_crpc_imports out_var proto)
  string(MD5 _key "${proto}")
  set(_tmp "${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/crpc_generate/${_key}")
  file(MAKE_DIRECTORY "${_tmp}")
  execute_process(
    COMMAND "${CRPC_PROTOC}" ${ARGN} "--dependency_out=${_tmp}/deps.d"
            "--descriptor_set_out=${_tmp}/set.pb" "${proto}"
    RESULT_VARIABLE _rc ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "crpc_generate: protoc cannot parse ${proto}:\n${_err}")
  endif()
  file(READ "${_tmp}/deps.d" _deps)
  string(FIND "${_deps}" ": " _colon)
  math(EXPR _colon "${_colon} + 2")
  string(SUBSTRING "${_deps}" ${_colon} -1 _deps)
  string(REPLACE "\\\n" ";" _deps "${_deps}")
  set(_list)
  foreach(_d ${_deps})
    string(STRIP "${_d}" _d)
    get_filename_component(_d "${_d}" ABSOLUTE)
    if(NOT _d STREQUAL proto)
      list(APPEND _list "${_d}")
    endif()
  endforeach()
  set(${out_var} ${_list} PARENT_SCOPE)
endfunction()

function(crpc_generate)
  cmake_parse_arguments(G "" "TARGET;OUT_DIR;LINK" "PROTOS;IMPORT_DIRS" ${ARGN})
  if(NOT G_TARGET OR NOT TARGET ${G_TARGET})
    message(FATAL_ERROR "crpc_generate: TARGET must name an existing target (got '${G_TARGET}')")
  endif()
  if(NOT G_PROTOS)
    message(FATAL_ERROR "crpc_generate(TARGET ${G_TARGET}): PROTOS is empty")
  endif()
  if(G_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "crpc_generate: unknown arguments ${G_UNPARSED_ARGUMENTS}")
  endif()
  _crpc_find_tools()
  _crpc_plugin(_plugin _plugin_dep)
  if(NOT G_OUT_DIR)
    set(G_OUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/${G_TARGET}_crpc")
  endif()
  get_filename_component(G_OUT_DIR "${G_OUT_DIR}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
  file(MAKE_DIRECTORY "${G_OUT_DIR}")
  if(NOT G_LINK)
    if(TARGET crpc)
      set(G_LINK crpc)
    else()
      set(G_LINK crpc::crpc)
    endif()
  endif()

  # Absolute protos; import dirs in protoc's search order, the well-known types' dir last.
  set(_protos)
  set(_dirs)
  foreach(_p ${G_PROTOS})
    get_filename_component(_abs "${_p}" ABSOLUTE)
    list(APPEND _protos "${_abs}")
    if(NOT G_IMPORT_DIRS)
      get_filename_component(_d "${_abs}" DIRECTORY)
      list(APPEND _dirs "${_d}")
    endif()
  endforeach()
  foreach(_d ${G_IMPORT_DIRS})
    get_filename_component(_d "${_d}" ABSOLUTE)
    list(APPEND _dirs "${_d}")
  endforeach()
  list(APPEND _dirs "${CRPC_PROTOBUF_INCLUDE_DIR}")
  list(REMOVE_DUPLICATES _dirs)
  set(_iflags)
  foreach(_d ${_dirs})
    list(APPEND _iflags "-I${_d}")
  endforeach()

  # Discover imports; generate (protobuf-c only) those nobody else generates.
  set(_imports)
  foreach(_abs ${_protos})
    _crpc_imports(_deps "${_abs}" ${_iflags})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_abs}" ${_deps})
    set(_deps_${_abs} ${_deps})
    list(APPEND _imports ${_deps})
  endforeach()
  list(REMOVE_DUPLICATES _imports)
  list(REMOVE_ITEM _imports ${_protos})

  foreach(_abs ${_imports}) # an import's output may depend on any other import
    set(_deps_${_abs} ${_imports})
    list(REMOVE_ITEM _deps_${_abs} "${_abs}")
  endforeach()

  # protoc-c writes nothing for a file with option (pb_c_file).no_generate = true (as
  # protobuf-c/protobuf-c.proto has), and neither does protoc-gen-crpc. Run protoc-c once over
  # every file, now, and expect output only for those it wrote.
  set(_probe "${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/crpc_generate/${G_TARGET}.probe")
  file(REMOVE_RECURSE "${_probe}")
  file(MAKE_DIRECTORY "${_probe}")
  execute_process(
    COMMAND "${CRPC_PROTOC}" ${_iflags} "--plugin=protoc-gen-c=${CRPC_PROTOC_GEN_C}"
            "--c_out=${_probe}" ${_protos} ${_imports}
    RESULT_VARIABLE _rc ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "crpc_generate(TARGET ${G_TARGET}): protoc-c fails on ${_protos}:\n${_err}")
  endif()

  set(_outputs)
  foreach(_abs ${_protos} ${_imports})
    _crpc_relative(_rel "${_abs}" ${_dirs})
    if(_rel STREQUAL "")
      message(FATAL_ERROR "crpc_generate: ${_abs} is not inside any of the IMPORT_DIRS (${_dirs})")
    endif()
    string(REGEX REPLACE "\\.proto$" "" _base "${_rel}")
    if(NOT EXISTS "${_probe}/${_base}.pb-c.h")
      continue() # no_generate: no pb-c pair, no crpc pair, nothing to compile or link
    endif()
    string(MAKE_C_IDENTIFIER "${_rel}" _ident)
    list(FIND _protos "${_abs}" _listed)
    get_property(_owner GLOBAL PROPERTY CRPC_GENERATE_OWNER_${_ident})
    if(_listed EQUAL -1 AND _owner AND NOT _owner STREQUAL G_TARGET)
      get_target_property(_owner_type ${_owner} TYPE)
      if(NOT _owner_type STREQUAL "EXECUTABLE")
        target_link_libraries(${G_TARGET} PUBLIC ${_owner})
        continue()
      endif()
    endif()
    set_property(GLOBAL PROPERTY CRPC_GENERATE_OWNER_${_ident} ${G_TARGET})
    set(_out "${G_OUT_DIR}/${_base}.pb-c.c" "${G_OUT_DIR}/${_base}.pb-c.h")
    set(_args "--plugin=protoc-gen-c=${CRPC_PROTOC_GEN_C}" "--c_out=${G_OUT_DIR}")
    set(_what "protobuf-c")
    set(_tool_deps "${CRPC_PROTOC_GEN_C}")
    if(NOT _listed EQUAL -1)
      list(APPEND _out "${G_OUT_DIR}/${_base}.crpc.c" "${G_OUT_DIR}/${_base}.crpc.h")
      list(APPEND _args "--plugin=protoc-gen-crpc=${_plugin}" "--crpc_out=${G_OUT_DIR}")
      list(APPEND _tool_deps ${_plugin_dep})
      set(_what "protobuf-c and crpc")
    endif()
    add_custom_command(
      OUTPUT ${_out}
      COMMAND "${CRPC_PROTOC}" ${_iflags} ${_args} "${_abs}"
      DEPENDS "${_abs}" ${_deps_${_abs}} ${_tool_deps} "${CRPC_PROTOC}"
      COMMENT "Generating ${_what} code for ${_rel}"
      VERBATIM)
    list(APPEND _outputs ${_out})
  endforeach()

  target_sources(${G_TARGET} PRIVATE ${_outputs})
  target_include_directories(${G_TARGET} PUBLIC "${G_OUT_DIR}")
  target_link_libraries(${G_TARGET} PUBLIC ${G_LINK})
endfunction()
