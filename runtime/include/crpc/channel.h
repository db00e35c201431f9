/* Client channels: a connection to one server endpoint, on which calls are made.
 *
 * A channel connects on first use, reconnects after the connection drops (exponential backoff
 * with jitter, see crpc/options.h), and multiplexes any number of concurrent calls on one
 * connection; responses may arrive in any order.
 *
 * Two kinds of channel, chosen at creation:
 *
 *  - Private-loop channel (crpc_channel_new() with loop == NULL). crpc owns an event loop that
 *    nobody runs in the background. Blocking calls (crpc_channel_unary()) may be made from any
 *    number of threads at once; the calling thread itself drives the I/O while it waits, so a
 *    lone caller pays no thread hand-off. Async calls are refused (CRPC_ENOTSUP).
 *
 *  - Loop channel (loop != NULL). The channel lives on a uv_loop_t that the user runs. Async calls
 *    (crpc_channel_unary_async()) are made on the loop's thread and complete through a callback
 *    on that thread. Blocking calls may be made from *other* threads while the loop runs; on the
 *    loop's own thread they would deadlock and return CRPC_EDEADLK. The loop must keep running
 *    while such calls may come: an idle channel holds no reference on the loop (so that uv_run()
 *    can return once the application's own work is done), so keep a handle of your own
 *    referenced (a timer, a server, a uv_async) or the loop may exit and the call wait forever.
 *
 * Every call completes exactly once: with the response, or with a status (UNAVAILABLE when the
 * connection cannot be made or drops, DEADLINE_EXCEEDED, CANCELLED, ...).
 *
 * Signals: the first channel or server created sets SIGPIPE to SIG_IGN if it still has its
 * default disposition (a peer that vanishes must not kill the process); an application that has
 * installed its own disposition keeps it.
 *
 * Thread-safety: unless a function says otherwise, call it on the channel's loop thread (loop
 * channels) or from any one thread at a time (private-loop channels). */
#ifndef CRPC_CHANNEL_H
#define CRPC_CHANNEL_H

#include <stdint.h>

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

/* libuv's loop type (struct uv_loop_s, uv.h's uv_loop_t), the handles crpc_channel, crpc_call
 * and crpc_cancel_token, and crpc_close_cb are declared in crpc/types.h. */

/* Per-call options. Zero-initialise and set what you need: `crpc_call_opts o = {.timeout_ms = 200};`.
 * A NULL crpc_call_opts pointer means all defaults. */
typedef struct crpc_call_opts {
  /* Deadline, relative to the start of the call, in milliseconds. 0: the channel's
   * DEFAULT_TIMEOUT_MS (itself 0, no deadline, unless set). Negative: CRPC_EINVAL. The deadline
   * is sent to the server; the client completes the call with DEADLINE_EXCEEDED when it passes
   * whether or not the server answered. */
  int64_t timeout_ms;
  /* Metadata sent with the request (see crpc/metadata.h); copied before the call function
   * returns. An invalid key or value makes the call function return CRPC_EINVAL. */
  const crpc_metadata *metadata;
  size_t metadata_count;
  /* Blocking calls only: a token another thread may trigger with crpc_cancel_token_cancel() to
   * complete the call with CANCELLED (the server is told). NULL: none. Async calls are cancelled
   * with crpc_call_cancel() instead; giving them a token is CRPC_EINVAL. */
  crpc_cancel_token *cancel;
} crpc_call_opts;

/* A cancellation token for blocking calls. One token serves one call at a time (it may be reused
 * for the next call once a call using it has returned); cancelling it cancels the call currently
 * using it, or makes the next call using it complete CANCELLED at once.
 * crpc_cancel_token_new: 0 and *out (free with crpc_cancel_token_free, not while a call uses it),
 * CRPC_EINVAL or CRPC_ENOMEM. crpc_cancel_token_cancel: thread-safe, any thread.
 * crpc_cancel_token_reset: clears the cancelled state (not while a call uses it). */
CRPC_EXTERN int crpc_cancel_token_new(crpc_cancel_token **out);
CRPC_EXTERN void crpc_cancel_token_cancel(crpc_cancel_token *token);
CRPC_EXTERN int crpc_cancel_token_cancelled(const crpc_cancel_token *token);
CRPC_EXTERN void crpc_cancel_token_reset(crpc_cancel_token *token);
CRPC_EXTERN void crpc_cancel_token_free(crpc_cancel_token *token);

/* Creates a channel to `target`:
 *   "tcp://HOST:PORT"   HOST a name (resolved asynchronously at connect time), an IPv4 address, or
 *                        an IPv6 address in brackets ("tcp://[::1]:5000")
 *   "unix:PATH"         a Unix domain socket ("unix:/run/app.sock"; "unix://PATH" is accepted too)
 *   "unix:@NAME"        a Linux abstract Unix socket (no file; CRPC_ENOTSUP on other systems)
 * loop: the loop the channel lives on, or NULL for a private loop (see above). The loop must
 * outlive the channel, and a loop channel must be created on the loop's thread (it remembers that
 * thread to refuse blocking calls from it with CRPC_EDEADLK). Nothing is connected until the first call.
 * Returns 0 and sets *out (owned by the caller, released by crpc_channel_close()), or
 * CRPC_EINVAL (NULL argument), CRPC_EENDPOINT (bad target), CRPC_ENOTSUP ("unix:@NAME" outside
 * Linux), CRPC_ENOMEM, or a libuv error. */
CRPC_EXTERN int crpc_channel_new(crpc_channel **out, struct uv_loop_s *loop,
                                 const char *target);

/* Sets one channel option (see crpc/options.h) before the first call. Returns 0, CRPC_EINVAL
 * (unknown option, value out of range, or an option channels do not take) or CRPC_ESTATE (the
 * channel has already made a call). */
CRPC_EXTERN int crpc_channel_set_option(crpc_channel *ch, crpc_option opt, int64_t value);

/* Closes the channel. Every call still in progress completes first, with CANCELLED. The memory is
 * released after that; `ch` must not be used once this function is called.
 *  - Loop channel: asynchronous; cb (may be NULL) runs on the loop once everything is released.
 *    Legal from inside a call's callback.
 *  - Private-loop channel: synchronous; returns when everything is released, calling cb first if
 *    given. No other thread may be using the channel any more.
 * Calling it twice is a programming error. */
CRPC_EXTERN void crpc_channel_close(crpc_channel *ch, crpc_close_cb cb, void *user_data);

/* The channel's target as given to crpc_channel_new(). Owned by the channel. Thread-safe. */
CRPC_EXTERN const char *crpc_channel_target(const crpc_channel *ch);

/* Blocking unary call of `method` with `request`.
 * Returns 0 when the call ran to completion, whatever its outcome; *status tells the outcome.
 * When status->code is CRPC_STATUS_OK, *response is set to a message of method->output's type,
 * owned by the caller: free it with protobuf_c_message_free_unpacked(*response, NULL) (or the
 * type's generated __free_unpacked function). Otherwise *response is NULL. Either way, release
 * the status with crpc_status_reset().
 * Returns a negative error when the call could not be made at all (nothing was sent):
 * CRPC_EINVAL (NULL argument, negative timeout), CRPC_ETYPE (request is not of method->input's
 * type), CRPC_ECLOSED (channel closing), CRPC_EDEADLK (on the loop thread of a loop channel),
 * CRPC_ENOMEM; then *response is NULL and *status is { CRPC_STATUS_INTERNAL, description }.
 * request and opts stay owned by the caller and are not kept after the call returns.
 * Thread-safe: any number of threads may call it concurrently on one channel. */
CRPC_EXTERN int crpc_channel_unary(crpc_channel *ch, const crpc_method_desc *method,
                                   const ProtobufCMessage *request, ProtobufCMessage **response,
                                   crpc_status *status, const crpc_call_opts *opts);

/* Completion of an asynchronous unary call, on the channel's loop thread, exactly once.
 * status: the outcome, owned by crpc, valid during the callback only.
 * response: the decoded response when status->code is CRPC_STATUS_OK, else NULL; owned by crpc
 * and valid during the callback only (copy what you keep).
 * The callback may start new calls and may close the channel. */
typedef void (*crpc_unary_cb)(crpc_call *call, const crpc_status *status,
                              const ProtobufCMessage *response, void *user_data);

/* Starts an asynchronous unary call on a loop channel, on the loop's thread.
 * request is encoded before the function returns; the caller keeps ownership of it and of opts.
 * call_out (may be NULL) receives a handle valid until cb returns, usable with crpc_call_cancel().
 * Returns 0 when the call was started: cb will run exactly once, never before this function has
 * returned. Returns CRPC_EINVAL, CRPC_ETYPE, CRPC_ENOTSUP (private-loop channel), CRPC_ECLOSED or
 * CRPC_ENOMEM when it was not: cb will not run. */
CRPC_EXTERN int crpc_channel_unary_async(crpc_channel *ch, const crpc_method_desc *method,
                                         const ProtobufCMessage *request,
                                         const crpc_call_opts *opts, crpc_unary_cb cb,
                                         void *user_data, crpc_call **call_out);

/* Cancels a call started with crpc_channel_unary_async(): unless it has completed already, it
 * completes now with CANCELLED (its callback runs before this returns) and the server is told to
 * stop. Loop thread only; `call` must be a handle whose callback has not yet returned. */
CRPC_EXTERN void crpc_call_cancel(crpc_call *call);

/* The method a call is for. Valid while the call handle is. */
CRPC_EXTERN const crpc_method_desc *crpc_call_method(const crpc_call *call);

#ifdef __cplusplus
}
#endif
#endif
