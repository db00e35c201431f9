/* Deadlines of calls: one heap and one timer per owner. See call/deadline.h. */
#include "call/deadline.h"

#include "base/list.h"

static void on_timer(uv_timer_t *t);

/* Points the timer at the earliest deadline, or stops it when there is none. */
static void arm(crpc__deadlines *d) {
  if (uv_is_closing((uv_handle_t *)&d->timer)) return;
  crpc__dl_node *top = crpc__dlheap_top(&d->heap);
  if (!top) {
    uv_timer_stop(&d->timer);
    return;
  }
  uint64_t now = uv_now(d->timer.loop);
  uv_timer_start(&d->timer, on_timer, top->deadline > now ? top->deadline - now : 0, 0);
}

static void on_timer(uv_timer_t *t) {
  crpc__deadlines *d = t->data;
  uint64_t now = uv_now(t->loop);
  crpc__dl_node *top;
  while ((top = crpc__dlheap_top(&d->heap)) != NULL && top->deadline <= now) {
    crpc__dlheap_remove(&d->heap, top);
    crpc__core *core = CRPC__CONTAINER_OF(top, crpc__core, dl);
    core->kind->expire(core);
  }
  arm(d);
}

int crpc__deadlines_init(crpc__deadlines *d, uv_loop_t *loop) {
  crpc__dlheap_init(&d->heap);
  int rc = uv_timer_init(loop, &d->timer);
  if (rc != 0) return rc;
  d->timer.data = d;
  uv_unref((uv_handle_t *)&d->timer);
  return 0;
}

void crpc__deadlines_free(crpc__deadlines *d) { crpc__dlheap_free(&d->heap); }

int crpc__deadline_start(crpc__deadlines *d, crpc__core *core, uint64_t timeout_ms) {
  core->dl.deadline = uv_now(d->timer.loop) + timeout_ms;
  if (crpc__dlheap_push(&d->heap, &core->dl) != 0) return -1;
  if (crpc__dlheap_top(&d->heap) == &core->dl) arm(d);
  return 0;
}

void crpc__deadline_stop(crpc__deadlines *d, crpc__core *core) {
  if (!crpc__dl_node_queued(&core->dl)) return;
  /* The earliest one going: re-arm for the next, or stop the timer when none is left. */
  int was_top = crpc__dlheap_top(&d->heap) == &core->dl;
  crpc__dlheap_remove(&d->heap, &core->dl);
  if (was_top) arm(d);
}

int64_t crpc__deadline_left(const crpc__deadlines *d, const crpc__core *core) {
  if (!core->dl.deadline) return -1;
  uint64_t now = uv_now(d->timer.loop);
  return core->dl.deadline > now ? (int64_t)(core->dl.deadline - now) : 0;
}
