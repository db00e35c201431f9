/* For generated code only: the functions protoc-gen-crpc's stubs call to pass a typed callback
 * through the runtime and get it back. Applications call the typed stubs (or the untyped
 * functions of crpc/channel.h, crpc/stream.h and crpc/server.h), never these.
 *
 * The pattern: a typed stub hands the runtime an adapter with the untyped signature, plus the
 * user's typed callback (as crpc_fn, crpc/types.h) or typed handler table (as const void *). The
 * adapter, called by the runtime, fetches it back with crpc_call_user_fn(), crpc_stream_typed()
 * or crpc_server_call_user_fn(), converts it to its own type and calls it; so no function is ever
 * called through a mismatched function-pointer type.
 *
 * Changing any of these is a change of CRPC_GENERATED_ABI (crpc/version.h). Thread-safety and
 * threads are those of the untyped function each one extends. */
#ifndef CRPC_GEN_H
#define CRPC_GEN_H

#include <protobuf-c/protobuf-c.h>

#include "crpc/channel.h"
#include "crpc/method.h"
#include "crpc/server.h"
#include "crpc/stream.h"
#include "crpc/types.h"
#include "crpc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the generated names that a newer protoc-gen-crpc replaced (they stay, as aliases). Empty
 * unless the program defines CRPC_WARN_DEPRECATED before including crpc headers, so that code
 * built with -Werror keeps compiling; define it to find the old names in your code. */
#if defined(CRPC_WARN_DEPRECATED) && (defined(__GNUC__) || defined(__clang__))
#  define CRPC_GEN_DEPRECATED(replacement) __attribute__((deprecated("use " replacement)))
#else
#  define CRPC_GEN_DEPRECATED(replacement)
#endif

/* --- unary calls (client) ---------------------------------------------------------------- */

/* crpc_channel_unary_async() that also stores user_fn in the call, for crpc_call_user_fn(). */
CRPC_EXTERN int crpc_gen_unary_async(crpc_channel *ch, const crpc_method_desc *method,
                                     const ProtobufCMessage *request, const crpc_call_opts *opts,
                                     crpc_unary_cb cb, crpc_fn user_fn, void *user_data,
                                     crpc_call **call_out);

/* The user_fn given to crpc_gen_unary_async() (NULL for other calls). */
CRPC_EXTERN crpc_fn crpc_call_user_fn(const crpc_call *call);

/* --- streams (client) -------------------------------------------------------------------- */

/* crpc_channel_stream() whose handlers are adapters; `typed` (the user's typed handler table,
 * which must stay valid until on_done returns) is kept in the stream and returned by
 * crpc_stream_typed(). */
CRPC_EXTERN int crpc_gen_stream(crpc_channel *ch, const crpc_method_desc *method,
                                const crpc_call_opts *opts, const crpc_stream_handlers *adapters,
                                const void *typed, void *user_data, crpc_stream **out);
CRPC_EXTERN const void *crpc_stream_typed(const crpc_stream *s);

/* --- streaming calls (server) ------------------------------------------------------------ */

/* crpc_server_call_stream_handlers() whose on_read is an adapter that finds the typed callback
 * with crpc_server_call_user_fn(). */
CRPC_EXTERN int crpc_gen_server_stream_handlers(crpc_server_call *call, crpc_server_read_cb adapter,
                                                crpc_fn user_fn,
                                                crpc_server_writable_cb on_writable,
                                                void *user_data, int auto_read);
CRPC_EXTERN crpc_fn crpc_server_call_user_fn(const crpc_server_call *call);

#ifdef __cplusplus
}
#endif
#endif
