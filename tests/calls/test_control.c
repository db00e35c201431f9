/* Flow of control beyond the basic call: per-connection call limits on either side, the
 * server's connection limit, graceful shutdown, cancelling a blocking call from another thread,
 * metadata with trailers. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

static void start_call(crpc_channel *ch, uint32_t seq, int hold, uint32_t delay, itest_rec *rec) {
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, seq, buf, sizeof buf);
  req.hold = hold;
  req.delay_ms = delay;
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, rec, NULL), 0);
}

/* A loop server on `loop` with one option set before listening (opt < 0: none), registered with
 * the echo handlers; writes the target a channel connects to (with the bound port) into ep. */
static crpc_server *start_server(const itest_transport *t, uv_loop_t *loop, int opt, int64_t value,
                                 itest_stats *st, char *ep, size_t eplen) {
  crpc_server *srv;
  assert_int_equal(crpc_server_new(&srv, loop), 0);
  if (opt >= 0) assert_int_equal(crpc_server_set_option(srv, (crpc_option)opt, value), 0);
  assert_int_equal(itest__test__crpc_register(srv, &itest_echo_handlers, st), 0);
  itest_unused_endpoint(t, ep, eplen);
  if (t->listen) snprintf(ep, eplen, "%s", t->listen);
  int port = 0;
  assert_int_equal(crpc_server_listen(srv, ep, &port), 0);
  if (t->listen) {
    char with_port[256];
    snprintf(with_port, sizeof with_port, "%.*s:%d", (int)(strrchr(ep, ':') - ep), ep, port);
    snprintf(ep, eplen, "%s", with_port);
  }
  return srv;
}

/* Client MAX_CALLS_PER_CONN: the extra call fails RESOURCE_EXHAUSTED; the others go on. */
static void client_call_limit(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_CALLS_PER_CONN, 5), 0);
  itest_rec recs[8];
  memset(recs, 0, sizeof recs);
  for (uint32_t i = 0; i < 8; i++) start_call(ch, i, 0, 200, &recs[i]);
  itest_recs all = {recs, 8};
  assert_true(itest_run_until(&loop, itest_all_done, &all, 20000));
  int ok = 0, exhausted = 0;
  for (int i = 0; i < 8; i++) {
    assert_int_equal(recs[i].completions, 1);
    if (recs[i].code == CRPC_STATUS_OK) {
      itest_assert_echo(&recs[i], (uint32_t)i);
      ok++;
    } else {
      assert_int_equal(recs[i].code, CRPC_STATUS_RESOURCE_EXHAUSTED);
      exhausted++;
    }
  }
  assert_int_equal(ok, 5);
  assert_int_equal(exhausted, 3);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

/* Server MAX_CALLS_PER_CONN: refused before the handler runs. Set through a server the harness
 * does not make, so the option can be set before listening. */
static void server_call_limit(void **state) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  uv_loop_t sloop;
  uv_loop_init(&sloop);
  static itest_stats st;
  memset(&st, 0, sizeof st);
  char ep[256];
  crpc_server *srv = start_server(t, &sloop, CRPC_OPT_MAX_CALLS_PER_CONN, 4, &st, ep, sizeof ep);
  /* server and client share this thread's loop */
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &sloop, ep), 0);
  itest_rec recs[7];
  memset(recs, 0, sizeof recs);
  for (uint32_t i = 0; i < 7; i++) start_call(ch, i, 0, 200, &recs[i]);
  itest_recs all = {recs, 7};
  assert_true(itest_run_until(&sloop, itest_all_done, &all, 20000));
  int ok = 0, exhausted = 0;
  for (int i = 0; i < 7; i++) {
    assert_int_equal(recs[i].completions, 1);
    if (recs[i].code == CRPC_STATUS_OK)
      ok++;
    else if (recs[i].code == CRPC_STATUS_RESOURCE_EXHAUSTED)
      exhausted++;
    else
      fail_msg("call %d: %s: %s", i, crpc_code_name(recs[i].code), recs[i].message);
  }
  assert_int_equal(ok, 4);
  assert_int_equal(exhausted, 3);
  assert_int_equal(atomic_load(&st.received), 4);
  /* the connection goes on */
  itest_rec again = {0};
  start_call(ch, 50, 0, 0, &again);
  itest_recs one = {&again, 1};
  assert_true(itest_run_until(&sloop, itest_all_done, &one, 20000));
  itest_assert_echo(&again, 50);
  itest_channel_close(&sloop, ch);
  crpc_server_close(srv, NULL, NULL);
  itest_loop_finish(&sloop);
  if (!t->listen) unlink(ep + 5);
}

/* MAX_CONNECTIONS 1: a second channel's connection is accepted and closed: UNAVAILABLE. */
static void server_connection_limit(void **state) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  uv_loop_t loop;
  uv_loop_init(&loop);
  static itest_stats st;
  memset(&st, 0, sizeof st);
  char ep[256];
  crpc_server *srv = start_server(t, &loop, CRPC_OPT_MAX_CONNECTIONS, 1, &st, ep, sizeof ep);
  crpc_channel *a, *b;
  assert_int_equal(crpc_channel_new(&a, &loop, ep), 0);
  assert_int_equal(crpc_channel_new(&b, &loop, ep), 0);
  itest_rec ra = {0}, rb = {0};
  start_call(a, 1, 0, 0, &ra);
  itest_recs one = {&ra, 1};
  assert_true(itest_run_until(&loop, itest_all_done, &one, 20000));
  itest_assert_echo(&ra, 1);
  start_call(b, 2, 0, 0, &rb);
  itest_recs two = {&rb, 1};
  assert_true(itest_run_until(&loop, itest_all_done, &two, 20000));
  assert_int_equal(rb.completions, 1);
  assert_int_equal(rb.code, CRPC_STATUS_UNAVAILABLE);
  /* the first connection is unaffected */
  memset(&ra, 0, sizeof ra);
  start_call(a, 3, 0, 0, &ra);
  assert_true(itest_run_until(&loop, itest_all_done, &one, 20000));
  itest_assert_echo(&ra, 3);
  itest_channel_close(&loop, a);
  itest_channel_close(&loop, b);
  crpc_server_close(srv, NULL, NULL);
  itest_loop_finish(&loop);
  if (!t->listen) unlink(ep + 5);
}

/* Graceful shutdown: calls in progress complete normally; the server then goes away. */
typedef struct shut_ctx {
  int cb_runs;
} shut_ctx;
static void on_shut(void *ud) { ((shut_ctx *)ud)->cb_runs++; }
static int shut_done(void *ud) { return ((shut_ctx *)ud)->cb_runs > 0; }

static void graceful_shutdown(void **state) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  uv_loop_t loop;
  uv_loop_init(&loop);
  static itest_stats st;
  memset(&st, 0, sizeof st);
  char ep[256];
  crpc_server *srv = start_server(t, &loop, -1, 0, &st, ep, sizeof ep);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, ep), 0);
  itest_rec recs[10];
  memset(recs, 0, sizeof recs);
  for (uint32_t i = 0; i < 10; i++) start_call(ch, i, 0, 100 + 10 * i, &recs[i]);
  itest_wait_count w = {&st.received, 10};
  assert_true(itest_run_until(&loop, itest_count_reached, &w, 20000));
  shut_ctx sc = {0};
  assert_int_equal(crpc_server_shutdown(srv, 20000, on_shut, &sc), 0);
  itest_recs all = {recs, 10};
  assert_true(itest_run_until(&loop, itest_all_done, &all, 20000));
  for (uint32_t i = 0; i < 10; i++) itest_assert_echo(&recs[i], i); /* all ran to completion */
  assert_true(itest_run_until(&loop, shut_done, &sc, 20000));
  itest_run_for(&loop, 20);
  assert_int_equal(sc.cb_runs, 1);
  assert_int_equal(atomic_load(&st.cancel_seen), 0);
  /* nobody serves any more */
  itest_rec after = {0};
  start_call(ch, 99, 0, 0, &after);
  itest_recs one = {&after, 1};
  assert_true(itest_run_until(&loop, itest_all_done, &one, 20000));
  assert_int_equal(after.code, CRPC_STATUS_UNAVAILABLE);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  if (!t->listen) unlink(ep + 5);
}

/* A blocking call cancelled from another thread with a cancel token. */
typedef struct canceller {
  crpc_cancel_token *tok;
  itest_stats *st;
  int saw_received;
} canceller;

static void cancel_when_received(void *arg) {
  canceller *c = arg;
  uint64_t until = ts_now_ms() + 20000;
  while (atomic_load(&c->st->received) < 1 && ts_now_ms() < until) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL); /* polling a counter, bounded; not a synchronisation sleep */
  }
  c->saw_received = atomic_load(&c->st->received) >= 1;
  crpc_cancel_token_cancel(c->tok);
}

static void blocking_cancel_token(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(srv)), 0);
  crpc_cancel_token *tok;
  assert_int_equal(crpc_cancel_token_new(&tok), 0);
  canceller c = {tok, itest_server_stats(srv), 0};
  uv_thread_t th;
  assert_int_equal(uv_thread_create(&th, cancel_when_received, &c), 0);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.hold = 1;
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 30000, .cancel = tok};
  uint64_t t0 = ts_now_ms();
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
  uv_thread_join(&th);
  assert_true(c.saw_received);
  assert_int_equal(st.code, CRPC_STATUS_CANCELLED);
  assert_null(resp);
  assert_true(ts_now_ms() - t0 < 20000);
  crpc_status_reset(&st);
  assert_true(crpc_cancel_token_cancelled(tok));
  /* a cancelled token cancels the next call at once; after a reset it does not */
  req.hold = 0;
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
  assert_int_equal(st.code, CRPC_STATUS_CANCELLED);
  crpc_status_reset(&st);
  crpc_cancel_token_reset(tok);
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
  assert_int_equal(st.code, CRPC_STATUS_OK);
  assert_int_equal(resp->seq, 1);
  itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
  crpc_cancel_token_free(tok);
  /* the server sees the held call cancelled */
  uv_loop_t loop;
  uv_loop_init(&loop);
  itest_wait_count w = {&itest_server_stats(srv)->cancel_seen, 1};
  assert_true(itest_run_until(&loop, itest_count_reached, &w, 20000));
  itest_loop_finish(&loop);
  crpc_channel_close(ch, NULL, NULL);
  itest_server_stop(srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(client_call_limit),
      ITEST_PER_TRANSPORT(server_call_limit),
      ITEST_PER_TRANSPORT(server_connection_limit),
      ITEST_PER_TRANSPORT(graceful_shutdown),
      ITEST_PER_TRANSPORT(blocking_cancel_token),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
