/* Server calls: one incoming RPC from dispatch to the handler's single finish. */
#ifndef CRPC_SERVER_CALL_H
#define CRPC_SERVER_CALL_H

#include <stdint.h>

#include "base/arena.h"
#include "call/core.h"
#include "conn/conn.h"
#include "crpc/server.h"
#include "base/dlheap.h"
#include "base/list.h"
#include "call/flow.h"
#include "wire/frame.h"
#include "base/outbuf.h"
#include "server/registry.h"

typedef struct crpc__conn crpc__conn;

/* The longest STATUS text a server sends (longer texts are cut between two characters). */
#define CRPC__MAX_STATUS_TEXT 65536

/* What a streaming server call has beyond a unary one (server_stream.c). */
typedef struct crpc__sstream {
  crpc_server_read_cb on_read;
  crpc_server_writable_cb on_writable;
  void *user_data;
  crpc_fn user_fn;
  int auto_read;
  int read_pending;
  int eof_delivered;   /* on_read(NULL) has run */
  int responded;       /* a message was written (a client-streaming call's one response) */
  crpc__arena scratch; /* decoded client messages, reset after each delivery */
  crpc__wwait wwait;   /* waiting for the connection's output to drain (MAX_WRITE_BUFFER) */
  crpc_server_call *call;
} crpc__sstream;

/* A server call. Its state, connection, id, deadline, arena and lifetime are its core's
 * (call/core.h): OPEN while the client's call is on the wire, CLOSED once the wire forgot it
 * (cancelled: client gone, CANCEL, deadline) while the handler still holds it, DONE when the
 * handler finished it. The owner's reference is dropped at that finish; the handler, on_cancel,
 * on_read and on_writable run inside crpc__core_enter/leave. */
struct crpc_server_call {
  crpc__core core;
  crpc_server *srv;
  const crpc__reg_entry *entry;
  ProtobufCMessage *request; /* in the arena */
  crpc_metadata *md;         /* request metadata, in the arena */
  size_t md_count;
  crpc__outbuf trailers;     /* encoded metadata block to send with the status */
  size_t trailers_counted;
  crpc_server_cancel_cb on_cancel;
  void *cancel_ud;
  int cancelled;             /* it went off the wire before the handler finished it */
  int dispatched;            /* a handler has been given it */
  crpc__sstream *stream;     /* streaming calls only */
  crpc__list hlink;          /* held_on->held */
  crpc__conn *held_on;       /* counted against this connection's limit though forgotten */
};

/* 1 once the handler finished it (DONE). */
static inline int crpc__scall_finished(const crpc_server_call *sc) {
  return crpc__core_done(&sc->core);
}

/* The wire forgets the call (client cancelled, or connection gone): the handler still owns it
 * and must finish it; nothing will be sent. */
void crpc__server_call_detach(crpc_server_call *sc);
/* The connection goes away: its held calls stop counting against it (server.c's on_closed). */
void crpc__server_calls_unhold(crpc__conn *c);
/* Streams (server/stream.c). */
int crpc__sstream_begin(crpc_server_call *sc, const crpc__frame *f, const crpc__call_hdr *h);
void crpc__sstream_on_message(crpc_server_call *sc, const crpc__frame *f);
void crpc__sstream_on_half_close(crpc_server_call *sc);
void crpc__sstream_on_window(crpc_server_call *sc, uint32_t inc);
void crpc__sstream_free(crpc__sstream *st);
/* Dispatches to the handler (request NULL for client/bidi streams). Returns 1 when the call was
 * freed inside (the caller must not touch it). */
int crpc__scall_dispatch(crpc_server_call *sc, const ProtobufCMessage *request);

#endif
