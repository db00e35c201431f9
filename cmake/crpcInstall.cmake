# Installation: libcrpc (shared and static), the public headers, protoc-gen-crpc, crpc's own
# .proto files, a CMake package (find_package(crpc) -> crpc::crpc, crpc::crpc_static,
# crpc::protoc-gen-crpc, crpc_generate()) and crpc.pc for pkg-config. Included from the top-level
# CMakeLists.txt after runtime/ and codegen/ are defined.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CRPC_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/crpc" CACHE STRING
    "Where crpcConfig.cmake goes, relative to the prefix")
set(CRPC_INSTALL_PROTODIR "${CMAKE_INSTALL_DATADIR}/crpc/proto" CACHE STRING
    "Where crpc's own .proto files go, relative to the prefix")

install(TARGETS crpc crpc_static protoc-gen-crpc EXPORT crpcTargets
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/runtime/include/crpc"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" FILES_MATCHING PATTERN "*.h")

# idl/: installed as found (crpc/health.proto -> share/crpc/proto/crpc/health.proto), so users
# put CRPC_PROTO_DIR on their IMPORT_DIRS and `import "crpc/health.proto";`.
file(GLOB_RECURSE _crpc_idl RELATIVE "${PROJECT_SOURCE_DIR}/idl" CONFIGURE_DEPENDS
     "${PROJECT_SOURCE_DIR}/idl/*.proto")
foreach(_p ${_crpc_idl})
  get_filename_component(_d "${_p}" DIRECTORY)
  install(FILES "${PROJECT_SOURCE_DIR}/idl/${_p}" DESTINATION "${CRPC_INSTALL_PROTODIR}/${_d}")
endforeach()

# CMake package.
install(EXPORT crpcTargets NAMESPACE crpc:: DESTINATION "${CRPC_INSTALL_CMAKEDIR}")
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/crpcConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/crpcConfig.cmake"
  INSTALL_DESTINATION "${CRPC_INSTALL_CMAKEDIR}"
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CRPC_INSTALL_PROTODIR)
# 0.x: a minor release may break the ABI (the soname is MAJOR.MINOR), so only the same
# MAJOR.MINOR satisfies a request.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/crpcConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/crpcConfig.cmake"
  "${PROJECT_BINARY_DIR}/crpcConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/codegen/cmake/crpc_generate.cmake"
  DESTINATION "${CRPC_INSTALL_CMAKEDIR}")

# pkg-config. The prefix is written at install time, so `cmake --install --prefix DIR` gives a
# crpc.pc that names DIR.
set(CRPC_PC_PREFIX "@CRPC_PC_PREFIX@") # left for the install-time pass
configure_file("${CMAKE_CURRENT_LIST_DIR}/crpc.pc.in" "${PROJECT_BINARY_DIR}/crpc.pc.in" @ONLY)
install(CODE "
  set(CRPC_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/crpc.pc.in\" \"${PROJECT_BINARY_DIR}/crpc.pc\" @ONLY)
")
install(FILES "${PROJECT_BINARY_DIR}/crpc.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
