/* Client calls: one outgoing RPC from start to its single completion. */
#ifndef CRPC_CALL_H
#define CRPC_CALL_H

#include <stdatomic.h>

#include "base/arena.h"
#include "call/core.h"
#include "conn/conn.h"
#include "crpc/channel.h"
#include "crpc/stream.h"
#include "base/dlheap.h"
#include "call/flow.h"
#include "wire/frame.h"
#include "base/list.h"

typedef struct crpc__conn crpc__conn;
typedef struct crpc__waiter crpc__waiter;

/* What a streaming call has beyond a unary one (stream.c). */
typedef struct crpc__cstream {
  crpc_stream_handlers h;   /* async streams */
  const void *typed;        /* generated code's typed handler table */
  int read_pending;         /* crpc_stream_read() waits for a message */
  int discard;              /* blocking finish: drop what arrives, keep the window open */
  int responses;            /* client streaming: messages received (0, 1; a second ends it) */
  uint8_t *saved;           /* the STATUS that arrived while messages were unread */
  crpc__arena scratch;      /* decoded messages, reset after each delivery */
  int blocking;             /* a private-loop (blocking) stream */
  crpc__waiter *waiter;     /* blocking: the operation parked on this stream */
  crpc_status final;        /* blocking: the status, once the call is DONE */
  atomic_int cancel_req;    /* blocking: crpc_stream_cancel_async() was called */
  crpc__wwait wwait;        /* waiting for the connection's output to drain (MAX_WRITE_BUFFER) */
  struct crpc_call *call;
} crpc__cstream;

/* A client call. Its state, connection, id, deadline, arena and lifetime are its core's
 * (call/core.h): the owner's reference is dropped when the outcome has been handed over (async
 * calls and streams) or by crpc_stream_finish_wait (blocking streams). */
struct crpc_call {
  crpc__core core;
  crpc_channel *ch;
  const crpc_method_desc *method;
  crpc_unary_cb cb;      /* async completion, or NULL for a blocking call */
  crpc_fn user_fn;
  void *user_data;
  crpc__waiter *waiter;  /* blocking call: where the outcome goes */
  int64_t timeout_ms;    /* as requested, for the message */
  uint16_t name_len;     /* strlen(method->full_name), measured once at the start */
  crpc__cstream *stream; /* streaming calls only */
  crpc_code fail_code;   /* deferred failure */
  char *fail_why;
};

/* How a call ended, as received (pointers into the frame, valid during completion only). */
typedef struct crpc__result {
  crpc_code code;
  const char *text;
  size_t text_len;
  const uint8_t *details;
  size_t details_len;
  const uint8_t *trailers; /* encoded metadata block */
  uint32_t trailers_len;
  const uint8_t *msg;      /* encoded response when code is OK */
  size_t msg_len;
  const crpc__frame *frame; /* the STATUS frame msg lies in (NULL when not from one) */
  crpc__decoder *dec;       /* the decoder delivering frame */
} crpc__result;

/* Starts a call (loop thread). Exactly one of cb / waiter is set. Returns 0 (the call will
 * complete exactly once, never before this returns if it has a cb) or a negative error (nothing
 * was started). */
int crpc__call_start(crpc_channel *ch, const crpc_method_desc *method,
                     const ProtobufCMessage *request, const crpc_call_opts *opts,
                     crpc_unary_cb cb, crpc_fn user_fn, void *user_data, crpc__waiter *waiter,
                     crpc_call **call_out);

/* Starts a streaming call. st is taken over whatever happens: freed with the call, or at once
 * when the call cannot be started. */
int crpc__call_start_stream(crpc_channel *ch, const crpc_method_desc *method,
                            const crpc_call_opts *opts, crpc__cstream *st, void *user_data,
                            crpc_call **call_out);
/* The single completion of a call. */
void crpc__call_finish(crpc_call *call, const crpc__result *r);
/* 1 once the call is complete (DONE). */
static inline int crpc__call_done(const crpc_call *call) { return crpc__core_done(&call->core); }
/* stream.c hooks called by call.c and conn.c. */
void crpc__stream_started(crpc_call *call);
/* The call completed with st (st's memory: malloc for blocking streams, else the arena).
 * Returns 1 when the stream took over the call's release. */
int crpc__stream_ended(crpc_call *call, crpc_status *st);
/* STATUS arrived; returns 1 when it was saved for later (unread messages). */
int crpc__stream_on_status(crpc_call *call, const crpc__status_hdr *st);
void crpc__stream_on_message(crpc_call *call, const crpc__frame *f);
void crpc__stream_on_window(crpc_call *call, uint32_t inc);
void crpc__stream_free(crpc__cstream *st);

/* The connection's split_at hook (conn.h): splits a large OK response of a unary call where its
 * large bytes field's value begins (unpack_lend.c). */
size_t crpc__call_split_at(crpc__conn *c, const uint8_t *unit, size_t have);
/* The call ends with code/why, found on this side (untracked already, or never sent). */
void crpc__call_fail(crpc_call *call, crpc_code code, const char *why);
/* Ends a call the server may still be working on: untracks it, tells the server (CANCEL), and
 * completes it with code/why. */
void crpc__call_abandon(crpc_call *call, crpc_code code, const char *why);
/* Runs the failures deferred so that no callback runs inside crpc_channel_unary_async(). */
void crpc__call_run_deferred(crpc_channel *ch);
/* Frees the channel's spare call objects. */
void crpc__calls_free(crpc_channel *ch);

#endif
