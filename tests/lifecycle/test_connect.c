/* Connecting: a refused connection fails calls with UNAVAILABLE and a message naming the
 * endpoint; after the server comes back on the same endpoint, the same channel recovers. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "itest.h"

/* The part of an endpoint a connection error message should name: "127.0.0.1:PORT",
 * "[::1]:PORT" (or at least the port) or the unix path. */
static void assert_names_endpoint(const char *message, const char *endpoint) {
  const char *what = strncmp(endpoint, "unix:", 5) == 0 ? endpoint + 5 : strrchr(endpoint, ':') + 1;
  if (!strstr(message, what))
    fail_msg("message \"%s\" does not name the endpoint %s", message, endpoint);
}

static void refused_async(void **state) {
  char ep[256];
  itest_unused_endpoint(ITEST_TRANSPORT(state), ep, sizeof ep);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, ep), 0);
  itest_rec recs[5];
  memset(recs, 0, sizeof recs);
  for (uint32_t i = 0; i < 5; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, i, buf, sizeof buf);
    assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &recs[i], NULL), 0);
    assert_int_equal(recs[i].completions, 0); /* never inside the start call */
  }
  itest_recs all = {recs, 5};
  assert_true(itest_run_until(&loop, itest_all_done, &all, 20000));
  itest_run_for(&loop, 20);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(recs[i].completions, 1);
    assert_int_equal(recs[i].code, CRPC_STATUS_UNAVAILABLE);
    assert_names_endpoint(recs[i].message, ep);
  }
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
}

static void refused_blocking(void **state) {
  char ep[256];
  itest_unused_endpoint(ITEST_TRANSPORT(state), ep, sizeof ep);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, ep), 0);
  for (uint32_t i = 0; i < 3; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, i, buf, sizeof buf);
    Itest__EchoReply *resp = (Itest__EchoReply *)1;
    crpc_status st = {0};
    crpc_call_opts opts = {.timeout_ms = 20000};
    assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
    assert_null(resp);
    assert_int_equal(st.code, CRPC_STATUS_UNAVAILABLE);
    assert_non_null(st.message);
    assert_names_endpoint(st.message, ep);
    crpc_status_reset(&st);
  }
  crpc_channel_close(ch, NULL, NULL);
}

/* Reconnect: the server goes away and comes back on the same endpoint. */
typedef struct retry {
  crpc_channel *ch;
  uv_timer_t timer;
  itest_rec rec;
  int in_flight, attempts, succeeded;
} retry;

static void retry_done(const crpc_status *st, const Itest__EchoReply *resp, void *ud) {
  retry *r = ud;
  memset(&r->rec, 0, sizeof r->rec);
  itest_rec_done(st, resp, &r->rec);
  r->in_flight = 0;
  if (st->code == CRPC_STATUS_OK) r->succeeded = 1;
}

static void retry_tick(uv_timer_t *t) {
  retry *r = t->data;
  if (r->in_flight || r->succeeded) return;
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 42, buf, sizeof buf);
  crpc_call_opts opts = {.timeout_ms = 5000};
  assert_int_equal(itest__test__echo__start(r->ch, &req, &opts, retry_done, r, NULL), 0);
  r->in_flight = 1;
  r->attempts++;
}

static int retry_ok(void *ud) {
  retry *r = ud;
  return r->succeeded && !r->in_flight;
}

static void one_call(uv_loop_t *loop, crpc_channel *ch, itest_rec *rec, uint32_t seq) {
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, seq, buf, sizeof buf);
  memset(rec, 0, sizeof *rec);
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, rec, NULL), 0);
  itest_recs one = {rec, 1};
  assert_true(itest_run_until(loop, itest_all_done, &one, 20000));
}

static void reconnect_after_restart(void **state) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  itest_server *srv = itest_server_start(t, NULL);
  char ep[256];
  snprintf(ep, sizeof ep, "%s", itest_server_endpoint(srv));
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, ep), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_INITIAL_MS, 20), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_MAX_MS, 100), 0);

  itest_rec rec;
  one_call(&loop, ch, &rec, 1);
  itest_assert_echo(&rec, 1);

  itest_server_stop(srv);
  /* With the server gone, a call fails (UNAVAILABLE), it does not hang. */
  one_call(&loop, ch, &rec, 2);
  assert_int_equal(rec.code, CRPC_STATUS_UNAVAILABLE);
  one_call(&loop, ch, &rec, 3);
  assert_int_equal(rec.code, CRPC_STATUS_UNAVAILABLE);

  itest_server_opts again = {.endpoint = ep};
  srv = itest_server_start(t, &again);
  retry r = {.ch = ch};
  uv_timer_init(&loop, &r.timer);
  r.timer.data = &r;
  uv_timer_start(&r.timer, retry_tick, 0, 10);
  int ok = itest_run_until(&loop, retry_ok, &r, 20000);
  uv_close((uv_handle_t *)&r.timer, NULL);
  if (!ok)
    fail_msg("no successful call within 20 s after restart (%d attempts, last: %s: %s)",
             r.attempts, crpc_code_name(r.rec.code), r.rec.message);
  itest_assert_echo(&r.rec, 42);
  /* and it keeps working */
  one_call(&loop, ch, &rec, 4);
  itest_assert_echo(&rec, 4);

  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

/* The same with blocking calls on a private-loop channel. */
static void reconnect_blocking(void **state) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  itest_server *srv = itest_server_start(t, NULL);
  char ep[256];
  snprintf(ep, sizeof ep, "%s", itest_server_endpoint(srv));
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, ep), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_INITIAL_MS, 20), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_MAX_MS, 100), 0);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 5, buf, sizeof buf);
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 10000};
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
  assert_int_equal(st.code, CRPC_STATUS_OK);
  itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);

  itest_server_stop(srv);
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
  assert_int_equal(st.code, CRPC_STATUS_UNAVAILABLE);
  assert_null(resp);
  crpc_status_reset(&st);

  itest_server_opts again = {.endpoint = ep};
  srv = itest_server_start(t, &again);
  uint64_t until = ts_now_ms() + 20000;
  int ok = 0, attempts = 0;
  while (!ok && ts_now_ms() < until) {
    attempts++;
    assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
    ok = st.code == CRPC_STATUS_OK;
    if (ok) {
      assert_int_equal(resp->seq, 5);
      itest__echo_reply__free_unpacked(resp, NULL);
    } else {
      assert_null(resp);
      /* failing fast while backing off: wait a little before the next try */
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    crpc_status_reset(&st);
  }
  if (!ok) fail_msg("no successful blocking call within 20 s after restart (%d attempts)", attempts);
  crpc_channel_close(ch, NULL, NULL);
  itest_server_stop(srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(refused_async),
      ITEST_PER_TRANSPORT(refused_blocking),
      ITEST_PER_TRANSPORT(reconnect_after_restart),
      ITEST_PER_TRANSPORT(reconnect_blocking),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
