/* Limits: MAX_CALLS_PER_CONN (server and client), MAX_CONNECTIONS, HANDSHAKE_TIMEOUT_MS,
 * STALL_TIMEOUT_MS, IDLE_TIMEOUT_MS, MAX_NESTING_DEPTH (both sides, and a million levels sent
 * raw) and MAX_WRITE_BUFFER (a peer that does not read stops being read). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sem.h"


static void expect_ok_call(sem_env *e, crpc_channel *ch) {
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  sem_rec r = {0};
  sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 10000}, &r);
  sem_wait_rec(e, &r, 10000);
  if (r.code != CRPC_STATUS_OK) fail_msg("call failed: %s: %s", crpc_code_name(r.code), r.message);
}

typedef struct count_code {
  sem_rec *r;
  int n;
  crpc_code code;
  int want;
} count_code;

static int n_with_code(void *p) {
  count_code *c = p;
  int k = 0;
  for (int i = 0; i < c->n; i++) k += c->r[i].completions && c->r[i].code == c->code;
  return k >= c->want;
}

/* ---- MAX_CALLS_PER_CONN ---------------------------------------------------------------------- */

static void test_server_calls_per_conn(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MAX_CALLS_PER_CONN, 4}};
  sem_server_start(e, so, 1);
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  enum { N = 10 };
  sem_rec r[N];
  memset(r, 0, sizeof r);
  for (int i = 0; i < N; i++) sem_start(ch, &req, &(crpc_call_opts){.timeout_ms = 30000}, &r[i]);
  count_code cc = {r, N, CRPC_STATUS_RESOURCE_EXHAUSTED, 6};
  assert_true(sem_run_until(e, n_with_code, &cc, 5000));
  sem_run_for(e, 100);
  assert_int_equal(e->echo_calls, 4); /* refused before the handler */
  assert_int_equal(e->nheld, 4);
  int exhausted = 0;
  for (int i = 0; i < N; i++) exhausted += r[i].completions;
  assert_int_equal(exhausted, 6);
  for (int i = 0; i < 4; i++) assert_int_equal(sem_held_reply(&e->held[i]), 0);
  cc.code = CRPC_STATUS_OK;
  cc.want = 4;
  assert_true(sem_run_until(e, n_with_code, &cc, 5000));
  for (int i = 0; i < N; i++) assert_int_equal(r[i].completions, 1);
  /* Slots free again: 4 more may run. */
  expect_ok_call(e, ch);
  assert_int_equal(e->echo_calls, 5);
  sem_channel_close(e, ch);
}

static void test_client_calls_per_conn(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  const sem_opt co[] = {{CRPC_OPT_MAX_CALLS_PER_CONN, 2}};
  crpc_channel *ch = sem_channel(e, NULL, co, 1);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  sem_rec r[3];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 3; i++) sem_start(ch, &req, NULL, &r[i]);
  sem_wait_rec(e, &r[2], 5000);
  assert_int_equal(r[2].code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  sem_wait_count(e, &e->echo_calls, 2, 5000, "two calls held");
  sem_run_for(e, 50);
  assert_int_equal(e->echo_calls, 2);
  assert_int_equal(r[0].completions + r[1].completions, 0);
  sem_finish_held(e);
  sem_wait_rec(e, &r[1], 5000);
  sem_wait_rec(e, &r[0], 5000);
  sem_channel_close(e, ch);
}

/* ---- MAX_CONNECTIONS ------------------------------------------------------------------------- */

typedef struct raw_state {
  ts_raw *r;
  size_t want_bytes;
} raw_state;

static int preface_or_eof(void *p) {
  raw_state *s = p;
  ts_raw_pump(s->r);
  return s->r->eof || s->r->in_len >= s->want_bytes;
}

static void test_max_connections(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MAX_CONNECTIONS, 2}};
  sem_server_start(e, so, 1);
  crpc_channel *a = sem_channel(e, NULL, NULL, 0);
  crpc_channel *b = sem_channel(e, NULL, NULL, 0);
  expect_ok_call(e, a);
  expect_ok_call(e, b);
  ts_raw third;
  ts_raw_connect(&third, e->port, 0);
  uint64_t start = ts_now_ms();
  assert_true(sem_run_until(e, ts_pred_raw_eof, &third, 3000));
  assert_true(ts_now_ms() - start < 3000);
  assert_int_equal(third.in_len, 0); /* closed at once: not even a preface */
  ts_raw_close(&third);
  expect_ok_call(e, a);
  expect_ok_call(e, b);
  /* One goes: a new connection is taken again (retried while the server notices the close). */
  sem_channel_close(e, b);
  int served = 0;
  for (uint64_t end = ts_now_ms() + 5000; !served && ts_now_ms() < end;) {
    ts_raw r;
    ts_raw_connect(&r, e->port, 0);
    raw_state s = {&r, CRPC__PREFACE_LEN};
    sem_run_until(e, preface_or_eof, &s, 500);
    served = !r.eof && r.in_len >= CRPC__PREFACE_LEN;
    ts_raw_close(&r);
  }
  assert_true(served);
  expect_ok_call(e, a);
  sem_channel_close(e, a);
}

/* ---- HANDSHAKE_TIMEOUT_MS / STALL_TIMEOUT_MS / IDLE_TIMEOUT_MS ------------------------------- */

/* Frames after the server's preface: returns the first GOAWAY's code, or -1. */
static int64_t goaway_code(ts_raw *r) {
  size_t pos = 0;
  crpc__frame f;
  while (ts_raw_next(r, &pos, &f)) {
    if (f.type != CRPC__F_GOAWAY) continue;
    crpc__goaway g;
    assert_int_equal(crpc__goaway_decode(&f, &g), 0);
    return g.code;
  }
  return -1;
}

static void test_handshake_timeout(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_HANDSHAKE_TIMEOUT_MS, 200}};
  sem_server_start(e, so, 1);
  ts_raw silent, polite;
  ts_raw_connect(&silent, e->port, 0);
  ts_raw_connect(&polite, e->port, 0);
  ts_raw_send_preface(&polite);
  uint64_t start = ts_now_ms();
  assert_true(sem_run_until(e, ts_pred_raw_eof, &silent, 5000));
  uint64_t took = ts_now_ms() - start;
  if (took + 50 < 200) fail_msg("closed after %llu ms, before HANDSHAKE_TIMEOUT_MS", (unsigned long long)took);
  int64_t code = goaway_code(&silent);
  assert_true(code == -1 || code == CRPC__GOAWAY_IDLE);
  /* The connection that sent its preface stays, well past the timeout, and serves a call. */
  sem_run_for(e, 400);
  ts_raw_pump(&polite);
  assert_false(polite.eof);
  uint8_t msg[8];
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  size_t n = itest__echo_request__pack(&req, msg);
  ts_raw_send_call(&polite, 1, "itest.Test/Echo", 0, msg, n);
  sem_wait_count(e, &e->echo_calls, 1, 5000, "call on the connection that sent its preface");
  ts_raw_close(&silent);
  ts_raw_close(&polite);
}

static void test_stall_timeout(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_STALL_TIMEOUT_MS, 200}};
  sem_server_start(e, so, 1);
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  expect_ok_call(e, ch);
  /* A healthy call in progress across the whole episode. */
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  sem_rec held = {0};
  sem_start(ch, &req, NULL, &held);
  sem_wait_count(e, &e->nheld, 1, 5000, "held call");

  ts_raw slow;
  ts_raw_connect(&slow, e->port, 0);
  ts_raw_send_preface(&slow);
  uint8_t hdr[CRPC__HDR_LEN];
  crpc__hdr_encode(hdr, CRPC__F_PING, 0, 0, CRPC__PING_LEN);
  ts_raw_send(&slow, hdr, 5);
  uint64_t start = ts_now_ms();
  assert_true(sem_run_until(e, ts_pred_raw_eof, &slow, 5000));
  uint64_t took = ts_now_ms() - start;
  if (took + 50 < 200) fail_msg("closed after %llu ms, before STALL_TIMEOUT_MS", (unsigned long long)took);
  ts_raw_close(&slow);

  expect_ok_call(e, ch);
  assert_int_equal(held.completions, 0);
  assert_int_equal(e->held[0].cancels, 0);
  assert_int_equal(sem_held_reply(&e->held[0]), 0);
  sem_wait_rec(e, &held, 5000);
  assert_int_equal(held.code, CRPC_STATUS_OK);
  sem_channel_close(e, ch);
}

static void count_tcp(uv_handle_t *h, void *arg) {
  if (h->type == UV_TCP && !uv_is_closing(h)) (*(int *)arg)++;
}

static int tcp_handles(sem_env *e) {
  int n = 0;
  uv_walk(&e->loop, count_tcp, &n);
  return n;
}

static int only_listener(void *p) { return tcp_handles(p) == 1; }

static int goaway_then_eof(void *p) {
  ts_raw *r = p;
  ts_raw_pump(r);
  return r->eof;
}

static void test_idle_timeout(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_IDLE_TIMEOUT_MS, 200}};
  sem_server_start(e, so, 1);
  /* Raw: preface, then nothing: GOAWAY IDLE, then closed. */
  ts_raw raw;
  ts_raw_connect(&raw, e->port, 0);
  ts_raw_send_preface(&raw);
  uint64_t start = ts_now_ms();
  assert_true(sem_run_until(e, goaway_then_eof, &raw, 5000));
  uint64_t took = ts_now_ms() - start;
  if (took + 50 < 200) fail_msg("closed after %llu ms, before IDLE_TIMEOUT_MS", (unsigned long long)took);
  assert_int_equal(goaway_code(&raw), CRPC__GOAWAY_IDLE);
  ts_raw_close(&raw);

  /* A channel: its idle connection goes, the next call reconnects. */
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  expect_ok_call(e, ch);
  assert_int_equal(tcp_handles(e), 3); /* listener, server side, client side */
  assert_true(sem_run_until(e, only_listener, e, 5000));
  expect_ok_call(e, ch);
  assert_int_equal(tcp_handles(e), 3);

  /* A call in progress is not idleness: held for 3x the timeout, then answered. */
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.hold = 1;
  sem_rec held = {0};
  sem_start(ch, &req, NULL, &held);
  sem_wait_count(e, &e->nheld, 1, 5000, "held call");
  sem_run_for(e, 600);
  assert_int_equal(held.completions, 0);
  assert_int_equal(e->held[0].cancels, 0);
  assert_int_equal(sem_held_reply(&e->held[0]), 0);
  sem_wait_rec(e, &held, 5000);
  assert_int_equal(held.code, CRPC_STATUS_OK);
  sem_channel_close(e, ch);
}

/* ---- MAX_NESTING_DEPTH ----------------------------------------------------------------------- */

static void nest_call(sem_env *e, crpc_channel *ch, unsigned depth, sem_rec *r) {
  Itest__Node *top = sem_chain(depth);
  memset(r, 0, sizeof *r);
  assert_int_equal(itest__test__nest__start(ch, top, &(crpc_call_opts){.timeout_ms = 10000},
                                            sem_rec_nest, r, NULL),
                   0);
  sem_chain_free(top);
  sem_wait_rec(e, r, 10000);
}

static void test_nesting_default(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  sem_rec r;
  nest_call(e, ch, 10, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.depth, 10);
  nest_call(e, ch, 64, &r); /* the default, exactly */
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.depth, 64);
  assert_int_equal(e->nest_calls, 2);
  nest_call(e, ch, 100, &r);
  assert_int_equal(r.code, CRPC_STATUS_INTERNAL);
  nest_call(e, ch, 65, &r);
  assert_int_equal(r.code, CRPC_STATUS_INTERNAL);
  assert_int_equal(e->nest_calls, 2); /* refused before the handler */
  nest_call(e, ch, 1, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  sem_channel_close(e, ch);
}

static void test_nesting_option(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MAX_NESTING_DEPTH, 10}};
  sem_server_start(e, so, 1);
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  sem_rec r;
  nest_call(e, ch, 10, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  nest_call(e, ch, 11, &r);
  assert_int_equal(r.code, CRPC_STATUS_INTERNAL);
  assert_int_equal(e->nest_calls, 1);
  sem_channel_close(e, ch);
}

/* The client checks responses too: a 100-deep reply is INTERNAL under the channel's default 64,
 * OK under 128. */
static void test_nesting_client(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MAX_NESTING_DEPTH, 200}};
  sem_server_start(e, so, 1);
  Itest__Node *deep = sem_chain(100);
  e->nest_reply = deep;
  crpc_channel *strict = sem_channel(e, NULL, NULL, 0);
  const sem_opt co[] = {{CRPC_OPT_MAX_NESTING_DEPTH, 128}};
  crpc_channel *lax = sem_channel(e, NULL, co, 1);
  sem_rec r;
  nest_call(e, strict, 1, &r);
  assert_int_equal(r.code, CRPC_STATUS_INTERNAL);
  nest_call(e, lax, 1, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.depth, 100);
  e->nest_reply = NULL;
  nest_call(e, strict, 3, &r); /* the strict channel still works */
  assert_int_equal(r.code, CRPC_STATUS_OK);
  sem_channel_close(e, strict);
  sem_channel_close(e, lax);
  sem_chain_free(deep);
}

/* A million levels of Node, built back to front: each level is tag 0x0a + varint(inner length). */
static uint8_t *million_deep(size_t *len) {
  const size_t cap = 6u << 20;
  uint8_t *buf = malloc(cap);
  assert_non_null(buf);
  size_t pos = cap;
  for (unsigned i = 0; i < 1000000; i++) {
    size_t inner = cap - pos;
    uint8_t v[10];
    size_t vn = 0;
    do {
      v[vn++] = (uint8_t)((inner & 0x7f) | (inner > 0x7f ? 0x80 : 0));
      inner >>= 7;
    } while (inner);
    assert_true(pos >= vn + 1);
    pos -= vn;
    memcpy(buf + pos, v, vn);
    buf[--pos] = 0x0a;
  }
  *len = cap - pos;
  memmove(buf, buf + pos, *len);
  return buf;
}

typedef struct status_wait {
  ts_raw *r;
  uint32_t id;
  int found;
  uint32_t code;
} status_wait;

static int status_for(void *p) {
  status_wait *w = p;
  if (ts_raw_find_status(w->r, w->id, &w->code)) {
    w->found = 1;
    return 1;
  }
  return w->r->eof;
}

static void test_nesting_million_raw(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MAX_RECV_MESSAGE_SIZE, 16 << 20}};
  sem_server_start(e, so, 1);
  size_t len;
  uint8_t *deep = million_deep(&len);
  assert_true(len > 4000000);
  ts_raw raw;
  ts_raw_connect(&raw, e->port, 0);
  ts_raw_send_preface(&raw);
  ts_raw_send_call(&raw, 1, "itest.Test/Nest", 0, deep, len);
  free(deep);
  status_wait w = {&raw, 1, 0, 0};
  assert_true(sem_run_until(e, status_for, &w, 30000));
  assert_true(w.found);
  assert_int_equal(w.code, CRPC_STATUS_INTERNAL);
  assert_int_equal(e->nest_calls, 0);
  /* The connection carries on. */
  ts_raw_send_call(&raw, 3, "itest.Test/Nest", 0, NULL, 0);
  status_wait w3 = {&raw, 3, 0, 0};
  assert_true(sem_run_until(e, status_for, &w3, 10000));
  assert_true(w3.found);
  assert_int_equal(w3.code, CRPC_STATUS_OK);
  assert_int_equal(e->nest_calls, 1);
  ts_raw_close(&raw);
}

/* ---- MAX_WRITE_BUFFER ------------------------------------------------------------------------ */

static int pump_only(void *p) {
  ts_raw_pump(p);
  return 0;
}

typedef struct reader {
  ts_raw *r;
  size_t pos;
  int ok, bad;
  uint8_t *seen;
  int n;
} reader;

static int read_statuses(void *p) {
  reader *d = p;
  ts_raw_pump(d->r);
  crpc__frame f;
  while (ts_raw_next(d->r, &d->pos, &f)) {
    if (f.type != CRPC__F_STATUS) continue;
    crpc__status_hdr sh;
    assert_int_equal(crpc__status_decode(&f, &sh), 0);
    uint32_t k = (f.call_id - 1) / 2;
    if (sh.code == CRPC_STATUS_OK && sh.message_len > 65536 && !d->seen[k]) d->ok++;
    else d->bad++;
    d->seen[k] = 1;
  }
  /* Keep the buffer small: drop what was parsed. */
  if (d->pos > CRPC__PREFACE_LEN) {
    size_t keep = d->r->in_len - d->pos;
    memmove(d->r->in + CRPC__PREFACE_LEN, d->r->in + d->pos, keep);
    d->r->in_len = CRPC__PREFACE_LEN + keep;
    d->pos = CRPC__PREFACE_LEN;
  }
  return d->ok + d->bad >= d->n || d->r->eof;
}

static void test_max_write_buffer(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MAX_WRITE_BUFFER, 65536}};
  sem_server_start(e, so, 1);
  enum { N = 400 };
  ts_raw raw;
  ts_raw_connect(&raw, e->port, 16384);
  raw.reading = 0;
  ts_raw_send_preface(&raw);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.reply_size = 65536 + 100;
  uint8_t msg[16];
  size_t n = itest__echo_request__pack(&req, msg);
  for (uint32_t i = 0; i < N; i++) ts_raw_send_call(&raw, 2 * i + 1, "itest.Test/Echo", 0, msg, n);
  /* Wait until the handler count holds still for 300 ms. */
  int last = -1;
  for (uint64_t end = ts_now_ms() + 10000; ts_now_ms() < end && last != e->echo_calls;) {
    last = e->echo_calls;
    sem_run_until(e, pump_only, &raw, 300);
  }
  assert_int_equal(raw.out_len, 0); /* all CALLs were sent: the server simply stopped reading */
  int stalled_at = e->echo_calls;
  sem_run_until(e, pump_only, &raw, 300);
  assert_int_equal(e->echo_calls, stalled_at);
  if (stalled_at >= N / 2)
    fail_msg("%d of %d calls ran against a client that reads nothing (MAX_WRITE_BUFFER 64 KiB)",
             stalled_at, N);
  assert_true(stalled_at >= 1);
  print_message("server stopped reading after %d of %d calls\n", stalled_at, N);
  /* Now read: everything is answered, once each. */
  raw.reading = 1;
  reader d = {&raw, 0, 0, 0, calloc(N, 1), N};
  assert_non_null(d.seen);
  assert_true(sem_run_until(e, read_statuses, &d, 60000));
  assert_int_equal(d.bad, 0);
  assert_int_equal(d.ok, N);
  assert_int_equal(e->echo_calls, N);
  free(d.seen);
  ts_raw_close(&raw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_server_calls_per_conn, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_client_calls_per_conn, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_max_connections, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_handshake_timeout, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_stall_timeout, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_idle_timeout, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_nesting_default, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_nesting_option, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_nesting_client, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_nesting_million_raw, sem_setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_max_write_buffer, sem_setup, sem_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
