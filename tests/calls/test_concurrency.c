/* Many calls in flight on one channel (one connection): every response is matched to its
 * request, also when the server answers them in another order than they were sent. */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define N_CALLS 1000

static void thousand_calls_out_of_order(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);

  itest_rec *recs = calloc(N_CALLS, sizeof *recs);
  assert_non_null(recs);
  crpc_call_opts opts = {.timeout_ms = 60000};
  for (uint32_t i = 0; i < N_CALLS; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, i, buf, sizeof buf);
    /* Every third call is answered late; earlier calls later than later ones (call 0 waits the
     * longest), so responses come back in another order than the requests went out. */
    if (i % 3 == 0) req.delay_ms = 40 + (N_CALLS - i) / 5;
    assert_int_equal(itest__test__echo__start(ch, &req, &opts, itest_rec_done, &recs[i], NULL), 0);
  }
  for (uint32_t i = 0; i < N_CALLS; i++) assert_int_equal(recs[i].completions, 0);

  itest_recs all = {recs, N_CALLS};
  assert_true(itest_run_until(&loop, itest_all_done, &all, 60000));
  itest_run_for(&loop, 20); /* a second completion would show up here */
  for (uint32_t i = 0; i < N_CALLS; i++) itest_assert_echo(&recs[i], i);
  /* The order really differed: an undelayed call overtook a delayed one sent before it. */
  assert_true(recs[1].order < recs[0].order);
  assert_true(recs[N_CALLS - 1].order < recs[3].order);
  assert_true(recs[N_CALLS - 1].order < recs[0].order); /* delayed ones answered in reverse */
  assert_int_equal(atomic_load(&itest_server_stats(srv)->received), N_CALLS);

  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  free(recs);
  itest_server_stop(srv);
}

/* Calls started from inside completion callbacks: a chain of 200 sequential calls plus 50 more
 * in flight, all on the same channel. */
typedef struct chain {
  crpc_channel *ch;
  int next, done, failed;
} chain;

static void chain_step(const crpc_status *status, const Itest__EchoReply *resp, void *ud);

static void chain_start(chain *c) {
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, (uint32_t)c->next, buf, sizeof buf);
  assert_int_equal(itest__test__echo__start(c->ch, &req, NULL, chain_step, c, NULL), 0);
}

static void chain_step(const crpc_status *status, const Itest__EchoReply *resp, void *ud) {
  chain *c = ud;
  if (status->code != CRPC_STATUS_OK || !resp || resp->seq != (uint32_t)c->next) c->failed++;
  c->done++;
  if (++c->next < 200) chain_start(c);
}

static int chain_done(void *ud) { return ((chain *)ud)->done == 200; }

static void calls_from_callbacks(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  chain c = {0};
  assert_int_equal(crpc_channel_new(&c.ch, &loop, itest_server_endpoint(srv)), 0);
  itest_rec recs[50];
  memset(recs, 0, sizeof recs);
  chain_start(&c);
  for (uint32_t i = 0; i < 50; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, 1000 + i, buf, sizeof buf);
    req.delay_ms = i % 5;
    assert_int_equal(itest__test__echo__start(c.ch, &req, NULL, itest_rec_done, &recs[i], NULL), 0);
  }
  itest_recs all = {recs, 50};
  assert_true(itest_run_until(&loop, chain_done, &c, 30000));
  assert_true(itest_run_until(&loop, itest_all_done, &all, 30000));
  assert_int_equal(c.failed, 0);
  for (uint32_t i = 0; i < 50; i++) itest_assert_echo(&recs[i], 1000 + i);
  itest_channel_close(&loop, c.ch);
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(thousand_calls_out_of_order),
      ITEST_PER_TRANSPORT(calls_from_callbacks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
