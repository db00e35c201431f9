/* Drain: crpc_server_shutdown() stops listening at once, lets calls in progress finish, runs its
 * callback once after the last of them (or cancels them when the grace period ends); a client
 * that receives GOAWAY starts its next call on a fresh connection and fails the calls the server
 * will not process with UNAVAILABLE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sem.h"


typedef struct drain_watch {
  sem_env *e;
  int closes;
  int finished_at_close;
} drain_watch;

static void drained(void *ud) {
  drain_watch *w = ud;
  w->closes++;
  w->finished_at_close = w->e->finished;
}

static sem_rec *hold_one(sem_env *e, crpc_channel *ch, sem_rec *r) {
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  memset(r, 0, sizeof *r);
  sem_start(ch, &req, NULL, r);
  sem_wait_count(e, &e->nheld, e->nheld + 1, 5000, "held call");
  return r;
}

static void call_expect(sem_env *e, crpc_channel *ch, crpc_code code) {
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 10000}, &r);
  sem_wait_rec(e, &r, 10000);
  if (r.code != code)
    fail_msg("call ended %s (%s), want %s", crpc_code_name(r.code), r.message, crpc_code_name(code));
}

static void test_drain_held_call_completes(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  crpc_channel *a = sem_channel(e, NULL, NULL, 0);
  sem_rec held;
  hold_one(e, a, &held);
  drain_watch w = {e, 0, -1};
  assert_int_equal(crpc_server_shutdown(e->srv, 30000, drained, &w), 0);
  e->srv = NULL; /* not to be used any more */
  /* Not listening: a new channel cannot get in. */
  crpc_channel *b = sem_channel(e, NULL, NULL, 0);
  call_expect(e, b, CRPC_STATUS_UNAVAILABLE);
  sem_run_for(e, 100);
  assert_int_equal(w.closes, 0);
  assert_int_equal(held.completions, 0);
  assert_int_equal(e->held[0].cancels, 0);
  /* The held call finishes normally, then the server goes. */
  assert_int_equal(sem_held_reply(&e->held[0]), 0);
  sem_wait_rec(e, &held, 5000);
  assert_int_equal(held.code, CRPC_STATUS_OK);
  sem_wait_count(e, &w.closes, 1, 5000, "shutdown callback after the last call");
  assert_int_equal(w.finished_at_close, 1);
  sem_run_for(e, 100);
  assert_int_equal(w.closes, 1);
  assert_int_equal(held.completions, 1);
  call_expect(e, a, CRPC_STATUS_UNAVAILABLE); /* nobody serves any more */
  sem_channel_close(e, a);
  sem_channel_close(e, b);
}

static void test_drain_grace_expires(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  e->finish_on_cancel = 1;
  crpc_channel *a = sem_channel(e, NULL, NULL, 0);
  sem_rec held;
  hold_one(e, a, &held);
  drain_watch w = {e, 0, -1};
  uint64_t start = ts_now_ms();
  assert_int_equal(crpc_server_shutdown(e->srv, 200, drained, &w), 0);
  e->srv = NULL;
  sem_wait_count(e, &e->held[0].cancels, 1, 5000, "on_cancel when the grace period ends");
  if (e->held[0].cancel_ms + 50 < start + 200)
    fail_msg("cancelled %llu ms into a 200 ms grace period",
             (unsigned long long)(e->held[0].cancel_ms - start));
  assert_null(e->held[0].call); /* finished from on_cancel */
  sem_wait_count(e, &w.closes, 1, 5000, "shutdown callback");
  sem_wait_rec(e, &held, 5000);
  assert_int_not_equal(held.code, CRPC_STATUS_OK);
  sem_run_for(e, 100);
  assert_int_equal(w.closes, 1);
  assert_int_equal(held.completions, 1);
  assert_int_equal(e->held[0].cancels, 1);
  sem_channel_close(e, a);
}

/* Nothing in progress (an idle connection included): done long before the grace period. */
static void test_drain_idle_is_prompt(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  crpc_channel *a = sem_channel(e, NULL, NULL, 0);
  call_expect(e, a, CRPC_STATUS_OK);
  drain_watch w = {e, 0, -1};
  uint64_t start = ts_now_ms();
  assert_int_equal(crpc_server_shutdown(e->srv, 60000, drained, &w), 0);
  e->srv = NULL;
  sem_wait_count(e, &w.closes, 1, 5000, "shutdown callback with nothing to drain");
  assert_true(ts_now_ms() - start < 5000);
  sem_run_for(e, 50);
  assert_int_equal(w.closes, 1);
  sem_channel_close(e, a);
}

static void test_shutdown_misuse(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  assert_int_equal(crpc_server_shutdown(NULL, 0, NULL, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_server_shutdown(e->srv, -1, NULL, NULL), CRPC_EINVAL);
  crpc_channel *a = sem_channel(e, NULL, NULL, 0);
  call_expect(e, a, CRPC_STATUS_OK); /* still serving after the refused shutdown */
  sem_rec held;
  hold_one(e, a, &held);
  drain_watch w = {e, 0, -1};
  crpc_server *srv = e->srv;
  e->srv = NULL;
  assert_int_equal(crpc_server_shutdown(srv, 30000, drained, &w), 0);
  assert_int_equal(crpc_server_shutdown(srv, 30000, drained, &w), CRPC_ECLOSED); /* draining */
  assert_int_equal(sem_held_reply(&e->held[0]), 0);
  sem_wait_count(e, &w.closes, 1, 5000, "shutdown callback");
  sem_run_for(e, 50);
  assert_int_equal(w.closes, 1);
  sem_channel_close(e, a);
}

/* ---- GOAWAY seen from the client, against a fake server --------------------------------------- */

typedef struct fake_wait {
  ts_fake *f;
  int conn;
  int ncalls;        /* CALL frames wanted on that connection */
  uint32_t ids[8];
  int found;
} fake_wait;

static int fake_calls(void *p) {
  fake_wait *w = p;
  ts_fake_pump(w->f);
  if (w->conn >= w->f->naccepted) return 0;
  ts_raw *r = &w->f->conns[w->conn];
  size_t pos = 0;
  crpc__frame fr;
  w->found = 0;
  while (ts_raw_next(r, &pos, &fr))
    if (fr.type == CRPC__F_CALL && w->found < 8) w->ids[w->found++] = fr.call_id;
  return w->found >= w->ncalls;
}

static int fake_eof(void *p) {
  fake_wait *w = p;
  ts_fake_pump(w->f);
  return w->f->conns[w->conn].eof;
}

typedef struct pump_rec {
  ts_fake *f;
  sem_rec *r;
} pump_rec;

static int fake_rec_done(void *p) {
  pump_rec *x = p;
  ts_fake_pump(x->f);
  return x->r->completions > 0;
}

static const uint8_t empty_msg[1];

static void test_goaway_next_call_new_connection(void **state) {
  sem_env *e = *state;
  ts_fake f;
  ts_fake_open(&f);
  char target[64];
  snprintf(target, sizeof target, "tcp://127.0.0.1:%d", f.port);
  crpc_channel *ch = sem_channel(e, target, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r1 = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 10000}, &r1);
  fake_wait w = {&f, 0, 1, {0}, 0};
  assert_true(sem_run_until(e, fake_calls, &w, 5000));
  ts_raw *c0 = &f.conns[0];
  ts_raw_send_preface(c0);
  ts_raw_send_status(c0, w.ids[0], CRPC_STATUS_OK, NULL, empty_msg, 0);
  ts_raw_send_goaway(c0, w.ids[0], CRPC__GOAWAY_NO_ERROR, "draining");
  pump_rec pr = {&f, &r1};
  assert_true(sem_run_until(e, fake_rec_done, &pr, 5000));
  assert_int_equal(r1.code, CRPC_STATUS_OK);

  /* The next call goes on a new connection, none on the old one. */
  sem_rec r2 = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 10000}, &r2);
  fake_wait w1 = {&f, 1, 1, {0}, 0};
  assert_true(sem_run_until(e, fake_calls, &w1, 5000));
  assert_int_equal(f.naccepted, 2);
  fake_calls(&w);
  assert_int_equal(w.found, 1);
  ts_raw *c1 = &f.conns[1];
  ts_raw_send_preface(c1);
  ts_raw_send_status(c1, w1.ids[0], CRPC_STATUS_OK, NULL, empty_msg, 0);
  pr.r = &r2;
  assert_true(sem_run_until(e, fake_rec_done, &pr, 5000));
  assert_int_equal(r2.code, CRPC_STATUS_OK);
  /* The drained connection is closed by the client. */
  assert_true(sem_run_until(e, fake_eof, &w, 5000));
  sem_channel_close(e, ch);
  ts_fake_close(&f);
}

static void test_goaway_fails_unprocessed_calls(void **state) {
  sem_env *e = *state;
  ts_fake f;
  ts_fake_open(&f);
  char target[64];
  snprintf(target, sizeof target, "tcp://127.0.0.1:%d", f.port);
  crpc_channel *ch = sem_channel(e, target, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec a = {0}, b = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 10000}, &a);
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 10000}, &b);
  fake_wait w = {&f, 0, 2, {0}, 0};
  assert_true(sem_run_until(e, fake_calls, &w, 5000));
  ts_raw *c0 = &f.conns[0];
  ts_raw_send_preface(c0);
  ts_raw_send_goaway(c0, w.ids[0], CRPC__GOAWAY_NO_ERROR, "draining");
  pump_rec pr = {&f, &b};
  assert_true(sem_run_until(e, fake_rec_done, &pr, 5000));
  assert_int_equal(b.code, CRPC_STATUS_UNAVAILABLE);
  assert_int_equal(a.completions, 0); /* at or below last_call_id: still runs */
  ts_raw_send_status(c0, w.ids[0], CRPC_STATUS_OK, NULL, empty_msg, 0);
  pr.r = &a;
  assert_true(sem_run_until(e, fake_rec_done, &pr, 5000));
  assert_int_equal(a.code, CRPC_STATUS_OK);
  assert_true(sem_run_until(e, fake_eof, &w, 5000));
  sem_run_for(e, 20);
  assert_int_equal(a.completions, 1);
  assert_int_equal(b.completions, 1);
  sem_channel_close(e, ch);
  ts_fake_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_drain_held_call_completes, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_drain_grace_expires, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_drain_idle_is_prompt, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_misuse, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_goaway_next_call_new_connection, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_goaway_fails_unprocessed_calls, sem_setup, sem_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
