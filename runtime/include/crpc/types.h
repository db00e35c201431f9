/* The types that several crpc headers share: the opaque handles, libuv's loop type, and the
 * callback types more than one header takes. The headers that use them include this one, so it
 * rarely needs including by itself; <crpc/crpc.h> includes everything.
 *
 * Each handle is created and released by the functions of the header named next to it; its
 * thread-safety is stated there. */
#ifndef CRPC_TYPES_H
#define CRPC_TYPES_H

#ifdef __cplusplus
extern "C" {
#endif

/* libuv's loop type, declared here so that no crpc header needs <uv.h> (which wants POSIX
 * feature macros that a strict -std=c11 build does not define). The functions take
 * `struct uv_loop_s *`, which is uv.h's uv_loop_t. C11 and C++ allow a typedef to be repeated,
 * so there uv_loop_t is declared too, whether or not <uv.h> comes before or after; C99 forbids the
 * repeat, so a C99 program that names uv_loop_t gets it from <uv.h>. */
struct uv_loop_s;
#if defined(__cplusplus) || (defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L)
typedef struct uv_loop_s uv_loop_t;
#endif

typedef struct crpc_channel crpc_channel;           /* client connection: crpc/channel.h */
typedef struct crpc_call crpc_call;                 /* async unary call: crpc/channel.h */
typedef struct crpc_cancel_token crpc_cancel_token; /* blocking-call cancel: crpc/channel.h */
typedef struct crpc_stream crpc_stream;             /* client streaming call: crpc/stream.h */
typedef struct crpc_server crpc_server;             /* server: crpc/server.h */
typedef struct crpc_server_call crpc_server_call;   /* one call on a server: crpc/server.h */

/* Called once when an asynchronous close (of a channel or a server) has finished; the object is
 * gone by then. */
typedef void (*crpc_close_cb)(void *user_data);

/* An untyped function pointer. Generated code passes a typed callback through the runtime as a
 * crpc_fn and converts it back to its own type before calling it, as C allows (crpc/gen.h). */
typedef void (*crpc_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
