/* Deadlines and cancellation: a call past its deadline ends DEADLINE_EXCEEDED at the client
 * whether or not the server answers; crpc_call_cancel() ends a call at once with CANCELLED and
 * the server's handler sees it cancelled. */
#include <string.h>

#include "itest.h"

static void deadline_async(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  itest_rec recs[3];
  memset(recs, 0, sizeof recs);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.hold = 1; /* never answered unless cancelled */
  crpc_call_opts opts = {.timeout_ms = 100};
  uint64_t t0 = ts_now_ms();
  assert_int_equal(itest__test__echo__start(ch, &req, &opts, itest_rec_done, &recs[0], NULL), 0);
  req.hold = 0;
  req.delay_ms = 5000; /* answered, but far too late */
  assert_int_equal(itest__test__echo__start(ch, &req, &opts, itest_rec_done, &recs[1], NULL), 0);
  req.delay_ms = 0; /* answered in time: unaffected */
  req.seq = 2;
  assert_int_equal(itest__test__echo__start(ch, &req, &opts, itest_rec_done, &recs[2], NULL), 0);
  itest_recs all = {recs, 3};
  assert_true(itest_run_until(&loop, itest_all_done, &all, 20000));
  uint64_t took = ts_now_ms() - t0;
  itest_run_for(&loop, 20);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(recs[i].completions, 1);
    assert_int_equal(recs[i].code, CRPC_STATUS_DEADLINE_EXCEEDED);
    assert_false(recs[i].has_response);
  }
  assert_true(took >= 95);
  assert_true(took < 4000); /* did not wait for the late answer */
  assert_int_equal(recs[2].code, CRPC_STATUS_OK);
  assert_int_equal(recs[2].seq, 2);
  /* The server's handlers learn that the calls are over (client CANCEL or their own deadline). */
  itest_wait_count w = {&itest_server_stats(srv)->cancel_seen, 2};
  assert_true(itest_run_until(&loop, itest_count_reached, &w, 20000));
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

static void deadline_blocking(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(srv)), 0);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.hold = 1;
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 100};
  uint64_t t0 = ts_now_ms();
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
  uint64_t took = ts_now_ms() - t0;
  assert_int_equal(st.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_non_null(st.message);
  assert_null(resp);
  assert_true(took >= 95 && took < 4000);
  crpc_status_reset(&st);

  /* The channel's DEFAULT_TIMEOUT_MS applies to calls that set none. */
  crpc_channel *ch2;
  assert_int_equal(crpc_channel_new(&ch2, NULL, itest_server_endpoint(srv)), 0);
  assert_int_equal(crpc_channel_set_option(ch2, CRPC_OPT_DEFAULT_TIMEOUT_MS, 100), 0);
  assert_int_equal(itest__test__echo__call(ch2, &req, &resp, &st, NULL), 0);
  assert_int_equal(st.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  crpc_status_reset(&st);

  /* And a call within its deadline is fine. */
  req.hold = 0;
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
  assert_int_equal(st.code, CRPC_STATUS_OK);
  assert_int_equal(resp->seq, 1);
  itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
  crpc_channel_close(ch, NULL, NULL);
  crpc_channel_close(ch2, NULL, NULL);
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.cancel_seen, 2);
}

static void cancel_in_flight(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  itest_rec rec = {0}, other = {0};
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.hold = 1;
  crpc_call *call = NULL;
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &rec, &call), 0);
  assert_non_null(call);
  assert_ptr_equal(crpc_call_method(call), ITEST__TEST__ECHO__METHOD);
  req.hold = 0;
  req.delay_ms = 300;
  req.seq = 2;
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &other, NULL), 0);
  itest_wait_count w = {&itest_server_stats(srv)->received, 2};
  assert_true(itest_run_until(&loop, itest_count_reached, &w, 20000));

  crpc_call_cancel(call);
  /* completed before crpc_call_cancel() returned */
  assert_int_equal(rec.completions, 1);
  assert_int_equal(rec.code, CRPC_STATUS_CANCELLED);
  assert_false(rec.has_response);

  /* the handler sees the cancellation and still finishes its call */
  itest_wait_count c = {&itest_server_stats(srv)->cancel_seen, 1};
  assert_true(itest_run_until(&loop, itest_count_reached, &c, 20000));
  itest_recs one = {&other, 1};
  assert_true(itest_run_until(&loop, itest_all_done, &one, 20000));
  itest_run_for(&loop, 20);
  assert_int_equal(rec.completions, 1);
  assert_int_equal(other.code, CRPC_STATUS_OK); /* the other call is not affected */
  assert_int_equal(other.seq, 2);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

/* Cancelling a call from inside another call's callback, and a call not yet connected. */
typedef struct cancel_ctx {
  crpc_call *victim;
  itest_rec rec;
} cancel_ctx;

static void cancel_other(const crpc_status *st, const Itest__EchoReply *resp, void *ud) {
  cancel_ctx *cc = ud;
  itest_rec_done(st, resp, &cc->rec);
  crpc_call_cancel(cc->victim);
}

static void cancel_from_callback_and_before_connect(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.hold = 1;
  /* before the connection is even up */
  itest_rec early = {0};
  crpc_call *call = NULL;
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &early, &call), 0);
  crpc_call_cancel(call);
  assert_int_equal(early.completions, 1);
  assert_int_equal(early.code, CRPC_STATUS_CANCELLED);

  itest_rec victim = {0};
  cancel_ctx cc = {0};
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &victim, &cc.victim),
                   0);
  req.hold = 0;
  req.delay_ms = 50;
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, cancel_other, &cc, NULL), 0);
  itest_recs one = {&victim, 1};
  assert_true(itest_run_until(&loop, itest_all_done, &one, 20000));
  itest_run_for(&loop, 20);
  assert_int_equal(cc.rec.completions, 1);
  assert_int_equal(cc.rec.code, CRPC_STATUS_OK);
  assert_int_equal(victim.completions, 1);
  assert_int_equal(victim.code, CRPC_STATUS_CANCELLED);
  assert_int_equal(early.completions, 1);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(deadline_async),
      ITEST_PER_TRANSPORT(deadline_blocking),
      ITEST_PER_TRANSPORT(cancel_in_flight),
      ITEST_PER_TRANSPORT(cancel_from_callback_and_before_connect),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
