/* Server side of streaming calls: the request of a server-streaming call, client messages under
 * flow control, writes, and the end-of-requests signal. */
#include <string.h>

#include "base/alloc.h"
#include "conn/conn.h"
#include "crpc/error.h"
#include "crpc/gen.h"
#include "wire/pbdepth.h"
#include "server/call.h"
#include "server/server.h"

#define cost crpc__flow_cost

static void on_conn_writable(crpc__wwait *w);

void crpc__sstream_free(crpc__sstream *st) {
  crpc__wwait_cancel(&st->wwait);
  crpc__arena_destroy(&st->scratch);
  crpc__free(st);
}

static void send_window(crpc_server_call *sc, uint32_t inc) {
  if (sc->core.conn) crpc__conn_send_window(sc->core.conn, sc->core.id, inc);
}

/* Ends the call from crpc's side (bad client input): the handler is told through on_cancel. */
static void reject(crpc_server_call *sc, crpc_code code, const char *why) {
  crpc__conn *c = sc->core.conn;
  if (c && crpc__conn_untrack(c, sc->core.id)) crpc__conn_send_status(c, sc->core.id, code, why);
  crpc__server_call_detach(sc);
}

/* Decodes into `arena` within the MAX_DECODE_RATIO budget; on failure *why (enum
 * crpc__decode_fail) says why. */
static ProtobufCMessage *decode(crpc_server_call *sc, const uint8_t *data, size_t len,
                                crpc__arena *arena, int *why) {
  const ProtobufCMessageDescriptor *in = sc->entry->method->input;
  *why = CRPC__DECODE_BAD;
  if (crpc__pb_depth_check(in, data, len, (unsigned)sc->srv->opt[CRPC_OPT_MAX_NESTING_DEPTH]) != 0)
    return NULL;
  return crpc__unpack_budgeted(in, arena, (unsigned)sc->srv->opt[CRPC_OPT_MAX_DECODE_RATIO], len,
                               data, why);
}

/* Ends the call for a message that decode() refused, for the reason it gave. */
static void reject_undecodable(crpc_server_call *sc, int why, const char *what) {
  if (why == CRPC__DECODE_OVER)
    reject(sc, CRPC_STATUS_RESOURCE_EXHAUSTED,
           "stream message decodes to more memory than the server's MAX_DECODE_RATIO allows");
  else
    reject(sc, CRPC_STATUS_INTERNAL, what);
}

/* Ends a user callback (begun with crpc__core_enter); returns 1 when the call is over for the
 * stream: finished or cancelled inside it, or freed (then it must not be touched). */
static int after_callback(crpc_server_call *sc) {
  if (crpc__core_leave(&sc->core)) return 1;
  return crpc__scall_finished(sc) || sc->cancelled;
}

static int deliver(crpc_server_call *sc, const uint8_t *data, size_t len) {
  crpc__sstream *st = sc->stream;
  int why;
  ProtobufCMessage *msg = decode(sc, data, len, &st->scratch, &why);
  if (!msg) {
    crpc__arena_reset(&st->scratch);
    reject_undecodable(sc, why, "stream message does not decode as the method's input type");
    return 1;
  }
  crpc__core_enter(&sc->core);
  if (st->on_read) st->on_read(sc, msg, st->user_data);
  crpc__arena_reset(&st->scratch);
  if (after_callback(sc)) return 1;
  send_window(sc, crpc__flow_consumed(&sc->core.flow, cost(len)));
  return 0;
}

static int deliver_eof(crpc_server_call *sc) {
  crpc__sstream *st = sc->stream;
  st->eof_delivered = 1;
  crpc__core_enter(&sc->core);
  if (st->on_read) st->on_read(sc, NULL, st->user_data);
  return after_callback(sc);
}

/* Delivers what a pending read or auto_read wants, from the queue. */
static void pump(crpc_server_call *sc) {
  crpc__sstream *st = sc->stream;
  while (!crpc__scall_finished(sc) && !sc->cancelled && (st->auto_read || st->read_pending)) {
    crpc__msg *m = crpc__flow_pop(&sc->core.flow);
    if (m) {
      st->read_pending = 0;
      int gone = deliver(sc, m->data, m->len);
      crpc__free(m);
      if (gone) return;
    } else if ((sc->core.shut & CRPC__SHUT_RECV) && !st->eof_delivered) {
      st->read_pending = 0;
      if (deliver_eof(sc)) return;
    } else {
      return;
    }
  }
}

static void dispatch(crpc_server_call *sc, const ProtobufCMessage *request) {
  if (crpc__scall_dispatch(sc, request) || crpc__scall_finished(sc) || sc->cancelled) return;
  pump(sc);
}

/* A server-streaming call waits for its one request before the handler runs. */
static int wants_request(const crpc_server_call *sc) {
  return !(sc->entry->method->flags & CRPC_METHOD_CLIENT_STREAMING);
}

static void take_request(crpc_server_call *sc, const uint8_t *data, size_t len) {
  int why;
  ProtobufCMessage *req = decode(sc, data, len, &sc->core.arena, &why);
  if (!req) {
    reject_undecodable(sc, why, "request does not decode as the method's input type");
    return;
  }
  sc->request = req;
  send_window(sc, crpc__flow_consumed(&sc->core.flow, cost(len)));
  dispatch(sc, req);
}

int crpc__sstream_begin(crpc_server_call *sc, const crpc__frame *f, const crpc__call_hdr *h) {
  crpc__sstream *st = crpc__calloc(1, sizeof *st);
  if (!st) {
    reject(sc, CRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
    return -1;
  }
  crpc__flow_init(&sc->core.flow, (uint64_t)sc->srv->opt[CRPC_OPT_STREAM_WINDOW]);
  crpc__arena_init(&st->scratch);
  crpc__list_init(&st->wwait.link);
  st->wwait.wake = on_conn_writable;
  st->call = sc;
  sc->stream = st;
  send_window(sc, crpc__flow_initial_grant(&sc->core.flow));
  if (h->message) {
    if (crpc__flow_receive(&sc->core.flow, cost(h->message_len)) != 0) {
      reject(sc, CRPC_STATUS_RESOURCE_EXHAUSTED, "client sent past the flow-control window");
      return -1;
    }
  }
  if (f->flags & CRPC__FL_END) sc->core.shut |= CRPC__SHUT_RECV;
  if (wants_request(sc)) {
    if (h->message)
      take_request(sc, h->message, h->message_len);
    else if (sc->core.shut & CRPC__SHUT_RECV)
      reject(sc, CRPC_STATUS_INTERNAL, "server-streaming call without a request message");
    return 0;
  }
  if (h->message && crpc__flow_push(&sc->core.flow, h->message, h->message_len) != 0) {
    reject(sc, CRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
    return -1;
  }
  dispatch(sc, NULL);
  return 0;
}

void crpc__sstream_on_message(crpc_server_call *sc, const crpc__frame *f) {
  crpc__sstream *st = sc->stream;
  if (!st) {
    reject(sc, CRPC_STATUS_INTERNAL, "client sent a stream message on a unary call");
    return;
  }
  if (sc->core.shut & CRPC__SHUT_RECV) {
    reject(sc, CRPC_STATUS_INTERNAL, "client sent a message after closing its side");
    return;
  }
  size_t len = f->length;
  if (f->oversized || len > sc->core.conn->ctx->max_recv) {
    reject(sc, CRPC_STATUS_RESOURCE_EXHAUSTED, "stream message larger than the server's maximum message size");
    return;
  }
  /* Before the window (PROTOCOL.md §6.2): a second request is an error whatever the window, so
   * the answer does not depend on when credit was returned. */
  if (sc->dispatched && wants_request(sc)) {
    reject(sc, CRPC_STATUS_INTERNAL, "more than one request on a server-streaming call");
    return;
  }
  if (crpc__flow_receive(&sc->core.flow, cost(len)) != 0) {
    reject(sc, CRPC_STATUS_RESOURCE_EXHAUSTED, "client sent past the flow-control window");
    return;
  }
  if (f->flags & CRPC__FL_END) sc->core.shut |= CRPC__SHUT_RECV;
  if (wants_request(sc)) { /* not dispatched yet: this is the request */
    take_request(sc, f->payload, len);
    return;
  }
  if (!sc->core.flow.head && (st->auto_read || st->read_pending)) {
    st->read_pending = 0;
    if (deliver(sc, f->payload, len)) return;
    pump(sc); /* an END flag may still be waiting */
    return;
  }
  if (crpc__flow_push(&sc->core.flow, f->payload, len) != 0) {
    reject(sc, CRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
    return;
  }
  pump(sc);
}

void crpc__sstream_on_half_close(crpc_server_call *sc) {
  crpc__sstream *st = sc->stream;
  if (!st || (sc->core.shut & CRPC__SHUT_RECV)) return;
  sc->core.shut |= CRPC__SHUT_RECV;
  if (!sc->dispatched && wants_request(sc)) {
    reject(sc, CRPC_STATUS_INTERNAL, "server-streaming call without a request message");
    return;
  }
  pump(sc);
}

void crpc__sstream_on_window(crpc_server_call *sc, uint32_t inc) {
  crpc__sstream *st = sc->stream;
  if (!st) return;
  int rc = crpc__flow_credit(&sc->core.flow, inc);
  if (rc < 0) {
    reject(sc, CRPC_STATUS_INTERNAL, "client's WINDOW took the flow-control window above 2^31-1");
    return;
  }
  if (!rc || !st->on_writable) return;
  crpc__core_enter(&sc->core);
  st->on_writable(sc, st->user_data);
  if (!after_callback(sc)) pump(sc);
}

/* The connection's output drained after a write was refused for MAX_WRITE_BUFFER. */
static void on_conn_writable(crpc__wwait *w) {
  crpc__sstream *st = CRPC__CONTAINER_OF(w, crpc__sstream, wwait);
  crpc_server_call *sc = st->call;
  if (crpc__scall_finished(sc) || sc->cancelled || !st->on_writable) return;
  crpc__core_enter(&sc->core);
  st->on_writable(sc, st->user_data);
  if (!after_callback(sc)) pump(sc);
}

/* ---- API ----------------------------------------------------------------------------------- */

int crpc_gen_server_stream_handlers(crpc_server_call *call, crpc_server_read_cb adapter,
                                    crpc_fn user_fn, crpc_server_writable_cb on_writable,
                                    void *user_data, int auto_read) {
  if (!call || !call->stream || crpc__scall_finished(call)) return CRPC_EINVAL;
  crpc__sstream *st = call->stream;
  st->on_read = adapter;
  st->user_fn = user_fn;
  st->on_writable = on_writable;
  st->user_data = user_data;
  st->auto_read = auto_read;
  /* Messages that came before the handlers were set flow now, unless we are inside the handler
   * (dispatch pumps when it returns). */
  if (auto_read && call->core.in_cb == 0) pump(call);
  return 0;
}

int crpc_server_call_stream_handlers(crpc_server_call *call, crpc_server_read_cb on_read,
                                     crpc_server_writable_cb on_writable, void *user_data,
                                     int auto_read) {
  return crpc_gen_server_stream_handlers(call, on_read, NULL, on_writable, user_data, auto_read);
}

crpc_fn crpc_server_call_user_fn(const crpc_server_call *call) {
  return call && call->stream ? call->stream->user_fn : NULL;
}

int crpc_server_call_read(crpc_server_call *call) {
  if (!call || !call->stream || crpc__scall_finished(call)) return CRPC_EINVAL;
  crpc__sstream *st = call->stream;
  if (call->cancelled || st->auto_read || st->read_pending || st->eof_delivered) return CRPC_ESTATE;
  st->read_pending = 1;
  /* Inside a callback the delivery waits until it returns (pump runs there), keeping order. */
  if (call->core.in_cb == 0) pump(call);
  return 0;
}

int crpc_server_call_write(crpc_server_call *call, const ProtobufCMessage *msg) {
  if (!call || !msg || !call->stream || crpc__scall_finished(call)) return CRPC_EINVAL;
  crpc__sstream *st = call->stream;
  crpc__conn *c = call->core.conn;
  if (call->cancelled || !c || c->state != CRPC__CONN_OPEN) return CRPC_ESTATE;
  if (msg->descriptor != call->entry->method->output) return CRPC_ETYPE;
  /* A client-streaming method has exactly one response (PROTOCOL.md §6.1). */
  if (st->responded && !(call->entry->method->flags & CRPC_METHOD_SERVER_STREAMING))
    return CRPC_ESTATE;
  if (!crpc__flow_can_send(&call->core.flow)) {
    call->core.flow.blocked = 1;
    return CRPC_EAGAIN;
  }
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > (uint64_t)call->srv->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]) return CRPC_ELIMIT;
  if (crpc__conn_write_blocked(c, &st->wwait)) return CRPC_EAGAIN; /* MAX_WRITE_BUFFER queued */
  if (crpc__conn_send_message(c, call->core.id, msg, len) != 0) return CRPC_ENOMEM;
  crpc__flow_sent(&call->core.flow, cost(len));
  st->responded = 1;
  return 0;
}
