/* Server calls: decode, dispatch to the handler, and the handler's single finish. */
#include "server/call.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "call/pool.h"
#include "crpc/error.h"
#include "wire/metadata.h"
#include "wire/pbdepth.h"
#include "server/server.h"
#include "wire/unpack_lend.h"
#include "base/utf8.h"

static void release_core(crpc__core *core);
static void expire(crpc__core *core);
static void on_message(crpc__conn_call *cc, const crpc__frame *f);
static void on_half_close(crpc__conn_call *cc);
static void on_window(crpc__conn_call *cc, uint32_t inc);
static void on_cancel(crpc__conn *c, crpc__conn_call *cc);
static void on_end(crpc__conn_call *cc, crpc_code code, const char *why);

/* How the connection reaches a server call: stream frames go to its stream, a CANCEL or the
 * connection's end takes it off the wire; a STATUS is never raised for a call the peer started. */
static const crpc__call_events server_events = {NULL, on_message, on_half_close, on_window,
                                                on_cancel, on_end};
static const crpc__core_kind server_kind = {release_core, expire};

static crpc_server_call *of_cc(crpc__conn_call *cc) {
  return CRPC__CONTAINER_OF(cc, crpc_server_call, core.cc);
}

#define SC_CORE offsetof(crpc_server_call, core)

static crpc_server_call *scall_alloc(crpc_server *srv) {
  crpc_server_call *sc = crpc__call_pool_take(&srv->pool, sizeof *sc, SC_CORE);
  if (!sc) return NULL;
  crpc__core_init(&sc->core, &server_events, &server_kind);
  sc->srv = srv;
  sc->entry = NULL;
  sc->request = NULL;
  sc->md = NULL;
  sc->md_count = 0;
  crpc__outbuf_init(&sc->trailers);
  sc->trailers_counted = 0;
  sc->on_cancel = NULL;
  sc->cancel_ud = NULL;
  sc->cancelled = 0;
  sc->dispatched = 0;
  sc->stream = NULL;
  sc->held_on = NULL;
  crpc__list_init(&sc->hlink);
  return sc;
}

static void unhold(crpc_server_call *sc) {
  if (!sc->held_on) return;
  crpc__list_remove(&sc->hlink);
  sc->held_on->nheld--;
  sc->held_on = NULL;
}

/* The peer cancelled it or its deadline passed (the connection lives on): detach, but keep
 * counting it against the connection's MAX_CALLS_PER_CONN until the handler finishes it. */
static void forget(crpc__conn *c, crpc_server_call *sc) {
  if (!sc->held_on && !sc->cancelled) {
    sc->held_on = c;
    crpc__list_push_back(&c->held, &sc->hlink);
    c->nheld++;
  }
  crpc__server_call_detach(sc);
}

void crpc__server_calls_unhold(crpc__conn *c) {
  while (!crpc__list_empty(&c->held))
    unhold(CRPC__CONTAINER_OF(c->held.next, crpc_server_call, hlink));
}

/* Frees or pools a call object: its core's release (call/core.h), and for calls refused at
 * admission. */
static void scall_release(crpc_server_call *sc) {
  crpc_server *srv = sc->srv;
  unhold(sc);
  if (sc->stream) {
    crpc__sstream_free(sc->stream);
    sc->stream = NULL;
  }
  crpc__list_remove(&sc->core.link);
  crpc__deadline_stop(&srv->deadlines, &sc->core);
  crpc__outbuf_free(&sc->trailers);
  crpc__call_pool_give(&srv->pool, sc, SC_CORE, !srv->closing);
}

static void release_core(crpc__core *core) {
  crpc_server_call *sc = CRPC__CONTAINER_OF(core, crpc_server_call, core);
  crpc_server *srv = sc->srv;
  scall_release(sc);
  if (srv->closing || srv->draining) crpc__server_maybe_free(srv);
}

void crpc__server_calls_free(crpc_server *srv) {
  crpc__call_pool_free(&srv->pool, SC_CORE);
  while (!crpc__list_empty(&srv->calls)) { /* abandoned by their handlers at close */
    crpc_server_call *sc = CRPC__CONTAINER_OF(srv->calls.next, crpc_server_call, core.link);
    crpc__list_remove(&sc->core.link);
    if (sc->stream) crpc__sstream_free(sc->stream);
    crpc__outbuf_free(&sc->trailers);
    crpc__call_pool_destroy(sc, SC_CORE);
  }
  srv->ncalls = 0;
}

static void *arena_fn(void *ud, size_t n) { return crpc__arena_alloc(ud, n); }
static void scall_finish(crpc_server_call *sc, crpc_code code, const char *text,
                         const ProtobufCMessage *resp, const uint8_t *details, size_t details_len);
static int admit(crpc_server_call *sc, crpc__conn *c, uint32_t id, const crpc__call_hdr *h);

/* A method name as the client sent it, fit for a status text (PROTOCOL.md §6.4): any bytes may
 * come, so what is not printable ASCII (and a backslash) is written as \xHH. */
typedef struct quoted_name {
  char s[4 * CRPC__MAX_METHOD_LEN + 1];
} quoted_name;

static const char *quote_name(quoted_name *q, const char *name, size_t name_len) {
  crpc__quote_bytes(name, name_len, q->s, sizeof q->s);
  return q->s;
}

/* Answers the CALL with a status whose text is fmt with the quoted method name for its %s. */
static void refuse(crpc__conn *c, uint32_t id, crpc_code code, const char *fmt, const char *name,
                   size_t name_len) {
  quoted_name q;
  char text[sizeof q.s + 128];
  snprintf(text, sizeof text, fmt, quote_name(&q, name, name_len));
  crpc__conn_send_status(c, id, code, text);
}

void crpc__server_on_call(crpc__conn *c, const crpc__frame *f, const crpc__call_hdr *h) {
  crpc_server *srv = c->ctx->owner;
  uint32_t id = f->call_id;
  if (srv->closing) {
    refuse(c, id, CRPC_STATUS_UNAVAILABLE, "%s: server is closing", h->method, h->method_len);
    return;
  }
  const crpc__reg_entry *e = c->last_method;
  if (!e || c->last_method_gen != srv->reg.gen || e->name_len != h->method_len ||
      memcmp(e->method->full_name, h->method, h->method_len) != 0) {
    e = crpc__registry_find(&srv->reg, h->method, h->method_len);
    c->last_method = e;
    c->last_method_gen = srv->reg.gen;
  }
  if (!e) {
    refuse(c, id, CRPC_STATUS_UNIMPLEMENTED, "unknown method %s", h->method, h->method_len);
    return;
  }
  int streaming = (e->method->flags & (CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING)) != 0;
  if (!e->method->dispatch) {
    refuse(c, id, CRPC_STATUS_UNIMPLEMENTED, "%s: no handler dispatch for this method",
           h->method, h->method_len);
    return;
  }
  if (!h->message && !streaming) {
    refuse(c, id, CRPC_STATUS_INTERNAL, "%s: unary call without a request message", h->method,
           h->method_len);
    return;
  }
  if (c->calls.count + c->nheld >= (size_t)srv->opt[CRPC_OPT_MAX_CALLS_PER_CONN]) {
    refuse(c, id, CRPC_STATUS_RESOURCE_EXHAUSTED,
           "%s: too many calls in progress on this connection", h->method, h->method_len);
    return;
  }
  crpc_server_call *sc = scall_alloc(srv);
  if (!sc) {
    refuse(c, id, CRPC_STATUS_RESOURCE_EXHAUSTED, "%s: server out of memory", h->method,
           h->method_len);
    return;
  }
  int mrc = h->metadata_len == 0
                ? 0
                : crpc__md_decode(h->metadata, h->metadata_len,
                                  (size_t)srv->opt[CRPC_OPT_MAX_METADATA_SIZE], arena_fn,
                                  &sc->core.arena, &sc->md, &sc->md_count);
  if (mrc != 0) {
    scall_release(sc);
    refuse(c, id, CRPC_STATUS_RESOURCE_EXHAUSTED,
           mrc == CRPC__MD_TOO_BIG ? "%s: request metadata exceeds the server's MAX_METADATA_SIZE"
                                   : "%s: server out of memory",
           h->method, h->method_len);
    return;
  }
  sc->entry = e;
  if (streaming) {
    if (admit(sc, c, id, h) == 0) crpc__sstream_begin(sc, f, h); /* dispatches when it can */
    return;
  }
  if (crpc__pb_depth_check(e->method->input, h->message, h->message_len,
                           (unsigned)srv->opt[CRPC_OPT_MAX_NESTING_DEPTH]) != 0) {
    scall_release(sc);
    refuse(c, id, CRPC_STATUS_INTERNAL,
           "%s: request nests deeper than MAX_NESTING_DEPTH or is malformed", h->method,
           h->method_len);
    return;
  }
  crpc__arena_budget(&sc->core.arena, h->message_len, (unsigned)srv->opt[CRPC_OPT_MAX_DECODE_RATIO]);
  sc->request = crpc__unpack_lend(e->method->input, &sc->core.arena, h->message_len, h->message,
                                  &c->dec, f);
  if (sc->request && crpc__decode_budget_check(&sc->core.arena.budget) != 0) sc->request = NULL;
  if (!sc->request) {
    int over = sc->core.arena.budget.over;
    scall_release(sc);
    quoted_name q;
    char text[sizeof q.s + 160];
    if (over)
      snprintf(text, sizeof text,
               "%s: request decodes to more memory than the server's MAX_DECODE_RATIO allows",
               quote_name(&q, h->method, h->method_len));
    else
      snprintf(text, sizeof text, "%s: request does not decode as %s",
               quote_name(&q, h->method, h->method_len), e->method->input->name);
    crpc__conn_send_status(c, id, over ? CRPC_STATUS_RESOURCE_EXHAUSTED : CRPC_STATUS_INTERNAL, text);
    return;
  }
  if (admit(sc, c, id, h) == 0) (void)crpc__scall_dispatch(sc, sc->request);
}

/* The call joins the connection's table and the server's list, and its deadline starts. */
static int admit(crpc_server_call *sc, crpc__conn *c, uint32_t id, const crpc__call_hdr *h) {
  crpc_server *srv = sc->srv;
  if (crpc__core_open(&sc->core, c, id) != 0) {
    scall_release(sc);
    refuse(c, id, CRPC_STATUS_RESOURCE_EXHAUSTED, "%s: server out of memory", h->method,
           h->method_len);
    return -1;
  }
  crpc__list_push_back(&srv->calls, &sc->core.link);
  srv->ncalls++;
  /* Without memory for the deadline the call runs without one: the client's own deadline
   * still ends it there. */
  if (h->timeout_ms) (void)crpc__deadline_start(&srv->deadlines, &sc->core, h->timeout_ms);
  return 0;
}

int crpc__scall_dispatch(crpc_server_call *sc, const ProtobufCMessage *request) {
  const crpc__reg_entry *e = sc->entry;
  sc->dispatched = 1;
  crpc__core_enter(&sc->core); /* a finish inside the handler keeps the handle valid */
  e->method->dispatch(sc, request, e->impl, e->user_data);
  return crpc__core_leave(&sc->core);
}

static void on_message(crpc__conn_call *cc, const crpc__frame *f) {
  crpc__sstream_on_message(of_cc(cc), f);
}
static void on_half_close(crpc__conn_call *cc) { crpc__sstream_on_half_close(of_cc(cc)); }
static void on_window(crpc__conn_call *cc, uint32_t inc) { crpc__sstream_on_window(of_cc(cc), inc); }
static void on_cancel(crpc__conn *c, crpc__conn_call *cc) { forget(c, of_cc(cc)); }
static void on_end(crpc__conn_call *cc, crpc_code code, const char *why) {
  (void)code; /* the client learns it from its own side of the connection */
  (void)why;
  crpc__server_call_detach(of_cc(cc));
}

void crpc__server_call_detach(crpc_server_call *sc) {
  if (sc->cancelled || crpc__scall_finished(sc)) return;
  crpc__core_off_wire(&sc->core);
  sc->cancelled = 1;
  crpc__deadline_stop(&sc->srv->deadlines, &sc->core);
  if (!sc->dispatched) {
    /* No handler ever saw it (a server-streaming call whose request never came, or whose stream
     * could not even be set up): nobody else can finish it. */
    scall_finish(sc, CRPC_STATUS_CANCELLED, NULL, NULL, NULL, 0);
    return;
  }
  crpc_server_cancel_cb cb = sc->on_cancel;
  sc->on_cancel = NULL;
  if (!cb) return;
  crpc__core_enter(&sc->core);
  cb(sc, sc->cancel_ud); /* may finish the call: freed as it returns, or by an outer callback */
  crpc__core_leave(&sc->core);
}

static void expire(crpc__core *core) {
  crpc_server_call *sc = CRPC__CONTAINER_OF(core, crpc_server_call, core);
  /* The callee answers DEADLINE_EXCEEDED at the deadline (PROTOCOL.md); a later reply from the
   * handler is dropped. */
  crpc__conn *c = sc->core.conn;
  if (c && crpc__conn_untrack(c, sc->core.id)) {
    crpc__conn_send_status(c, sc->core.id, CRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
    forget(c, sc);
  } else {
    crpc__server_call_detach(sc);
  }
}

/* The text of a STATUS (PROTOCOL.md §6.4): at most CRPC__MAX_STATUS_TEXT bytes of UTF-8, cut
 * between characters. Text that is not UTF-8 is repaired (U+FFFD for each ill-formed sequence)
 * into the call's arena; when that memory is not there the text is dropped. */
static const char *status_text(crpc_server_call *sc, const char *text, size_t *len) {
  size_t n = *len, i = 0;
  while (i < n && (uint8_t)text[i] < 0x80) i++;
  if (i == n && n <= CRPC__MAX_STATUS_TEXT) return text; /* ASCII: the common case */
  size_t out = crpc__utf8_repair(text, n, NULL, 0, CRPC__MAX_STATUS_TEXT);
  char *p = crpc__arena_alloc(&sc->core.arena, out ? out : 1);
  *len = p ? crpc__utf8_repair(text, n, p, out, CRPC__MAX_STATUS_TEXT) : 0;
  return p;
}

/* The handler's finish: send what there is to send, release the call. */
static void scall_finish(crpc_server_call *sc, crpc_code code, const char *text,
                         const ProtobufCMessage *resp, const uint8_t *details, size_t details_len) {
  crpc_server *srv = sc->srv;
  uint32_t id = sc->core.id;
  crpc__conn *c = crpc__core_complete(&sc->core);
  if (c && crpc__conn_untrack(c, id)) {
    size_t len = resp ? protobuf_c_message_get_packed_size(resp) : 0;
    char big[160];
    if (resp && len > (uint64_t)srv->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]) {
      snprintf(big, sizeof big, "%s: response of %zu bytes exceeds MAX_SEND_MESSAGE_SIZE (%lld)",
               sc->entry->method->full_name, len, (long long)srv->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]);
      code = CRPC_STATUS_RESOURCE_EXHAUSTED;
      text = big;
      resp = NULL;
      len = 0;
    }
    size_t tl = text ? strlen(text) : 0;
    text = status_text(sc, text, &tl);
    if (details_len > (size_t)srv->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]) details_len = 0;
    size_t fixed = crpc__status_fixed_size(tl, sc->trailers.len, details_len);
    uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN + fixed + len);
    if (p) {
      /* Pings are allowed again once the server answers real work (not cheap refusals). */
      if (code == CRPC_STATUS_OK) c->ping_strikes = 0;
      crpc__hdr_encode(p, CRPC__F_STATUS, resp ? CRPC__FL_MESSAGE : 0, id, (uint32_t)(fixed + len));
      p = crpc__status_fixed_encode(p + CRPC__HDR_LEN, (uint32_t)code, text, (uint32_t)tl,
                                    sc->trailers.data, (uint32_t)sc->trailers.len, details,
                                    (uint32_t)details_len);
      crpc__conn_commit_message(c, CRPC__HDR_LEN + fixed, resp, len);
    } else {
      crpc__conn_send_status(c, id, CRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
    }
    if (c->sent_goaway && c->calls.count == 0) crpc__conn_close_when_flushed(c);
  }
  srv->ncalls--;
  /* The owner's reference. Finished from inside one of its own callbacks (the handler, on_read,
   * on_writable, on_cancel), the handle stays valid until that callback returns (server.h). */
  if (!crpc__core_unref(&sc->core) && (srv->closing || srv->draining))
    crpc__server_maybe_free(srv);
}

int crpc_server_call_reply(crpc_server_call *call, const ProtobufCMessage *response) {
  if (!call) return CRPC_EINVAL;
  if (crpc__scall_finished(call)) return CRPC_ESTATE;
  if (call->stream) { /* streams send with _write and end with _end */
    scall_finish(call, CRPC_STATUS_INTERNAL, "handler replied to a streaming call", NULL, NULL, 0);
    return CRPC_EINVAL;
  }
  if (!response) {
    scall_finish(call, CRPC_STATUS_INTERNAL, "handler replied without a response", NULL, NULL, 0);
    return CRPC_EINVAL;
  }
  if (response->descriptor != call->entry->method->output) {
    scall_finish(call, CRPC_STATUS_INTERNAL, "handler replied with a message of the wrong type",
                 NULL, NULL, 0);
    return CRPC_ETYPE;
  }
  scall_finish(call, CRPC_STATUS_OK, NULL, response, NULL, 0);
  return 0;
}

int crpc_server_call_fail_details(crpc_server_call *call, crpc_code code, const char *message,
                                  const uint8_t *details, size_t details_len) {
  if (!call) return CRPC_EINVAL;
  if (crpc__scall_finished(call)) return CRPC_ESTATE;
  if (code == CRPC_STATUS_OK || (details_len && !details)) {
    scall_finish(call, CRPC_STATUS_INTERNAL, "handler failed the call with status OK or bad details",
                 NULL, NULL, 0);
    return CRPC_EINVAL;
  }
  scall_finish(call, code, message ? message : "", NULL, details, details_len);
  return 0;
}

int crpc_server_call_end(crpc_server_call *call, crpc_code code, const char *message) {
  if (!call) return CRPC_EINVAL;
  if (crpc__scall_finished(call)) return CRPC_ESTATE;
  if (!call->stream && code == CRPC_STATUS_OK) {
    scall_finish(call, CRPC_STATUS_INTERNAL, "handler ended a unary call without a response",
                 NULL, NULL, 0);
    return CRPC_EINVAL;
  }
  /* A client-streaming method has exactly one response: OK without it is the handler's bug. */
  if (code == CRPC_STATUS_OK && !(call->entry->method->flags & CRPC_METHOD_SERVER_STREAMING) &&
      !call->stream->responded) {
    scall_finish(call, CRPC_STATUS_INTERNAL,
                 "handler ended a client-streaming call OK without its response", NULL, NULL, 0);
    return CRPC_EINVAL;
  }
  scall_finish(call, code, message ? message : (code == CRPC_STATUS_OK ? NULL : ""), NULL, NULL, 0);
  return 0;
}

int crpc_server_call_fail(crpc_server_call *call, crpc_code code, const char *message) {
  return crpc_server_call_fail_details(call, code, message, NULL, 0);
}

const crpc_metadata *crpc_server_call_metadata(const crpc_server_call *call, size_t *count) {
  if (count) *count = call ? call->md_count : 0;
  return call ? call->md : NULL;
}

int crpc_server_call_add_trailer(crpc_server_call *call, const char *key, const uint8_t *value,
                                 size_t value_len) {
  if (!call || !crpc_metadata_valid(key, value, value_len)) return CRPC_EINVAL;
  size_t kl = strlen(key);
  size_t counted = crpc_metadata_entry_size(key, value_len);
  if (call->trailers_counted + counted > (uint64_t)call->srv->opt[CRPC_OPT_MAX_METADATA_SIZE])
    return CRPC_ELIMIT;
  size_t n = crpc__md_entry_size(kl, value_len);
  uint8_t *p = crpc__outbuf_reserve(&call->trailers, n);
  if (!p) return CRPC_ENOMEM;
  crpc__md_entry_encode(p, key, (uint16_t)kl, value, (uint32_t)value_len);
  crpc__outbuf_commit(&call->trailers, n);
  call->trailers_counted += counted;
  return 0;
}

int64_t crpc_server_call_time_left_ms(const crpc_server_call *call) {
  return call ? crpc__deadline_left(&call->srv->deadlines, &call->core) : -1;
}

void crpc_server_call_on_cancel(crpc_server_call *call, crpc_server_cancel_cb cb, void *user_data) {
  if (!call || crpc__scall_finished(call)) return;
  if (call->cancelled) {
    if (!cb) return;
    crpc__core_enter(&call->core);
    cb(call, user_data);
    crpc__core_leave(&call->core);
    return;
  }
  call->on_cancel = cb;
  call->cancel_ud = user_data;
}

const crpc_method_desc *crpc_server_call_method(const crpc_server_call *call) {
  return call ? call->entry->method : NULL;
}

int crpc_server_call_cancelled(const crpc_server_call *call) { return call ? call->cancelled : 1; }

crpc_server *crpc_server_call_server(const crpc_server_call *call) {
  if (!call) return NULL;
  return call->srv->parent ? call->srv->parent : call->srv;
}

uv_loop_t *crpc_server_call_loop(const crpc_server_call *call) { return call ? call->srv->loop : NULL; }
