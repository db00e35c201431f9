/* The per-transport server fixture: see itest.h. */
#include "itest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

const itest_transport itest_tcp4 = {"tcp4", "tcp://127.0.0.1:0"};
const itest_transport itest_tcp6 = {"tcp6", "tcp://[::1]:0"};
const itest_transport itest_unix = {"unix", NULL};

/* ---- Temp directory for unix sockets: one per process, removed at exit ---------------------- */

static char tmpdir[64];
static atomic_int sock_counter;

static void remove_tmpdir(void) {
  if (tmpdir[0]) rmdir(tmpdir); /* the sockets in it were unlinked by their servers */
}

static const char *itest_tmpdir(void) {
  if (!tmpdir[0]) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/crpc-itest.XXXXXX");
    if (!mkdtemp(tmpdir)) fail_msg("mkdtemp: %s", strerror(errno));
    atexit(remove_tmpdir);
  }
  return tmpdir;
}

static void unix_endpoint(char *buf, size_t len) {
  snprintf(buf, len, "unix:%s/s%d.sock", itest_tmpdir(), atomic_fetch_add(&sock_counter, 1));
}

void itest_unused_endpoint(const itest_transport *t, char *buf, size_t len) {
  if (!t->listen) {
    unix_endpoint(buf, len);
    return;
  }
  int v6 = t == &itest_tcp6;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    sl = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sl = sizeof *a;
  }
  assert_int_equal(bind(fd, (struct sockaddr *)&ss, sl), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
  int port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
  close(fd); /* bound, never listened: connecting to it is refused */
  snprintf(buf, len, v6 ? "tcp://[::1]:%d" : "tcp://127.0.0.1:%d", port);
}

/* ---- Echo handlers ----------------------------------------------------------------------------*/

/* A call answered later: polled by a repeating timer until due, or until cancelled. */
typedef struct pending {
  uv_timer_t timer;
  crpc_server_call *call;
  const Itest__EchoRequest *req;
  itest_stats *st;
  uint64_t due;  /* loop time to answer at; UINT64_MAX: hold until cancelled */
} pending;

#define POLL_MS 5

static void finish(crpc_server_call *call, const Itest__EchoRequest *req, itest_stats *st) {
  if (req->misuse == 1) { /* a reply of the wrong type: ETYPE, and the call ends INTERNAL */
    Itest__Garbage wrong = ITEST__GARBAGE__INIT;
    int rc = crpc_server_call_reply(call, (const ProtobufCMessage *)&wrong);
    atomic_fetch_add(rc == CRPC_ETYPE ? &st->misuse_ok : &st->misuse_bad, 1);
  } else if (req->misuse == 2) { /* failing with OK: EINVAL, and the call ends INTERNAL */
    int rc = crpc_server_call_fail(call, CRPC_STATUS_OK, "not an error");
    atomic_fetch_add(rc == CRPC_EINVAL ? &st->misuse_ok : &st->misuse_bad, 1);
  } else if (req->misuse == 3 || req->misuse == 4) {
    /* finishing twice (at once, from inside the handler: the handle is still valid): every
     * finish after the first is CRPC_ESTATE and changes nothing */
    Itest__EchoReply reply = ITEST__ECHO_REPLY__INIT;
    reply.seq = req->seq;
    reply.payload = req->payload;
    int rc = req->misuse == 3 ? itest__test__echo__reply(call, &reply)
                              : crpc_server_call_fail(call, CRPC_STATUS_ABORTED, "first");
    int ok = rc == 0;
    ok = itest__test__echo__reply(call, &reply) == CRPC_ESTATE && ok;
    ok = crpc_server_call_fail(call, CRPC_STATUS_UNAVAILABLE, "second") == CRPC_ESTATE && ok;
    ok = crpc_server_call_fail_details(call, CRPC_STATUS_UNAVAILABLE, "second",
                                       (const uint8_t *)"d", 1) == CRPC_ESTATE && ok;
    ok = crpc_server_call_end(call, CRPC_STATUS_CANCELLED, NULL) == CRPC_ESTATE && ok;
    atomic_fetch_add(ok ? &st->misuse_ok : &st->misuse_bad, 1);
  } else if (req->fail_code != 0) {
    crpc_server_call_fail(call, (crpc_code)req->fail_code, req->fail_message);
  } else {
    Itest__EchoReply reply = ITEST__ECHO_REPLY__INIT;
    reply.seq = req->seq;
    uint8_t *big = NULL;
    if (req->reply_size) {
      big = malloc(req->reply_size);
      assert_non_null(big);
      memset(big, 'r', req->reply_size);
      reply.payload.data = big;
      reply.payload.len = req->reply_size;
    } else {
      reply.payload = req->payload;
    }
    itest__test__echo__reply(call, &reply);
    free(big);
  }
  atomic_fetch_add(&st->finished, 1);
}

static void pending_closed(uv_handle_t *h) { free(h->data); }

static void pending_tick(uv_timer_t *t) {
  pending *p = t->data;
  if (crpc_server_call_cancelled(p->call)) {
    atomic_fetch_add(&p->st->cancel_seen, 1);
    crpc_server_call_fail(p->call, CRPC_STATUS_CANCELLED, "cancelled");
    atomic_fetch_add(&p->st->finished, 1);
  } else if (uv_now(t->loop) >= p->due) {
    finish(p->call, p->req, p->st);
  } else {
    return;
  }
  uv_timer_stop(t);
  uv_close((uv_handle_t *)t, pending_closed);
}

static void echo_handler(crpc_server_call *call, const Itest__EchoRequest *req, void *ud) {
  itest_stats *st = ud;
  atomic_fetch_add(&st->received, 1);
  if (!req->hold && req->delay_ms == 0) {
    finish(call, req, st);
    return;
  }
  uv_loop_t *loop = crpc_server_loop(crpc_server_call_server(call));
  pending *p = calloc(1, sizeof *p);
  assert_non_null(p);
  p->call = call;
  p->req = req; /* owned by the call until it is finished */
  p->st = st;
  p->due = req->hold ? UINT64_MAX : uv_now(loop) + req->delay_ms;
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  uint64_t first = req->hold || req->delay_ms > POLL_MS ? POLL_MS : req->delay_ms;
  uv_timer_start(&p->timer, pending_tick, first, POLL_MS);
}

const Itest__Test__Handlers itest_echo_handlers = {.echo = echo_handler};

/* ---- The test server, on its own thread --------------------------------------------------------*/

struct itest_server {
  uv_loop_t loop;
  crpc_server *srv;
  uv_async_t cmd;       /* "close": wakes the server thread */
  uv_thread_t thread;
  char endpoint[256];
  char unix_path[256];  /* removed at stop */
  itest_stats st;
  int close_cbs;              /* server thread */
  int finished_at_close;      /* stats.finished when the close callback ran */
  int received_at_close;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int thread_done;            /* guarded by mu */
};

static void server_closed(void *ud) {
  itest_server *s = ud;
  s->close_cbs++;
  s->finished_at_close = atomic_load(&s->st.finished);
  s->received_at_close = atomic_load(&s->st.received);
}

static void on_cmd(uv_async_t *a) {
  itest_server *s = a->data;
  crpc_server_close(s->srv, server_closed, s);
  uv_close((uv_handle_t *)a, NULL);
}

static void server_thread(void *arg) {
  itest_server *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  pthread_mutex_lock(&s->mu);
  s->thread_done = 1;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

itest_server *itest_server_start(const itest_transport *t, const itest_server_opts *opts) {
  itest_server_opts none = {0};
  if (!opts) opts = &none;
  itest_server *s = calloc(1, sizeof *s);
  assert_non_null(s);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  assert_int_equal(uv_loop_init(&s->loop), 0);
  assert_int_equal(crpc_server_new(&s->srv, &s->loop), 0);
  if (opts->max_recv)
    assert_int_equal(crpc_server_set_option(s->srv, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, opts->max_recv), 0);
  if (opts->max_send)
    assert_int_equal(crpc_server_set_option(s->srv, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, opts->max_send), 0);
  assert_int_equal(itest__test__crpc_register(s->srv, &itest_echo_handlers, &s->st), 0);

  char listen_ep[256];
  if (opts->endpoint)
    snprintf(listen_ep, sizeof listen_ep, "%s", opts->endpoint);
  else if (t->listen)
    snprintf(listen_ep, sizeof listen_ep, "%s", t->listen);
  else
    unix_endpoint(listen_ep, sizeof listen_ep);
  if (strncmp(listen_ep, "unix:", 5) == 0) {
    snprintf(s->unix_path, sizeof s->unix_path, "%s", listen_ep + 5);
    unlink(s->unix_path); /* a previous server's socket (restart on the same endpoint) */
  }
  int port = -1;
  int rc = crpc_server_listen(s->srv, listen_ep, &port);
  if (rc != 0) fail_msg("listen on %s: %s", listen_ep, crpc_strerror(rc));
  if (s->unix_path[0]) {
    snprintf(s->endpoint, sizeof s->endpoint, "%s", listen_ep);
  } else {
    /* the same host, with the bound port */
    const char *colon = strrchr(listen_ep, ':');
    assert_non_null(colon);
    assert_true(port > 0);
    snprintf(s->endpoint, sizeof s->endpoint, "%.*s:%d", (int)(colon - listen_ep), listen_ep, port);
  }
  assert_int_equal(uv_async_init(&s->loop, &s->cmd, on_cmd), 0);
  s->cmd.data = s;
  assert_int_equal(uv_thread_create(&s->thread, server_thread, s), 0);
  return s;
}

const char *itest_server_endpoint(const itest_server *s) { return s->endpoint; }
itest_stats *itest_server_stats(itest_server *s) { return &s->st; }

void itest_server_stop(itest_server *s) { itest_server_stop_get(s, NULL); }

void itest_server_stop_get(itest_server *s, itest_final *final) {
  uv_async_send(&s->cmd);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 20;
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  while (!s->thread_done && rc == 0) rc = pthread_cond_timedwait(&s->cv, &s->mu, &until);
  int done = s->thread_done;
  pthread_mutex_unlock(&s->mu);
  if (!done) fail_msg("server on %s: close did not finish within 20 s", s->endpoint);
  uv_thread_join(&s->thread);
  assert_int_equal(s->close_cbs, 1);
  /* the close callback runs only after the handlers finished every call they received */
  assert_int_equal(s->finished_at_close, s->received_at_close);
  assert_int_equal(atomic_load(&s->st.finished), atomic_load(&s->st.received));
  assert_int_equal(uv_loop_close(&s->loop), 0);
  if (final) {
    final->received = atomic_load(&s->st.received);
    final->finished = atomic_load(&s->st.finished);
    final->cancel_seen = atomic_load(&s->st.cancel_seen);
  }
  if (s->unix_path[0]) unlink(s->unix_path);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

/* ---- Client side ------------------------------------------------------------------------------*/

int itest_run_until(uv_loop_t *loop, int (*pred)(void *), void *arg, uint64_t timeout_ms) {
  return ts_run_until(loop, NULL, pred, arg, timeout_ms);
}

void itest_run_for(uv_loop_t *loop, uint64_t ms) { ts_run_for(loop, NULL, ms); }

int itest_count_reached(void *ud) {
  itest_wait_count *w = ud;
  return atomic_load(w->counter) >= w->want;
}

typedef struct close_ctx {
  int calls;
} close_ctx;

static void channel_closed(void *ud) { ((close_ctx *)ud)->calls++; }
static int closed_once(void *ud) { return ((close_ctx *)ud)->calls > 0; }

void itest_channel_close(uv_loop_t *loop, crpc_channel *ch) {
  close_ctx c = {0};
  crpc_channel_close(ch, channel_closed, &c);
  assert_true(itest_run_until(loop, closed_once, &c, 10000));
  itest_run_for(loop, 5);
  assert_int_equal(c.calls, 1);
}

static void walk_print(uv_handle_t *h, void *arg) {
  (void)arg;
  fprintf(stderr, "  leftover handle: %s%s\n", uv_handle_type_name(uv_handle_get_type(h)),
          uv_is_closing(h) ? " (closing)" : "");
}

void itest_loop_finish(uv_loop_t *loop) {
  uint64_t until = ts_now_ms() + 5000;
  while (uv_run(loop, UV_RUN_NOWAIT) && ts_now_ms() < until) {
  }
  int rc = uv_loop_close(loop);
  if (rc != 0) uv_walk(loop, walk_print, NULL);
  assert_int_equal(rc, 0);
}

static int completion_counter;

void itest_rec_done(const crpc_status *status, const Itest__EchoReply *response, void *ud) {
  itest_rec *r = ud;
  r->completions++;
  r->order = ++completion_counter;
  r->code = status->code;
  snprintf(r->message, sizeof r->message, "%s", status->message ? status->message : "");
  r->has_response = response != NULL;
  if (response) {
    r->seq = response->seq;
    r->payload_len = response->payload.len;
    memcpy(r->payload, response->payload.data,
           response->payload.len < sizeof r->payload ? response->payload.len : sizeof r->payload);
  }
}

int itest_all_done(void *arg) {
  itest_recs *rs = arg;
  for (size_t i = 0; i < rs->n; i++)
    if (rs->r[i].completions == 0) return 0;
  return 1;
}

void itest_req_init(Itest__EchoRequest *req, uint32_t seq, char *buf, size_t buflen) {
  itest__echo_request__init(req);
  int n = snprintf(buf, buflen, "req-%u", seq);
  req->seq = seq;
  req->payload.data = (uint8_t *)buf;
  req->payload.len = (size_t)n;
}

void itest_assert_echo(const itest_rec *rec, uint32_t seq) {
  char want[32];
  int n = snprintf(want, sizeof want, "req-%u", seq);
  if (rec->completions != 1 || rec->code != CRPC_STATUS_OK)
    fail_msg("call %u: %d completions, %s: %s", seq, rec->completions, crpc_code_name(rec->code),
             rec->message);
  assert_true(rec->has_response);
  assert_int_equal(rec->seq, seq);
  assert_int_equal(rec->payload_len, (size_t)n);
  assert_memory_equal(rec->payload, want, (size_t)n);
}
