/* Closing with calls in flight, from either side: every call completes exactly once, before the
 * close callback; the server's close waits for the handlers that hold calls. */
#include <string.h>

#include "itest.h"

#define N_HELD 20

/* Starts n held calls (the server keeps them until they are cancelled) and waits until the
 * server's handlers have them all. */
static void start_held(crpc_channel *ch, uv_loop_t *loop, itest_server *srv, itest_rec *recs,
                       int n) {
  int before = atomic_load(&itest_server_stats(srv)->received);
  for (int i = 0; i < n; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, (uint32_t)i, buf, sizeof buf);
    req.hold = 1;
    assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &recs[i], NULL), 0);
  }
  itest_wait_count w = {&itest_server_stats(srv)->received, before + n};
  assert_true(itest_run_until(loop, itest_count_reached, &w, 20000));
}

typedef struct close_check {
  itest_rec *recs;
  int n;
  int cb_runs;
  int all_done_before_cb; /* every call had completed exactly once when the close cb ran */
} close_check;

static void check_on_close(void *ud) {
  close_check *cc = ud;
  cc->cb_runs++;
  cc->all_done_before_cb = 1;
  for (int i = 0; i < cc->n; i++)
    if (cc->recs[i].completions != 1) cc->all_done_before_cb = 0;
}

static int close_cb_ran(void *ud) { return ((close_check *)ud)->cb_runs > 0; }

static void client_close_with_calls_in_flight(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  itest_rec recs[N_HELD];
  memset(recs, 0, sizeof recs);
  start_held(ch, &loop, srv, recs, N_HELD);

  close_check cc = {recs, N_HELD, 0, 0};
  crpc_channel_close(ch, check_on_close, &cc);
  assert_true(itest_run_until(&loop, close_cb_ran, &cc, 10000));
  itest_run_for(&loop, 20);
  assert_int_equal(cc.cb_runs, 1);
  assert_true(cc.all_done_before_cb);
  for (int i = 0; i < N_HELD; i++) {
    assert_int_equal(recs[i].completions, 1);
    assert_int_equal(recs[i].code, CRPC_STATUS_CANCELLED);
    assert_false(recs[i].has_response);
  }
  /* The server learns that the calls are gone and its handlers finish them. */
  itest_wait_count w = {&itest_server_stats(srv)->cancel_seen, N_HELD};
  assert_true(itest_run_until(&loop, itest_count_reached, &w, 20000));
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

/* Closing the channel from inside a completion callback, with other calls in flight. */
typedef struct closer {
  crpc_channel *ch;
  close_check *cc;
  itest_rec rec;
} closer;

static void close_from_callback(const crpc_status *st, const Itest__EchoReply *resp, void *ud) {
  closer *cl = ud;
  itest_rec_done(st, resp, &cl->rec);
  crpc_channel_close(cl->ch, check_on_close, cl->cc);
}

static void client_close_from_callback(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  itest_rec recs[N_HELD];
  memset(recs, 0, sizeof recs);
  start_held(ch, &loop, srv, recs, N_HELD);

  close_check cc = {recs, N_HELD, 0, 0};
  closer cl = {ch, &cc, {0}};
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 500, buf, sizeof buf);
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, close_from_callback, &cl, NULL), 0);
  assert_true(itest_run_until(&loop, close_cb_ran, &cc, 20000));
  itest_run_for(&loop, 20);
  itest_assert_echo(&cl.rec, 500);
  assert_int_equal(cc.cb_runs, 1);
  assert_true(cc.all_done_before_cb);
  for (int i = 0; i < N_HELD; i++) assert_int_equal(recs[i].code, CRPC_STATUS_CANCELLED);
  itest_wait_count w = {&itest_server_stats(srv)->cancel_seen, N_HELD};
  assert_true(itest_run_until(&loop, itest_count_reached, &w, 20000));
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

static void server_close_with_calls_in_flight(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  itest_rec recs[N_HELD + 1];
  memset(recs, 0, sizeof recs);
  start_held(ch, &loop, srv, recs, N_HELD);
  /* And one answered late, by a timer that is still far away when the server closes. */
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1000, buf, sizeof buf);
  req.delay_ms = 60000;
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &recs[N_HELD], NULL),
                   0);
  itest_wait_count w = {&itest_server_stats(srv)->received, N_HELD + 1};
  assert_true(itest_run_until(&loop, itest_count_reached, &w, 20000));

  /* The server closes on its own thread; the stop asserts that its close callback ran once,
   * after every handler had finished its call. */
  assert_int_equal(atomic_load(&itest_server_stats(srv)->cancel_seen), 0);
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.received, N_HELD + 1);
  assert_int_equal(fin.cancel_seen, N_HELD + 1); /* the close cancelled every one of them */

  itest_recs all = {recs, N_HELD + 1};
  assert_true(itest_run_until(&loop, itest_all_done, &all, 20000));
  itest_run_for(&loop, 20);
  for (int i = 0; i <= N_HELD; i++) {
    assert_int_equal(recs[i].completions, 1);
    if (recs[i].code != CRPC_STATUS_UNAVAILABLE && recs[i].code != CRPC_STATUS_CANCELLED)
      fail_msg("call %d ended %s: %s", i, crpc_code_name(recs[i].code), recs[i].message);
  }
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(client_close_with_calls_in_flight),
      ITEST_PER_TRANSPORT(client_close_from_callback),
      ITEST_PER_TRANSPORT(server_close_with_calls_in_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
