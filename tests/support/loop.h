/* Time and waits for tests that drive a libuv loop: every wait runs the loop until a condition
 * holds, bounded in time, so no test sleeps to synchronise and a hang fails instead of stalling.
 *
 * A wait needs the loop to come back to it often enough to re-check its predicate: a repeating
 * 2 ms "tick" timer does that. Pass a tick timer the fixture keeps for the loop (initialised on
 * it, not running), or NULL for a private one that the wait opens and closes (closing it runs
 * the loop once more without blocking). */
#ifndef CRPC_TEST_SUPPORT_LOOP_H
#define CRPC_TEST_SUPPORT_LOOP_H

#include <stdint.h>

#include <uv.h>

/* Monotonic milliseconds. */
uint64_t ts_now_ms(void);

typedef int (*ts_pred)(void *arg);

/* Runs loop until pred(arg) is true (checked after every loop iteration, at least every 2 ms) or
 * timeout_ms passed. Returns 1 when pred became true. */
int ts_run_until(uv_loop_t *loop, uv_timer_t *tick, ts_pred pred, void *arg, uint64_t timeout_ms);
/* Runs loop for ms milliseconds (for what must NOT happen to show up). */
void ts_run_for(uv_loop_t *loop, uv_timer_t *tick, uint64_t ms);

/* Predicate: *value >= target. */
typedef struct ts_at_least {
  const int *value;
  int target;
} ts_at_least;
int ts_pred_at_least(void *arg /* ts_at_least */);
/* Runs until *value >= target; fails the test (naming what) after timeout_ms. */
void ts_wait_count(uv_loop_t *loop, uv_timer_t *tick, const int *value, int target,
                   uint64_t timeout_ms, const char *what);

/* Runs fn(arg) on a new thread while the loop runs; returns once it has returned. Aborts when it
 * is still running after timeout_ms: fn may use the caller's stack, so there is no safe way to
 * fail the test with the thread still on it. */
void ts_in_thread(uv_loop_t *loop, uv_timer_t *tick, void (*fn)(void *), void *arg,
                  uint64_t timeout_ms);

#endif
