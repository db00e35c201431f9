/* The CANCEL of a blocking call cancelled through its token reaches the server at once, on a
 * private-loop channel whose leader was that call's own thread: the server must not work on for
 * a caller that is gone until the application happens to make another call (channel.h: "the
 * server is told"). Found by review: the frame was queued after the loop's prepare phase and the
 * leader stopped running the loop as soon as its call was done. */
#include <stdio.h>
#include <string.h>

#include "itest.h"

typedef struct job {
  crpc_channel *ch;
  crpc_cancel_token *tok;
  int rc;
  crpc_code code;
} job;

static void job_run(void *arg) {
  job *j = arg;
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.hold = 1; /* the server holds it until it learns of the cancel */
  crpc_call_opts opts = {.timeout_ms = 60000, .cancel = j->tok};
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  j->rc = itest__test__echo__call(j->ch, &req, &resp, &st, &opts);
  j->code = st.code;
  if (resp) itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
}

static int wait_atomic(atomic_int *v, int want, uint64_t ms) {
  uint64_t until = ts_now_ms() + ms;
  while (atomic_load(v) < want && ts_now_ms() < until) uv_sleep(2);
  return atomic_load(v) >= want;
}

static void token_cancel_reaches_server(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  itest_stats *stats = itest_server_stats(srv);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(srv)), 0);
  job j = {ch, NULL, 1, (crpc_code)-1};
  assert_int_equal(crpc_cancel_token_new(&j.tok), 0);
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, job_run, &j), 0);
  assert_true(wait_atomic(&stats->received, 1, 20000)); /* the server holds the call */
  crpc_cancel_token_cancel(j.tok);
  uv_thread_join(&t);
  assert_int_equal(j.rc, 0);
  assert_int_equal(j.code, CRPC_STATUS_CANCELLED);
  /* The client reported the call cancelled; the server must learn it without the application
   * having to make another call on the channel. */
  int seen = wait_atomic(&stats->cancel_seen, 1, 10000);
  crpc_channel_close(ch, NULL, NULL); /* (this gets the server told, one way or another) */
  crpc_cancel_token_free(j.tok);
  itest_server_stop(srv);
  if (!seen) fail_msg("10 s after the call returned CANCELLED the server still held it: the CANCEL was never written");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(token_cancel_reaches_server),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
