/* Servers: listen on endpoints, accept connections, dispatch each incoming call to the handler
 * registered for its method.
 *
 * A handler runs on the server's loop thread. It receives the call handle and the decoded request
 * and must finish the call exactly once, with crpc_server_call_reply() or crpc_server_call_fail(),
 * either before it returns or later (keep the handle; finish it from any later loop callback).
 * A call is finished even when its client has gone: crpc then marks it cancelled, sends nothing,
 * and releases it when the handler finishes it.
 *
 * Two kinds of server, chosen at creation:
 *  - Private-loop server (crpc_server_new() with loop == NULL): crpc_server_run() serves on the
 *    calling thread until crpc_server_stop() is called.
 *  - Loop server (loop != NULL): lives on a loop the user runs.
 *
 * Several loops: a private-loop server with CRPC_OPT_LOOPS = N serves its TCP endpoints from N
 * threads (crpc_server_run() starts the N-1 others and joins them when it returns). Each call
 * lives on one of those loops (crpc_server_call_loop()); handlers, which then run concurrently,
 * must be thread-safe with respect to their shared user_data.
 *
 * Thread-safety: call the functions of a server and of its calls on the server's loop thread
 * (the thread inside crpc_server_run() for a private-loop server, or before it starts), except
 * crpc_server_stop(), which any thread and signal handlers may call. */
#ifndef CRPC_SERVER_H
#define CRPC_SERVER_H

#include <protobuf-c/protobuf-c.h>

#include "crpc/metadata.h"
#include "crpc/method.h"
#include "crpc/options.h"
#include "crpc/status.h"
#include "crpc/types.h"
#include "crpc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libuv's loop type (struct uv_loop_s, uv.h's uv_loop_t), the handles crpc_server and
 * crpc_server_call, and crpc_close_cb are declared in crpc/types.h, without <uv.h>: see there. */

/* Creates a server on `loop`, or on a private loop when loop is NULL. The loop must outlive the
 * server. Returns 0 and sets *out (owned by the caller, released by crpc_server_close()), or
 * CRPC_EINVAL, CRPC_ENOMEM or a libuv error. */
CRPC_EXTERN int crpc_server_new(crpc_server **out, struct uv_loop_s *loop);

/* Sets one server option (crpc/options.h) before the first listen. Returns 0, CRPC_EINVAL or
 * CRPC_ESTATE (already listening). */
CRPC_EXTERN int crpc_server_set_option(crpc_server *srv, crpc_option opt, int64_t value);

/* Starts listening on `endpoint` ("tcp://HOST:PORT", "tcp://[::1]:PORT", "unix:PATH",
 * "unix:@NAME"); may be called several times for several endpoints. HOST may be a name, resolved
 * here, synchronously. Port 0 picks a free port; *port_out (may be NULL) receives the bound port
 * (0 for unix:).
 * unix:PATH creates a socket file at PATH, with the mode CRPC_OPT_UNIX_SOCKET_MODE gives (else the
 * umask's). Anything that already exists at PATH is left alone and the listen fails with
 * UV_EADDRINUSE: remove stale sockets first. Closing or shutting down the server removes the file
 * only if it is still the socket this server created (same device and inode, checked just before
 * unlinking): another server's socket bound at PATH since, or any other file, stays.
 * unix:@NAME is a Linux abstract socket: no file (so no mode, and nothing to remove), the name is
 * freed when the server closes; any process of the same network namespace may connect. NAME is
 * 1 to 107 bytes. Elsewhere than Linux it is CRPC_ENOTSUP. A file whose name starts with '@' is
 * "unix:./@name".
 * Returns 0, CRPC_EINVAL, CRPC_EENDPOINT, CRPC_ENOTSUP, CRPC_ERESOLVE, CRPC_ECLOSED, CRPC_ENOMEM,
 * or a libuv error from bind/listen: UV_EADDRINUSE, UV_EACCES, UV_ENOENT (the directory of a
 * unix: PATH does not exist), ... */
CRPC_EXTERN int crpc_server_listen(crpc_server *srv, const char *endpoint, int *port_out);

/* Registers a service: calls of svc's methods go to the handlers in `impl`, a generated handler
 * table (e.g. Helloworld__Greeter__Handlers) passed as void*; user_data is handed to every
 * handler. impl and svc are not copied: they must outlive the server (static tables are the
 * norm). Returns 0, CRPC_EINVAL, CRPC_EABI (svc generated for another crpc interface version),
 * CRPC_EEXIST (a service of that full name is registered already) or CRPC_ENOMEM.
 * May be called before or after listening. */
CRPC_EXTERN int crpc_server_register(crpc_server *srv, const crpc_service_desc *svc,
                                     const void *impl, void *user_data);

/* Private-loop server: serves on the calling thread until crpc_server_stop() is called, then
 * returns 0 (connections stay open until crpc_server_close()). Returns CRPC_ENOTSUP on a loop
 * server, CRPC_ESTATE when already running. */
CRPC_EXTERN int crpc_server_run(crpc_server *srv);

/* Makes crpc_server_run() return soon (or at once, if it is called later). Thread-safe and
 * async-signal-safe. No effect on a loop server. */
CRPC_EXTERN void crpc_server_stop(crpc_server *srv);

/* Shuts the server down gracefully: stops listening and sends every connection a GOAWAY naming
 * the last call it will serve. Calls up to it run to completion; calls the clients started later
 * are refused UNAVAILABLE without running (safe for the client to retry elsewhere). Connections
 * close as their last call finishes. After grace_ms (0: at once) whatever is left is cancelled as
 * by crpc_server_close(), which this then is: cb runs and the memory is released as described
 * there. `srv` must not be used once this is called. A private-loop server shuts down
 * synchronously (not from inside crpc_server_run()). Returns 0, CRPC_EINVAL (NULL or negative
 * grace) or CRPC_ECLOSED (already closing). */
CRPC_EXTERN int crpc_server_shutdown(crpc_server *srv, int64_t grace_ms, crpc_close_cb cb,
                                     void *user_data);

/* Closes the server: stops listening, cancels the calls in progress (their handlers see
 * crpc_server_call_cancelled() and must still finish them), closes every connection, then
 * releases the memory once every call has been finished. `srv` must not be used once this is
 * called.
 *  - Loop server: asynchronous; cb (may be NULL) runs on the loop when everything is released.
 *  - Private-loop server: synchronous (not while crpc_server_run() is running); calls cb if given.
 *    Handlers that hold calls must finish them from loop callbacks run during the close. */
CRPC_EXTERN void crpc_server_close(crpc_server *srv, crpc_close_cb cb, void *user_data);

/* The loop the server runs on (its private loop if it has one). */
CRPC_EXTERN struct uv_loop_s *crpc_server_loop(const crpc_server *srv);

/* --- Calls, from inside handlers ----------------------------------------------------------- */

/* Finishes the call with status OK and `response` (of the method's output type), which is encoded
 * before this returns and stays owned by the caller. Returns 0 (also when the client is gone and
 * nothing is sent), CRPC_EINVAL (response NULL, or a streaming call, which sends with
 * crpc_server_call_write() and ends with crpc_server_call_end(): the call is then finished with
 * INTERNAL), CRPC_ETYPE (wrong message type: finished with INTERNAL instead) or CRPC_ESTATE
 * (already finished: nothing changes, see below).
 *
 * Every call must be finished exactly once (reply, fail, fail_details or end). When the handle
 * stops being valid: a call finished from inside one of crpc's callbacks for it (its handler,
 * on_read, on_writable, on_cancel) is released when that callback returns; a call finished from
 * anywhere else (the user's own timer or loop callback) is released before the finishing function
 * returns. Until then a second finish returns CRPC_ESTATE and leaves the call (and what the client
 * receives) as the first finish made it; after that `call`, its request and its metadata must not
 * be used at all. */
CRPC_EXTERN int crpc_server_call_reply(crpc_server_call *call, const ProtobufCMessage *response);

/* Finishes the call with a non-OK status. `message` (may be NULL) is copied; the client receives
 * it as UTF-8 (PROTOCOL.md §6.4): each ill-formed UTF-8 sequence in it is replaced with U+FFFD,
 * and text past 65536 bytes is cut between two characters. Passing CRPC_STATUS_OK is CRPC_EINVAL
 * (the call is then finished with INTERNAL). Returns as crpc_server_call_reply(). */
CRPC_EXTERN int crpc_server_call_fail(crpc_server_call *call, crpc_code code,
                                      const char *message);

/* crpc_server_call_fail() with a binary details payload for the client (crpc_status.details),
 * e.g. an encoded crpc.StatusDetails (idl/crpc/status.proto). details is copied. */
CRPC_EXTERN int crpc_server_call_fail_details(crpc_server_call *call, crpc_code code,
                                              const char *message, const uint8_t *details,
                                              size_t details_len);

/* The metadata the client sent with the call: *count entries (the pointer may be NULL when
 * there are none). Owned by the call; valid until it is finished. */
CRPC_EXTERN const crpc_metadata *crpc_server_call_metadata(const crpc_server_call *call,
                                                           size_t *count);

/* Adds an entry to the metadata sent back with the call's status (key and value are copied).
 * Returns 0, CRPC_EINVAL (invalid key/value, see crpc/metadata.h), CRPC_ELIMIT (the trailers
 * would exceed the server's MAX_METADATA_SIZE) or CRPC_ENOMEM. */
CRPC_EXTERN int crpc_server_call_add_trailer(crpc_server_call *call, const char *key,
                                             const uint8_t *value, size_t value_len);

/* Milliseconds left before the call's deadline (the client's timeout, counted from when the
 * call arrived): > 0, 0 once it has passed, or -1 when the call has no deadline. When the
 * deadline passes the call is cancelled (see below), the server answers the client
 * DEADLINE_EXCEEDED, and a later reply from the handler is dropped. */
CRPC_EXTERN int64_t crpc_server_call_time_left_ms(const crpc_server_call *call);

/* Called once, on the loop, when the call is cancelled: the client cancelled it or went away, its
 * deadline passed, or the server is closing. The handler must still finish the call (typically
 * from this callback: crpc_server_call_fail(call, CRPC_STATUS_CANCELLED, NULL)). Setting it on an
 * already cancelled call runs it before this function returns. One callback per call; a second
 * set replaces the first. */
typedef void (*crpc_server_cancel_cb)(crpc_server_call *call, void *user_data);
CRPC_EXTERN void crpc_server_call_on_cancel(crpc_server_call *call, crpc_server_cancel_cb cb,
                                            void *user_data);

/* --- Streaming methods ------------------------------------------------------------------------
 * A streaming method's handler receives the call (and, for a server-streaming method, the one
 * request; client- and bidi-streaming handlers get request NULL). It reads the client's messages
 * with crpc_server_call_read() (or auto_read), writes with crpc_server_call_write(), and ends the
 * call exactly once with crpc_server_call_end() (or _fail/_fail_details). Flow control and
 * reading work as for client streams (crpc/stream.h). */

/* A client message (of the method's input type; owned by crpc, valid during the callback), or
 * msg NULL once: the client closed its sending side, no more will come. */
typedef void (*crpc_server_read_cb)(crpc_server_call *call, const ProtobufCMessage *msg,
                                    void *user_data);
/* A write refused with CRPC_EAGAIN may now be retried. A write is refused when the client's
 * window is used up, and also, whichever call it is for, while more than MAX_WRITE_BUFFER is
 * queued for the client's connection (it stopped reading): on_writable then runs once that queue
 * has drained to half of it, for every call refused meanwhile, in turn. */
typedef void (*crpc_server_writable_cb)(crpc_server_call *call, void *user_data);

/* Sets the stream callbacks of a streaming call (either may be NULL). auto_read: deliver every
 * message as it arrives. Returns 0, CRPC_EINVAL (not a streaming call). */
CRPC_EXTERN int crpc_server_call_stream_handlers(crpc_server_call *call,
                                                 crpc_server_read_cb on_read,
                                                 crpc_server_writable_cb on_writable,
                                                 void *user_data, int auto_read);
/* Asks for the next client message: on_read runs once (maybe before this returns). 0, or
 * CRPC_ESTATE (a read is pending, auto_read is on, the end was delivered, or the call is
 * cancelled), CRPC_EINVAL. */
CRPC_EXTERN int crpc_server_call_read(crpc_server_call *call);
/* Sends a message (of the method's output type; encoded before returning). 0, CRPC_EAGAIN (the
 * client's window is used up: not sent, on_writable follows), CRPC_ESTATE (cancelled: the client
 * is gone; or a client-streaming method, whose one response was already written: not sent, the
 * call goes on), CRPC_ETYPE, CRPC_ELIMIT (larger than MAX_SEND_MESSAGE_SIZE), CRPC_EINVAL (also
 * once the call is finished), CRPC_ENOMEM. */
CRPC_EXTERN int crpc_server_call_write(crpc_server_call *call, const ProtobufCMessage *msg);
/* Ends a streaming call with a status (OK allowed). message may be NULL (treated as by
 * crpc_server_call_fail()). Returns 0, CRPC_EINVAL (OK on a unary call, or on a client-streaming
 * call before its one response was written: the call is then finished with INTERNAL, as a
 * single-response call must end OK with exactly one response, PROTOCOL.md §6.1) or CRPC_ESTATE
 * (already finished: nothing changes); the call is released as by crpc_server_call_reply(). */
CRPC_EXTERN int crpc_server_call_end(crpc_server_call *call, crpc_code code, const char *message);

/* The method being called. Valid until the call is finished. */
CRPC_EXTERN const crpc_method_desc *crpc_server_call_method(const crpc_server_call *call);

/* Non-zero once the call has been cancelled: its client cancelled it or went away, or the server
 * is closing. A reply is then dropped; the handler should finish the call soon. */
CRPC_EXTERN int crpc_server_call_cancelled(const crpc_server_call *call);

/* The server the call came to (the one the user created, also with LOOPS > 1). */
CRPC_EXTERN crpc_server *crpc_server_call_server(const crpc_server_call *call);

/* The loop the call lives on: finish it from callbacks of this loop. With LOOPS > 1 this is the
 * loop of the thread that runs the call's connection, not crpc_server_loop(). */
CRPC_EXTERN struct uv_loop_s *crpc_server_call_loop(const crpc_server_call *call);

#ifdef __cplusplus
}
#endif
#endif
