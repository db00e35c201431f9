/* Blocking calls: many threads on one private-loop channel; worker threads on a loop channel
 * whose loop runs in the main thread; and the loop thread itself, which must be refused. */
#include <stdio.h>
#include <string.h>

#include "itest.h"

#define N_THREADS 8
#define N_PER_THREAD 200

typedef struct worker {
  crpc_channel *ch;
  int index, n;
  int ok, bad;
  char first_error[256];
  atomic_int *finished; /* workers done, for the loop-channel test */
  uv_thread_t thread;
} worker;

static void worker_run(void *arg) {
  worker *w = arg;
  for (int i = 0; i < w->n; i++) {
    uint32_t seq = (uint32_t)(w->index * 100000 + i);
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, seq, buf, sizeof buf);
    if (i % 10 == 0) req.delay_ms = 2; /* some answered late, so that waits overlap */
    Itest__EchoReply *resp = NULL;
    crpc_status st = {0};
    crpc_call_opts opts = {.timeout_ms = 60000};
    int rc = itest__test__echo__call(w->ch, &req, &resp, &st, &opts);
    int good = rc == 0 && st.code == CRPC_STATUS_OK && resp && resp->seq == seq &&
               resp->payload.len == req.payload.len &&
               memcmp(resp->payload.data, req.payload.data, req.payload.len) == 0;
    if (good) {
      w->ok++;
    } else {
      if (!w->bad++)
        snprintf(w->first_error, sizeof w->first_error, "rc %s, %s: %s", crpc_err_name(rc),
                 crpc_code_name(st.code), st.message ? st.message : "");
    }
    if (resp) itest__echo_reply__free_unpacked(resp, NULL);
    crpc_status_reset(&st);
  }
  if (w->finished) atomic_fetch_add(w->finished, 1);
}

static void check_workers(worker *ws, int n) {
  for (int i = 0; i < n; i++) {
    if (ws[i].bad) fail_msg("thread %d: %d bad calls, first: %s", i, ws[i].bad, ws[i].first_error);
    assert_int_equal(ws[i].ok, ws[i].n);
  }
}

static void threads_on_private_channel(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(srv)), 0);
  worker ws[N_THREADS];
  memset(ws, 0, sizeof ws);
  for (int i = 0; i < N_THREADS; i++) {
    ws[i].ch = ch;
    ws[i].index = i;
    ws[i].n = N_PER_THREAD;
    assert_int_equal(uv_thread_create(&ws[i].thread, worker_run, &ws[i]), 0);
  }
  for (int i = 0; i < N_THREADS; i++) uv_thread_join(&ws[i].thread);
  check_workers(ws, N_THREADS);
  crpc_channel_close(ch, NULL, NULL);
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.received, N_THREADS * N_PER_THREAD);
}

static int all_finished(void *ud) { return atomic_load((atomic_int *)ud) == 4; }

static void workers_on_loop_channel(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  /* async calls from the loop thread at the same time */
  itest_rec recs[50];
  memset(recs, 0, sizeof recs);
  for (uint32_t i = 0; i < 50; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, 900000 + i, buf, sizeof buf);
    req.delay_ms = i % 7;
    assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &recs[i], NULL), 0);
  }
  atomic_int finished = 0;
  worker ws[4];
  memset(ws, 0, sizeof ws);
  for (int i = 0; i < 4; i++) {
    ws[i].ch = ch;
    ws[i].index = i;
    ws[i].n = 100;
    ws[i].finished = &finished;
    assert_int_equal(uv_thread_create(&ws[i].thread, worker_run, &ws[i]), 0);
  }
  int ok = itest_run_until(&loop, all_finished, &finished, 90000);
  if (!ok) fail_msg("workers on a loop channel: only %d of 4 finished in 90 s", atomic_load(&finished));
  for (int i = 0; i < 4; i++) uv_thread_join(&ws[i].thread);
  check_workers(ws, 4);
  itest_recs all = {recs, 50};
  assert_true(itest_run_until(&loop, itest_all_done, &all, 20000));
  for (uint32_t i = 0; i < 50; i++) itest_assert_echo(&recs[i], 900000 + i);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

/* A blocking call on the thread of a loop channel would deadlock: refused with EDEADLK. */
static void blocking_on_loop_thread_is_edeadlk(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, itest_server_endpoint(srv)), 0);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  Itest__EchoReply *resp = (Itest__EchoReply *)&req; /* must be set to NULL */
  crpc_status st = {0};
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, NULL), CRPC_EDEADLK);
  assert_null(resp);
  assert_int_equal(st.code, CRPC_STATUS_INTERNAL);
  assert_non_null(st.message);
  crpc_status_reset(&st);
  /* The channel is not harmed: an async call works. */
  itest_rec rec = {0};
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &rec, NULL), 0);
  itest_recs one = {&rec, 1};
  assert_true(itest_run_until(&loop, itest_all_done, &one, 20000));
  itest_assert_echo(&rec, 1);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  itest_server_stop(srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(threads_on_private_channel),
      ITEST_PER_TRANSPORT(workers_on_loop_channel),
      ITEST_PER_TRANSPORT(blocking_on_loop_thread_is_edeadlk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
