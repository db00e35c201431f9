/* Batches and leader/follower (review of ba5b4a7 and 380468e).
 *
 * Output produced inside a read callback, and the request a blocking leader starts before it runs
 * the loop, is written when that batch ends (crpc__io_batch_begin/end) instead of in the prepare
 * phase; a blocking call takes the channel's mutex once at each end and creates its condition
 * variable only when it may sleep. What would go wrong if either were off: a request or answer
 * never written (the call hangs), a follower never woken, a close that waits forever for threads
 * leaving, a completion counted twice or never, a connection or channel freed under a read
 * callback. Every case asserts on outcomes: each call ends exactly once, with the status the
 * scenario allows, and echoes what it sent. Waits are bounded: per-call deadlines turn a request
 * that is never written into a visible DEADLINE_EXCEEDED, loop runs have their own bounds, and a
 * hang that stops every loop (a sleeper never woken, a close waiting for threads forever) is
 * caught by the test's ctest TIMEOUT.
 *
 * Cases (each over TCP/IPv4, TCP/IPv6 and Unix sockets):
 *  lone_leader_calls             one thread, private loop: every request goes out from the batch
 *  first_calls_while_connecting  fresh channels hit by several threads at once (conn NEW at batch end)
 *  leaders_followers_tokens      8 threads: normal, delayed, held-and-cancelled, pre-cancelled
 *  unreachable_many_threads      calls on a channel that cannot connect all end UNAVAILABLE
 *  large_requests_socket_full    1 MiB requests from several threads while others make small calls
 *  blocking_streams_and_unary    blocking bidi streams (one cancelled from another thread) + unary
 *  loop_close_with_blocked       loop channel closed (from a callback in a read) while threads block
 *  close_channel_in_callback     loop channel closed from the first completion, more answers in the read
 *  close_channel_on_goaway       ... from a call failed by GOAWAY, after starting one on a new connection
 *  close_server_in_handler       a handler closes its server while more calls sit in the same read
 *  shutdown_server_in_handler    ... or shuts it down with no grace */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "stream.h"

#define CALL_TIMEOUT_MS 20000 /* a call that should end long before: a hang shows as DEADLINE_EXCEEDED */

static int echo_ok(int rc, const crpc_status *st, const Itest__EchoReply *resp,
                   const Itest__EchoRequest *req) {
  return rc == 0 && st->code == CRPC_STATUS_OK && resp && resp->seq == req->seq &&
         resp->payload.len == req->payload.len &&
         (req->payload.len == 0 || memcmp(resp->payload.data, req->payload.data, req->payload.len) == 0);
}

static void describe(char *buf, size_t len, const char *what, uint32_t seq, int rc,
                     const crpc_status *st) {
  snprintf(buf, len, "%s seq %u: rc %s, %s: %s", what, seq, crpc_err_name(rc),
           crpc_code_name(st->code), st->message ? st->message : "");
}

/* A barrier for uv threads, so that several threads hit a fresh channel at the same moment. */
typedef struct gate {
  uv_mutex_t mu;
  uv_cond_t cv;
  int waiting, total;
} gate;

static void gate_init(gate *g, int total) {
  uv_mutex_init(&g->mu);
  uv_cond_init(&g->cv);
  g->waiting = 0;
  g->total = total;
}

static void gate_pass(gate *g) {
  uv_mutex_lock(&g->mu);
  if (++g->waiting == g->total) uv_cond_broadcast(&g->cv);
  while (g->waiting < g->total) uv_cond_wait(&g->cv, &g->mu);
  uv_mutex_unlock(&g->mu);
}

static void gate_destroy(gate *g) {
  uv_cond_destroy(&g->cv);
  uv_mutex_destroy(&g->mu);
}

/* ---- lone_leader_calls --------------------------------------------------------------------- */

/* A lone caller leads: its request is written as its batch ends, before it runs the loop. If it
 * were left for a prepare phase that is never started, the call would hang until its deadline. */
static void lone_leader_calls(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(srv)), 0);
  int n = 0;
  for (uint32_t i = 0; i < 300; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, 1000 + i, buf, sizeof buf);
    if (i % 25 == 7) req.delay_ms = 1;
    Itest__EchoReply *resp = NULL;
    crpc_status st = {0};
    crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
    int rc = itest__test__echo__call(ch, &req, &resp, &st, &opts);
    if (!echo_ok(rc, &st, resp, &req)) {
      char why[320];
      describe(why, sizeof why, "lone leader", req.seq, rc, &st);
      fail_msg("%s", why);
    }
    n++;
    itest__echo_reply__free_unpacked(resp, NULL);
    crpc_status_reset(&st);
  }
  crpc_channel_close(ch, NULL, NULL);
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.received, n);
}

/* ---- first_calls_while_connecting ------------------------------------------------------------ */

typedef struct opener {
  crpc_channel *ch;
  gate *g;
  uint32_t base;
  int ok;
  char err[320];
  uv_thread_t thread;
} opener;

static void opener_run(void *arg) {
  opener *o = arg;
  gate_pass(o->g);
  for (uint32_t i = 0; i < 3; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, o->base + i, buf, sizeof buf);
    Itest__EchoReply *resp = NULL;
    crpc_status st = {0};
    crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
    int rc = itest__test__echo__call(o->ch, &req, &resp, &st, &opts);
    if (echo_ok(rc, &st, resp, &req))
      o->ok++;
    else if (!o->err[0])
      describe(o->err, sizeof o->err, "while connecting", req.seq, rc, &st);
    if (resp) itest__echo_reply__free_unpacked(resp, NULL);
    crpc_status_reset(&st);
  }
}

/* The first call of a channel is committed while its connection is still connecting (NEW): the
 * batch ends with nothing to write, and the request must go out once the connection attaches.
 * Several threads at once: one leads (and connects), the others queue behind it. */
static void first_calls_while_connecting(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  enum { ROUNDS = 12, THREADS = 4 };
  int total = 0;
  for (int r = 0; r < ROUNDS; r++) {
    crpc_channel *ch;
    assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(srv)), 0);
    gate g;
    gate_init(&g, THREADS);
    opener os[THREADS];
    memset(os, 0, sizeof os);
    for (int i = 0; i < THREADS; i++) {
      os[i].ch = ch;
      os[i].g = &g;
      os[i].base = (uint32_t)(r * 1000 + i * 10);
      assert_int_equal(uv_thread_create(&os[i].thread, opener_run, &os[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) uv_thread_join(&os[i].thread);
    gate_destroy(&g);
    crpc_channel_close(ch, NULL, NULL);
    for (int i = 0; i < THREADS; i++) {
      if (os[i].ok != 3) fail_msg("round %d thread %d: %d of 3 ok; %s", r, i, os[i].ok, os[i].err);
      total += os[i].ok;
    }
  }
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.received, total);
}

/* ---- leaders_followers_tokens ------------------------------------------------------------------ */

#define LF_THREADS 8
#define LF_ITERS 90

typedef struct lf_shared {
  crpc_channel *ch;
  gate g;
  _Atomic(crpc_cancel_token *) slot[LF_THREADS]; /* tokens of held calls, for the canceller */
  atomic_int stop;
  atomic_int cancels_sent;
} lf_shared;

typedef struct lf_worker {
  lf_shared *sh;
  int index;
  crpc_cancel_token *hold_tok, *quiet_tok, *pre_tok;
  int ok, held_cancelled, pre_cancelled, bad;
  int expect_ok, expect_held, expect_pre;
  char err[320];
  uv_thread_t thread;
} lf_worker;

static void lf_run(void *arg) {
  lf_worker *w = arg;
  lf_shared *sh = w->sh;
  gate_pass(&sh->g);
  for (int i = 0; i < LF_ITERS; i++) {
    uint32_t seq = (uint32_t)(w->index * 100000 + i);
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, seq, buf, sizeof buf);
    crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
    int kind = (i + w->index) % 6;
    switch (kind) {
      case 1: req.delay_ms = 1 + (uint32_t)(i % 3); break;
      case 2: /* held by the server until the canceller's token cancels it */
        req.hold = 1;
        crpc_cancel_token_reset(w->hold_tok);
        opts.cancel = w->hold_tok;
        atomic_store(&sh->slot[w->index], w->hold_tok);
        break;
      case 3: opts.cancel = w->quiet_tok; break; /* a token nobody cancels: must not matter */
      case 4: opts.cancel = w->pre_tok; break;   /* cancelled before the call: never sent */
      default: break;
    }
    Itest__EchoReply *resp = NULL;
    crpc_status st = {0};
    int rc = itest__test__echo__call(sh->ch, &req, &resp, &st, &opts);
    if (kind == 2) atomic_store(&sh->slot[w->index], NULL);
    int good;
    if (kind == 2) {
      w->expect_held++;
      good = rc == 0 && st.code == CRPC_STATUS_CANCELLED && !resp;
      if (good) w->held_cancelled++;
    } else if (kind == 4) {
      w->expect_pre++;
      good = rc == 0 && st.code == CRPC_STATUS_CANCELLED && !resp;
      if (good) w->pre_cancelled++;
    } else {
      w->expect_ok++;
      good = echo_ok(rc, &st, resp, &req);
      if (good) w->ok++;
    }
    if (!good && !w->bad++) describe(w->err, sizeof w->err, "leader/follower", seq, rc, &st);
    if (resp) itest__echo_reply__free_unpacked(resp, NULL);
    crpc_status_reset(&st);
  }
}

/* Cancels every published token, over and over: cancels land before the call attaches the token,
 * while it starts, while the server holds it, and after it returned (then on the next call). */
static void lf_cancel_run(void *arg) {
  lf_shared *sh = arg;
  unsigned n = 0;
  while (!atomic_load(&sh->stop)) {
    for (int i = 0; i < LF_THREADS; i++) {
      crpc_cancel_token *t = atomic_load(&sh->slot[i]);
      if (t) {
        crpc_cancel_token_cancel(t);
        atomic_fetch_add(&sh->cancels_sent, 1);
      }
    }
    if (++n % 8 == 0)
      uv_sleep(1);
    else
      sched_yield();
  }
}

/* Many threads on one private-loop channel, started together on a fresh channel: leadership is
 * taken, passed on when the leader's own call ends first (short delays against held calls) and
 * taken again; followers sleep on condition variables created only now. Held calls end only
 * through their token, so every one of them must come back CANCELLED; a lost wake-up or a lost
 * cancel shows as DEADLINE_EXCEEDED (or a hang caught by the test's timeout). */
static void leaders_followers_tokens(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  lf_shared sh;
  memset(&sh, 0, sizeof sh);
  assert_int_equal(crpc_channel_new(&sh.ch, NULL, itest_server_endpoint(srv)), 0);
  gate_init(&sh.g, LF_THREADS);
  for (int i = 0; i < LF_THREADS; i++) atomic_init(&sh.slot[i], NULL);
  atomic_init(&sh.stop, 0);
  atomic_init(&sh.cancels_sent, 0);
  lf_worker ws[LF_THREADS];
  memset(ws, 0, sizeof ws);
  for (int i = 0; i < LF_THREADS; i++) {
    ws[i].sh = &sh;
    ws[i].index = i;
    assert_int_equal(crpc_cancel_token_new(&ws[i].hold_tok), 0);
    assert_int_equal(crpc_cancel_token_new(&ws[i].quiet_tok), 0);
    assert_int_equal(crpc_cancel_token_new(&ws[i].pre_tok), 0);
    crpc_cancel_token_cancel(ws[i].pre_tok);
  }
  uv_thread_t canceller;
  assert_int_equal(uv_thread_create(&canceller, lf_cancel_run, &sh), 0);
  for (int i = 0; i < LF_THREADS; i++)
    assert_int_equal(uv_thread_create(&ws[i].thread, lf_run, &ws[i]), 0);
  for (int i = 0; i < LF_THREADS; i++) uv_thread_join(&ws[i].thread);
  atomic_store(&sh.stop, 1);
  uv_thread_join(&canceller);
  crpc_channel_close(sh.ch, NULL, NULL);
  int expect_ok = 0;
  for (int i = 0; i < LF_THREADS; i++) {
    lf_worker *w = &ws[i];
    if (w->bad) fail_msg("thread %d: %d bad calls, first: %s", i, w->bad, w->err);
    assert_int_equal(w->ok, w->expect_ok);
    assert_int_equal(w->held_cancelled, w->expect_held);
    assert_int_equal(w->pre_cancelled, w->expect_pre);
    assert_true(w->expect_held > 0 && w->expect_pre > 0);
    expect_ok += w->ok;
    crpc_cancel_token_free(w->hold_tok);
    crpc_cancel_token_free(w->quiet_tok);
    crpc_cancel_token_free(w->pre_tok);
  }
  gate_destroy(&sh.g);
  assert_true(atomic_load(&sh.cancels_sent) > 0);
  itest_final fin;
  itest_server_stop_get(srv, &fin); /* asserts every call the server saw was finished */
  /* Pre-cancelled calls never reach the server; held ones may not either (cancelled first). */
  assert_true(fin.received >= expect_ok);
  assert_true(fin.received <= expect_ok + LF_THREADS * LF_ITERS / 6 + LF_THREADS);
}

/* ---- unreachable_many_threads ----------------------------------------------------------------- */

typedef struct unreach {
  crpc_channel *ch;
  gate *g;
  int unavailable, other;
  char err[320];
  uv_thread_t thread;
} unreach;

static void unreach_run(void *arg) {
  unreach *u = arg;
  gate_pass(u->g);
  for (uint32_t i = 0; i < 6; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, i, buf, sizeof buf);
    Itest__EchoReply *resp = NULL;
    crpc_status st = {0};
    crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
    int rc = itest__test__echo__call(u->ch, &req, &resp, &st, &opts);
    if (rc == 0 && st.code == CRPC_STATUS_UNAVAILABLE && !resp) {
      u->unavailable++;
    } else if (!u->other++) {
      describe(u->err, sizeof u->err, "unreachable", i, rc, &st);
    }
    if (resp) itest__echo_reply__free_unpacked(resp, NULL);
    crpc_status_reset(&st);
  }
}

/* A connection that fails while calls wait on it (and calls made during the backoff that
 * follows): every call ends once, UNAVAILABLE, none waits for its deadline. */
static void unreachable_many_threads(void **state) {
  char ep[256];
  itest_unused_endpoint(ITEST_TRANSPORT(state), ep, sizeof ep);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, ep), 0);
  enum { THREADS = 5 };
  gate g;
  gate_init(&g, THREADS);
  unreach us[THREADS];
  memset(us, 0, sizeof us);
  for (int i = 0; i < THREADS; i++) {
    us[i].ch = ch;
    us[i].g = &g;
    assert_int_equal(uv_thread_create(&us[i].thread, unreach_run, &us[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) uv_thread_join(&us[i].thread);
  gate_destroy(&g);
  crpc_channel_close(ch, NULL, NULL);
  for (int i = 0; i < THREADS; i++) {
    if (us[i].other) fail_msg("thread %d: %d calls did not end UNAVAILABLE, first: %s", i, us[i].other, us[i].err);
    assert_int_equal(us[i].unavailable, 6);
  }
}

/* ---- large_requests_socket_full --------------------------------------------------------------- */

#define BIG_LEN (1024 * 1024)

typedef struct mixer {
  crpc_channel *ch;
  gate *g;
  int index, big, n, ok;
  char err[320];
  uv_thread_t thread;
} mixer;

static void mixer_run(void *arg) {
  mixer *m = arg;
  uint8_t *big = NULL;
  if (m->big) {
    big = malloc(BIG_LEN);
    assert_non_null(big);
  }
  gate_pass(m->g);
  for (int i = 0; i < m->n; i++) {
    uint32_t seq = (uint32_t)(m->index * 10000 + i);
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, seq, buf, sizeof buf);
    if (big) {
      for (size_t k = 0; k < BIG_LEN; k++) big[k] = (uint8_t)(k * 7u + seq);
      req.payload.data = big;
      req.payload.len = BIG_LEN;
    }
    Itest__EchoReply *resp = NULL;
    crpc_status st = {0};
    crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
    int rc = itest__test__echo__call(m->ch, &req, &resp, &st, &opts);
    if (echo_ok(rc, &st, resp, &req))
      m->ok++;
    else if (!m->err[0])
      describe(m->err, sizeof m->err, m->big ? "big" : "small", seq, rc, &st);
    if (resp) itest__echo_reply__free_unpacked(resp, NULL);
    crpc_status_reset(&st);
  }
  free(big);
}

/* Requests committed in a leader's batch while the connection is still writing an earlier large
 * frame (uv_write in progress, or the socket full): they must go out when that write completes,
 * in order, whoever leads by then. */
static void large_requests_socket_full(void **state) {
  itest_server_opts so = {.max_recv = 8 << 20, .max_send = 8 << 20};
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), &so);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(srv)), 0);
  enum { THREADS = 6 };
  gate g;
  gate_init(&g, THREADS);
  mixer ms[THREADS];
  memset(ms, 0, sizeof ms);
  for (int i = 0; i < THREADS; i++) {
    ms[i].ch = ch;
    ms[i].g = &g;
    ms[i].index = i;
    ms[i].big = i < 3;
    ms[i].n = ms[i].big ? 5 : 80;
    assert_int_equal(uv_thread_create(&ms[i].thread, mixer_run, &ms[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) uv_thread_join(&ms[i].thread);
  gate_destroy(&g);
  crpc_channel_close(ch, NULL, NULL);
  int total = 0;
  for (int i = 0; i < THREADS; i++) {
    if (ms[i].ok != ms[i].n) fail_msg("thread %d: %d of %d ok; first: %s", i, ms[i].ok, ms[i].n, ms[i].err);
    total += ms[i].ok;
  }
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.received, total);
}

/* ---- A server serving Echo and the streams, whose Echo handler may close it ----------------- */

typedef enum { END_NONE, END_CLOSE, END_SHUTDOWN } end_mode;

typedef struct srv_env {
  uv_loop_t loop;
  crpc_server *srv;
  uv_async_t cmd;
  uv_thread_t thread;
  char endpoint[256];
  char unix_path[256];
  itest_stats st;
  st_counters sc;
  end_mode mode;       /* what the handler of close_seq does to the server */
  uint32_t close_seq;
  int close_cbs;       /* server thread; read after the join */
  int handler_ends;    /* server thread: the handler closed or shut the server down */
  uv_mutex_t mu;
  uv_cond_t cv;
  int ended;           /* (mu) the server was closed: the cmd handle is gone */
  int thread_done;     /* (mu) */
} srv_env;

static void srv_closed(void *ud) { ((srv_env *)ud)->close_cbs++; }

/* Ends the server and the command handle (server thread, mu not held). */
static void srv_end(srv_env *e, end_mode how) {
  uv_mutex_lock(&e->mu);
  int again = e->ended;
  e->ended = 1;
  uv_mutex_unlock(&e->mu);
  if (again) return;
  if (how == END_SHUTDOWN)
    assert_int_equal(crpc_server_shutdown(e->srv, 0, srv_closed, e), 0);
  else
    crpc_server_close(e->srv, srv_closed, e);
  uv_close((uv_handle_t *)&e->cmd, NULL);
}

static void srv_on_cmd(uv_async_t *a) { srv_end(a->data, END_CLOSE); }

static void srv_echo(crpc_server_call *call, const Itest__EchoRequest *req, void *ud) {
  srv_env *e = ud;
  if (e->mode == END_NONE || req->seq != e->close_seq) {
    itest_echo_handlers.echo(call, req, &e->st);
    return;
  }
  /* Answer, then end the server from inside the read callback that delivered this call: the
   * answer sits in the batch, and more calls may follow in the same read. */
  atomic_fetch_add(&e->st.received, 1);
  Itest__EchoReply reply = ITEST__ECHO_REPLY__INIT;
  reply.seq = req->seq;
  reply.payload = req->payload;
  assert_int_equal(itest__test__echo__reply(call, &reply), 0);
  atomic_fetch_add(&e->st.finished, 1);
  e->handler_ends++;
  srv_end(e, e->mode);
}

/* The streaming methods: stream.h's, with their own counters. */
static void srv_output(crpc_server_call *call, const Itest__OutputRequest *req, void *ud) {
  st_service_handlers.streaming_output(call, req, &((srv_env *)ud)->sc);
}
static void srv_input(crpc_server_call *call, void *ud) {
  st_service_handlers.streaming_input(call, &((srv_env *)ud)->sc);
}
static void srv_duplex(crpc_server_call *call, void *ud) {
  st_service_handlers.full_duplex(call, &((srv_env *)ud)->sc);
}
static void srv_sink(crpc_server_call *call, void *ud) {
  st_service_handlers.sink(call, &((srv_env *)ud)->sc);
}
static void srv_unary(crpc_server_call *call, const Itest__OutputRequest *req, void *ud) {
  st_service_handlers.unary_call(call, req, &((srv_env *)ud)->sc);
}

/* One service, one table: Echo is this file's, the streaming methods stream.h's. */
static const Itest__Test__Handlers srv_handlers = {.echo = srv_echo,
                                                   .streaming_output = srv_output,
                                                   .streaming_input = srv_input,
                                                   .full_duplex = srv_duplex,
                                                   .sink = srv_sink,
                                                   .unary_call = srv_unary};

static void srv_thread(void *arg) {
  srv_env *e = arg;
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_mutex_lock(&e->mu);
  e->thread_done = 1;
  uv_cond_signal(&e->cv);
  uv_mutex_unlock(&e->mu);
}

static srv_env *srv_start(const itest_transport *t, end_mode mode, uint32_t close_seq) {
  srv_env *e = calloc(1, sizeof *e);
  assert_non_null(e);
  e->mode = mode;
  e->close_seq = close_seq;
  uv_mutex_init(&e->mu);
  uv_cond_init(&e->cv);
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(crpc_server_new(&e->srv, &e->loop), 0);
  assert_int_equal(itest__test__crpc_register(e->srv, &srv_handlers, e), 0);
  /* One service: stream.h's table cannot be registered beside this one (it is forwarded to). */
  assert_int_equal(itest__test__crpc_register(e->srv, &st_service_handlers, &e->sc), CRPC_EEXIST);
  char listen_ep[256];
  if (t->listen) {
    snprintf(listen_ep, sizeof listen_ep, "%s", t->listen);
  } else {
    itest_unused_endpoint(t, listen_ep, sizeof listen_ep);
    snprintf(e->unix_path, sizeof e->unix_path, "%s", listen_ep + 5);
  }
  int port = 0;
  int rc = crpc_server_listen(e->srv, listen_ep, &port);
  if (rc != 0) fail_msg("listen on %s: %s", listen_ep, crpc_strerror(rc));
  if (t->listen) {
    const char *colon = strrchr(listen_ep, ':');
    snprintf(e->endpoint, sizeof e->endpoint, "%.*s:%d", (int)(colon - listen_ep), listen_ep, port);
  } else {
    snprintf(e->endpoint, sizeof e->endpoint, "%s", listen_ep);
  }
  assert_int_equal(uv_async_init(&e->loop, &e->cmd, srv_on_cmd), 0);
  e->cmd.data = e;
  assert_int_equal(uv_thread_create(&e->thread, srv_thread, e), 0);
  return e;
}

/* Closes the server unless its handler did, waits (bounded) for its thread, and checks that the
 * close callback ran once, every call the handlers got was finished and no handle is left. */
static void srv_stop(srv_env *e, int *handler_ends) {
  uv_mutex_lock(&e->mu);
  if (!e->ended) uv_async_send(&e->cmd);
  uint64_t until = ts_now_ms() + 20000;
  while (!e->thread_done && ts_now_ms() < until) uv_cond_timedwait(&e->cv, &e->mu, 10 * 1000000ull);
  int done = e->thread_done;
  uv_mutex_unlock(&e->mu);
  if (!done) fail_msg("server on %s: did not finish within 20 s of its close", e->endpoint);
  uv_thread_join(&e->thread);
  assert_int_equal(e->close_cbs, 1);
  assert_int_equal(atomic_load(&e->st.finished), atomic_load(&e->st.received));
  if (handler_ends) *handler_ends = e->handler_ends;
  int rc = uv_loop_close(&e->loop);
  assert_int_equal(rc, 0);
  if (e->unix_path[0]) unlink(e->unix_path);
  uv_cond_destroy(&e->cv);
  uv_mutex_destroy(&e->mu);
  free(e);
}

/* ---- blocking_streams_and_unary ------------------------------------------------------------- */

#define PINGS 25

typedef struct bs_job {
  crpc_channel *ch;
  gate *g;
  int index;
  int role;                         /* 0: ping-pong stream, 1: cancelled stream, 2: unary calls */
  _Atomic(crpc_stream *) published; /* role 1: the stream, for the canceller */
  atomic_int cancel_done;
  int steps, want;
  crpc_code code;
  char err[320];
  uv_thread_t thread;
} bs_job;

static void bs_fail(bs_job *j, const char *what, int rc) {
  if (!j->err[0]) snprintf(j->err, sizeof j->err, "%s: %s", what, crpc_err_name(rc));
}

static void bs_run(void *arg) {
  bs_job *j = arg;
  gate_pass(j->g);
  if (j->role == 2) {
    j->want = 120;
    for (int i = 0; i < j->want; i++) {
      uint32_t seq = (uint32_t)(j->index * 10000 + i);
      char buf[32];
      Itest__EchoRequest req;
      itest_req_init(&req, seq, buf, sizeof buf);
      if (i % 17 == 3) req.delay_ms = 2;
      Itest__EchoReply *resp = NULL;
      crpc_status st = {0};
      crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
      int rc = itest__test__echo__call(j->ch, &req, &resp, &st, &opts);
      if (echo_ok(rc, &st, resp, &req))
        j->steps++;
      else if (!j->err[0])
        describe(j->err, sizeof j->err, "unary next to streams", seq, rc, &st);
      if (resp) itest__echo_reply__free_unpacked(resp, NULL);
      crpc_status_reset(&st);
    }
    j->code = CRPC_STATUS_OK;
    return;
  }
  crpc_stream *s = NULL;
  crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
  int rc = itest__test__full_duplex__open(j->ch, &opts, &s);
  if (rc != 0) {
    bs_fail(j, "open", rc);
    return;
  }
  int rounds = j->role == 0 ? PINGS : 1;
  j->want = rounds + (j->role == 0 ? 1 : 2);
  for (int i = 0; i < rounds; i++) {
    int size = 10 + (i * 37 + j->index) % 300;
    st_outreq req;
    st_outreq_init(&req, &size, 1, i % 5);
    Itest__OutputResponse *msg = NULL;
    rc = itest__test__full_duplex__send_wait(s, &req.req);
    if (rc != 0) {
      bs_fail(j, "send_wait", rc);
    } else if ((rc = itest__test__full_duplex__recv_wait(s, &msg)) != 1) {
      bs_fail(j, "recv_wait", rc);
    } else if (st_payload_ok(msg->payload, size) && msg->seq == i) {
      j->steps++;
    } else {
      bs_fail(j, "response mismatch", 0);
    }
    if (msg) protobuf_c_message_free_unpacked(&msg->base, NULL);
    st_outreq_free(&req);
  }
  if (j->role == 1) {
    /* Nothing more is asked for: this read ends only through the other thread's cancel. */
    atomic_store(&j->published, s);
    Itest__OutputResponse *msg = NULL;
    rc = itest__test__full_duplex__recv_wait(s, &msg);
    if (rc == 0 && !msg)
      j->steps++;
    else
      bs_fail(j, "recv_wait after cancel", rc);
    if (msg) protobuf_c_message_free_unpacked(&msg->base, NULL);
    /* The stream stays valid until finish: wait until the canceller is done with it. */
    while (!atomic_load(&j->cancel_done)) sched_yield();
  }
  crpc_status st = {0};
  rc = itest__test__full_duplex__finish_wait(s, &st);
  if (rc == 0) {
    j->steps++;
    j->code = st.code;
  } else {
    bs_fail(j, "finish", rc);
  }
  crpc_status_reset(&st);
}

static void bs_cancel_run(void *arg) {
  bs_job *j = arg;
  crpc_stream *s;
  uint64_t until = ts_now_ms() + 30000;
  while (!(s = atomic_load(&j->published)) && ts_now_ms() < until) sched_yield();
  if (s) crpc_stream_cancel_async(s);
  atomic_store(&j->cancel_done, 1);
}

/* Blocking stream operations (crpc__blocking_run: no token, several runs of one waiter in
 * finish) from several threads, next to unary calls on the same private-loop channel: whoever
 * leads carries the others' stream operations, parks them on their streams and wakes them as
 * messages, credit and ends arrive. One stream is cancelled from a thread that does not use it. */
static void blocking_streams_and_unary(void **state) {
  srv_env *e = srv_start(ITEST_TRANSPORT(state), END_NONE, 0);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, e->endpoint), 0);
  enum { JOBS = 7 };
  gate g;
  gate_init(&g, JOBS);
  bs_job js[JOBS];
  memset(js, 0, sizeof js);
  for (int i = 0; i < JOBS; i++) {
    js[i].ch = ch;
    js[i].g = &g;
    js[i].index = i;
    js[i].role = i < 3 ? 0 : i == 3 ? 1 : 2;
    js[i].code = (crpc_code)-1;
    atomic_init(&js[i].published, NULL);
    atomic_init(&js[i].cancel_done, 0);
  }
  uv_thread_t canceller;
  assert_int_equal(uv_thread_create(&canceller, bs_cancel_run, &js[3]), 0);
  for (int i = 0; i < JOBS; i++) assert_int_equal(uv_thread_create(&js[i].thread, bs_run, &js[i]), 0);
  for (int i = 0; i < JOBS; i++) uv_thread_join(&js[i].thread);
  uv_thread_join(&canceller);
  gate_destroy(&g);
  crpc_channel_close(ch, NULL, NULL);
  for (int i = 0; i < JOBS; i++) {
    if (js[i].err[0] || js[i].steps != js[i].want)
      fail_msg("job %d (role %d): %d of %d steps; %s", i, js[i].role, js[i].steps, js[i].want,
               js[i].err);
    crpc_code want = js[i].role == 1 ? CRPC_STATUS_CANCELLED : CRPC_STATUS_OK;
    if (js[i].code != want)
      fail_msg("job %d: ended %s, want %s", i, crpc_code_name(js[i].code), crpc_code_name(want));
  }
  srv_stop(e, NULL);
}

/* ---- loop_close_with_blocked ------------------------------------------------------------------ */

#define LB_WORKERS 6

typedef struct lb_shared {
  crpc_channel *ch;
  crpc_cancel_token *tok[LB_WORKERS];
  atomic_int returned;
  int closes;
  int trigger_done;
  crpc_code trigger_code;
} lb_shared;

typedef struct lb_worker {
  lb_shared *sh;
  int index, rc;
  crpc_code code;
  int had_response;
  uv_thread_t thread;
} lb_worker;

static void lb_run(void *arg) {
  lb_worker *w = arg;
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, (uint32_t)(500 + w->index), buf, sizeof buf);
  req.hold = 1; /* ends only through the token or the close */
  crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
  if (w->index % 2 == 0) opts.cancel = w->sh->tok[w->index];
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  w->rc = itest__test__echo__call(w->sh->ch, &req, &resp, &st, &opts);
  w->code = st.code;
  w->had_response = resp != NULL;
  if (resp) itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
  atomic_fetch_add(&w->sh->returned, 1);
}

static void lb_closed(void *ud) { ((lb_shared *)ud)->closes++; }

/* The first answer of the loop thread's own async call closes the channel from inside the read
 * callback, while the other threads sleep in blocking calls the server holds. */
static void lb_trigger_done(const crpc_status *status, const Itest__EchoReply *resp, void *ud) {
  lb_shared *sh = ud;
  (void)resp;
  sh->trigger_done++;
  sh->trigger_code = status->code;
  crpc_channel_close(sh->ch, lb_closed, sh);
}

typedef struct lb_wait {
  itest_stats *st;
  lb_shared *sh;
} lb_wait;

static int lb_all_received(void *arg) {
  lb_wait *lw = arg;
  return atomic_load(&lw->st->received) >= LB_WORKERS;
}

static int lb_all_back(void *arg) {
  lb_wait *lw = arg;
  return atomic_load(&lw->sh->returned) == LB_WORKERS && lw->sh->closes == 1;
}

static void lb_cancel_run(void *arg) {
  lb_shared *sh = arg;
  for (int i = 0; i < LB_WORKERS; i += 2) crpc_cancel_token_cancel(sh->tok[i]);
}

/* A loop channel closed while threads are inside blocking calls: every call completes
 * CANCELLED (by the close, or by its token cancelled from yet another thread at the same time),
 * each thread gets out, and the close waits for them (blockers, 'idle' broadcast only once
 * closing) and then finishes. */
static void loop_close_with_blocked(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  lb_shared sh;
  memset(&sh, 0, sizeof sh);
  atomic_init(&sh.returned, 0);
  assert_int_equal(crpc_channel_new(&sh.ch, &loop, itest_server_endpoint(srv)), 0);
  for (int i = 0; i < LB_WORKERS; i++) assert_int_equal(crpc_cancel_token_new(&sh.tok[i]), 0);
  lb_worker ws[LB_WORKERS];
  memset(ws, 0, sizeof ws);
  for (int i = 0; i < LB_WORKERS; i++) {
    ws[i].sh = &sh;
    ws[i].index = i;
    ws[i].rc = 1;
    assert_int_equal(uv_thread_create(&ws[i].thread, lb_run, &ws[i]), 0);
  }
  lb_wait lw = {itest_server_stats(srv), &sh};
  if (!itest_run_until(&loop, lb_all_received, &lw, 20000))
    fail_msg("the server got %d of %d held calls", atomic_load(&lw.st->received), LB_WORKERS);
  /* Every worker is inside its call now. Cancel half of them from another thread while the
   * trigger's answer closes the channel on this one. */
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  assert_int_equal(itest__test__echo__start(sh.ch, &req, NULL, lb_trigger_done, &sh, NULL), 0);
  uv_thread_t canceller;
  assert_int_equal(uv_thread_create(&canceller, lb_cancel_run, &sh), 0);
  int back = itest_run_until(&loop, lb_all_back, &lw, 20000);
  uv_thread_join(&canceller);
  if (!back)
    fail_msg("after the close: %d of %d threads back, %d close callbacks", atomic_load(&sh.returned),
             LB_WORKERS, sh.closes);
  for (int i = 0; i < LB_WORKERS; i++) uv_thread_join(&ws[i].thread);
  assert_int_equal(sh.trigger_done, 1);
  assert_int_equal(sh.trigger_code, CRPC_STATUS_OK);
  itest_run_for(&loop, 5);
  assert_int_equal(sh.closes, 1);
  for (int i = 0; i < LB_WORKERS; i++) {
    if (ws[i].rc != 0 || ws[i].code != CRPC_STATUS_CANCELLED || ws[i].had_response)
      fail_msg("worker %d: rc %s, %s", i, crpc_err_name(ws[i].rc), crpc_code_name(ws[i].code));
    crpc_cancel_token_free(sh.tok[i]);
  }
  itest_loop_finish(&loop);
  itest_server_stop(srv); /* every held call was finished by the server once cancelled */
}

/* ---- close_channel_in_callback ---------------------------------------------------------------- */

#define CC_CALLS 64

typedef struct cc_ctx {
  crpc_channel *ch;
  itest_rec recs[CC_CALLS + 1];
  int closes;
  int closer; /* index of the record whose callback closed the channel, -1 before */
  int late_rc;
} cc_ctx;

typedef struct cc_slot {
  cc_ctx *cc;
  int index;
} cc_slot;

static void cc_closed(void *ud) { ((cc_ctx *)ud)->closes++; }

static void cc_done(const crpc_status *status, const Itest__EchoReply *resp, void *ud) {
  cc_slot *s = ud;
  cc_ctx *cc = s->cc;
  itest_rec_done(status, resp, &cc->recs[s->index]);
  if (cc->closer >= 0 || s->index == CC_CALLS) return;
  cc->closer = s->index;
  /* Inside the read callback that delivered this answer (more answers may be behind it in the
   * same read): start one more call (its request lands in the batch), then close. */
  static cc_slot late;
  late.cc = cc;
  late.index = CC_CALLS;
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 77777, buf, sizeof buf);
  cc->late_rc = itest__test__echo__start(cc->ch, &req, NULL, cc_done, &late, NULL);
  crpc_channel_close(cc->ch, cc_closed, cc);
}

static int cc_finished(void *arg) {
  cc_ctx *cc = arg;
  if (cc->closes == 0) return 0;
  for (int i = 0; i < CC_CALLS; i++)
    if (cc->recs[i].completions == 0) return 0;
  return 1;
}

/* A loop channel closed from a completion callback, i.e. inside the read callback of the
 * connection that is being torn down, with the batch still open: every call completes exactly
 * once (answered ones OK, the rest CANCELLED), the close finishes, and nothing is used after it
 * is freed (the sanitizers watch). */
static void close_channel_in_callback(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cc_ctx *cc = calloc(1, sizeof *cc);
  assert_non_null(cc);
  cc->closer = -1;
  cc->late_rc = 1;
  assert_int_equal(crpc_channel_new(&cc->ch, &loop, itest_server_endpoint(srv)), 0);
  cc_slot slots[CC_CALLS];
  for (int i = 0; i < CC_CALLS; i++) {
    slots[i].cc = cc;
    slots[i].index = i;
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, (uint32_t)i, buf, sizeof buf);
    if (i % 8 == 5) req.hold = 1; /* held by the server: certainly pending at the close */
    assert_int_equal(itest__test__echo__start(cc->ch, &req, NULL, cc_done, &slots[i], NULL), 0);
  }
  if (!itest_run_until(&loop, cc_finished, cc, 20000)) fail_msg("calls or close did not finish");
  itest_run_for(&loop, 20);
  assert_int_equal(cc->closes, 1);
  assert_true(cc->closer >= 0);
  itest_assert_echo(&cc->recs[cc->closer], (uint32_t)cc->closer);
  int ok = 0, cancelled = 0;
  for (int i = 0; i < CC_CALLS; i++) {
    itest_rec *r = &cc->recs[i];
    if (r->completions != 1) fail_msg("call %d: %d completions", i, r->completions);
    if (r->code == CRPC_STATUS_OK) {
      itest_assert_echo(r, (uint32_t)i);
      ok++;
    } else if (r->code == CRPC_STATUS_CANCELLED) {
      assert_false(r->has_response);
      cancelled++;
    } else {
      fail_msg("call %d: %s: %s", i, crpc_code_name(r->code), r->message);
    }
  }
  assert_int_equal(ok + cancelled, CC_CALLS);
  assert_true(cancelled >= CC_CALLS / 8); /* the held ones at least */
  /* The call started inside the callback before the close completes once, CANCELLED. */
  assert_int_equal(cc->late_rc, 0);
  assert_int_equal(cc->recs[CC_CALLS].completions, 1);
  assert_int_equal(cc->recs[CC_CALLS].code, CRPC_STATUS_CANCELLED);
  itest_loop_finish(&loop);
  free(cc);
  itest_server_stop(srv);
}

/* ---- close_channel_on_goaway -------------------------------------------------------------------- */

#define GW_CALLS 40
#define GW_TRIGGER 12

typedef struct gw_ctx {
  crpc_channel *ch;
  itest_rec recs[GW_CALLS + 1];
  int closes;
  int closer;
  int late_rc;
} gw_ctx;

typedef struct gw_slot {
  gw_ctx *gw;
  int index;
} gw_slot;

static void gw_closed(void *ud) { ((gw_ctx *)ud)->closes++; }

static void gw_done(const crpc_status *status, const Itest__EchoReply *resp, void *ud) {
  gw_slot *s = ud;
  gw_ctx *gw = s->gw;
  itest_rec_done(status, resp, &gw->recs[s->index]);
  if (gw->closer >= 0 || s->index == GW_CALLS || status->code != CRPC_STATUS_UNAVAILABLE) return;
  /* Failed by the server's GOAWAY, inside the read callback of the old connection: the channel
   * has let go of it, so this call opens a new one (still connecting when the close comes). */
  gw->closer = s->index;
  static gw_slot late;
  late.gw = gw;
  late.index = GW_CALLS;
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 88888, buf, sizeof buf);
  gw->late_rc = itest__test__echo__start(gw->ch, &req, NULL, gw_done, &late, NULL);
  crpc_channel_close(gw->ch, gw_closed, gw);
}

static int gw_finished(void *arg) {
  gw_ctx *gw = arg;
  if (gw->closes == 0) return 0;
  for (int i = 0; i < GW_CALLS; i++)
    if (gw->recs[i].completions == 0) return 0;
  return 1;
}

/* A handler shuts its server down (GOAWAY naming the trigger's call): the client's calls after
 * it fail in the read callback that brings the GOAWAY, and the first such completion starts a
 * call (on a new connection, not connected yet) and closes the channel. The never-attached
 * connection is closed inside the batch and must still be released (its reaping needs the
 * flusher started, batch or not): the close completes, every call ends exactly once. */
static void close_channel_on_goaway(void **state) {
  srv_env *e = srv_start(ITEST_TRANSPORT(state), END_SHUTDOWN, GW_TRIGGER);
  uv_loop_t loop;
  uv_loop_init(&loop);
  gw_ctx *gw = calloc(1, sizeof *gw);
  assert_non_null(gw);
  gw->closer = -1;
  gw->late_rc = 1;
  assert_int_equal(crpc_channel_new(&gw->ch, &loop, e->endpoint), 0);
  gw_slot slots[GW_CALLS];
  for (int i = 0; i < GW_CALLS; i++) {
    slots[i].gw = gw;
    slots[i].index = i;
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, (uint32_t)i, buf, sizeof buf);
    crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
    assert_int_equal(itest__test__echo__start(gw->ch, &req, &opts, gw_done, &slots[i], NULL), 0);
  }
  if (!itest_run_until(&loop, gw_finished, gw, 25000))
    fail_msg("after the GOAWAY: %d close callbacks, closer %d", gw->closes, gw->closer);
  itest_run_for(&loop, 20);
  assert_int_equal(gw->closes, 1);
  assert_true(gw->closer > GW_TRIGGER);
  for (int i = 0; i < GW_CALLS; i++) {
    itest_rec *r = &gw->recs[i];
    if (r->completions != 1) fail_msg("call %d: %d completions", i, r->completions);
    if (r->code == CRPC_STATUS_OK)
      itest_assert_echo(r, (uint32_t)i);
    else if (r->code != CRPC_STATUS_UNAVAILABLE && r->code != CRPC_STATUS_CANCELLED)
      fail_msg("call %d: %s: %s", i, crpc_code_name(r->code), r->message);
    if (i > GW_TRIGGER && r->code == CRPC_STATUS_OK) fail_msg("call %d ran after the GOAWAY", i);
  }
  itest_assert_echo(&gw->recs[GW_TRIGGER], GW_TRIGGER);
  assert_int_equal(gw->late_rc, 0);
  assert_int_equal(gw->recs[GW_CALLS].completions, 1);
  assert_int_equal(gw->recs[GW_CALLS].code, CRPC_STATUS_CANCELLED);
  itest_loop_finish(&loop);
  free(gw);
  int handler_ends = -1;
  srv_stop(e, &handler_ends);
  assert_int_equal(handler_ends, 1);
}

/* ---- close_server_in_handler / shutdown_server_in_handler ------------------------------------- */

#define SH_CALLS 48
#define SH_TRIGGER 20

static void server_ended_in_handler(const itest_transport *t, end_mode mode) {
  srv_env *e = srv_start(t, mode, SH_TRIGGER);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, e->endpoint), 0);
  itest_rec recs[SH_CALLS];
  memset(recs, 0, sizeof recs);
  /* Started together: they go out in one write and mostly arrive in one read, so the handler of
   * call SH_TRIGGER ends the server with the calls after it in the same batch. */
  for (int i = 0; i < SH_CALLS; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, (uint32_t)i, buf, sizeof buf);
    if (i % 10 == 3) req.delay_ms = 20;
    crpc_call_opts opts = {.timeout_ms = CALL_TIMEOUT_MS};
    assert_int_equal(itest__test__echo__start(ch, &req, &opts, itest_rec_done, &recs[i], NULL), 0);
  }
  itest_recs all = {recs, SH_CALLS};
  if (!itest_run_until(&loop, itest_all_done, &all, 25000)) fail_msg("calls did not all complete");
  itest_run_for(&loop, 20);
  int ok = 0;
  for (int i = 0; i < SH_CALLS; i++) {
    itest_rec *r = &recs[i];
    if (r->completions != 1) fail_msg("call %d: %d completions", i, r->completions);
    if (r->code == CRPC_STATUS_OK) {
      itest_assert_echo(r, (uint32_t)i);
      ok++;
    } else if (r->code != CRPC_STATUS_UNAVAILABLE && r->code != CRPC_STATUS_CANCELLED) {
      fail_msg("call %d: %s: %s", i, crpc_code_name(r->code), r->message);
    }
  }
  (void)ok; /* how many were answered before the end depends on how the reads fell */
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  int handler_ends = -1;
  srv_stop(e, &handler_ends);
  assert_int_equal(handler_ends, 1); /* the server was ended by the handler, not by srv_stop */
}

static void close_server_in_handler(void **state) {
  server_ended_in_handler(ITEST_TRANSPORT(state), END_CLOSE);
}

static void shutdown_server_in_handler(void **state) {
  server_ended_in_handler(ITEST_TRANSPORT(state), END_SHUTDOWN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(lone_leader_calls),
      ITEST_PER_TRANSPORT(first_calls_while_connecting),
      ITEST_PER_TRANSPORT(leaders_followers_tokens),
      ITEST_PER_TRANSPORT(unreachable_many_threads),
      ITEST_PER_TRANSPORT(large_requests_socket_full),
      ITEST_PER_TRANSPORT(blocking_streams_and_unary),
      ITEST_PER_TRANSPORT(loop_close_with_blocked),
      ITEST_PER_TRANSPORT(close_channel_in_callback),
      ITEST_PER_TRANSPORT(close_channel_on_goaway),
      ITEST_PER_TRANSPORT(close_server_in_handler),
      ITEST_PER_TRANSPORT(shutdown_server_in_handler),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
