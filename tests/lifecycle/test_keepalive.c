/* Keepalive and ping abuse: a channel pinging a peer that never answers fails its calls
 * UNAVAILABLE soon after KEEPALIVE_TIMEOUT_MS; a healthy peer keeps the call alive; the server
 * answers PINGs, and at MIN_PING_INTERVAL_MS strikes sends GOAWAY ENHANCE_YOUR_CALM and closes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sem.h"


typedef struct pump_rec {
  ts_fake *f;
  sem_rec *r;
} pump_rec;

static int fake_rec_done(void *p) {
  pump_rec *x = p;
  ts_fake_pump(x->f);
  return x->r->completions > 0;
}

static void test_keepalive_silent_peer(void **state) {
  sem_env *e = *state;
  ts_fake f; /* accepts and reads, never writes: not even a preface */
  ts_fake_open(&f);
  char target[64];
  snprintf(target, sizeof target, "tcp://127.0.0.1:%d", f.port);
  const sem_opt co[] = {{CRPC_OPT_KEEPALIVE_TIME_MS, 50}, {CRPC_OPT_KEEPALIVE_TIMEOUT_MS, 200}};
  crpc_channel *ch = sem_channel(e, target, co, 2);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r = {0};
  uint64_t start = ts_now_ms();
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 60000}, &r);
  pump_rec pr = {&f, &r};
  assert_true(sem_run_until(e, fake_rec_done, &pr, 10000));
  uint64_t took = ts_now_ms() - start;
  if (r.code != CRPC_STATUS_UNAVAILABLE || took > 5000)
    fail_msg("silent peer: call ended %s after %llu ms (%s); want UNAVAILABLE in about 250 ms",
             crpc_code_name(r.code), (unsigned long long)took, r.message);
  assert_true(took + 50 >= 250);
  if (!strstr(r.message, "keepalive")) fail_msg("message does not mention keepalive: %s", r.message);
  /* It did ping: the fake saw the client's preface, its CALL and a PING. */
  assert_true(f.naccepted >= 1);
  size_t pos = 0;
  crpc__frame fr;
  int pings = 0, calls = 0;
  while (ts_raw_next(&f.conns[0], &pos, &fr)) {
    pings += fr.type == CRPC__F_PING && !(fr.flags & CRPC__FL_ACK);
    calls += fr.type == CRPC__F_CALL;
  }
  assert_int_equal(calls, 1);
  assert_true(pings >= 1);
  sem_channel_close(e, ch);
  ts_fake_close(&f);
}

/* A peer that answers keeps a long call alive under aggressive keepalive. */
static void test_keepalive_healthy_peer(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MIN_PING_INTERVAL_MS, 0}};
  sem_server_start(e, so, 1);
  const sem_opt co[] = {{CRPC_OPT_KEEPALIVE_TIME_MS, 50}, {CRPC_OPT_KEEPALIVE_TIMEOUT_MS, 200}};
  crpc_channel *ch = sem_channel(e, NULL, co, 2);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.delay_ms = 800;
  sem_rec r = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 20000}, &r);
  sem_wait_rec(e, &r, 10000);
  if (r.code != CRPC_STATUS_OK) fail_msg("call ended %s: %s", crpc_code_name(r.code), r.message);
  sem_channel_close(e, ch);
}

/* ---- PING on the server ---------------------------------------------------------------------- */

typedef struct ping_watch {
  ts_raw *r;
  int acks;
  int goaway;
  uint32_t goaway_code;
  int payload_ok;
} ping_watch;

static void scan(ping_watch *w) {
  ts_raw_pump(w->r);
  size_t pos = 0;
  crpc__frame f;
  w->acks = w->goaway = 0;
  w->payload_ok = 1;
  while (ts_raw_next(w->r, &pos, &f)) {
    if (f.type == CRPC__F_PING) {
      assert_true(f.flags & CRPC__FL_ACK);
      assert_int_equal(f.length, CRPC__PING_LEN);
      if (memcmp(f.payload, "pingpong", 8) != 0) w->payload_ok = 0;
      w->acks++;
    } else if (f.type == CRPC__F_GOAWAY && !w->goaway) {
      crpc__goaway g;
      assert_int_equal(crpc__goaway_decode(&f, &g), 0);
      w->goaway = 1;
      w->goaway_code = g.code;
    }
  }
}

static int acks_at_least(void *p) {
  ping_watch *w = p;
  scan(w);
  return w->acks >= 20 || w->r->eof;
}

static int closed(void *p) {
  ping_watch *w = p;
  scan(w);
  return w->r->eof;
}

static void send_pings(ts_raw *r, int n) {
  ts_raw_send_preface(r);
  for (int i = 0; i < n; i++) ts_raw_send_frame(r, CRPC__F_PING, 0, 0, "pingpong", 8);
}

static void test_ping_answered(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  ts_raw r;
  ts_raw_connect(&r, e->port, 0);
  send_pings(&r, 1);
  ping_watch w = {&r, 0, 0, 0, 1};
  sem_run_until(e, acks_at_least, &w, 300);
  sem_run_for(e, 50);
  scan(&w);
  assert_int_equal(w.acks, 1);
  assert_true(w.payload_ok);
  assert_false(w.goaway);
  assert_false(r.eof);
  ts_raw_close(&r);
}

static void test_ping_flood(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0); /* MIN_PING_INTERVAL_MS default: 1000 */
  ts_raw r;
  ts_raw_connect(&r, e->port, 0);
  send_pings(&r, 20);
  ping_watch w = {&r, 0, 0, 0, 1};
  uint64_t start = ts_now_ms();
  assert_true(sem_run_until(e, closed, &w, 5000));
  assert_true(ts_now_ms() - start < 5000);
  assert_true(w.goaway);
  assert_int_equal(w.goaway_code, CRPC__GOAWAY_ENHANCE_YOUR_CALM);
  assert_true(w.acks < 20);
  ts_raw_close(&r);
}

/* CALLs (here to a method nobody serves: cheap refusals) between the PINGs do not forgive the
 * strikes: only the server answering real work does. */
static void test_ping_flood_mixed_with_calls(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  ts_raw r;
  ts_raw_connect(&r, e->port, 0);
  ts_raw_send_preface(&r);
  for (int i = 0; i < 20; i++) {
    ts_raw_send_frame(&r, CRPC__F_PING, 0, 0, "pingpong", 8);
    if (i % 2) ts_raw_send_call(&r, (uint32_t)(2 * i + 1), "sem.Nobody/Nothing", 0, "", 0);
  }
  ping_watch w = {&r, 0, 0, 0, 1};
  assert_true(sem_run_until(e, closed, &w, 5000));
  assert_true(w.goaway);
  assert_int_equal(w.goaway_code, CRPC__GOAWAY_ENHANCE_YOUR_CALM);
  ts_raw_close(&r);
}

static void test_ping_rate_unlimited(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MIN_PING_INTERVAL_MS, 0}};
  sem_server_start(e, so, 1);
  ts_raw r;
  ts_raw_connect(&r, e->port, 0);
  send_pings(&r, 20);
  ping_watch w = {&r, 0, 0, 0, 1};
  assert_true(sem_run_until(e, acks_at_least, &w, 5000));
  sem_run_for(e, 100);
  scan(&w);
  assert_int_equal(w.acks, 20);
  assert_true(w.payload_ok);
  assert_false(w.goaway);
  assert_false(r.eof);
  ts_raw_close(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_keepalive_silent_peer, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_keepalive_healthy_peer, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_ping_answered, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_ping_flood, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_ping_flood_mixed_with_calls, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_ping_rate_unlimited, sem_setup, sem_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
