/* crpc: a lightweight RPC framework for C on libuv. The one header users include.
 *
 *   #include <crpc/crpc.h>
 *
 * Start with crpc/channel.h (clients) and crpc/server.h (servers); generated code from
 * protoc-gen-crpc wraps both in typed functions.
 *
 * The headers, bottom to top (each includes only those below it that it needs):
 *   crpc/version.h   version, CRPC_GENERATED_ABI, CRPC_EXTERN
 *   crpc/types.h     the opaque handles, libuv's loop type, crpc_close_cb, crpc_fn
 *   crpc/error.h, crpc/status.h, crpc/options.h, crpc/metadata.h   values, no handles
 *   crpc/method.h    method and service tables (what generated code defines)
 *   crpc/channel.h   clients: channels, unary calls       crpc/server.h   servers and their calls
 *   crpc/stream.h    client streams (on channel.h)
 *   crpc/gen.h       what only generated code calls (on channel.h, stream.h, server.h) */
#ifndef CRPC_CRPC_H
#define CRPC_CRPC_H

#include "crpc/version.h"
#include "crpc/types.h"
#include "crpc/error.h"
#include "crpc/status.h"
#include "crpc/options.h"
#include "crpc/metadata.h"
#include "crpc/method.h"
#include "crpc/channel.h"
#include "crpc/server.h"
#include "crpc/stream.h"
#include "crpc/gen.h"

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
