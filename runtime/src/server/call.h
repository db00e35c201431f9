/* Server calls: one incoming RPC from dispatch to the handler's single finish. */
#ifndef CRPC_SERVER_CALL_H
#define CRPC_SERVER_CALL_H

#include <stdint.h>

#include "base/arena.h"
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
  crpc__flow flow;
  crpc_server_read_cb on_read;
  crpc_server_writable_cb on_writable;
  void *user_data;
  crpc_fn user_fn;
  int auto_read;
  int read_pending;
  int remote_closed;   /* the client closed its sending side */
  int eof_delivered;   /* on_read(NULL) has run */
  int dispatched;      /* the handler has been called */
  int cb_depth;        /* inside a user callback */
  int responded;       /* a message was written (a client-streaming call's one response) */
  crpc__arena scratch; /* decoded client messages, reset after each delivery */
  crpc__wwait wwait;   /* waiting for the connection's output to drain (MAX_WRITE_BUFFER) */
  crpc_server_call *call;
} crpc__sstream;

struct crpc_server_call {
  crpc_server *srv;
  crpc__conn *conn;          /* NULL once the client is gone or cancelled */
  uint32_t id;
  const crpc__reg_entry *entry;
  ProtobufCMessage *request; /* in the arena */
  crpc_metadata *md;         /* request metadata, in the arena */
  size_t md_count;
  crpc__outbuf trailers;     /* encoded metadata block to send with the status */
  size_t trailers_counted;
  crpc__dl_node dl;          /* deadline */
  crpc_server_cancel_cb on_cancel;
  void *cancel_ud;
  int cancelled;
  int finished;              /* the handler finished it (its release may wait for a callback) */
  int dispatched;            /* a handler has been given it */
  int cb_depth;              /* inside its handler or on_cancel (stream callbacks: stream) */
  int release_pending;       /* finished: released once no callback of it is running */
  crpc__sstream *stream;     /* streaming calls only */
  crpc__list link;           /* srv->calls, or the pool */
  crpc__list hlink;          /* held_on->held */
  crpc__conn *held_on;       /* counted against this connection's limit though forgotten */
  crpc__arena arena;
};

/* The connection forgets the call (client cancelled, or connection gone): the handler still owns
 * it and must finish it; nothing will be sent. */
void crpc__server_call_detach(void *call);
/* The peer cancelled it or its deadline passed (the connection lives on): detach, but keep
 * counting it against the connection's MAX_CALLS_PER_CONN until the handler finishes it. */
void crpc__server_call_forget(crpc__conn *c, void *call);
/* The connection goes away: its held calls stop counting against it. */
void crpc__server_calls_unhold(crpc__conn *c);
/* Streams (server_stream.c). */
int crpc__sstream_begin(crpc_server_call *sc, const crpc__frame *f, const crpc__call_hdr *h);
void crpc__sstream_on_message(crpc_server_call *sc, const crpc__frame *f);
void crpc__sstream_on_half_close(crpc_server_call *sc);
void crpc__sstream_on_window(crpc_server_call *sc, uint32_t inc);
void crpc__sstream_free(crpc__sstream *st);
/* server_call.c: releases a finished call (after a deferred release). */
void crpc__scall_release(crpc_server_call *sc);
/* server_call.c: releases a finished call unless one of its callbacks is still running;
 * returns 1 when it was released. */
int crpc__scall_settle(crpc_server_call *sc);
/* server_call.c: dispatches to the handler (request NULL for client/bidi streams). */
void crpc__scall_dispatch(crpc_server_call *sc, const ProtobufCMessage *request);

/* Fires the deadlines that have passed and re-arms the server's deadline timer. */
void crpc__server_expire(crpc_server *srv);

#endif
