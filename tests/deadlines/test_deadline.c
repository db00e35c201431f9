/* Deadlines: a call's timeout_ms (or the channel's DEFAULT_TIMEOUT_MS) reaches the server as
 * crpc_server_call_time_left_ms(); when it passes the client completes DEADLINE_EXCEEDED exactly
 * once, the handler's on_cancel runs, and a late reply is dropped harmlessly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sem.h"

#define TIMEOUT 150
#define SLACK 40 /* timers may fire a little early relative to our clock reads */


/* After the deadline: on_cancel ran once, later than the deadline, with no time left; a late
 * reply returns 0; the client's callback ran once; the server still serves. */
static void check_server_side(sem_env *e, uint64_t start, sem_rec *r, crpc_channel *ch) {
  assert_int_equal(e->nheld, 1);
  sem_held *h = &e->held[0];
  if (h->time_left0 <= 0 || h->time_left0 > TIMEOUT)
    fail_msg("time left on arrival %lld, want 1..%d", (long long)h->time_left0, TIMEOUT);
  sem_wait_count(e, &h->cancels, 1, 5000, "server on_cancel after the deadline");
  assert_true(h->cancel_ms + SLACK >= start + TIMEOUT);
  /* The client cancels at the same deadline, counted from a little earlier: its CANCEL may beat
   * the server's own timer by the network delay, leaving a few ms on the clock. */
  assert_true(h->time_left_cancel >= 0 && h->time_left_cancel <= SLACK);
  assert_true(crpc_server_call_cancelled(h->call));
  assert_int_equal(sem_held_reply(h), 0); /* late: dropped */
  sem_run_for(e, 100);
  assert_int_equal(h->cancels, 1);
  if (r) assert_int_equal(r->completions, 1);
  if (ch) {
    Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
    sem_rec ok = {0};
    sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 10000}, &ok);
    sem_wait_rec(e, &ok, 10000);
    assert_int_equal(ok.code, CRPC_STATUS_OK);
  }
}

static void test_async_deadline(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  sem_rec r = {0};
  uint64_t start = ts_now_ms();
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = TIMEOUT}, &r);
  sem_wait_rec(e, &r, 5000);
  assert_int_equal(r.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(r.has_message);
  assert_false(r.has_response);
  assert_true(r.done_ms + SLACK >= start + TIMEOUT);
  assert_true(r.done_ms < start + 5000);
  check_server_side(e, start, &r, ch);
  sem_channel_close(e, ch);
}

typedef struct blocking_job {
  const char *endpoint;
  crpc_call_opts opts;
  int64_t default_timeout;
  int rc;
  uint64_t start, end;
  Itest__EchoReply *resp;
  crpc_status st;
} blocking_job;

static void blocking_hold(void *p) {
  blocking_job *j = p;
  crpc_channel *ch = NULL;
  j->rc = crpc_channel_new(&ch, NULL, j->endpoint);
  if (j->rc != 0) return;
  if (j->default_timeout)
    j->rc = crpc_channel_set_option(ch, CRPC_OPT_DEFAULT_TIMEOUT_MS, j->default_timeout);
  if (j->rc == 0) {
    Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
    req.hold = 1;
    j->start = ts_now_ms();
    j->rc = itest__test__echo__call(ch, &req, &j->resp, &j->st, &j->opts);
    j->end = ts_now_ms();
  }
  crpc_channel_close(ch, NULL, NULL);
}

static void test_blocking_deadline(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  blocking_job j = {.endpoint = e->endpoint, .opts = {.timeout_ms = TIMEOUT}};
  sem_in_thread(e, blocking_hold, &j, 20000);
  assert_int_equal(j.rc, 0);
  assert_null(j.resp);
  assert_int_equal(j.st.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_non_null(j.st.message);
  assert_true(j.end + SLACK >= j.start + TIMEOUT);
  assert_true(j.end < j.start + 5000);
  crpc_status_reset(&j.st);
  check_server_side(e, j.start, NULL, NULL);
}

static void test_blocking_default_timeout(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  blocking_job j = {.endpoint = e->endpoint, .default_timeout = TIMEOUT};
  sem_in_thread(e, blocking_hold, &j, 20000);
  assert_int_equal(j.rc, 0);
  assert_int_equal(j.st.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  crpc_status_reset(&j.st);
  check_server_side(e, j.start, NULL, NULL);
}

/* DEFAULT_TIMEOUT_MS applies to calls without opts and with timeout_ms 0; a call's own timeout
 * overrides it. */
static void test_channel_default_timeout(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  const sem_opt co[] = {{CRPC_OPT_DEFAULT_TIMEOUT_MS, TIMEOUT}};
  crpc_channel *ch = sem_channel(e, NULL, co, 1);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  sem_rec r = {0};
  uint64_t start = ts_now_ms();
  sem_start(ch, &req, NULL, &r);
  sem_wait_rec(e, &r, 5000);
  assert_int_equal(r.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(r.done_ms + SLACK >= start + TIMEOUT);
  check_server_side(e, start, &r, NULL);

  sem_rec r0 = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 0}, &r0);
  sem_wait_rec(e, &r0, 5000);
  assert_int_equal(r0.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_int_equal(e->nheld, 2);
  assert_true(e->held[1].time_left0 > 0 && e->held[1].time_left0 <= TIMEOUT);

  /* Longer than the default: answered after 400 ms, OK. */
  Itest__EchoRequest slow = ITEST__ECHO_REQUEST__INIT;
  slow.delay_ms = 400;
  sem_rec r2 = {0};
  sem_start(ch, &slow, &(crpc_call_opts){.timeout_ms = 20000}, &r2);
  sem_wait_rec(e, &r2, 10000);
  assert_int_equal(r2.code, CRPC_STATUS_OK);
  assert_true(e->last_time_left > 10000 && e->last_time_left <= 20000);
  sem_channel_close(e, ch);
}

static void test_no_deadline(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r = {0};
  sem_start(ch, &req, NULL, &r);
  sem_wait_rec(e, &r, 10000);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(e->last_time_left, -1);
  sem_rec r2 = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 0}, &r2);
  sem_wait_rec(e, &r2, 10000);
  assert_int_equal(e->last_time_left, -1);
  /* ... and a held call without deadline stays held. */
  req.hold = 1;
  sem_rec r3 = {0};
  sem_start(ch, &req, NULL, &r3);
  sem_wait_count(e, &e->nheld, 1, 5000, "held call");
  assert_int_equal(e->held[0].time_left0, -1);
  sem_run_for(e, 300);
  assert_int_equal(e->held[0].cancels, 0);
  assert_int_equal(r3.completions, 0);
  assert_int_equal(sem_held_reply(&e->held[0]), 0);
  sem_wait_rec(e, &r3, 5000);
  assert_int_equal(r3.code, CRPC_STATUS_OK);
  sem_channel_close(e, ch);
}

static void test_misuse(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_DEFAULT_TIMEOUT_MS, -1), CRPC_EINVAL);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r = {0};
  assert_int_equal(itest__test__echo__start(ch, &req, &(crpc_call_opts){.timeout_ms = -5},
                                            sem_rec_echo, &r, NULL),
                   CRPC_EINVAL);
  sem_start(ch, &req, NULL, &r);
  sem_wait_rec(e, &r, 10000);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_DEFAULT_TIMEOUT_MS, 100), CRPC_ESTATE);
  sem_channel_close(e, ch);
}

/* PROTOCOL.md §6.1: "When [the deadline] passes, the callee stops work on the call and sends
 * STATUS DEADLINE_EXCEEDED." A raw caller that never cancels gets that STATUS, once. */
static int got_status_for_1(void *p) {
  ts_raw *r = p;
  ts_raw_pump(r);
  size_t pos = 0;
  crpc__frame f;
  while (ts_raw_next(r, &pos, &f))
    if (f.type == CRPC__F_STATUS && f.call_id == 1) return 1;
  return r->eof;
}

/* A raw caller: preface, then CALL id 1 with a TIMEOUT deadline to a handler that holds it and
 * never sends CANCEL. Returns when the call was sent. */
static uint64_t raw_held_call(sem_env *e, ts_raw *raw) {
  ts_raw_connect(raw, e->port, 0);
  ts_raw_send_preface(raw);
  uint8_t msg[16];
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  size_t n = itest__echo_request__pack(&req, msg);
  uint64_t start = ts_now_ms();
  ts_raw_send_call(raw, 1, "itest.Test/Echo", TIMEOUT, msg, n);
  return start;
}

static void test_server_deadline_raw(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  ts_raw raw;
  uint64_t start = raw_held_call(e, &raw);
  sem_wait_count(e, &e->nheld, 1, 5000, "held call");
  sem_wait_count(e, &e->held[0].cancels, 1, 5000, "server on_cancel at its own deadline");
  assert_true(e->held[0].cancel_ms + SLACK >= start + TIMEOUT);
  int got = sem_run_until(e, got_status_for_1, &raw, 3000);
  assert_int_equal(sem_held_reply(&e->held[0]), 0);
  sem_run_for(e, 50);
  ts_raw_pump(&raw);
  size_t pos = 0;
  crpc__frame f;
  int statuses = 0;
  uint32_t code = 0;
  while (ts_raw_next(&raw, &pos, &f)) {
    if (f.type != CRPC__F_STATUS || f.call_id != 1) continue;
    crpc__status_hdr sh;
    assert_int_equal(crpc__status_decode(&f, &sh), 0);
    code = sh.code;
    statuses++;
  }
  assert_false(raw.eof);
  ts_raw_close(&raw);
  if (!got || statuses != 1 || code != CRPC_STATUS_DEADLINE_EXCEEDED)
    fail_msg("raw caller without CANCEL: %d STATUS frame(s) for call 1 (last code %u) within 3 s "
             "of the deadline; PROTOCOL.md 6.1 wants exactly one, DEADLINE_EXCEEDED",
             statuses, code);
}

/* A peer that keeps the connection busy — PINGs, CANCELs and WINDOWs for call ids that do not
 * exist, another call that finishes — does not move a call's deadline: the server still answers
 * DEADLINE_EXCEEDED for it at its time. */
typedef struct chatter {
  ts_raw *raw;
  uint32_t next_id;
} chatter;

static void chat_tick(uv_timer_t *t) {
  chatter *c = t->data;
  ts_raw_send_frame(c->raw, CRPC__F_PING, 0, 0, "keepbusy", 8);
  ts_raw_send_frame(c->raw, CRPC__F_CANCEL, 0, 999, NULL, 0);
  uint8_t inc[4] = {0, 0, 1, 0};
  ts_raw_send_frame(c->raw, CRPC__F_WINDOW, 0, 997, inc, 4);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT; /* answered at once */
  uint8_t msg[16];
  size_t n = itest__echo_request__pack(&req, msg);
  ts_raw_send_call(c->raw, c->next_id, "itest.Test/Echo", 0, msg, n);
  c->next_id += 2;
  ts_raw_pump(c->raw);
}

static void test_deadline_not_extended_by_traffic(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MIN_PING_INTERVAL_MS, 0}}; /* the pings are not the point */
  sem_server_start(e, so, 1);
  ts_raw raw;
  uint64_t start = raw_held_call(e, &raw);
  chatter c = {&raw, 3};
  uv_timer_t t;
  assert_int_equal(uv_timer_init(&e->loop, &t), 0);
  t.data = &c;
  assert_int_equal(uv_timer_start(&t, chat_tick, 10, 10), 0);
  int got = sem_run_until(e, got_status_for_1, &raw, 3000);
  uint64_t at = ts_now_ms();
  uv_close((uv_handle_t *)&t, NULL);
  assert_true(got);
  assert_true(at + SLACK >= start + TIMEOUT);
  if (at > start + TIMEOUT + 1500)
    fail_msg("DEADLINE_EXCEEDED came %llu ms after a %d ms deadline", (unsigned long long)(at - start),
             TIMEOUT);
  assert_true(c.next_id > 5); /* the other traffic did flow meanwhile */
  sem_wait_count(e, &e->held[0].cancels, 1, 5000, "server on_cancel at the deadline");
  assert_int_equal(sem_held_reply(&e->held[0]), 0);
  sem_run_for(e, 20);
  ts_raw_close(&raw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_async_deadline, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_blocking_deadline, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_blocking_default_timeout, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_channel_default_timeout, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_no_deadline, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_misuse, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_server_deadline_raw, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_deadline_not_extended_by_traffic, sem_setup, sem_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
