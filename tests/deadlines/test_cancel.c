/* Cancellation: crpc_call_cancel() completes the call at once with CANCELLED (exactly once), the
 * CANCEL frame reaches the server (the handler's on_cancel runs), on_cancel set on a call already
 * cancelled runs at once, and cancel only ever touches the call it names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sem.h"

static int setup(void **state) {
  if (sem_setup(state) != 0) return -1;
  sem_server_start(*state, NULL, 0);
  return 0;
}

static void expect_ok_call(sem_env *e, crpc_channel *ch) {
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 10000}, &r);
  sem_wait_rec(e, &r, 10000);
  assert_int_equal(r.code, CRPC_STATUS_OK);
}

static void test_cancel_held(void **state) {
  sem_env *e = *state;
  e->finish_on_cancel = 1;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  sem_rec r = {0};
  crpc_call *call = sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 30000}, &r);
  sem_wait_count(e, &e->nheld, 1, 5000, "call reached the handler");
  assert_ptr_equal(crpc_call_method(call), ITEST__TEST__ECHO__METHOD);
  crpc_call_cancel(call);
  assert_int_equal(r.completions, 1); /* before crpc_call_cancel returned */
  assert_int_equal(r.code, CRPC_STATUS_CANCELLED);
  assert_false(r.has_response);
  sem_wait_count(e, &e->held[0].cancels, 1, 5000, "server on_cancel (the CANCEL frame)");
  assert_null(e->held[0].call); /* finished from on_cancel */
  sem_run_for(e, 50);
  assert_int_equal(r.completions, 1);
  assert_int_equal(e->held[0].cancels, 1);
  expect_ok_call(e, ch);
  sem_channel_close(e, ch);
}

/* The handler keeps the call without an on_cancel; once it is cancelled, setting one runs it
 * before crpc_server_call_on_cancel returns. */
static crpc_server_call *bare;
static int late_cb_runs;

static void bare_hook(sem_env *e, crpc_server_call *call, const Itest__EchoRequest *req) {
  (void)e;
  (void)req;
  bare = call;
}

static void late_cb(crpc_server_call *call, void *ud) {
  sem_env *e = ud;
  assert_ptr_equal(call, bare);
  late_cb_runs++;
  assert_int_equal(crpc_server_call_fail(call, CRPC_STATUS_CANCELLED, NULL), 0);
  e->finished++;
}

static int bare_cancelled(void *arg) {
  (void)arg;
  return bare && crpc_server_call_cancelled(bare);
}

static void test_on_cancel_after_cancel(void **state) {
  sem_env *e = *state;
  bare = NULL;
  late_cb_runs = 0;
  e->hook = bare_hook;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r = {0};
  crpc_call *call = sem_start(ch, &req, NULL, &r);
  sem_wait_count(e, &e->echo_calls, 1, 5000, "call reached the handler");
  assert_false(crpc_server_call_cancelled(bare));
  crpc_call_cancel(call);
  assert_int_equal(r.code, CRPC_STATUS_CANCELLED);
  assert_true(sem_run_until(e, bare_cancelled, NULL, 5000));
  crpc_server_call_on_cancel(bare, late_cb, e);
  assert_int_equal(late_cb_runs, 1);
  bare = NULL;
  e->hook = NULL;
  sem_run_for(e, 20);
  assert_int_equal(late_cb_runs, 1);
  assert_int_equal(r.completions, 1);
  expect_ok_call(e, ch);
  sem_channel_close(e, ch);
}

/* A second on_cancel replaces the first. */
static int first_cb_runs;
static void first_cb(crpc_server_call *call, void *ud) {
  (void)call;
  (void)ud;
  first_cb_runs++;
}

static void replace_hook(sem_env *e, crpc_server_call *call, const Itest__EchoRequest *req) {
  (void)e;
  (void)req;
  bare = call;
  crpc_server_call_on_cancel(call, first_cb, NULL);
  crpc_server_call_on_cancel(call, late_cb, e);
}

static void test_on_cancel_replaced(void **state) {
  sem_env *e = *state;
  bare = NULL;
  late_cb_runs = first_cb_runs = 0;
  e->hook = replace_hook;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r = {0};
  crpc_call *call = sem_start(ch, &req, NULL, &r);
  sem_wait_count(e, &e->echo_calls, 1, 5000, "call reached the handler");
  crpc_call_cancel(call);
  sem_wait_count(e, &late_cb_runs, 1, 5000, "replacing on_cancel");
  assert_int_equal(first_cb_runs, 0);
  e->hook = NULL;
  sem_channel_close(e, ch);
}

/* Cancelled in the same loop turn as it started: still exactly one completion; if the server
 * saw the call at all, it saw it cancelled. */
static void test_cancel_at_once(void **state) {
  sem_env *e = *state;
  e->finish_on_cancel = 1;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  sem_rec r = {0};
  crpc_call *call = sem_start(ch, &req, NULL, &r);
  crpc_call_cancel(call);
  assert_int_equal(r.completions, 1);
  assert_int_equal(r.code, CRPC_STATUS_CANCELLED);
  sem_run_for(e, 200);
  assert_int_equal(r.completions, 1);
  if (e->nheld)
    sem_wait_count(e, &e->held[0].cancels, 1, 5000,
                   "call cancelled before its connection was up: the handler ran, so on_cancel "
                   "must too (CANCEL after the queued CALL)");
  expect_ok_call(e, ch);
  sem_channel_close(e, ch);
}

/* Cancel from inside the call's own callback, after it completed OK: nothing happens. */
typedef struct self_cancel {
  sem_rec r;
  crpc_call *call;
} self_cancel;

static void self_cancel_done(const crpc_status *st, const Itest__EchoReply *resp, void *ud) {
  self_cancel *s = ud;
  sem_rec_echo(st, resp, &s->r);
  crpc_call_cancel(s->call);
}

static void test_cancel_inside_callback(void **state) {
  sem_env *e = *state;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  self_cancel s = {0};
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, self_cancel_done, &s, &s.call), 0);
  sem_wait_rec(e, &s.r, 10000);
  sem_run_for(e, 30);
  assert_int_equal(s.r.completions, 1);
  assert_int_equal(s.r.code, CRPC_STATUS_OK);
  expect_ok_call(e, ch);
  sem_channel_close(e, ch);
}

/* 20 held calls, the odd ones cancelled: exactly those complete CANCELLED and exactly their
 * handlers see on_cancel; the even ones then complete OK. */
static void test_cancel_only_that_call(void **state) {
  sem_env *e = *state;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  enum { N = 20 };
  sem_rec r[N];
  crpc_call *calls[N];
  memset(r, 0, sizeof r);
  for (int i = 0; i < N; i++) {
    char p[8];
    int len = snprintf(p, sizeof p, "%d", i);
    req.payload.data = (uint8_t *)p;
    req.payload.len = (size_t)len;
    calls[i] = sem_start(ch, &req, NULL, &r[i]);
  }
  sem_wait_count(e, &e->nheld, N, 5000, "held calls");
  for (int i = 1; i < N; i += 2) crpc_call_cancel(calls[i]);
  /* Map held slots to calls by arrival order (one connection: in order). */
  int cancelled = 0;
  uint64_t end = ts_now_ms() + 5000;
  while (ts_now_ms() < end) {
    cancelled = 0;
    for (int i = 0; i < N; i++) cancelled += e->held[i].cancels;
    if (cancelled >= N / 2) break;
    sem_run_for(e, 5);
  }
  sem_run_for(e, 50);
  for (int i = 0; i < N; i++) {
    assert_int_equal(e->held[i].cancels, i % 2);
    if (i % 2) {
      assert_int_equal(r[i].completions, 1);
      assert_int_equal(r[i].code, CRPC_STATUS_CANCELLED);
    } else {
      assert_int_equal(r[i].completions, 0);
    }
  }
  for (int i = 0; i < N; i += 2) assert_int_equal(sem_held_reply(&e->held[i]), 0);
  for (int i = 1; i < N; i += 2) assert_int_equal(sem_held_reply(&e->held[i]), 0); /* dropped */
  for (int i = 0; i < N; i += 2) {
    sem_wait_rec(e, &r[i], 5000);
    assert_int_equal(r[i].code, CRPC_STATUS_OK);
  }
  sem_run_for(e, 30);
  for (int i = 0; i < N; i++) assert_int_equal(r[i].completions, 1);
  sem_channel_close(e, ch);
}

/* Closing the channel cancels its calls: CANCELLED before the close callback, and the server's
 * on_cancel runs (its client went away). */
typedef struct close_order {
  sem_rec *r;
  int completions_at_close;
  int closed;
} close_order;

static void closed_cb(void *ud) {
  close_order *c = ud;
  c->completions_at_close = c->r->completions;
  c->closed++;
}

static void test_close_channel_cancels(void **state) {
  sem_env *e = *state;
  e->finish_on_cancel = 1;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  sem_rec r = {0};
  sem_start(ch, &req, NULL, &r);
  sem_wait_count(e, &e->nheld, 1, 5000, "held call");
  close_order c = {&r, -1, 0};
  sem_channel_forget(e, ch);
  crpc_channel_close(ch, closed_cb, &c);
  sem_wait_count(e, &c.closed, 1, 5000, "channel close callback");
  assert_int_equal(c.completions_at_close, 1);
  assert_int_equal(r.code, CRPC_STATUS_CANCELLED);
  sem_wait_count(e, &e->held[0].cancels, 1, 5000, "server on_cancel after the client left");
  sem_run_for(e, 20);
  assert_int_equal(r.completions, 1);
  assert_int_equal(c.closed, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_cancel_held, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_on_cancel_after_cancel, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_on_cancel_replaced, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_cancel_at_once, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_cancel_inside_callback, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_cancel_only_that_call, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_close_channel_cancels, setup, sem_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
