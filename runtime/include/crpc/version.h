/* crpc version: the single source of truth (CMake parses these three lines). */
#ifndef CRPC_VERSION_H
#define CRPC_VERSION_H

#define CRPC_VERSION_MAJOR 0
#define CRPC_VERSION_MINOR 1
#define CRPC_VERSION_PATCH 0

#define CRPC_VERSION_HEX ((CRPC_VERSION_MAJOR << 16) | (CRPC_VERSION_MINOR << 8) | CRPC_VERSION_PATCH)

/* The interface generated code is written against. protoc-gen-crpc stamps the value it was built
 * with into every .crpc.h, which fails to compile (#error) against a runtime with another value.
 * Bumped whenever crpc_method_desc, crpc_service_desc or the crpc_gen_* functions change. */
#define CRPC_GENERATED_ABI 1

/* Symbol visibility: the library is built with hidden visibility; only CRPC_EXTERN is exported. */
#if defined(_WIN32)
#  define CRPC_EXTERN
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define CRPC_EXTERN __attribute__((visibility("default")))
#else
#  define CRPC_EXTERN
#endif

#endif
