/* Connection: read path, write coalescing, call table, teardown. See conn.h. */
#include "conn/conn.h"

#include <string.h>

#include "base/alloc.h"
#include "crpc/error.h"

#define CRPC__RBUF_SIZE 65536
/* Output queued in one loop turn past this size is written at once (see early_flush). */
#define CRPC__EARLY_FLUSH 2048
/* Buffers of a busy connection are kept from one message to the next (growing and faulting in
 * a megabyte per large message costs more than the copy itself); a connection that has been
 * quiet for CRPC__TRIM_AFTER_MS gives them back (crpc__conn_trim_idle), and a quiet one keeps
 * at most CRPC__OUT_KEEP_IDLE of output buffer. */
#define CRPC__OUT_KEEP_IDLE 4096
#define CRPC__TRIM_AFTER_MS 1000
/* Room above max_recv for the fixed fields of CALL/STATUS frames (method, metadata, text). */
#define CRPC__FRAME_SLACK 65536

static void schedule_flush(crpc__conn *c);
static void start_flusher(crpc__io_ctx *ctx);

crpc__conn *crpc__conn_new(crpc__io_ctx *ctx, int is_client, const char *label) {
  crpc__conn *c = crpc__calloc(1, sizeof *c);
  if (!c) return NULL;
  c->ctx = ctx;
  c->is_client = is_client ? 1 : 0;
  c->label = crpc__strndup(label, strlen(label));
  if (!c->label) {
    crpc__free(c);
    return NULL;
  }
  c->state = CRPC__CONN_NEW;
  c->next_id = is_client ? 1 : 2;
  c->created_at = c->last_read = c->last_write = uv_now(ctx->loop);
  uint64_t lim = (uint64_t)ctx->max_recv + CRPC__FRAME_SLACK;
  crpc__decoder_init(&c->dec, lim > UINT32_MAX ? UINT32_MAX : (uint32_t)lim, 1);
  c->dec.stats = ctx->split_stats;
  crpc__idmap_init(&c->calls);
  crpc__idmap_set_own(&c->calls, is_client ? 1u : 0u); /* our call ids: odd on the client */
  crpc__outbuf_init(&c->out);
  crpc__outbuf_init(&c->wout);
  crpc__list_init(&c->dirty_link);
  crpc__list_init(&c->held);
  crpc__list_init(&c->owner_link);
  crpc__list_init(&c->wwaiters);
  uint8_t *p = crpc__outbuf_reserve(&c->out, CRPC__PREFACE_LEN);
  if (!p) {
    crpc__free(c->label);
    crpc__free(c);
    return NULL;
  }
  crpc__preface_encode(p);
  crpc__outbuf_commit(&c->out, CRPC__PREFACE_LEN);
  return c;
}

/* The last call id a GOAWAY may name: never more than an earlier GOAWAY named (calls refused
 * after it raised last_peer_id but were not processed). */
static uint32_t goaway_last(const crpc__conn *c) {
  return c->sent_goaway && c->sent_goaway_last < c->last_peer_id ? c->sent_goaway_last
                                                                  : c->last_peer_id;
}

/* ---- Teardown ------------------------------------------------------------------------------ */

static void conn_release(crpc__conn *c) {
  crpc__list_remove(&c->dirty_link);
  crpc__decoder_free(&c->dec);
  crpc__idmap_free(&c->calls);
  crpc__outbuf_free(&c->out);
  crpc__outbuf_free(&c->wout);
  c->ctx->ops->on_closed(c);
  crpc__free(c->label);
  crpc__free(c);
}

static void on_transport_closed(crpc__transport *t) { conn_release(t->data); }

static void fail_calls(crpc__conn *c, crpc_code code, const char *why) {
  uint32_t id;
  crpc__conn_call *cc;
  /* pop: completing one call may run user code that touches the table. */
  while ((cc = crpc__idmap_pop(&c->calls, &id)) != NULL) cc->ev->on_end(cc, code, why);
}

void crpc__conn_close(crpc__conn *c, crpc_code code, const char *why) {
  if (c->state == CRPC__CONN_CLOSING) return;
  c->state = CRPC__CONN_CLOSING;
  crpc__list_remove(&c->dirty_link);
  /* Waiting writers learn of the end through their calls' completion, below. */
  while (!crpc__list_empty(&c->wwaiters)) crpc__list_remove(c->wwaiters.next);
  fail_calls(c, code, why);
  if (c->transport) {
    c->transport->ops->close(c->transport, on_transport_closed); /* stops reading too */
  } else {
    /* Never attached: nothing of libuv's refers to c; release it from the loop. */
    crpc__list_push_back(&c->ctx->reap, &c->dirty_link);
    start_flusher(c->ctx);
  }
}

void crpc__conn_abort(crpc__conn *c, uint32_t goaway_code, const char *why) {
  if (c->state == CRPC__CONN_CLOSING) return;
  if (c->transport && !c->writing) {
    /* Best effort: the peer learns why before the connection goes. */
    size_t tl = strlen(why);
    if (tl > 1024) tl = 1024;
    size_t n = crpc__goaway_size(tl);
    uint8_t *p = crpc__outbuf_reserve(&c->out, CRPC__HDR_LEN + n);
    if (p) {
      crpc__hdr_encode(p, CRPC__F_GOAWAY, 0, 0, (uint32_t)n);
      crpc__goaway_encode(p + CRPC__HDR_LEN, goaway_last(c), goaway_code, why, (uint32_t)tl);
      crpc__outbuf_commit(&c->out, CRPC__HDR_LEN + n);
      uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
      (void)c->transport->ops->try_write(c->transport, &b, 1);
    }
  }
  crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, why);
}

static void close_with(crpc__conn *c, const char *what, int err) {
  char *why = crpc__asprintf("connection %s %s: %s", c->is_client ? "to" : "from", c->label, what);
  if (err) {
    char *tmp = why;
    why = crpc__asprintf("%s (%s)", tmp ? tmp : what, crpc_strerror(err));
    crpc__free(tmp);
  }
  crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, why ? why : what);
  crpc__free(why);
}

static void abort_with(crpc__conn *c, uint32_t goaway_code, const char *what) {
  char *why = crpc__asprintf("connection %s %s: %s", c->is_client ? "to" : "from", c->label, what);
  crpc__conn_abort(c, goaway_code, why ? why : what);
  crpc__free(why);
}

/* ---- Write path ------------------------------------------------------------------------------ */

static void conn_flush(crpc__conn *c);
static void resume_reading(crpc__conn *c);

size_t crpc__conn_queued(const crpc__conn *c) { return c->out.len + (c->writing ? c->wout.len : 0); }

static int over_cap(const crpc__conn *c) {
  return c->ctx->max_write && crpc__conn_queued(c) > c->ctx->max_write;
}

int crpc__conn_write_blocked(crpc__conn *c, crpc__wwait *w) {
  if (!over_cap(c) && crpc__list_empty(&c->wwaiters)) return 0;
  if (!crpc__list_linked(&w->link)) crpc__list_push_back(&c->wwaiters, &w->link);
  return 1;
}

/* The output drained to half the cap: every writer waiting gets its turn, oldest first, until
 * the output is over the cap again; those whose turn did not come keep their place at the front
 * (a writer refused again during its turn waits at the back). */
static void wake_writers(crpc__conn *c) {
  if (c->waking) return;
  c->waking = 1;
  crpc__list round;
  crpc__list_init(&round);
  crpc__list_splice(&round, &c->wwaiters);
  while (!crpc__list_empty(&round) && c->state == CRPC__CONN_OPEN && !over_cap(c)) {
    crpc__wwait *w = CRPC__CONTAINER_OF(round.next, crpc__wwait, link);
    crpc__list_remove(&w->link);
    w->wake(w); /* may write, end its call, or close the connection */
  }
  if (c->state == CRPC__CONN_OPEN) {
    crpc__list_splice(&round, &c->wwaiters); /* round = leftovers, then those refused again */
    crpc__list_splice(&c->wwaiters, &round);
  } else {
    while (!crpc__list_empty(&round)) crpc__list_remove(round.next);
  }
  c->waking = 0;
}

/* After output left: close if asked to, or take reads up again once the peer caught up. */
static void after_output(crpc__conn *c) {
  if (c->state != CRPC__CONN_OPEN) return;
  if (c->close_when_flushed && !c->writing && c->out.len == 0) {
    crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, "connection closed after shutdown");
    return;
  }
  if (crpc__conn_queued(c) > c->ctx->max_write / 2) return;
  if (!crpc__list_empty(&c->wwaiters)) wake_writers(c);
  if (c->state == CRPC__CONN_OPEN && c->read_paused && crpc__conn_queued(c) <= c->ctx->max_write / 2)
    resume_reading(c);
}

static void on_write(crpc__transport *t, int status) {
  crpc__conn *c = t->data;
  c->writing = 0;
  c->last_write = uv_now(c->ctx->loop);
  crpc__outbuf_clear(&c->wout, SIZE_MAX);
  if (c->state == CRPC__CONN_CLOSING) return;
  if (status < 0) {
    close_with(c, "write failed", status);
    return;
  }
  conn_flush(c);
  after_output(c);
}

static void conn_flush(crpc__conn *c) {
  c->early_blocked = 0;
  if (c->state != CRPC__CONN_OPEN || c->writing) return;
  if (c->out.len == 0) { /* a direct send (send_direct.c) wrote everything already */
    after_output(c);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  int n = c->transport->ops->try_write(c->transport, &b, 1);
  if (n > 0) c->last_write = uv_now(c->ctx->loop);
  if (n >= 0 && (size_t)n == c->out.len) {
    crpc__outbuf_clear(&c->out, SIZE_MAX);
    after_output(c);
    return;
  }
  if (n < 0) {
    close_with(c, "write failed", n);
    return;
  }
  /* The rest goes through an asynchronous write; new frames collect in the other buffer
   * meanwhile (wout stays untouched until on_write, as the transport requires). */
  crpc__outbuf tmp = c->wout;
  c->wout = c->out;
  c->out = tmp;
  b = uv_buf_init((char *)c->wout.data + n, (unsigned)(c->wout.len - (size_t)n));
  int rc = c->transport->ops->write(c->transport, &b, 1, on_write);
  if (rc < 0) {
    close_with(c, "write failed", rc);
    return;
  }
  c->writing = 1;
}

static void flush_dirty(crpc__io_ctx *ctx) {
  while (!crpc__list_empty(&ctx->dirty)) {
    crpc__conn *c = CRPC__CONTAINER_OF(ctx->dirty.next, crpc__conn, dirty_link);
    crpc__list_remove(&c->dirty_link);
    conn_flush(c);
  }
}

static void on_flush(uv_prepare_t *h) {
  crpc__io_ctx *ctx = h->data;
  flush_dirty(ctx);
  while (!crpc__list_empty(&ctx->reap)) {
    crpc__conn *c = CRPC__CONTAINER_OF(ctx->reap.next, crpc__conn, dirty_link);
    conn_release(c);
  }
  uv_prepare_stop(h);
  ctx->flusher_on = 0;
}

static void start_flusher(crpc__io_ctx *ctx) {
  if (!ctx->flusher_on) {
    ctx->flusher_on = 1;
    uv_prepare_start(&ctx->flusher, on_flush);
  }
}

static void schedule_flush(crpc__conn *c) {
  crpc__io_ctx *ctx = c->ctx;
  if (c->state != CRPC__CONN_CLOSING && !crpc__list_linked(&c->dirty_link))
    crpc__list_push_back(&ctx->dirty, &c->dirty_link);
  if (!ctx->batch) start_flusher(ctx);
}

void crpc__io_batch_begin(crpc__io_ctx *ctx) { ctx->batch++; }

void crpc__io_flush(crpc__io_ctx *ctx) { flush_dirty(ctx); }

void crpc__io_batch_end(crpc__io_ctx *ctx) {
  if (--ctx->batch == 0) flush_dirty(ctx);
}

uint8_t *crpc__conn_reserve(crpc__conn *c, size_t n) { return crpc__outbuf_reserve(&c->out, n); }

/* Writes what is queued now, mid-turn, so that the peer (usually on another core) starts on the
 * first frames while this side produces the rest: with many calls in flight the two sides then
 * work in parallel instead of taking turns (W2 went from 0.40x to 0.58x raw's calls per second
 * in an interleaved A/B, tests/bench/RESULTS.md), for one more write per CRPC__EARLY_FLUSH bytes.
 * What the kernel does not take stays queued, and no second early write is tried before the
 * regular flush (a full socket would only make it fail again). Errors are left for the flush,
 * which closes properly (a close from here would complete calls under the caller's feet). */
static void early_flush(crpc__conn *c) {
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  int n = c->transport->ops->try_write(c->transport, &b, 1);
  if (n < 0 || (size_t)n < c->out.len) c->early_blocked = 1;
  if (n <= 0) return;
  c->last_write = uv_now(c->ctx->loop);
  memmove(c->out.data, c->out.data + n, c->out.len - (size_t)n);
  c->out.len -= (size_t)n;
}

void crpc__conn_commit(crpc__conn *c, size_t n) {
  crpc__outbuf_commit(&c->out, n);
  if (c->state != CRPC__CONN_OPEN) return;
  if (c->out.len >= CRPC__EARLY_FLUSH && !c->writing && !c->early_blocked) early_flush(c);
  schedule_flush(c);
  /* A peer that does not read must not grow our memory: stop taking its input until it does.
   * Servers only: what a channel queues is its own callers' requests, which reading responses
   * cannot reduce; were both sides to stop reading, neither would ever drain (channels refuse new
   * calls instead, see call_begin). */
  if (!c->is_client && !c->read_paused && c->ctx->max_write &&
      crpc__conn_queued(c) > c->ctx->max_write) {
    c->read_paused = 1;
    c->transport->ops->read_stop(c->transport);
  }
}

int crpc__conn_send_goaway(crpc__conn *c, uint32_t code, const char *text) {
  size_t tl = strlen(text);
  size_t n = crpc__goaway_size(tl);
  uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN + n);
  if (!p) return CRPC_ENOMEM;
  crpc__hdr_encode(p, CRPC__F_GOAWAY, 0, 0, (uint32_t)n);
  uint32_t last = goaway_last(c);
  crpc__goaway_encode(p + CRPC__HDR_LEN, last, code, text, (uint32_t)tl);
  c->sent_goaway = 1;
  c->sent_goaway_last = last;
  crpc__conn_commit(c, CRPC__HDR_LEN + n);
  return 0;
}

/* Closes once the output queued by the end of this batch or loop turn has been written: what the
 * caller is about to queue (a STATUS after untracking its call) still goes out first. */
static void close_when_drained(crpc__conn *c) {
  c->close_when_flushed = 1;
  schedule_flush(c);
}

void crpc__conn_close_when_flushed(crpc__conn *c) {
  c->close_when_flushed = 1;
  if (c->state == CRPC__CONN_OPEN && !c->writing && c->out.len == 0)
    crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, "connection closed after shutdown");
  else if (c->state == CRPC__CONN_NEW)
    crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, "connection closed after shutdown");
}

int crpc__conn_send_ping(crpc__conn *c) {
  uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN + CRPC__PING_LEN);
  if (!p) return CRPC_ENOMEM;
  crpc__hdr_encode(p, CRPC__F_PING, 0, 0, CRPC__PING_LEN);
  memset(p + CRPC__HDR_LEN, 0, CRPC__PING_LEN);
  crpc__conn_commit(c, CRPC__HDR_LEN + CRPC__PING_LEN);
  return 0;
}

int crpc__conn_send_status(crpc__conn *c, uint32_t id, crpc_code code, const char *text) {
  size_t tl = text ? strlen(text) : 0;
  if (tl > 4096) tl = 4096;
  size_t n = crpc__status_fixed_size(tl, 0, 0);
  uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN + n);
  if (!p) {
    /* The peer must learn the call's end somehow: losing the connection tells it UNAVAILABLE. */
    crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, "out of memory sending a status");
    return CRPC_ENOMEM;
  }
  crpc__hdr_encode(p, CRPC__F_STATUS, 0, id, (uint32_t)n);
  crpc__status_fixed_encode(p + CRPC__HDR_LEN, (uint32_t)code, text, (uint32_t)tl, NULL, 0, NULL, 0);
  crpc__conn_commit(c, CRPC__HDR_LEN + n);
  return 0;
}

void crpc__conn_send_window(crpc__conn *c, uint32_t id, uint32_t inc) {
  if (!inc || c->state == CRPC__CONN_CLOSING) return;
  uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN + 4);
  if (!p) return;
  crpc__hdr_encode(p, CRPC__F_WINDOW, 0, id, 4);
  crpc__be32_put(p + CRPC__HDR_LEN, inc);
  crpc__conn_commit(c, CRPC__HDR_LEN + 4);
}

void crpc__conn_commit_message(crpc__conn *c, size_t head, const ProtobufCMessage *msg,
                               size_t len) {
  if (!msg) {
    crpc__conn_commit(c, head);
  } else if (len < CRPC__DIRECT_MIN || !crpc__conn_send_direct(c, head, msg, len)) {
    protobuf_c_message_pack(msg, c->out.data + c->out.len + head);
    crpc__conn_commit(c, head + len);
  }
}

int crpc__conn_send_message(crpc__conn *c, uint32_t id, const ProtobufCMessage *msg, size_t len) {
  uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN + len);
  if (!p) return CRPC_ENOMEM;
  c->ping_strikes = 0; /* real traffic: a ping now and then is fair */
  crpc__hdr_encode(p, CRPC__F_MESSAGE, 0, id, (uint32_t)len);
  crpc__conn_commit_message(c, CRPC__HDR_LEN, msg, len);
  return 0;
}

int crpc__conn_send_empty(crpc__conn *c, uint8_t type, uint32_t id) {
  uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN);
  if (!p) return CRPC_ENOMEM;
  crpc__hdr_encode(p, type, 0, id, 0);
  crpc__conn_commit(c, CRPC__HDR_LEN);
  return 0;
}

/* ---- Read path ------------------------------------------------------------------------------- */

static int handle_call(crpc__conn *c, const crpc__frame *f) {
  if (f->call_id == 0 || crpc__conn_is_ours(c, f->call_id) || f->call_id <= c->last_peer_id) {
    abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "CALL with an invalid call id");
    return -1;
  }
  uint32_t prev_peer_id = c->last_peer_id;
  c->last_peer_id = f->call_id;
  /* A channel keeps reading whatever it has queued (see crpc__conn_commit), so its answers to a
   * peer that starts calls without reading them would pile up: past MAX_WRITE_BUFFER it goes.
   * (A server stops reading instead and never gets here over the cap.) */
  if (c->is_client && over_cap(c)) {
    abort_with(c, CRPC__GOAWAY_ENHANCE_YOUR_CALM, "peer starts calls but does not read the answers");
    return -1;
  }
  if (c->sent_goaway && f->call_id > c->sent_goaway_last) {
    crpc__conn_send_status(c, f->call_id, CRPC_STATUS_UNAVAILABLE,
                           "server is shutting down; the call was not processed and is safe to retry");
    return 0;
  }
  if (c->got_goaway) { /* the sender of a GOAWAY starts no new calls (PROTOCOL.md §6.7) */
    crpc__conn_send_status(c, f->call_id, CRPC_STATUS_UNAVAILABLE,
                           "CALL after the caller's own GOAWAY; the call was not processed");
    return 0;
  }
  if (f->oversized) {
    crpc__conn_send_status(c, f->call_id, CRPC_STATUS_RESOURCE_EXHAUSTED,
                           "request larger than the server's maximum message size");
    return 0;
  }
  crpc__call_hdr hdr;
  if (crpc__call_decode(f, &hdr) != 0) {
    /* A malformed CALL is not processed: the GOAWAY's last_call_id is the CALL before it, as for
     * a CALL whose frame header is malformed (PROTOCOL.md §6.7, §10). */
    c->last_peer_id = prev_peer_id;
    abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "malformed CALL frame");
    return -1;
  }
  if (hdr.message && hdr.message_len > c->ctx->max_recv) {
    crpc__conn_send_status(c, f->call_id, CRPC_STATUS_RESOURCE_EXHAUSTED,
                           "request larger than the server's maximum message size");
    return 0;
  }
  if (!c->ctx->ops->on_call) {
    crpc__conn_send_status(c, f->call_id, CRPC_STATUS_UNIMPLEMENTED, "this peer serves no methods");
    return 0;
  }
  c->ctx->ops->on_call(c, f, &hdr);
  return 0;
}

static int handle_status(crpc__conn *c, const crpc__frame *f) {
  if (f->call_id == 0 || !crpc__conn_is_ours(c, f->call_id)) {
    abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "STATUS with an invalid call id");
    return -1;
  }
  crpc__conn_call *cc = crpc__conn_untrack(c, f->call_id);
  if (!cc) return 0; /* cancelled or timed out here already: the answer is moot */
  if (f->oversized) {
    cc->ev->on_end(cc, CRPC_STATUS_RESOURCE_EXHAUSTED,
                   "response larger than the client's maximum message size");
    return 0;
  }
  crpc__status_hdr st;
  if (crpc__status_decode(f, &st) != 0) {
    cc->ev->on_end(cc, CRPC_STATUS_INTERNAL, "malformed STATUS frame");
    abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "malformed STATUS frame");
    return -1;
  }
  size_t msg_len = st.message_len + (f->tail ? f->length - f->head_len : 0);
  if (st.message && msg_len > c->ctx->max_recv) {
    cc->ev->on_end(cc, CRPC_STATUS_RESOURCE_EXHAUSTED,
                   "response larger than the client's maximum message size");
    return 0;
  }
  cc->ev->on_status(cc, &st, f, &c->dec);
  return 0;
}

static int handle_ping(crpc__conn *c, const crpc__frame *f) {
  if (f->call_id != 0 || f->length != CRPC__PING_LEN) {
    abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "malformed PING frame");
    return -1;
  }
  if (f->flags & CRPC__FL_ACK) return 0;
  uint64_t now = uv_now(c->ctx->loop);
  if (c->ctx->min_ping_interval && c->last_ping_at &&
      now - c->last_ping_at < c->ctx->min_ping_interval && ++c->ping_strikes >= 3) {
    abort_with(c, CRPC__GOAWAY_ENHANCE_YOUR_CALM, "too many pings");
    return -1;
  }
  c->last_ping_at = now;
  /* Answers to a peer that does not read would pile up (a channel never stops reading): past
   * MAX_WRITE_BUFFER a PING goes unanswered. */
  if (over_cap(c)) return 0;
  uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN + CRPC__PING_LEN);
  if (!p) return 0; /* the peer will ping again */
  crpc__hdr_encode(p, CRPC__F_PING, CRPC__FL_ACK, 0, CRPC__PING_LEN);
  memcpy(p + CRPC__HDR_LEN, f->payload, CRPC__PING_LEN);
  crpc__conn_commit(c, CRPC__HDR_LEN + CRPC__PING_LEN);
  return 0;
}

static int handle_goaway(crpc__conn *c, const crpc__frame *f) {
  crpc__goaway g;
  if (f->call_id != 0 || crpc__goaway_decode(f, &g) != 0) {
    abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "malformed GOAWAY frame");
    return -1;
  }
  if (!c->got_goaway || g.last_call_id < c->goaway_last) c->goaway_last = g.last_call_id;
  c->got_goaway = 1;
  if (c->ctx->ops->on_goaway) c->ctx->ops->on_goaway(c, g.last_call_id, g.code);
  /* Server side: the peer's calls in flight go on, and the connection closes once none is left
   * (crpc__conn_untrack); at once when none is. Channels decide in their on_goaway. */
  if (!c->is_client && c->state == CRPC__CONN_OPEN && c->calls.count == 0) close_when_drained(c);
  return 0;
}

/* Frames within a call: routed to the call's stream; frames for calls that are gone (cancelled,
 * finished, timed out) are dropped, as the protocol says. */
static int handle_stream_frame(crpc__conn *c, const crpc__frame *f) {
  if (f->call_id == 0) {
    if (f->type == CRPC__F_WINDOW) return 0; /* connection-level credit: not used by this version */
    abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "stream frame on call id 0");
    return -1;
  }
  crpc__conn_call *cc = crpc__conn_find(c, f->call_id);
  if (!cc) return 0;
  if (f->type == CRPC__F_WINDOW) {
    uint32_t inc;
    if (f->oversized || crpc__window_decode(f, &inc) != 0) {
      abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "malformed WINDOW frame");
      return -1;
    }
    cc->ev->on_window(cc, inc);
  } else if (f->type == CRPC__F_MESSAGE) {
    cc->ev->on_message(cc, f);
  } else if (cc->ev->on_half_close) {
    cc->ev->on_half_close(cc);
  }
  return 0;
}

static int on_frame(void *ud, const crpc__frame *f) {
  crpc__conn *c = ud;
  if (c->state != CRPC__CONN_OPEN) return -1;
  c->frames_in++;
  int rc;
  switch (f->type) {
    case CRPC__F_CALL: rc = handle_call(c, f); break;
    case CRPC__F_STATUS: rc = handle_status(c, f); break;
    case CRPC__F_CANCEL: {
      rc = 0;
      if (f->call_id == 0 || crpc__conn_is_ours(c, f->call_id)) break;
      crpc__conn_call *cc = crpc__conn_untrack(c, f->call_id);
      if (cc) cc->ev->on_cancel(c, cc);
      break;
    }
    case CRPC__F_PING: rc = handle_ping(c, f); break;
    case CRPC__F_GOAWAY: rc = handle_goaway(c, f); break;
    case CRPC__F_MESSAGE:
    case CRPC__F_HALF_CLOSE:
    case CRPC__F_WINDOW: rc = handle_stream_frame(c, f); break;
    default:
      /* HEADERS (reserved) and unknown types are ignored for forward compatibility. */
      rc = 0;
      break;
  }
  if (rc == 0 && c->read_paused) return CRPC__DEC_PAUSE; /* the rest waits for the peer to read */
  return rc;
}

static void feed(crpc__conn *c, const uint8_t *data, size_t n, uint64_t now);
static void on_read(crpc__transport *t, ssize_t n, const uv_buf_t *buf);

static void on_alloc(crpc__transport *t, uv_buf_t *buf) {
  crpc__conn *c = t->data;
  crpc__io_ctx *ctx = c->ctx;
  /* A large frame under way is read straight into the decoder's buffer (one copy less), in one
   * read when the kernel already holds the rest of it. */
  size_t n, ready = 0;
  size_t missing = crpc__decoder_missing(&c->dec);
  if (missing >= CRPC__RBUF_SIZE && !c->dec.tail && ctx->ops->split_at) {
    size_t at = ctx->ops->split_at(c, c->dec.buf, c->dec.len);
    if (at) (void)crpc__decoder_split(&c->dec, at); /* refused: it arrives whole, as usual */
  }
  if (missing >= CRPC__RBUF_SIZE && (c->dec.tail || c->dec.cap - c->dec.len < missing))
    ready = t->ops->pending(t); /* what the kernel holds for us (FIONREAD), 0: cannot say */
  uint8_t *direct = crpc__decoder_space_ready(&c->dec, CRPC__RBUF_SIZE, ready, &n);
  if (direct) {
    c->direct_read = 1;
    *buf = uv_buf_init((char *)direct, n > UINT32_MAX ? UINT32_MAX : (unsigned)n);
    return;
  }
  c->direct_read = 0;
  if (!ctx->rbuf) ctx->rbuf = crpc__malloc(CRPC__RBUF_SIZE);
  *buf = uv_buf_init((char *)ctx->rbuf, ctx->rbuf ? CRPC__RBUF_SIZE : 0);
}

static void on_read(crpc__transport *t, ssize_t n, const uv_buf_t *buf) {
  crpc__conn *c = t->data;
  if (n == 0 || c->state != CRPC__CONN_OPEN) return;
  if (n < 0) {
    close_with(c, n == UV_EOF ? "closed by peer" : "lost", n == UV_EOF ? 0 : (int)n);
    return;
  }
  uint64_t now = uv_now(c->ctx->loop);
  c->last_read = now;
  c->ping_sent_at = 0; /* anything from the peer proves it is alive */
  crpc__io_ctx *ctx = c->ctx; /* c may be closed by the end (it stays allocated until then) */
  crpc__io_batch_begin(ctx); /* the answers to what was read go out as soon as it is parsed */
  if (c->direct_read) {
    c->direct_read = 0;
    feed(c, NULL, (size_t)n, now);
  } else {
    feed(c, (const uint8_t *)buf->base, (size_t)n, now);
  }
  crpc__io_batch_end(ctx);
}

/* data NULL with n > 0: n bytes were read into the decoder's own buffer (direct read). */
static void feed(crpc__conn *c, const uint8_t *data, size_t n, uint64_t now) {
  unsigned before = c->frames_in;
  int rc = data || !n ? crpc__decoder_feed(&c->dec, data, n, on_frame, c)
                      : crpc__decoder_commit(&c->dec, n, on_frame, c);
  if (c->state != CRPC__CONN_OPEN) return;
  if (!crpc__conn_partial(c))
    c->partial_since = 0;
  else if (c->frames_in != before || !c->partial_since)
    c->partial_since = now; /* a new frame started arriving */
  switch (rc) {
    case CRPC__FR_OK:
      if (c->dec.cap <= CRPC__OUT_KEEP_IDLE) crpc__decoder_trim(&c->dec); /* big ones: see trim_idle */
      break;
    case CRPC__DEC_PAUSE: break;
    case CRPC__FR_BADMAGIC: close_with(c, "peer is not a crpc endpoint (bad preface)", 0); break;
    case CRPC__FR_VERSION:
      abort_with(c, CRPC__GOAWAY_VERSION, "peer speaks an unsupported protocol version");
      break;
    case CRPC__FR_NOMEM: close_with(c, "out of memory reading a frame", 0); break;
    default: abort_with(c, CRPC__GOAWAY_PROTOCOL_ERROR, "malformed frame"); break;
  }
}

static void resume_reading(crpc__conn *c) {
  c->read_paused = 0;
  feed(c, NULL, 0, uv_now(c->ctx->loop)); /* what the pause left unread */
  if (c->state == CRPC__CONN_OPEN && !c->read_paused)
    c->transport->ops->read_start(c->transport, on_alloc, on_read);
}

int crpc__conn_attach(crpc__conn *c, crpc__transport *t) {
  c->transport = t;
  t->data = c;
  c->state = CRPC__CONN_OPEN;
  int rc = t->ops->read_start(t, on_alloc, on_read);
  if (rc < 0) return rc;
  schedule_flush(c);
  return 0;
}

void crpc__conn_trim_idle(crpc__conn *c, uint64_t now) {
  if (c->state != CRPC__CONN_OPEN || now - c->last_read < CRPC__TRIM_AFTER_MS) return;
  crpc__decoder_trim(&c->dec);
  if (c->out.len == 0) crpc__outbuf_clear(&c->out, CRPC__OUT_KEEP_IDLE);
  if (!c->writing) crpc__outbuf_clear(&c->wout, 0);
}

int crpc__conn_holds_buffers(const crpc__conn *c) {
  return c->dec.cap > 0 || c->out.cap > CRPC__OUT_KEEP_IDLE || c->wout.cap > 0;
}

/* ---- Calls ----------------------------------------------------------------------------------- */

int crpc__conn_track(crpc__conn *c, uint32_t id, crpc__conn_call *cc) {
  return crpc__idmap_put(&c->calls, id, cc) == 0 ? 0 : CRPC_ENOMEM;
}

crpc__conn_call *crpc__conn_untrack(crpc__conn *c, uint32_t id) {
  crpc__conn_call *call = crpc__idmap_del(&c->calls, id);
  /* The last call of a peer that sent GOAWAY ended: close once its STATUS is written (§6.7). */
  if (call && c->got_goaway && !c->is_client && c->calls.count == 0 && c->state == CRPC__CONN_OPEN)
    close_when_drained(c);
  return call;
}

uint32_t crpc__conn_next_id(crpc__conn *c) {
  uint32_t id = c->next_id;
  if (id != 0) c->next_id = id <= UINT32_MAX - 2 ? id + 2 : 0;
  return id;
}

/* ---- Owner context --------------------------------------------------------------------------- */

void crpc__io_ctx_init(crpc__io_ctx *ctx, uv_loop_t *loop, const crpc__conn_ops *ops,
                       void *owner) {
  memset(ctx, 0, sizeof *ctx);
  ctx->loop = loop;
  ctx->ops = ops;
  ctx->owner = owner;
  crpc__list_init(&ctx->dirty);
  crpc__list_init(&ctx->reap);
}

int crpc__io_ctx_start(crpc__io_ctx *ctx) {
  int rc = uv_prepare_init(ctx->loop, &ctx->flusher);
  if (rc < 0) return rc;
  ctx->flusher.data = ctx;
  return 0;
}

void crpc__io_ctx_close(crpc__io_ctx *ctx, uv_close_cb cb) {
  crpc__free(ctx->rbuf);
  ctx->rbuf = NULL;
  uv_close((uv_handle_t *)&ctx->flusher, cb);
}
