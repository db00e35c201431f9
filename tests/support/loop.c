/* Time and waits: see loop.h. */
#include "loop.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

uint64_t ts_now_ms(void) { return uv_hrtime() / 1000000u; }

static void on_tick(uv_timer_t *t) { (void)t; /* wakes the loop to re-check the predicate */ }

int ts_run_until(uv_loop_t *loop, uv_timer_t *tick, ts_pred pred, void *arg, uint64_t timeout_ms) {
  uv_timer_t own;
  uv_timer_t *t = tick;
  if (t == NULL) {
    t = &own;
    assert_int_equal(uv_timer_init(loop, t), 0);
  }
  uint64_t end = ts_now_ms() + timeout_ms;
  uv_timer_start(t, on_tick, 2, 2);
  int ok;
  while (!(ok = pred(arg)) && ts_now_ms() < end) uv_run(loop, UV_RUN_ONCE);
  uv_timer_stop(t);
  if (t == &own) {
    uv_close((uv_handle_t *)t, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* let the close finish: the timer lives on this stack */
  }
  return ok;
}

static int never(void *arg) {
  (void)arg;
  return 0;
}

void ts_run_for(uv_loop_t *loop, uv_timer_t *tick, uint64_t ms) {
  ts_run_until(loop, tick, never, NULL, ms);
}

int ts_pred_at_least(void *arg) {
  ts_at_least *a = arg;
  return *a->value >= a->target;
}

void ts_wait_count(uv_loop_t *loop, uv_timer_t *tick, const int *value, int target,
                   uint64_t timeout_ms, const char *what) {
  ts_at_least a = {value, target};
  if (!ts_run_until(loop, tick, ts_pred_at_least, &a, timeout_ms))
    fail_msg("%s: %d after %llu ms, wanted %d", what, *value, (unsigned long long)timeout_ms,
             target);
}

typedef struct thread_job {
  void (*fn)(void *);
  void *arg;
  atomic_int done;
} thread_job;

static void thread_main(void *p) {
  thread_job *j = p;
  j->fn(j->arg);
  atomic_store(&j->done, 1);
}

static int job_done(void *p) { return atomic_load(&((thread_job *)p)->done); }

void ts_in_thread(uv_loop_t *loop, uv_timer_t *tick, void (*fn)(void *), void *arg,
                  uint64_t timeout_ms) {
  thread_job j = {fn, arg, 0};
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, thread_main, &j), 0);
  if (!ts_run_until(loop, tick, job_done, &j, timeout_ms)) {
    fprintf(stderr, "helper thread still running after %llu ms\n", (unsigned long long)timeout_ms);
    abort();
  }
  uv_thread_join(&t);
}
