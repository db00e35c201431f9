/* Deadlines of calls, for both sides: one min-heap and one uv_timer per owner (a channel or a
 * server), armed for the earliest deadline, so that a call with a deadline costs no timer handle
 * and its deadline is removed in O(log n) when it completes.
 *
 * The timer is unreferenced (it never keeps the loop alive by itself). When it fires, every call
 * whose deadline has passed is taken off the heap and its kind's expire() runs (call/core.h).
 * Loop thread only. */
#ifndef CRPC_CALL_DEADLINE_H
#define CRPC_CALL_DEADLINE_H

#include <stdint.h>

#include <uv.h>

#include "base/dlheap.h"
#include "call/core.h"

typedef struct crpc__deadlines {
  crpc__dlheap heap;
  uv_timer_t timer; /* the owner closes it (crpc__deadlines_handle) with its other handles */
} crpc__deadlines;

/* 0 or a libuv error. */
int crpc__deadlines_init(crpc__deadlines *d, uv_loop_t *loop);
/* Frees the heap (the timer must be closed). */
void crpc__deadlines_free(crpc__deadlines *d);
static inline uv_handle_t *crpc__deadlines_handle(crpc__deadlines *d) {
  return (uv_handle_t *)&d->timer;
}
/* Gives core a deadline timeout_ms from now (loop time; a private loop's caller updates the
 * time first). 0, or -1 when out of memory (the call then has no deadline). */
int crpc__deadline_start(crpc__deadlines *d, crpc__core *core, uint64_t timeout_ms);
/* The call no longer has a deadline (harmless when it has none). */
void crpc__deadline_stop(crpc__deadlines *d, crpc__core *core);
/* Loop time left before core's deadline: -1 when it has none, 0 when it has passed. */
int64_t crpc__deadline_left(const crpc__deadlines *d, const crpc__core *core);

#endif
