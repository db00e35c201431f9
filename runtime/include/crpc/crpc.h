/* crpc: a lightweight RPC framework for C on libuv. The one header users include.
 *
 *   #include <crpc/crpc.h>
 *
 * Start with crpc/channel.h (clients) and crpc/server.h (servers); generated code from
 * protoc-gen-crpc wraps both in typed functions. */
#ifndef CRPC_CRPC_H
#define CRPC_CRPC_H

#include "crpc/version.h"
#include "crpc/error.h"
#include "crpc/status.h"
#include "crpc/options.h"
#include "crpc/metadata.h"
#include "crpc/method.h"
#include "crpc/channel.h"
#include "crpc/server.h"
#include "crpc/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The runtime's version as CRPC_VERSION_HEX and as "MAJOR.MINOR.PATCH". Thread-safe. */
CRPC_EXTERN unsigned crpc_version(void);
CRPC_EXTERN const char *crpc_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
