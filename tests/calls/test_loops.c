/* CRPC_OPT_LOOPS: a private-loop server serving one TCP port from several loops (threads).
 * Many connections' calls all succeed, they are spread over more than one thread, a handler's
 * call reports the loop it lives on, and both close paths (stop + close, graceful shutdown) tear
 * every loop down cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include <crpc/crpc.h>

#include "itest.crpc.h"

#define LOOPS 3
#define CHANNELS 24
#define CALLS 20

typedef struct {
  uv_mutex_t mu;
  uv_thread_t threads[LOOPS + 1];
  uv_loop_t *loops[LOOPS + 1];
  int nthreads, nloops, calls, loop_mismatch;
} seen;

static void echo(crpc_server_call *call, const Itest__EchoRequest *req, void *ud) {
  seen *s = ud;
  uv_thread_t me = uv_thread_self();
  uv_loop_t *loop = crpc_server_call_loop(call);
  uv_mutex_lock(&s->mu);
  s->calls++;
  int t = 0, l = 0;
  for (int i = 0; i < s->nthreads; i++)
    if (uv_thread_equal(&s->threads[i], &me)) t = 1;
  if (!t && s->nthreads < LOOPS + 1) s->threads[s->nthreads++] = me;
  for (int i = 0; i < s->nloops; i++)
    if (s->loops[i] == loop) l = 1;
  if (!l && s->nloops < LOOPS + 1) s->loops[s->nloops++] = loop;
  /* Each loop runs on exactly one thread: as many distinct loops as threads, never more. */
  if (s->nloops != s->nthreads) s->loop_mismatch = 1;
  uv_mutex_unlock(&s->mu);
  Itest__EchoReply r = ITEST__ECHO_REPLY__INIT;
  r.payload = req->payload;
  r.seq = req->seq;
  itest__test__echo__reply(call, &r);
}

static const Itest__Test__Handlers handlers = {.echo = echo};

typedef struct {
  crpc_server *srv;
} runner;

static void run(void *arg) { crpc_server_run(((runner *)arg)->srv); }

static void call_many(const char *target, int *ok) {
  for (int c = 0; c < CHANNELS; c++) {
    crpc_channel *ch;
    assert_int_equal(crpc_channel_new(&ch, NULL, target), 0);
    for (int i = 0; i < CALLS; i++) {
      Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
      uint8_t byte = (uint8_t)i;
      req.payload.data = &byte;
      req.payload.len = 1;
      req.seq = (uint32_t)(c * CALLS + i);
      Itest__EchoReply *rep = NULL;
      crpc_status st;
      crpc_call_opts opts = {.timeout_ms = 20000};
      assert_int_equal(itest__test__echo__call(ch, &req, &rep, &st, &opts), 0);
      if (st.code == CRPC_STATUS_OK && rep->seq == req.seq && rep->payload.len == 1 &&
          rep->payload.data[0] == byte)
        (*ok)++;
      if (rep) itest__echo_reply__free_unpacked(rep, NULL);
      crpc_status_reset(&st);
    }
    crpc_channel_close(ch, NULL, NULL);
  }
}

static void serve_and_check(int graceful) {
  seen s;
  memset(&s, 0, sizeof s);
  assert_int_equal(uv_mutex_init(&s.mu), 0);
  runner r;
  assert_int_equal(crpc_server_new(&r.srv, NULL), 0);
  assert_int_equal(crpc_server_set_option(r.srv, CRPC_OPT_LOOPS, LOOPS), 0);
  assert_int_equal(itest__test__crpc_register(r.srv, &handlers, &s), 0);
  int port = 0;
  assert_int_equal(crpc_server_listen(r.srv, "tcp://127.0.0.1:0", &port), 0);
  assert_true(port > 0);
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, run, &r), 0);
  char target[64];
  snprintf(target, sizeof target, "tcp://127.0.0.1:%d", port);
  int ok = 0;
  call_many(target, &ok);
  crpc_server_stop(r.srv);
  uv_thread_join(&t);
  if (graceful)
    assert_int_equal(crpc_server_shutdown(r.srv, 200, NULL, NULL), 0);
  else
    crpc_server_close(r.srv, NULL, NULL);
  assert_int_equal(ok, CHANNELS * CALLS);
  assert_int_equal(s.calls, CHANNELS * CALLS);
  /* SO_REUSEPORT hashes connections over the loops: 24 connections on 3 loops all landing on one
   * has a probability of about 3 * (1/3)^24. */
  assert_true(s.nthreads >= 2);
  assert_int_equal(s.loop_mismatch, 0);
  uv_mutex_destroy(&s.mu);
}

static void test_loops_close(void **state) {
  (void)state;
  serve_and_check(0);
}

static void test_loops_shutdown(void **state) {
  (void)state;
  serve_and_check(1);
}

/* A loop server ignores LOOPS (it has one loop: the user's); option range is checked. */
static void test_loops_option(void **state) {
  (void)state;
  crpc_server *srv;
  assert_int_equal(crpc_server_new(&srv, NULL), 0);
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_LOOPS, 0), CRPC_EINVAL);
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_LOOPS, 65), CRPC_EINVAL);
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_LOOPS, 64), 0);
  crpc_server_close(srv, NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loops_close),
      cmocka_unit_test(test_loops_shutdown),
      cmocka_unit_test(test_loops_option),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
