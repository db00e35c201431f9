/* SOCK_NONBLOCK and SOCK_CLOEXEC are BSD/Linux extensions that glibc only declares with
 * _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE
/* Channels: lifecycle, connecting (resolve, connect, timeout, backoff), the public call API. */
#include "client/channel.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/alloc.h"
#include "client/call.h"
#include "crpc/error.h"
#include "crpc/gen.h"
#include "base/options.h"
#include "transport/sigpipe.h"
#include "transport/stream.h"

/* A connect in progress: its transport goes to the connection once connected (the attempt is
 * then freed), or is closed with the attempt (freed in attempt_closed, after the connect request's
 * callback has run). */
struct crpc__attempt {
  crpc__transport *t; /* t->data is the attempt until attached */
  uv_connect_t req;
  crpc_channel *ch;
  int aborted;
};

static void on_closed(crpc__conn *c);
static void on_goaway(crpc__conn *c, uint32_t last_id, uint32_t code);
static const crpc__conn_ops channel_conn_ops = {NULL, on_goaway, on_closed, crpc__call_split_at};

/* ---- Create / options ------------------------------------------------------------------------ */

static void on_wake(uv_async_t *a) {
  crpc_channel *ch = a->data;
  crpc__blocking_drain(ch);
  crpc__blocking_cancels(ch);
  crpc__call_run_deferred(ch);
}

static void on_timer(uv_timer_t *t);

static int channel_init_handles(crpc_channel *ch) {
  int rc;
  if ((rc = crpc__io_ctx_start(&ch->io)) < 0) return rc;
  uv_timer_init(ch->loop, &ch->timer);
  crpc__deadlines_init(&ch->deadlines, ch->loop);
  uv_timer_init(ch->loop, &ch->keepalive);
  if ((rc = uv_async_init(ch->loop, &ch->wake, on_wake)) < 0) {
    uv_close((uv_handle_t *)&ch->timer, NULL);
    uv_close(crpc__deadlines_handle(&ch->deadlines), NULL);
    uv_close((uv_handle_t *)&ch->io.flusher, NULL);
    return rc;
  }
  ch->timer.data = ch->wake.data = ch->keepalive.data = ch;
  /* None of them alone may keep the user's loop running: connections and calls do. */
  uv_unref((uv_handle_t *)&ch->timer);
  uv_unref((uv_handle_t *)&ch->keepalive);
  if (!ch->own_loop) uv_unref((uv_handle_t *)&ch->wake);
  return 0;
}

int crpc_channel_new(crpc_channel **out, uv_loop_t *loop, const char *target) {
  if (!out || !target) return CRPC_EINVAL;
  *out = NULL;
  crpc__ignore_sigpipe();
  crpc_channel *ch = crpc__calloc(1, sizeof *ch);
  if (!ch) return CRPC_ENOMEM;
  int rc = crpc__endpoint_parse(target, &ch->ep);
  if (rc != 0) goto fail_mem;
  ch->target = crpc__strndup(target, strlen(target));
  if (!ch->target) {
    rc = CRPC_ENOMEM;
    goto fail_mem;
  }
  crpc__options_defaults(ch->opt);
  if (loop) {
    ch->loop = loop;
    ch->loop_thread = uv_thread_self();
  } else {
    if ((rc = uv_loop_init(&ch->own)) < 0) goto fail_mem;
    ch->own_loop = 1;
    ch->loop = &ch->own;
  }
  if ((rc = uv_mutex_init(&ch->mu)) < 0) goto fail_loop;
  if ((rc = uv_cond_init(&ch->idle)) < 0) {
    uv_mutex_destroy(&ch->mu);
    goto fail_loop;
  }
  crpc__list_init(&ch->conns);
  crpc__list_init(&ch->calls);
  crpc__list_init(&ch->deferred);
  crpc__call_pool_init(&ch->pool);
  crpc__list_init(&ch->submitted);
  atomic_init(&ch->nsubmitted, 0);
  crpc__list_init(&ch->waiters);
  ch->rng = (uint64_t)(uintptr_t)ch ^ uv_hrtime() ^ 0x9E3779B97F4A7C15u;
  crpc__io_ctx_init(&ch->io, ch->loop, &channel_conn_ops, ch);
  if ((rc = channel_init_handles(ch)) < 0) goto fail_mutex;
  *out = ch;
  return 0;

fail_mutex:
  uv_cond_destroy(&ch->idle);
  uv_mutex_destroy(&ch->mu);
fail_loop:
  if (ch->own_loop) {
    uv_run(&ch->own, UV_RUN_DEFAULT);
    uv_loop_close(&ch->own);
  }
fail_mem:
  crpc__free(ch->target);
  crpc__free(ch);
  return rc;
}

int crpc_channel_set_option(crpc_channel *ch, crpc_option opt, int64_t value) {
  if (!ch) return CRPC_EINVAL;
  int rc = crpc__option_check(opt, value, CRPC_OPT_CHANNEL);
  if (rc != 0) return rc;
  if (ch->used || ch->closing) return CRPC_ESTATE;
  ch->opt[opt] = value;
  return 0;
}

const char *crpc_channel_target(const crpc_channel *ch) { return ch ? ch->target : NULL; }

/* ---- Connecting ------------------------------------------------------------------------------ */

static void arm_timer(crpc_channel *ch, uint64_t ms) { uv_timer_start(&ch->timer, on_timer, ms, 0); }

static uint64_t backoff_delay(crpc_channel *ch) {
  double d = (double)ch->opt[CRPC_OPT_BACKOFF_INITIAL_MS];
  for (unsigned i = 1; i < ch->failures && d < (double)ch->opt[CRPC_OPT_BACKOFF_MAX_MS]; i++) d *= 1.6;
  if (d > (double)ch->opt[CRPC_OPT_BACKOFF_MAX_MS]) d = (double)ch->opt[CRPC_OPT_BACKOFF_MAX_MS];
  /* +-20% jitter so that clients of a restarted server do not come back in lock step. */
  ch->rng ^= ch->rng << 13;
  ch->rng ^= ch->rng >> 7;
  ch->rng ^= ch->rng << 17;
  double j = 0.8 + 0.4 * (double)(ch->rng >> 11) / 9007199254740992.0;
  d *= j;
  return d < 1 ? 1 : (uint64_t)d;
}

static void attempt_closed(crpc__transport *t) {
  crpc__attempt *a = t->data;
  crpc_channel *ch = a->ch;
  crpc__free(a);
  ch->pending--;
  crpc__channel_maybe_free(ch);
}

static void attempt_abort(crpc_channel *ch) {
  crpc__attempt *a = ch->attempt;
  if (!a) return;
  ch->attempt = NULL;
  a->aborted = 1;
  a->t->ops->close(a->t, attempt_closed);
}

static void free_addrinfo(crpc_channel *ch) {
  if (ch->ai_list) uv_freeaddrinfo(ch->ai_list);
  ch->ai_list = ch->ai_next = NULL;
}

static void connect_failed(crpc_channel *ch, int err) {
  free_addrinfo(ch);
  attempt_abort(ch);
  if (ch->gai) {
    uv_cancel((uv_req_t *)ch->gai); /* may fail once the lookup runs: it is then ignored */
    ch->gai = NULL;
  }
  crpc__conn *c = ch->conn;
  ch->conn = NULL;
  ch->failures++;
  ch->state = CRPC__CH_BACKOFF;
  crpc__free(ch->last_error);
  ch->last_error = crpc__asprintf("connect to %s failed: %s", ch->target, crpc_strerror(err));
  uint64_t delay = backoff_delay(ch);
  ch->backoff_until = uv_now(ch->loop) + delay;
  arm_timer(ch, delay);
  if (c) crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, ch->last_error ? ch->last_error : "connect failed");
}

static void on_connect(uv_connect_t *req, int status);
static int attempt_connected(crpc__attempt *a);

/* "unix:@NAME": uv_pipe_connect() (libuv 1.44) takes only a NUL-terminated path, so the socket is
 * made and connected here, with the exact length of the abstract address. A Unix socket's connect
 * completes or fails at once (EAGAIN when the server's backlog is full), so the connection is made
 * before this returns. Returns 0 with the socket in `pipe`, or a negative error. */
static int connect_abstract(crpc_channel *ch, uv_pipe_t *pipe) {
  struct sockaddr_un sa;
  socklen_t len = crpc__endpoint_sockaddr_un(&ch->ep, &sa);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc = connect(fd, (const struct sockaddr *)&sa, len) == 0 ? uv_pipe_open(pipe, fd) : -errno;
  if (rc < 0) close(fd);
  return rc;
}

static int attempt_start(crpc_channel *ch, const struct sockaddr *sa) {
  crpc__attempt *a = crpc__calloc(1, sizeof *a);
  if (!a) return CRPC_ENOMEM;
  a->ch = ch;
  a->req.data = a;
  int unix_socket = ch->ep.kind == CRPC__EP_UNIX;
  int rc = crpc__stream_new(ch->loop, unix_socket ? CRPC__STREAM_UNIX : CRPC__STREAM_TCP, &a->t);
  if (rc < 0) {
    crpc__free(a);
    return rc;
  }
  a->t->data = a;
  uv_stream_t *h = crpc__stream_handle(a->t);
  if (unix_socket && ch->ep.abstract) {
    if ((rc = connect_abstract(ch, (uv_pipe_t *)h)) < 0) {
      ch->pending++;
      a->t->ops->close(a->t, attempt_closed);
      return rc;
    }
    ch->pending++;
    return attempt_connected(a);
  } else if (unix_socket) {
    uv_pipe_connect(&a->req, (uv_pipe_t *)h, ch->ep.path, on_connect);
  } else if ((rc = uv_tcp_connect(&a->req, (uv_tcp_t *)h, sa, on_connect)) < 0) {
    ch->pending++;
    a->t->ops->close(a->t, attempt_closed);
    return rc;
  }
  ch->pending++;
  ch->attempt = a;
  return 0;
}

static void attempt_next(crpc_channel *ch, int err) {
  while (ch->ai_next) {
    struct addrinfo *ai = ch->ai_next;
    ch->ai_next = ai->ai_next;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    int rc = attempt_start(ch, ai->ai_addr);
    if (rc == 0) return;
    err = rc;
  }
  connect_failed(ch, err);
}

static void on_connect(uv_connect_t *req, int status) {
  crpc__attempt *a = req->data;
  crpc_channel *ch = a->ch;
  if (a->aborted) return; /* closing: attempt_closed releases it */
  ch->attempt = NULL;
  if (status < 0) {
    a->t->ops->close(a->t, attempt_closed);
    attempt_next(ch, status);
    return;
  }
  int rc = attempt_connected(a);
  if (rc < 0) connect_failed(ch, rc);
}

/* The attempt's transport is connected: it now belongs to the connection (which closes it), and
 * the attempt is done. Returns 0, or the error for connect_failed(). */
static int attempt_connected(crpc__attempt *a) {
  crpc_channel *ch = a->ch;
  crpc__transport *t = a->t;
  crpc__free(a);
  ch->pending--;
  uv_timer_stop(&ch->timer);
  free_addrinfo(ch);
  crpc__stream_connected(t);
  crpc__conn *c = ch->conn;
  int rc = crpc__conn_attach(c, t);
  if (rc < 0) return rc;
  ch->state = CRPC__CH_READY;
  ch->failures = 0;
  if (c->calls.count == 0) t->ops->ref(t, 0);
  return 0;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  crpc_channel *ch = req->data;
  int current = req == ch->gai;
  crpc__free(req);
  ch->pending--;
  if (current) ch->gai = NULL;
  if (!current || ch->closing || status == UV_EAI_CANCELED || ch->state != CRPC__CH_CONNECTING) {
    if (res) uv_freeaddrinfo(res);
    crpc__channel_maybe_free(ch);
    return;
  }
  if (status < 0) {
    connect_failed(ch, status);
    return;
  }
  ch->ai_list = ch->ai_next = res;
  attempt_next(ch, UV_EAI_NONAME);
}

static int connect_start(crpc_channel *ch) {
  int rc;
  if (ch->ep.kind == CRPC__EP_UNIX) return attempt_start(ch, NULL);
  struct sockaddr_storage ss;
  if (uv_ip4_addr(ch->ep.host, ch->ep.port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(ch->ep.host, ch->ep.port, (struct sockaddr_in6 *)&ss) == 0)
    return attempt_start(ch, (const struct sockaddr *)&ss);
  char port[8];
  snprintf(port, sizeof port, "%d", ch->ep.port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  uv_getaddrinfo_t *req = crpc__malloc(sizeof *req);
  if (!req) return CRPC_ENOMEM;
  req->data = ch;
  rc = uv_getaddrinfo(ch->loop, req, on_resolved, ch->ep.host, port, &hints);
  if (rc < 0) {
    crpc__free(req);
    return rc;
  }
  ch->gai = req;
  ch->pending++;
  return 0;
}

/* Keepalive: a connection with calls in progress that has been silent for KEEPALIVE_TIME_MS is
 * pinged; if still nothing arrives within KEEPALIVE_TIMEOUT_MS the peer is taken for dead (a
 * silent network drops no FIN or RST) and the connection's calls fail UNAVAILABLE. */
static void on_keepalive(uv_timer_t *t) {
  crpc_channel *ch = t->data;
  uint64_t now = uv_now(ch->loop);
  int holding = 0;
  for (crpc__list *e = ch->conns.next; e != &ch->conns; e = e->next) {
    crpc__conn *c = CRPC__CONTAINER_OF(e, crpc__conn, owner_link);
    crpc__conn_trim_idle(c, now);
    holding |= crpc__conn_holds_buffers(c);
  }
  if (ch->opt[CRPC_OPT_KEEPALIVE_TIME_MS] <= 0) {
    if (!holding) uv_timer_stop(t); /* restarted when a connection next opens */
    return;
  }
  uint64_t idle = (uint64_t)ch->opt[CRPC_OPT_KEEPALIVE_TIME_MS];
  uint64_t wait = (uint64_t)ch->opt[CRPC_OPT_KEEPALIVE_TIMEOUT_MS];
  for (crpc__list *e = ch->conns.next; e != &ch->conns; e = e->next) {
    crpc__conn *c = CRPC__CONTAINER_OF(e, crpc__conn, owner_link);
    if (c->state != CRPC__CONN_OPEN || c->calls.count == 0) continue;
    if (c->ping_sent_at && now - c->ping_sent_at >= wait) {
      char why[160];
      snprintf(why, sizeof why, "connection to %s: no answer to keepalive ping within %llu ms",
               ch->target, (unsigned long long)wait);
      crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, why);
    } else if (!c->ping_sent_at && now - c->last_read >= idle && crpc__conn_send_ping(c) == 0) {
      c->ping_sent_at = now;
    }
  }
}

/* The same periodic timer gives back the buffers of connections that went quiet (every 500 ms
 * when keepalive is off, and it stops once nothing is held). */
static void start_keepalive(crpc_channel *ch) {
  int64_t idle = ch->opt[CRPC_OPT_KEEPALIVE_TIME_MS];
  if (uv_is_active((uv_handle_t *)&ch->keepalive)) return;
  int64_t p = 500;
  if (idle > 0) {
    p = idle < ch->opt[CRPC_OPT_KEEPALIVE_TIMEOUT_MS] ? idle : ch->opt[CRPC_OPT_KEEPALIVE_TIMEOUT_MS];
    p /= 4;
    if (p > 500) p = 500;
  }
  if (p < 5) p = 5;
  uv_timer_start(&ch->keepalive, on_keepalive, (uint64_t)p, (uint64_t)p);
}

crpc__conn *crpc__channel_conn(crpc_channel *ch) {
  if (ch->conn && ch->conn->state != CRPC__CONN_CLOSING && !ch->conn->got_goaway &&
      ch->conn->next_id != 0)
    return ch->conn;
  if (ch->conn) { /* closing, draining or out of ids: new calls go on a new connection */
    ch->conn = NULL;
    ch->state = CRPC__CH_IDLE;
  }
  if (ch->state == CRPC__CH_BACKOFF) {
    /* Nobody runs a private loop between blocking calls, so its backoff timer may not have
     * fired: the deadline decides. */
    uv_update_time(ch->loop);
    if (uv_now(ch->loop) < ch->backoff_until) return NULL;
    uv_timer_stop(&ch->timer);
    ch->state = CRPC__CH_IDLE;
  }
  ch->io.max_recv = (uint32_t)ch->opt[CRPC_OPT_MAX_RECV_MESSAGE_SIZE];
  ch->io.max_send = (uint32_t)ch->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE];
  ch->io.max_write = (size_t)ch->opt[CRPC_OPT_MAX_WRITE_BUFFER];
  start_keepalive(ch);
  crpc__conn *c = crpc__conn_new(&ch->io, 1, ch->target);
  if (!c) return NULL;
  crpc__list_push_back(&ch->conns, &c->owner_link);
  ch->conn = c;
  ch->state = CRPC__CH_CONNECTING;
  arm_timer(ch, (uint64_t)ch->opt[CRPC_OPT_CONNECT_TIMEOUT_MS]);
  int rc = connect_start(ch);
  if (rc < 0) {
    connect_failed(ch, rc);
    return NULL;
  }
  return c;
}

static void on_timer(uv_timer_t *t) {
  crpc_channel *ch = t->data;
  if (ch->state == CRPC__CH_CONNECTING)
    connect_failed(ch, UV_ETIMEDOUT);
  else if (ch->state == CRPC__CH_BACKOFF)
    ch->state = CRPC__CH_IDLE;
}

static void start_keepalive(crpc_channel *ch);

/* ---- Connection events ----------------------------------------------------------------------- */

void crpc__channel_call_added(crpc_channel *ch, crpc__conn *conn) {
  if (conn->transport && conn->calls.count == 1) conn->transport->ops->ref(conn->transport, 1);
  start_keepalive(ch); /* also trims buffers once the connection goes quiet again */
}

void crpc__channel_call_removed(crpc_channel *ch, crpc__conn *conn) {
  if (conn->calls.count != 0 || conn->state == CRPC__CONN_CLOSING) return;
  if (conn->got_goaway || (conn->next_id == 0 && conn != ch->conn)) {
    crpc__conn_close(conn, CRPC_STATUS_UNAVAILABLE, "server went away");
    return;
  }
  if (conn->transport) conn->transport->ops->ref(conn->transport, 0);
}

static void on_goaway(crpc__conn *c, uint32_t last_id, uint32_t code) {
  crpc_channel *ch = c->ctx->owner;
  (void)code;
  if (ch->conn == c) {
    ch->conn = NULL;
    ch->state = CRPC__CH_IDLE;
  }
  /* Calls the server will not process fail now; they never ran, so they are safe to retry. */
  crpc__list doomed;
  crpc__list_init(&doomed);
  crpc__list *e = ch->calls.next;
  while (e != &ch->calls) {
    crpc__list *next = e->next;
    crpc_call *call = CRPC__CONTAINER_OF(e, crpc_call, core.link);
    if (call->core.conn == c && call->core.id > last_id) {
      crpc__list_remove(e);
      crpc__list_push_back(&doomed, e);
    }
    e = next;
  }
  while (!crpc__list_empty(&doomed)) {
    crpc_call *call = CRPC__CONTAINER_OF(doomed.next, crpc_call, core.link);
    crpc__conn_untrack(c, call->core.id);
    crpc__call_fail(call, CRPC_STATUS_UNAVAILABLE,
                    "the server closed the connection (GOAWAY) before processing the call; it is safe to retry");
  }
  if (c->calls.count == 0) crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, "server went away");
}

static void on_closed(crpc__conn *c) {
  crpc_channel *ch = c->ctx->owner;
  crpc__list_remove(&c->owner_link);
  if (ch->conn == c) {
    ch->conn = NULL;
    if (ch->state != CRPC__CH_BACKOFF) ch->state = CRPC__CH_IDLE;
  }
  crpc__channel_maybe_free(ch);
}

/* ---- Close ----------------------------------------------------------------------------------- */

static void channel_destroy(crpc_channel *ch) {
  /* Threads whose blocking calls were completed by the close may still be on their way out. */
  crpc__blocking_wait_idle(ch);
  uv_cond_destroy(&ch->idle);
  crpc__calls_free(ch);
  crpc__deadlines_free(&ch->deadlines);
  uv_mutex_destroy(&ch->mu);
  crpc__free(ch->last_error);
  crpc__free(ch->target);
  crpc__free(ch);
}

static void handle_closed(uv_handle_t *h) {
  crpc_channel *ch = h->data;
  ch->pending--;
  crpc__channel_maybe_free(ch);
}

void crpc__channel_maybe_free(crpc_channel *ch) {
  if (!ch->closing || ch->pending || ch->ncalls || !crpc__list_empty(&ch->conns)) return;
  if (!ch->io_closed) {
    /* Last: the connections needed the flusher to be released. */
    ch->io_closed = 1;
    ch->pending++;
    ch->io.flusher.data = ch;
    crpc__io_ctx_close(&ch->io, handle_closed);
    return;
  }
  if (ch->own_loop) return; /* crpc_channel_close() finishes it after the loop drained */
  crpc_close_cb cb = ch->close_cb;
  void *ud = ch->close_ud;
  channel_destroy(ch);
  if (cb) cb(ud);
}

void crpc_channel_close(crpc_channel *ch, crpc_close_cb cb, void *user_data) {
  if (!ch) return;
  uv_mutex_lock(&ch->mu);
  int again = ch->closing;
  ch->closing = 1;
  uv_mutex_unlock(&ch->mu);
  if (again) return;
  ch->close_cb = cb;
  ch->close_ud = user_data;
  ch->pending++; /* nothing below may free the channel under our feet */

  crpc__blocking_cancel_all(ch);
  crpc__call_run_deferred(ch);
  while (!crpc__list_empty(&ch->calls)) {
    crpc_call *call = CRPC__CONTAINER_OF(ch->calls.next, crpc_call, core.link);
    crpc__call_abandon(call, CRPC_STATUS_CANCELLED, "channel closed");
  }
  for (crpc__list *e = ch->conns.next; e != &ch->conns;) {
    crpc__list *next = e->next;
    crpc__conn_close(CRPC__CONTAINER_OF(e, crpc__conn, owner_link), CRPC_STATUS_CANCELLED,
                     "channel closed");
    e = next;
  }
  free_addrinfo(ch);
  attempt_abort(ch);
  if (ch->gai) {
    uv_cancel((uv_req_t *)ch->gai);
    ch->gai = NULL;
  }
  ch->conn = NULL;
  uv_handle_t *handles[] = {(uv_handle_t *)&ch->timer, crpc__deadlines_handle(&ch->deadlines),
                            (uv_handle_t *)&ch->wake, (uv_handle_t *)&ch->keepalive};
  for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++) {
    ch->pending++;
    handles[i]->data = ch;
    uv_close(handles[i], handle_closed);
  }
  ch->pending--;

  crpc__channel_maybe_free(ch);
  if (!ch->own_loop) return;
  uv_run(&ch->own, UV_RUN_DEFAULT);
  uv_loop_close(&ch->own);
  channel_destroy(ch);
  if (cb) cb(user_data);
}

/* ---- Public call API ------------------------------------------------------------------------- */

int crpc_gen_unary_async(crpc_channel *ch, const crpc_method_desc *method,
                         const ProtobufCMessage *request, const crpc_call_opts *opts,
                         crpc_unary_cb cb, crpc_fn user_fn, void *user_data, crpc_call **call_out) {
  if (call_out) *call_out = NULL;
  if (!ch || !cb) return CRPC_EINVAL;
  if (ch->own_loop) return CRPC_ENOTSUP;
  if (opts && opts->cancel) return CRPC_EINVAL;
  return crpc__call_start(ch, method, request, opts, cb, user_fn, user_data, NULL, call_out);
}

int crpc_channel_unary_async(crpc_channel *ch, const crpc_method_desc *method,
                             const ProtobufCMessage *request, const crpc_call_opts *opts,
                             crpc_unary_cb cb, void *user_data, crpc_call **call_out) {
  return crpc_gen_unary_async(ch, method, request, opts, cb, NULL, user_data, call_out);
}

void crpc_call_cancel(crpc_call *call) {
  if (call && !crpc__call_done(call)) crpc__call_abandon(call, CRPC_STATUS_CANCELLED, "cancelled by the client");
}

const crpc_method_desc *crpc_call_method(const crpc_call *call) { return call ? call->method : NULL; }

crpc_fn crpc_call_user_fn(const crpc_call *call) { return call ? call->user_fn : NULL; }

