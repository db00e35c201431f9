/* Streaming calls: client-, server- and bidirectional streaming methods.
 *
 * A stream carries any number of messages each way, then ends with one status from the server.
 * Flow control is per call: each side may have at most a window of bytes (64 KiB, or the
 * receiver's CRPC_OPT_STREAM_WINDOW) sent but not yet read by the other side's application, plus
 * one message; so a fast sender cannot grow a slow receiver's memory, and one slow stream never
 * holds up the other calls on its connection. A write that would exceed the window is refused
 * with CRPC_EAGAIN and the writer is told when it may write again; so is any stream write on a
 * connection with more than CRPC_OPT_MAX_WRITE_BUFFER queued for a peer that is not reading (the
 * writer is told once the queue has drained to half of it), whichever call it is for.
 *
 * Reading is explicit: crpc_stream_read() asks for the next message, and on_read delivers it.
 * Messages that arrived before they were asked for wait (within the window). Set auto_read to
 * have every message delivered as it arrives instead.
 *
 * Client side, async (loop channels, on the loop thread): crpc_channel_stream().
 * Client side, blocking (private-loop channels, any thread; one thread per stream at a time):
 * crpc_channel_stream_open() and the *_wait functions.
 * Server side: a streaming method's handler gets the call (and, for server streaming, the
 * request) and uses crpc_server_call_read/_write and crpc_server_call_end (crpc/server.h). */
#ifndef CRPC_STREAM_H
#define CRPC_STREAM_H

#include <protobuf-c/protobuf-c.h>

#include "crpc/channel.h"
#include "crpc/method.h"
#include "crpc/status.h"
#include "crpc/types.h"
#include "crpc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* crpc_stream, the handle, is declared in crpc/types.h. */

typedef struct crpc_stream_handlers {
  /* A response message (of method->output), in answer to crpc_stream_read() or, with auto_read,
   * as it arrives. Owned by crpc, valid during the callback only. May be NULL. */
  void (*on_read)(crpc_stream *s, const ProtobufCMessage *msg, void *user_data);
  /* A write refused with CRPC_EAGAIN may now be retried. May be NULL. */
  void (*on_writable)(crpc_stream *s, void *user_data);
  /* The call ended, exactly once, as the stream's last callback: after the server's status once
   * every message that arrived has been read, or at once on cancel, deadline, connection loss or
   * channel close (unread messages are then dropped). status is valid during the callback; the
   * handle is invalid after it. Required. */
  void (*on_done)(crpc_stream *s, const crpc_status *status, void *user_data);
  int auto_read; /* non-zero: deliver every message as it arrives, no crpc_stream_read() */
} crpc_stream_handlers;

/* A client-streaming call ends OK with exactly one response (PROTOCOL.md §6.1): a server that
 * sends a second one, or ends the call OK without one, makes it end INTERNAL instead.
 *
 * Starts a streaming call of `method` (any streaming kind; unary methods are CRPC_EINVAL) on a
 * loop channel, on its loop thread. handlers is copied. For a server-streaming method, write the
 * one request and close the sending side. *out is valid until on_done returns.
 * Returns 0 (on_done will run exactly once, never inside this function) or CRPC_EINVAL,
 * CRPC_ENOTSUP (private-loop channel), CRPC_ECLOSED, CRPC_ENOMEM (nothing started). */
CRPC_EXTERN int crpc_channel_stream(crpc_channel *ch, const crpc_method_desc *method,
                                    const crpc_call_opts *opts,
                                    const crpc_stream_handlers *handlers, void *user_data,
                                    crpc_stream **out);

/* Sends msg (of method->input; encoded before returning, stays the caller's). Returns 0,
 * CRPC_EAGAIN (the window is used up, or MAX_WRITE_BUFFER is queued for the connection: nothing
 * sent, on_writable follows), CRPC_ESTATE (sending
 * side closed, or the call ended), CRPC_ELIMIT (larger than MAX_SEND_MESSAGE_SIZE: not sent, the
 * call goes on), CRPC_ETYPE, CRPC_EINVAL, CRPC_ENOMEM. Loop thread. */
CRPC_EXTERN int crpc_stream_write(crpc_stream *s, const ProtobufCMessage *msg);

/* Closes the sending side (the server sees the end of the requests). 0, CRPC_ESTATE or
 * CRPC_EINVAL. Async streams: loop thread. Blocking streams: the thread using the stream (for a
 * client-streaming call: send_wait the requests, close_send, then recv_wait the response). */
CRPC_EXTERN int crpc_stream_close_send(crpc_stream *s);

/* Asks for the next response: on_read runs once with it (maybe before this returns, when one is
 * waiting). Returns 0, or CRPC_ESTATE (a read is already pending, auto_read is set, or no
 * message will come any more). Loop thread. */
CRPC_EXTERN int crpc_stream_read(crpc_stream *s);

/* Cancels the call: on_done runs with CANCELLED before this returns (unless it ran already) and
 * the server is told. Loop thread. */
CRPC_EXTERN void crpc_stream_cancel(crpc_stream *s);

/* --- Blocking streams (private-loop channels) ------------------------------------------------
 * crpc_channel_stream_open: starts the call; 0 and *out (owned by the caller until
 * crpc_stream_finish_wait), or CRPC_EINVAL, CRPC_ENOTSUP (loop channel), CRPC_ECLOSED,
 * CRPC_ENOMEM. One thread at a time may use a stream; several streams and unary calls may run
 * from several threads on one channel. */
CRPC_EXTERN int crpc_channel_stream_open(crpc_channel *ch, const crpc_method_desc *method,
                                         const crpc_call_opts *opts, crpc_stream **out);
/* Sends msg, waiting while the window is used up or MAX_WRITE_BUFFER is queued for the
 * connection (never CRPC_EAGAIN). 0, or CRPC_ESTATE when the call has ended or
 * the sending side is closed (finish the stream to learn the status), CRPC_ELIMIT (too large:
 * not sent), CRPC_ETYPE, CRPC_EINVAL, CRPC_ENOMEM. */
CRPC_EXTERN int crpc_stream_send_wait(crpc_stream *s, const ProtobufCMessage *msg);
/* Receives the next response: returns 1 and *msg (owned by the caller: free it with
 * protobuf_c_message_free_unpacked(*msg, NULL)), 0 when no more will come (finish the stream to
 * learn why), or a negative error. */
CRPC_EXTERN int crpc_stream_recv_wait(crpc_stream *s, ProtobufCMessage **msg);
/* Closes the sending side if still open, waits for the status (unread responses are dropped),
 * fills *status (owned by the caller: crpc_status_reset) and releases the stream. Returns 0, or
 * CRPC_EINVAL. */
CRPC_EXTERN int crpc_stream_finish_wait(crpc_stream *s, crpc_status *status);
/* From any thread, the stream's own included: cancels a blocking stream (its waits return;
 * finish reports CANCELLED). A cancel asked for before an operation on the stream (e.g. finish)
 * is carried out before that operation, so a finish after it reports CANCELLED even when the
 * server would have answered the half-close OK, or its OK is already waiting, unread, in the
 * connection; only a status crpc had already read (e.g. while a recv_wait was running) is
 * reported instead. */
CRPC_EXTERN void crpc_stream_cancel_async(crpc_stream *s);

/* The method, for generated code and logging. */
CRPC_EXTERN const crpc_method_desc *crpc_stream_method(const crpc_stream *s);

#ifdef __cplusplus
}
#endif
#endif
