/* Client streams: writes under flow control, explicit or automatic reads, the final status after
 * the last read, and the blocking wrappers for private-loop channels. */
#include <string.h>

#include "base/alloc.h"
#include "client/call.h"
#include "client/channel.h"
#include "conn/conn.h"
#include "crpc/error.h"
#include "crpc/gen.h"
#include "wire/metadata.h"
#include "wire/pbdepth.h"

#define S(call) ((call)->stream)

static crpc_call *call_of(crpc_stream *s) { return (crpc_call *)(void *)s; }
static crpc_stream *stream_of(crpc_call *c) { return (crpc_stream *)(void *)c; }

static void on_conn_writable(crpc__wwait *w);

static crpc__cstream *cstream_new(void) {
  crpc__cstream *st = crpc__calloc(1, sizeof *st);
  if (!st) return NULL;
  crpc__arena_init(&st->scratch);
  atomic_init(&st->cancel_req, 0);
  crpc__list_init(&st->wwait.link);
  st->wwait.wake = on_conn_writable;
  return st;
}

void crpc__stream_free(crpc__cstream *st) {
  crpc__wwait_cancel(&st->wwait);
  crpc__arena_destroy(&st->scratch);
  crpc__free(st->saved);
  crpc_status_reset(&st->final);
  crpc__free(st);
}

static void send_window(crpc_call *call, uint32_t inc) {
  if (call->core.conn) crpc__conn_send_window(call->core.conn, call->core.id, inc);
}

void crpc__stream_started(crpc_call *call) {
  S(call)->call = call;
  crpc__flow_init(&call->core.flow, (uint64_t)call->ch->opt[CRPC_OPT_STREAM_WINDOW]);
  send_window(call, crpc__flow_initial_grant(&call->core.flow));
}

/* ---- Receiving ------------------------------------------------------------------------------ */

#define cost crpc__flow_cost

static void finish_saved(crpc_call *call);
static int deliver(crpc_call *call, const uint8_t *data, size_t len);

/* Delivers what a pending read or auto_read wants, then the saved status once nothing is left
 * unread. Iterative: a read() from inside on_read only marks the next read as wanted. */
static void pump(crpc_call *call) {
  crpc__cstream *st = S(call);
  while (!crpc__call_done(call) && call->core.in_cb == 0) {
    if (call->core.flow.head && (st->h.auto_read || st->read_pending)) {
      crpc__msg *m = crpc__flow_pop(&call->core.flow);
      st->read_pending = 0;
      int gone = deliver(call, m->data, m->len);
      crpc__free(m);
      if (gone) return;
    } else if (!call->core.flow.head && st->saved) {
      finish_saved(call);
      return;
    } else {
      return;
    }
  }
}

/* Decodes one message into the scratch arena (async) or the heap (blocking), within the
 * MAX_DECODE_RATIO budget (arena.h); on failure *why (enum crpc__decode_fail) says why. */
static ProtobufCMessage *decode(crpc_call *call, const uint8_t *data, size_t len, int heap,
                                int *why) {
  crpc_channel *ch = call->ch;
  *why = CRPC__DECODE_BAD;
  if (crpc__pb_depth_check(call->method->output, data, len,
                           (unsigned)ch->opt[CRPC_OPT_MAX_NESTING_DEPTH]) != 0)
    return NULL;
  return crpc__unpack_budgeted(call->method->output, heap ? NULL : &S(call)->scratch,
                               (unsigned)ch->opt[CRPC_OPT_MAX_DECODE_RATIO], len, data, why);
}

#define OVER_BUDGET "response message decodes to more memory than the client's MAX_DECODE_RATIO allows"

/* Hands one message to on_read and returns its credit. 0, or -1 when the call ended inside. */
static int deliver(crpc_call *call, const uint8_t *data, size_t len) {
  crpc__cstream *st = S(call);
  int why;
  ProtobufCMessage *msg = decode(call, data, len, 0, &why);
  if (!msg) {
    crpc__arena_reset(&st->scratch);
    if (why == CRPC__DECODE_OVER)
      crpc__call_abandon(call, CRPC_STATUS_RESOURCE_EXHAUSTED, OVER_BUDGET);
    else
      crpc__call_abandon(call, CRPC_STATUS_INTERNAL,
                         "response message does not decode as the method's output type");
    return -1;
  }
  crpc__core_enter(&call->core);
  if (st->h.on_read) st->h.on_read(stream_of(call), msg, call->user_data);
  crpc__arena_reset(&st->scratch);
  if (crpc__core_leave(&call->core) || crpc__call_done(call)) return -1;
  send_window(call, crpc__flow_consumed(&call->core.flow, cost(len)));
  return 0;
}

/* Blocking: a parked receive takes the oldest message (or learns the end). */
static void wake_reader(crpc_call *call) {
  crpc__cstream *st = S(call);
  crpc__waiter *w = st->waiter;
  if (!w || w->op == NULL || w->result != 1) return; /* result 1 marks a parked receive */
  crpc__msg *m = crpc__flow_pop(&call->core.flow);
  if (!m) return;
  int why;
  w->response = decode(call, m->data, m->len, 1, &why);
  if (!w->response && why == CRPC__DECODE_OVER) {
    /* The call ends here; the parked receive learns it (0) and finish reports the status. */
    crpc__free(m);
    if (!crpc__call_done(call)) {
      crpc__call_abandon(call, CRPC_STATUS_RESOURCE_EXHAUSTED, OVER_BUDGET);
      return;
    }
    /* It ended already (cancelled, deadline, connection lost) with this message unread: that
     * outcome stands (a call completes once), and the receive learns the end. */
    st->waiter = NULL;
    w->result = 0;
    crpc__waiter_signal(call->ch, w);
    return;
  }
  st->waiter = NULL;
  w->result = w->response ? 1 : why == CRPC__DECODE_NOMEM ? CRPC_ENOMEM : CRPC_EINVAL;
  send_window(call, crpc__flow_consumed(&call->core.flow, cost(m->len)));
  crpc__free(m);
  crpc__waiter_signal(call->ch, w);
}

void crpc__stream_on_message(crpc_call *call, const crpc__frame *f) {
  crpc__cstream *st = S(call);
  if (!st) {
    crpc__call_abandon(call, CRPC_STATUS_INTERNAL, "server sent a stream message on a unary call");
    return;
  }
  size_t len = f->length;
  if (f->oversized || len > call->core.conn->ctx->max_recv) {
    crpc__call_abandon(call, CRPC_STATUS_RESOURCE_EXHAUSTED,
                       "response message larger than the client's maximum message size");
    return;
  }
  /* The method's contract before the window (PROTOCOL.md 6.2): a second response is wrong
   * whatever credit the server had. */
  if (!(call->method->flags & CRPC_METHOD_SERVER_STREAMING) && st->responses++) {
    crpc__call_abandon(call, CRPC_STATUS_INTERNAL,
                       "server sent a second response on a client-streaming call");
    return;
  }
  if (crpc__flow_receive(&call->core.flow, cost(len)) != 0) {
    crpc__call_abandon(call, CRPC_STATUS_RESOURCE_EXHAUSTED,
                       "server sent past the stream's flow-control window");
    return;
  }
  if (st->discard) { /* finishing: nobody will read it */
    send_window(call, crpc__flow_consumed(&call->core.flow, cost(len)));
    return;
  }
  if (!st->blocking && !call->core.flow.head && call->core.in_cb == 0 && (st->h.auto_read || st->read_pending)) {
    st->read_pending = 0;
    if (deliver(call, f->payload, len) == 0) pump(call); /* a read asked for inside on_read */
    return;
  }
  if (crpc__flow_push(&call->core.flow, f->payload, len) != 0) {
    crpc__call_abandon(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "client out of memory");
    return;
  }
  if (st->blocking) wake_reader(call);
  else pump(call);
}

/* The stream may write again (its window opened, or the connection's output drained): a parked
 * blocking send is sent now (and stays parked when MAX_WRITE_BUFFER refuses it again), an async
 * stream's on_writable runs. */
static void became_writable(crpc_call *call) {
  crpc__cstream *st = S(call);
  if (st->blocking) {
    crpc__waiter *w = st->waiter;
    if (w && w->result == 2) {
      int rc = crpc_stream_write(stream_of(call), w->msg_in);
      if (rc == CRPC_EAGAIN) return;
      st->waiter = NULL;
      w->result = rc;
      crpc__waiter_signal(call->ch, w);
    }
    return;
  }
  crpc__core_enter(&call->core);
  if (st->h.on_writable) st->h.on_writable(stream_of(call), call->user_data);
  if (crpc__core_leave(&call->core) || crpc__call_done(call)) return;
  pump(call);
}

void crpc__stream_on_window(crpc_call *call, uint32_t inc) {
  crpc__cstream *st = S(call);
  if (!st) return;
  int rc = crpc__flow_credit(&call->core.flow, inc);
  if (rc < 0) {
    crpc__call_abandon(call, CRPC_STATUS_INTERNAL,
                       "server's WINDOW took the flow-control window above 2^31-1");
    return;
  }
  if (rc) became_writable(call);
}

/* The connection's output drained after a write was refused for MAX_WRITE_BUFFER. */
static void on_conn_writable(crpc__wwait *ww) {
  crpc__cstream *st = CRPC__CONTAINER_OF(ww, crpc__cstream, wwait);
  crpc_call *call = st->call;
  if (crpc__call_done(call) || !call->core.conn) return;
  became_writable(call);
}

/* The status is delivered only after every message that arrived before it has been read. */
int crpc__stream_on_status(crpc_call *call, const crpc__status_hdr *h) {
  crpc__cstream *st = S(call);
  if (!call->core.flow.head || st->discard) return 0;
  /* code, text length, details length, metadata length: four u32s, then the three blobs. */
  size_t n = 16 + (size_t)h->text_len + h->details_len + h->metadata_len;
  st->saved = crpc__malloc(n);
  if (!st->saved) return 0; /* deliver now, losing the unread messages */
  uint8_t *p = st->saved;
  crpc__be32_put(p, h->code);
  crpc__be32_put(p + 4, h->text_len);
  memcpy(p + 8, h->text, h->text_len);
  p += 8 + h->text_len;
  crpc__be32_put(p, h->details_len);
  if (h->details_len) memcpy(p + 4, h->details, h->details_len);
  p += 4 + h->details_len;
  crpc__be32_put(p, h->metadata_len);
  if (h->metadata_len) memcpy(p + 4, h->metadata, h->metadata_len);
  /* The connection has forgotten the call (STATUS ends it on the wire) and may now close and go
   * away before the application reads on: the call must not point at it any more. */
  crpc__conn *conn = crpc__core_off_wire(&call->core);
  if (conn) crpc__channel_call_removed(call->ch, conn);
  if (st->blocking) {
    wake_reader(call);
    crpc__waiter *w = st->waiter;
    if (w && w->result == 2) { /* a parked send: no credit can come for a call ended on the wire */
      st->waiter = NULL;
      w->result = CRPC_ESTATE;
      crpc__waiter_signal(call->ch, w);
    }
  }
  return 1;
}

static void finish_saved(crpc_call *call) {
  crpc__cstream *st = S(call);
  uint8_t *p = st->saved;
  crpc__result r;
  memset(&r, 0, sizeof r);
  r.code = (crpc_code)crpc__be32_get(p);
  r.text_len = crpc__be32_get(p + 4);
  r.text = (const char *)p + 8;
  p += 8 + r.text_len;
  r.details_len = crpc__be32_get(p);
  r.details = p + 4;
  p += 4 + r.details_len;
  r.trailers_len = crpc__be32_get(p);
  r.trailers = p + 4;
  crpc__call_finish(call, &r); /* st->saved is freed with the stream */
}

int crpc__stream_ended(crpc_call *call, crpc_status *status) {
  crpc__cstream *st = S(call);
  if (st->blocking) {
    st->final = *status; /* malloc'd: the caller of finish gets it */
    crpc__waiter *w = st->waiter;
    st->waiter = NULL;
    if (w) {
      if (w->result == 1) w->result = 0; /* a receive learns the end */
      else if (w->result == 2) w->result = CRPC_ESTATE;
      crpc__waiter_signal(call->ch, w);
    }
    return 1; /* the owner's reference goes in crpc_stream_finish_wait() */
  }
  crpc__core_enter(&call->core);
  st->h.on_done(stream_of(call), status, call->user_data);
  crpc__core_leave(&call->core); /* the owner's reference still holds it */
  return 0;
}

/* ---- Async API --------------------------------------------------------------------------------- */

int crpc_channel_stream(crpc_channel *ch, const crpc_method_desc *method,
                        const crpc_call_opts *opts, const crpc_stream_handlers *handlers,
                        void *user_data, crpc_stream **out) {
  return crpc_gen_stream(ch, method, opts, handlers, NULL, user_data, out);
}

const void *crpc_stream_typed(const crpc_stream *s) {
  const crpc_call *call = (const crpc_call *)(const void *)s;
  return call && call->stream ? call->stream->typed : NULL;
}

int crpc_gen_stream(crpc_channel *ch, const crpc_method_desc *method, const crpc_call_opts *opts,
                    const crpc_stream_handlers *handlers, const void *typed, void *user_data,
                    crpc_stream **out) {
  if (out) *out = NULL;
  if (!ch || !handlers || !handlers->on_done || !out || (opts && opts->cancel)) return CRPC_EINVAL;
  if (ch->own_loop) return CRPC_ENOTSUP;
  crpc__cstream *st = cstream_new();
  if (!st) return CRPC_ENOMEM;
  st->h = *handlers;
  st->typed = typed;
  crpc_call *call;
  int rc = crpc__call_start_stream(ch, method, opts, st, user_data, &call); /* takes st */
  if (rc != 0) return rc;
  *out = stream_of(call);
  return 0;
}

int crpc_stream_write(crpc_stream *s, const ProtobufCMessage *msg) {
  if (!s || !msg) return CRPC_EINVAL;
  crpc_call *call = call_of(s);
  crpc__cstream *st = S(call);
  if (crpc__call_done(call) || (call->core.shut & CRPC__SHUT_SEND)) return CRPC_ESTATE;
  if (msg->descriptor != call->method->input) return CRPC_ETYPE;
  if (!call->core.conn || call->core.conn->state == CRPC__CONN_CLOSING) return CRPC_ESTATE;
  if (!crpc__flow_can_send(&call->core.flow)) {
    call->core.flow.blocked = 1;
    return CRPC_EAGAIN;
  }
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > (uint64_t)call->ch->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]) return CRPC_ELIMIT;
  if (crpc__conn_write_blocked(call->core.conn, &st->wwait)) return CRPC_EAGAIN; /* MAX_WRITE_BUFFER */
  if (crpc__conn_send_message(call->core.conn, call->core.id, msg, len) != 0) return CRPC_ENOMEM;
  crpc__flow_sent(&call->core.flow, cost(len));
  return 0;
}

/* A blocking stream's operations first carry out a cancel asked for with
 * crpc_stream_cancel_async(): the wake-up that would do it may not have run yet (a thread that
 * leads the loop runs its own operation first), and a cancel asked for before an operation must
 * win over it, e.g. over the half-close of a finish that the server would answer OK. */
static void apply_cancel(crpc_call *call) {
  crpc__cstream *st = S(call);
  if (!crpc__call_done(call) && atomic_load(&st->cancel_req))
    crpc__call_abandon(call, CRPC_STATUS_CANCELLED, "cancelled by the client");
}

static int close_send_now(crpc_call *call) {
  if (crpc__call_done(call) || (call->core.shut & CRPC__SHUT_SEND)) return CRPC_ESTATE;
  call->core.shut |= CRPC__SHUT_SEND;
  if (call->core.conn && call->core.conn->state != CRPC__CONN_CLOSING)
    crpc__conn_send_empty(call->core.conn, CRPC__F_HALF_CLOSE, call->core.id);
  return 0;
}

static void op_close_send(crpc_channel *ch, crpc__waiter *w) {
  apply_cancel(w->stream);
  w->result = close_send_now(w->stream);
  crpc__waiter_signal(ch, w);
}

int crpc_stream_close_send(crpc_stream *s) {
  if (!s) return CRPC_EINVAL;
  crpc_call *call = call_of(s);
  if (!S(call)->blocking) return close_send_now(call);
  /* A blocking stream's state belongs to whoever drives its loop: go through it. */
  crpc__waiter w;
  memset(&w, 0, sizeof w);
  w.op = op_close_send;
  w.stream = call;
  int rc = crpc__blocking_run(call->ch, &w);
  return rc ? rc : w.result;
}

int crpc_stream_read(crpc_stream *s) {
  if (!s) return CRPC_EINVAL;
  crpc_call *call = call_of(s);
  crpc__cstream *st = S(call);
  if (crpc__call_done(call) || st->blocking || st->h.auto_read || st->read_pending) return CRPC_ESTATE;
  if (!call->core.flow.head && st->saved) return CRPC_ESTATE;
  st->read_pending = 1;
  pump(call);
  return 0;
}

void crpc_stream_cancel(crpc_stream *s) {
  if (s && !crpc__call_done(call_of(s))) crpc__call_abandon(call_of(s), CRPC_STATUS_CANCELLED, "cancelled by the client");
}

const crpc_method_desc *crpc_stream_method(const crpc_stream *s) {
  return s ? ((const crpc_call *)(const void *)s)->method : NULL;
}

/* ---- Blocking API ------------------------------------------------------------------------------ */

static void op_open(crpc_channel *ch, crpc__waiter *w) {
  crpc__cstream *st = cstream_new();
  if (!st) {
    w->result = CRPC_ENOMEM;
  } else {
    st->blocking = 1;
    crpc_call *call;
    w->result = crpc__call_start_stream(ch, w->method, w->opts, st, NULL, &call); /* takes st */
    if (w->result == 0) w->stream = call;
  }
  crpc__waiter_signal(ch, w);
}

int crpc_channel_stream_open(crpc_channel *ch, const crpc_method_desc *method,
                             const crpc_call_opts *opts, crpc_stream **out) {
  if (out) *out = NULL;
  if (!ch || !method || !out || (opts && opts->cancel)) return CRPC_EINVAL;
  if (!ch->own_loop) return CRPC_ENOTSUP;
  crpc__waiter w;
  memset(&w, 0, sizeof w);
  w.method = method;
  w.opts = opts;
  w.op = op_open;
  int rc = crpc__blocking_run(ch, &w);
  if (rc == 0) rc = w.result;
  if (rc == 0) *out = stream_of(w.stream);
  return rc;
}

static void op_send(crpc_channel *ch, crpc__waiter *w) {
  crpc_call *call = w->stream;
  apply_cancel(call);
  int rc = crpc__call_done(call) ? CRPC_ESTATE : crpc_stream_write(stream_of(call), w->msg_in);
  if (rc == CRPC_EAGAIN) {
    w->result = 2; /* parked until credit arrives or the call ends */
    S(call)->waiter = w;
    return;
  }
  w->result = rc;
  crpc__waiter_signal(ch, w);
}

int crpc_stream_send_wait(crpc_stream *s, const ProtobufCMessage *msg) {
  if (!s || !msg) return CRPC_EINVAL;
  crpc_call *call = call_of(s);
  crpc__waiter w;
  memset(&w, 0, sizeof w);
  w.op = op_send;
  w.stream = call;
  w.msg_in = msg;
  int rc = crpc__blocking_run(call->ch, &w);
  return rc ? rc : w.result;
}

static void op_recv(crpc_channel *ch, crpc__waiter *w) {
  crpc_call *call = w->stream;
  crpc__cstream *st = S(call);
  apply_cancel(call);
  if (call->core.flow.head) {
    w->result = 1;
    st->waiter = w;
    wake_reader(call); /* takes the message and signals */
    return;
  }
  if (crpc__call_done(call) || st->saved) {
    w->result = 0;
    crpc__waiter_signal(ch, w);
    return;
  }
  w->result = 1; /* parked until a message or the end */
  st->waiter = w;
}

int crpc_stream_recv_wait(crpc_stream *s, ProtobufCMessage **msg) {
  if (!s || !msg) return CRPC_EINVAL;
  *msg = NULL;
  crpc_call *call = call_of(s);
  crpc__waiter w;
  memset(&w, 0, sizeof w);
  w.op = op_recv;
  w.stream = call;
  int rc = crpc__blocking_run(call->ch, &w);
  if (rc) return rc;
  if (w.result == 1) *msg = w.response;
  return w.result;
}

/* Drops what is unread, keeps the window open, and waits for the status. */
static void op_finish(crpc_channel *ch, crpc__waiter *w) {
  crpc_call *call = w->stream;
  crpc__cstream *st = S(call);
  apply_cancel(call);
  if (!crpc__call_done(call)) {
    if (!(call->core.shut & CRPC__SHUT_SEND)) close_send_now(call);
    st->discard = 1;
    crpc__msg *m;
    while ((m = crpc__flow_pop(&call->core.flow)) != NULL) {
      send_window(call, crpc__flow_consumed(&call->core.flow, cost(m->len)));
      crpc__free(m);
    }
    if (st->saved) finish_saved(call); /* completes it */
  }
  if (!crpc__call_done(call)) {
    w->result = 3; /* parked until the status */
    st->waiter = w;
    return;
  }
  w->status = st->final;
  memset(&st->final, 0, sizeof st->final);
  crpc__core_unref(&call->core); /* the owner's: frees it */
  w->result = 0;
  crpc__waiter_signal(ch, w);
}

int crpc_stream_finish_wait(crpc_stream *s, crpc_status *status) {
  if (!s || !status) return CRPC_EINVAL;
  memset(status, 0, sizeof *status);
  crpc_call *call = call_of(s);
  crpc_channel *ch = call->ch;
  crpc__waiter w;
  memset(&w, 0, sizeof w);
  w.op = op_finish;
  w.stream = call;
  for (;;) {
    int rc = crpc__blocking_run(ch, &w);
    if (rc) return rc;
    if (w.result == 0) break;
    /* The status arrived while parked: run the op again to collect it and release the call. */
    w.result = 0;
    w.done = 0;
    w.started = 0;
  }
  *status = w.status;
  return 0;
}

void crpc_stream_cancel_async(crpc_stream *s) {
  if (!s) return;
  crpc_call *call = call_of(s);
  atomic_store(&S(call)->cancel_req, 1);
  uv_async_send(&call->ch->wake);
}
