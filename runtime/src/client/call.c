/* Client calls: encoding, tracking, deadlines, and the one completion of each call. */
#include "client/call.h"

#include <string.h>

#include "base/alloc.h"
#include "call/deadline.h"
#include "call/pool.h"
#include "client/channel.h"
#include "crpc/error.h"
#include "wire/metadata.h"
#include "wire/pbdepth.h"
#include "wire/unpack_lend.h"
#include "base/utf8.h"

static void release_core(crpc__core *core);
static void expire(crpc__core *core);
static void on_status(crpc__conn_call *cc, const crpc__status_hdr *st, const crpc__frame *f,
                      crpc__decoder *dec);
static void on_message(crpc__conn_call *cc, const crpc__frame *f);
static void on_window(crpc__conn_call *cc, uint32_t inc);
static void on_end(crpc__conn_call *cc, crpc_code code, const char *why);

/* How the connection reaches a client call: a STATUS ends it, stream frames go to its stream, a
 * HALF_CLOSE means nothing (the STATUS ends the server's side) and a CANCEL is never raised for a
 * call we started. */
static const crpc__call_events client_events = {on_status, on_message, NULL, on_window, NULL,
                                                on_end};
static const crpc__core_kind client_kind = {release_core, expire};

static crpc_call *of_cc(crpc__conn_call *cc) { return CRPC__CONTAINER_OF(cc, crpc_call, core.cc); }

static crpc_call *call_alloc(crpc_channel *ch) {
  crpc_call *call = crpc__call_pool_take(&ch->pool, sizeof *call, offsetof(crpc_call, core));
  if (!call) return NULL;
  crpc__core_init(&call->core, &client_events, &client_kind);
  call->ch = ch;
  call->cb = NULL;
  call->user_fn = NULL;
  call->user_data = NULL;
  call->waiter = NULL;
  call->timeout_ms = 0;
  call->stream = NULL;
  call->fail_code = CRPC_STATUS_OK;
  call->fail_why = NULL;
  return call;
}

/* The core's release (call/core.h), and the end of a call never sent: frees or pools it. */
static void release_core(crpc__core *core) {
  crpc_call *call = CRPC__CONTAINER_OF(core, crpc_call, core);
  crpc_channel *ch = call->ch;
  if (call->stream) {
    crpc__stream_free(call->stream);
    call->stream = NULL;
  }
  if (call->fail_why) { /* only calls that failed as they started have one */
    crpc__free(call->fail_why);
    call->fail_why = NULL;
  }
  int closing = ch->closing;
  crpc__call_pool_give(&ch->pool, call, offsetof(crpc_call, core), !closing);
  if (closing) crpc__channel_maybe_free(ch);
}

void crpc__calls_free(crpc_channel *ch) {
  crpc__call_pool_free(&ch->pool, offsetof(crpc_call, core));
}

/* ---- Deadlines ------------------------------------------------------------------------------- */

static void expire(crpc__core *core) {
  crpc_call *call = CRPC__CONTAINER_OF(core, crpc_call, core);
  char why[96];
  snprintf(why, sizeof why, "deadline of %lld ms exceeded", (long long)call->timeout_ms);
  crpc__call_abandon(call, CRPC_STATUS_DEADLINE_EXCEEDED, why);
}

/* ---- Completion ------------------------------------------------------------------------------ */

/* Turns the received result into the status handed to the user: allocations come from alloc
 * (the call's arena for callbacks, malloc for blocking calls). Decodes the response into *resp
 * (with pb as allocator) when the code is OK. On a decoding failure the status says so. */
static void *malloc_fn(void *ud, size_t n) {
  (void)ud;
  return crpc__malloc(n);
}
static void *arena_fn(void *ud, size_t n) { return crpc__arena_alloc(ud, n); }

static const char *decode_result(crpc_call *call, const crpc__result *r, int for_user,
                                 crpc_status *st, ProtobufCMessage **resp) {
  crpc_channel *ch = call->ch;
  void *(*alloc)(void *, size_t) = for_user ? malloc_fn : arena_fn;
  void *ud = for_user ? NULL : (void *)&call->core.arena;
  st->code = r->code;
  *resp = NULL;
  if (r->trailers_len) {
    int rc = crpc__md_decode(r->trailers, r->trailers_len, (size_t)ch->opt[CRPC_OPT_MAX_METADATA_SIZE],
                             alloc, ud, &st->trailers, &st->trailers_count);
    if (rc == CRPC__MD_TOO_BIG) {
      st->code = CRPC_STATUS_RESOURCE_EXHAUSTED;
      return "trailing metadata exceeds MAX_METADATA_SIZE";
    }
    if (rc != 0) {
      st->code = CRPC_STATUS_INTERNAL;
      return "out of memory decoding trailing metadata";
    }
  }
  if (r->details_len) {
    st->details = alloc(ud, r->details_len);
    if (st->details) {
      memcpy(st->details, r->details, r->details_len);
      st->details_len = r->details_len;
    }
  }
  if (r->code != CRPC_STATUS_OK || call->stream) return NULL;
  /* Decoding is budgeted (arena.h): the arena's allocator, or a budgeted malloc for the caller. */
  unsigned ratio = (unsigned)ch->opt[CRPC_OPT_MAX_DECODE_RATIO];
  size_t wire = r->msg_len + (r->frame && r->frame->tail ? r->frame->length - r->frame->head_len : 0);
  crpc__heap_pb heap;
  crpc__decode_budget *budget = &call->core.arena.budget;
  if (for_user) {
    crpc__heap_pb_init(&heap, wire, ratio);
    budget = &heap.budget;
  } else {
    crpc__arena_budget(&call->core.arena, wire, ratio);
  }
  const char *why = NULL;
  if (r->frame && r->frame->tail) { /* received split where a large value begins */
    if (crpc__unpack_split(call->method->output, for_user ? NULL : &call->core.arena,
                           for_user ? &heap.pb : NULL, r->msg,
                           r->msg_len, r->dec, r->frame,
                           (unsigned)ch->opt[CRPC_OPT_MAX_NESTING_DEPTH], resp) != 0)
      why = "response does not decode as the method's output type (or nests too deep)";
  } else if (crpc__pb_depth_check(call->method->output, r->msg, r->msg_len,
                                  (unsigned)ch->opt[CRPC_OPT_MAX_NESTING_DEPTH]) != 0) {
    why = "response nests deeper than MAX_NESTING_DEPTH or is malformed";
  } else {
    if (for_user || !r->frame || !r->dec)
      *resp = protobuf_c_message_unpack(call->method->output, for_user ? &heap.pb : &call->core.arena.pb,
                                        r->msg_len, r->msg);
    else /* the response lives in the arena: a large bytes field may stay where it was read */
      *resp = crpc__unpack_lend(call->method->output, &call->core.arena, r->msg_len, r->msg,
                                r->dec, r->frame);
    if (!*resp) why = "response does not decode as the method's output type";
  }
  if (*resp && crpc__decode_budget_check(budget) != 0) {
    if (for_user) protobuf_c_message_free_unpacked(*resp, &heap.pb);
    *resp = NULL; /* else it stays in the arena until the call is released */
    why = "over"; /* replaced below */
  }
  if (why) {
    st->code = CRPC_STATUS_INTERNAL;
    if (budget->over) {
      st->code = CRPC_STATUS_RESOURCE_EXHAUSTED;
      why = "response decodes to more memory than MAX_DECODE_RATIO allows";
    }
  }
  if (for_user) crpc__heap_pb_done(&heap);
  return why;
}

/* The single exit of every call (stream.c also finishes calls with a saved status). */
void crpc__call_finish(crpc_call *call, const crpc__result *r) {
  crpc_channel *ch = call->ch;
  crpc__conn *conn = crpc__core_complete(&call->core);
  crpc__deadline_stop(&ch->deadlines, &call->core);
  crpc__list_remove(&call->core.link);
  ch->ncalls--;
  if (conn) crpc__channel_call_removed(ch, conn);

  int for_user = call->waiter != NULL || (call->stream && call->stream->blocking);
  crpc_status st;
  memset(&st, 0, sizeof st);
  ProtobufCMessage *resp = NULL;
  const char *why = decode_result(call, r, for_user, &st, &resp);
  const char *text = why ? why : r->text;
  size_t text_len = why ? strlen(why) : r->text_len;
  if (text_len || st.code != CRPC_STATUS_OK) {
    /* The application gets UTF-8 without NUL whatever the peer sent (PROTOCOL.md §6.4). */
    size_t n = crpc__utf8_repair(text, text_len, NULL, 0, SIZE_MAX);
    st.message = for_user ? crpc__malloc(n + 1) : crpc__arena_alloc(&call->core.arena, n + 1);
    if (st.message) st.message[crpc__utf8_repair(text, text_len, st.message, n, n)] = '\0';
  }
  if (call->stream) {
    if (!st.message && st.code != CRPC_STATUS_OK && !for_user) st.message = (char *)"";
    if (!crpc__stream_ended(call, &st)) crpc__core_unref(&call->core); /* the owner's */
    else if (ch->closing) crpc__channel_maybe_free(ch);
    return;
  }
  if (for_user) {
    crpc__waiter_complete(ch, call->waiter, &st, resp);
  } else {
    if (!st.message && st.code != CRPC_STATUS_OK) st.message = (char *)"";
    crpc__core_enter(&call->core);
    call->cb(call, &st, resp, call->user_data);
    crpc__core_leave(&call->core);
  }
  crpc__core_unref(&call->core); /* the owner's: the outcome has been handed over */
}

/* Ends a call for a reason found on this side. The text names the method (and, from the
 * connection code, the endpoint), so that a log line alone says what failed where. */
static void finish_with(crpc_call *call, crpc_code code, const char *why) {
  crpc__result r;
  memset(&r, 0, sizeof r);
  r.code = code;
  const char *name = call->method->full_name;
  size_t nl = strlen(name);
  char *text = NULL;
  if (why && !(strncmp(why, name, nl) == 0 && why[nl] == ':'))
    text = crpc__asprintf("%s: %s", name, why);
  r.text = text ? text : why;
  r.text_len = r.text ? strlen(r.text) : 0;
  crpc__call_finish(call, &r);
  crpc__free(text);
}

size_t crpc__call_split_at(crpc__conn *c, const uint8_t *unit, size_t have) {
  crpc__frame f;
  if (have < CRPC__HDR_LEN || crpc__hdr_decode(unit, &f) != 0 || f.type != CRPC__F_STATUS ||
      !(f.flags & CRPC__FL_MESSAGE) || f.call_id == 0 || !crpc__conn_is_ours(c, f.call_id))
    return 0;
  crpc__conn_call *cc = crpc__conn_find(c, f.call_id);
  if (!cc || cc->ev != &client_events) return 0;
  crpc_call *call = of_cc(cc);
  if (call->stream) return 0;
  /* Decode what is in hand as if it were the whole frame: the fixed part must be there. */
  size_t unit_len = CRPC__HDR_LEN + (size_t)f.length;
  f.payload = unit + CRPC__HDR_LEN;
  f.length = (uint32_t)(have - CRPC__HDR_LEN);
  crpc__status_hdr st;
  if (crpc__status_decode(&f, &st) != 0 || st.code != CRPC_STATUS_OK || !st.message) return 0;
  size_t msg_at = (size_t)(st.message - unit);
  size_t at = crpc__lend_split_point(call->method->output, st.message, st.message_len,
                                     unit_len - msg_at);
  return at ? msg_at + at : 0;
}

static void on_status(crpc__conn_call *cc, const crpc__status_hdr *st, const crpc__frame *f,
                      crpc__decoder *dec) {
  crpc_call *call = of_cc(cc);
  call->core.shut |= CRPC__SHUT_RECV;
  if (call->stream) {
    crpc__status_hdr one;
    if (st->code == CRPC_STATUS_OK && !(call->method->flags & CRPC_METHOD_SERVER_STREAMING) &&
        call->stream->responses == 0) { /* PROTOCOL.md §6.1: exactly one response */
      one = *st;
      one.code = CRPC_STATUS_INTERNAL;
      one.text = "server ended a client-streaming call OK without a response message";
      one.text_len = (uint32_t)strlen(one.text);
      st = &one;
    }
    if (crpc__stream_on_status(call, st)) return;
    crpc__result r = {(crpc_code)st->code, st->text, st->text_len, st->details, st->details_len,
                      st->metadata, st->metadata_len, NULL, 0, NULL, NULL};
    crpc__call_finish(call, &r);
    return;
  }
  if (st->code == CRPC_STATUS_OK && !st->message) {
    finish_with(call, CRPC_STATUS_INTERNAL, "server answered OK without a response message");
    return;
  }
  crpc__result r = {(crpc_code)st->code, st->text, st->text_len, st->details, st->details_len,
                    st->metadata, st->metadata_len, st->message, st->message_len, f, dec};
  crpc__call_finish(call, &r);
}

static void on_message(crpc__conn_call *cc, const crpc__frame *f) {
  crpc__stream_on_message(of_cc(cc), f);
}

static void on_window(crpc__conn_call *cc, uint32_t inc) { crpc__stream_on_window(of_cc(cc), inc); }

static void on_end(crpc__conn_call *cc, crpc_code code, const char *why) {
  finish_with(of_cc(cc), code, why);
}

void crpc__call_fail(crpc_call *call, crpc_code code, const char *why) { finish_with(call, code, why); }

void crpc__call_abandon(crpc_call *call, crpc_code code, const char *why) {
  crpc__conn *conn = call->core.conn;
  /* Also before the connection is up: the CALL is already queued, so the CANCEL follows it. */
  if (conn && crpc__conn_untrack(conn, call->core.id)) {
    if (conn->state != CRPC__CONN_CLOSING) crpc__conn_send_empty(conn, CRPC__F_CANCEL, call->core.id);
  }
  crpc__call_fail(call, code, why);
}

static void defer_failure(crpc_call *call, crpc_code code, const char *why) {
  crpc_channel *ch = call->ch;
  call->fail_code = code;
  call->fail_why = crpc__strndup(why, strlen(why));
  crpc__list_remove(&call->core.link);
  crpc__list_push_back(&ch->deferred, &call->core.link);
  uv_async_send(&ch->wake);
}

void crpc__call_run_deferred(crpc_channel *ch) {
  while (!crpc__list_empty(&ch->deferred)) {
    crpc_call *call = CRPC__CONTAINER_OF(ch->deferred.next, crpc_call, core.link);
    finish_with(call, call->fail_code, call->fail_why ? call->fail_why : "call failed");
  }
}

/* ---- Start ----------------------------------------------------------------------------------- */

/* Fails a call that was counted but not sent: at once for blocking calls, from the loop for
 * async ones (their callback must not run inside the function that started them). */
static void fail_at_start(crpc_call *call, crpc_code code, const char *why) {
  if (call->cb || (call->stream && !call->stream->blocking))
    defer_failure(call, code, why);
  else
    crpc__call_fail(call, code, why);
}

/* CALL frame: a unary call carries its request and ends its sending side at once; a stream
 * starts empty and sends MESSAGE frames. */
static int encode_call(crpc_call *call, crpc__conn *conn, const ProtobufCMessage *req,
                       size_t msg_len, uint32_t timeout, const crpc_call_opts *opts,
                       size_t md_len) {
  const char *name = call->method->full_name;
  size_t name_len = call->name_len;
  size_t fixed = crpc__call_fixed_size(name_len, md_len);
  size_t total = CRPC__HDR_LEN + fixed + msg_len;
  uint8_t *p = crpc__conn_reserve(conn, total);
  if (!p) return CRPC_ENOMEM;
  if (crpc__core_open(&call->core, conn, call->core.id) != 0) return CRPC_ENOMEM;
  /* A unary call's request is its whole sending side; a stream's CALL carries no message. */
  if (req) call->core.shut |= CRPC__SHUT_SEND;
  crpc__hdr_encode(p, CRPC__F_CALL, req ? CRPC__FL_END | CRPC__FL_MESSAGE : 0, call->core.id,
                   (uint32_t)(fixed + msg_len));
  /* The metadata block goes where call_fixed_encode expects it: encode the fixed part with an
   * empty block, then write the entries in place and patch the block length. */
  uint8_t *fx = p + CRPC__HDR_LEN;
  p = crpc__call_fixed_encode(fx, name, (uint16_t)name_len, timeout, NULL, 0);
  if (md_len) {
    uint8_t *len_at = p - 4;
    crpc__be32_put(len_at, (uint32_t)md_len);
    crpc__md_write(p, opts->metadata, opts->metadata_count);
  }
  crpc__conn_commit_message(conn, CRPC__HDR_LEN + fixed, req, msg_len);
  return 0;
}

/* Checks shared by unary calls and streams; *md_len and *md_counted describe the metadata. */
static int check_start(crpc_channel *ch, const crpc_method_desc *method,
                       const crpc_call_opts *opts, size_t *md_len, size_t *md_counted,
                       uint16_t *name_len_out) {
  if (!method || !method->full_name || !method->input || !method->output) return CRPC_EINVAL;
  if (opts && opts->timeout_ms < 0) return CRPC_EINVAL;
  size_t name_len = strlen(method->full_name);
  if (name_len == 0 || name_len > CRPC__MAX_METHOD_LEN) return CRPC_EINVAL;
  *name_len_out = (uint16_t)name_len;
  *md_len = *md_counted = 0;
  if (opts && crpc__md_measure(opts->metadata, opts->metadata_count, md_len, md_counted) != 0)
    return CRPC_EINVAL;
  if (*md_len > UINT32_MAX - CRPC__MAX_METHOD_LEN) return CRPC_EINVAL;
  if (ch->closing) return CRPC_ECLOSED;
  return 0;
}

/* Sends the call on a connection (or fails it, deferred) once it is set up and counted.
 * Returns 0, or CRPC_ENOMEM with the call released. */
static int call_begin(crpc_call *call, const ProtobufCMessage *request,
                      const crpc_call_opts *opts, size_t md_len, size_t md_counted) {
  crpc_channel *ch = call->ch;
  const crpc_method_desc *method = call->method;
  call->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : ch->opt[CRPC_OPT_DEFAULT_TIMEOUT_MS];
  ch->used = 1;
  crpc__list_push_back(&ch->calls, &call->core.link);
  ch->ncalls++;

  size_t msg_len = request ? protobuf_c_message_get_packed_size(request) : 0;
  if (msg_len > (uint64_t)ch->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]) {
    char why[160];
    snprintf(why, sizeof why, "%s: request of %zu bytes exceeds MAX_SEND_MESSAGE_SIZE (%lld)",
             method->full_name, msg_len, (long long)ch->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]);
    fail_at_start(call, CRPC_STATUS_RESOURCE_EXHAUSTED, why);
    return 0;
  }
  if (md_counted > (uint64_t)ch->opt[CRPC_OPT_MAX_METADATA_SIZE]) {
    fail_at_start(call, CRPC_STATUS_RESOURCE_EXHAUSTED,
                  "request metadata exceeds MAX_METADATA_SIZE");
    return 0;
  }
  crpc__conn *conn = crpc__channel_conn(ch);
  if (conn && crpc__conn_queued(conn) > (size_t)ch->opt[CRPC_OPT_MAX_WRITE_BUFFER]) {
    fail_at_start(call, CRPC_STATUS_RESOURCE_EXHAUSTED,
                  "the server is not keeping up: MAX_WRITE_BUFFER of requests is already queued");
    return 0;
  }
  if (conn && conn->calls.count >= (size_t)ch->opt[CRPC_OPT_MAX_CALLS_PER_CONN]) {
    fail_at_start(call, CRPC_STATUS_RESOURCE_EXHAUSTED,
                  "too many calls in progress on the connection (MAX_CALLS_PER_CONN)");
    return 0;
  }
  if (conn) call->core.id = crpc__conn_next_id(conn);
  if (!conn || !call->core.id) {
    char *why = crpc__asprintf("%s: %s unavailable: %s", method->full_name, ch->target,
                               ch->last_error ? ch->last_error : "no connection");
    fail_at_start(call, CRPC_STATUS_UNAVAILABLE, why ? why : "channel unavailable");
    crpc__free(why);
    return 0;
  }
  uint32_t wire_timeout = call->timeout_ms > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)call->timeout_ms;
  int rc = encode_call(call, conn, request, msg_len, wire_timeout, opts, md_len);
  if (rc != 0) {
    crpc__list_remove(&call->core.link);
    ch->ncalls--;
    release_core(&call->core);
    return rc;
  }
  crpc__channel_call_added(ch, conn);
  if (call->stream) crpc__stream_started(call);
  if (call->timeout_ms > 0) {
    uv_update_time(ch->loop); /* a private loop's clock is stale between blocking calls */
    if (crpc__deadline_start(&ch->deadlines, &call->core, (uint64_t)call->timeout_ms) != 0) {
      crpc__core_off_wire(&call->core);
      if (crpc__conn_untrack(conn, call->core.id))
        crpc__conn_send_empty(conn, CRPC__F_CANCEL, call->core.id);
      crpc__channel_call_removed(ch, conn);
      fail_at_start(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the deadline");
    }
  }
  return 0;
}

int crpc__call_start(crpc_channel *ch, const crpc_method_desc *method,
                     const ProtobufCMessage *request, const crpc_call_opts *opts,
                     crpc_unary_cb cb, crpc_fn user_fn, void *user_data, crpc__waiter *waiter,
                     crpc_call **call_out) {
  size_t md_len, md_counted;
  if (call_out) *call_out = NULL;
  if (!request) return CRPC_EINVAL;
  uint16_t name_len;
  int rc = check_start(ch, method, opts, &md_len, &md_counted, &name_len);
  if (rc != 0) return rc;
  if (request->descriptor != method->input) return CRPC_ETYPE;
  if (method->flags & (CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING))
    return CRPC_EINVAL;
  crpc_call *call = call_alloc(ch);
  if (!call) return CRPC_ENOMEM;
  call->method = method;
  call->name_len = name_len;
  call->cb = cb;
  call->user_fn = user_fn;
  call->user_data = user_data;
  call->waiter = waiter;
  if (call_out) *call_out = call;
  rc = call_begin(call, request, opts, md_len, md_counted);
  if (rc != 0 && call_out) *call_out = NULL;
  return rc;
}

int crpc__call_start_stream(crpc_channel *ch, const crpc_method_desc *method,
                            const crpc_call_opts *opts, crpc__cstream *st, void *user_data,
                            crpc_call **call_out) {
  size_t md_len, md_counted;
  *call_out = NULL;
  uint16_t name_len = 0;
  int rc = check_start(ch, method, opts, &md_len, &md_counted, &name_len);
  if (rc == 0 && !(method->flags & (CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING)))
    rc = CRPC_EINVAL;
  crpc_call *call = rc == 0 ? call_alloc(ch) : NULL;
  if (!call) {
    crpc__stream_free(st);
    return rc ? rc : CRPC_ENOMEM;
  }
  call->method = method;
  call->name_len = name_len;
  call->user_data = user_data;
  call->stream = st;
  *call_out = call;
  rc = call_begin(call, NULL, opts, md_len, md_counted);
  if (rc != 0) *call_out = NULL;
  return rc;
}
