/* The call core (runtime/src/call/core.h) and its deadlines (call/deadline.h): the state machine
 * allows exactly the documented transitions, a call is freed by its last reference and never
 * inside one of its callbacks, and one timer per owner fires each deadline once, earliest first,
 * and stops when none is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "call/core.h"
#include "call/deadline.h"

/* A call kind that records what happens to its cores. */
typedef struct fake {
  crpc__core core;
  int released;
  int expired;
  int expire_order; /* 1-based position among the expiries */
} fake;

static int g_expiries;

static void fake_release(crpc__core *core) { CRPC__CONTAINER_OF(core, fake, core)->released++; }
static void fake_expire(crpc__core *core) {
  fake *f = CRPC__CONTAINER_OF(core, fake, core);
  f->expired++;
  f->expire_order = ++g_expiries;
}
static const crpc__core_kind fake_kind = {fake_release, fake_expire};
static const crpc__call_events no_events = {NULL, NULL, NULL, NULL, NULL, NULL};

static void fake_init(fake *f) {
  memset(f, 0, sizeof *f);
  crpc__core_init(&f->core, &no_events, &fake_kind);
}

/* The transitions of call/core.h, and no others. */
static void transitions_are_the_documented_ones(void **state) {
  (void)state;
  enum { I = CRPC__CALL_IDLE, O = CRPC__CALL_OPEN, C = CRPC__CALL_CLOSED, D = CRPC__CALL_DONE };
  static const int allowed[4][4] = {
      /*        to: IDLE OPEN CLOSED DONE */
      /* IDLE   */ {0, 1, 0, 1},
      /* OPEN   */ {0, 0, 1, 1},
      /* CLOSED */ {0, 0, 0, 1},
      /* DONE   */ {0, 0, 0, 0},
  };
  for (int from = I; from <= D; from++)
    for (int to = I; to <= D; to++)
      assert_int_equal(crpc__core_transition_ok((unsigned)from, (unsigned)to), allowed[from][to]);
}

/* complete and off_wire report the connection only for an OPEN call, and leave the state right. */
static void off_wire_and_complete(void **state) {
  (void)state;
  fake f;
  fake_init(&f);
  crpc__conn *dummy = (crpc__conn *)(void *)&f; /* never dereferenced: only compared */
  assert_int_equal(f.core.state, CRPC__CALL_IDLE);
  assert_null(crpc__core_off_wire(&f.core)); /* IDLE: nothing to take off */
  assert_int_equal(f.core.state, CRPC__CALL_IDLE);
  f.core.state = CRPC__CALL_OPEN; /* as crpc__core_open leaves it */
  f.core.conn = dummy;
  assert_ptr_equal(crpc__core_off_wire(&f.core), dummy);
  assert_int_equal(f.core.state, CRPC__CALL_CLOSED);
  assert_null(f.core.conn);
  assert_null(crpc__core_off_wire(&f.core)); /* twice is harmless */
  assert_null(crpc__core_complete(&f.core)); /* CLOSED → DONE: no connection any more */
  assert_true(crpc__core_done(&f.core));

  fake g;
  fake_init(&g);
  g.core.state = CRPC__CALL_OPEN;
  g.core.conn = dummy;
  assert_ptr_equal(crpc__core_complete(&g.core), dummy); /* OPEN → DONE */
  assert_true(crpc__core_done(&g.core));
  assert_int_equal(g.released, 0); /* completion is not release */
}

/* The owner's reference and the callbacks' references: freed exactly once, by the last one. */
static void freed_by_the_last_reference(void **state) {
  (void)state;
  fake f;
  fake_init(&f);
  assert_int_equal(crpc__core_unref(&f.core), 1); /* no callback running: freed at once */
  assert_int_equal(f.released, 1);

  /* Completed inside its own callback, nested twice: valid until the outer one returns. */
  fake_init(&f);
  crpc__core_enter(&f.core);
  crpc__core_enter(&f.core);
  assert_int_equal(f.core.in_cb, 2);
  assert_int_equal(crpc__core_unref(&f.core), 0); /* the owner's reference */
  assert_int_equal(f.released, 0);
  assert_int_equal(crpc__core_leave(&f.core), 0);
  assert_int_equal(f.released, 0);
  assert_int_equal(f.core.in_cb, 1);
  assert_int_equal(crpc__core_leave(&f.core), 1);
  assert_int_equal(f.released, 1);
  assert_int_equal(f.core.in_cb, 0);

  /* A callback that does not complete it leaves it alive with the owner's reference. */
  fake_init(&f);
  crpc__core_enter(&f.core);
  assert_int_equal(crpc__core_leave(&f.core), 0);
  assert_int_equal(f.released, 0);
  assert_int_equal(f.core.refs, 1);
}

typedef struct dl_world {
  uv_loop_t loop;
  crpc__deadlines d;
} dl_world;

static void closed(uv_handle_t *h) { (void)h; }
static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

static void dl_close(dl_world *w) {
  uv_close(crpc__deadlines_handle(&w->d), closed);
  assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
  crpc__deadlines_free(&w->d);
  assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* Each deadline fires once, earliest first; a stopped one never fires; the timer is not active
 * once none is left, and never keeps the loop alive by itself. */
static void deadlines_fire_in_order(void **state) {
  (void)state;
  dl_world w;
  assert_int_equal(uv_loop_init(&w.loop), 0);
  assert_int_equal(crpc__deadlines_init(&w.d, &w.loop), 0);
  fake a, b, c, none;
  fake_init(&a);
  fake_init(&b);
  fake_init(&c);
  fake_init(&none);
  g_expiries = 0;
  assert_int_equal(crpc__deadline_start(&w.d, &a.core, 60), 0);
  assert_int_equal(crpc__deadline_start(&w.d, &b.core, 20), 0);
  assert_int_equal(crpc__deadline_start(&w.d, &c.core, 40), 0);
  assert_int_equal(crpc__deadline_left(&w.d, &none.core), -1);
  int64_t left = crpc__deadline_left(&w.d, &b.core);
  assert_true(left > 0 && left <= 20);
  crpc__deadline_stop(&w.d, &c.core);
  crpc__deadline_stop(&w.d, &c.core);    /* twice is harmless */
  crpc__deadline_stop(&w.d, &none.core); /* never had one */
  assert_true(uv_is_active(crpc__deadlines_handle(&w.d)));
  /* The timer is unreferenced: a loop with only it would return at once, so keep it running
   * with a referenced timer of our own that outlasts every deadline (bounded: 2 s). */
  uv_timer_t guard;
  assert_int_equal(uv_timer_init(&w.loop, &guard), 0);
  assert_int_equal(uv_timer_start(&guard, stop_loop, 2000, 0), 0);
  while (g_expiries < 2 && uv_run(&w.loop, UV_RUN_ONCE) != 0) {
  }
  uv_close((uv_handle_t *)&guard, closed);
  assert_int_equal(b.expired, 1);
  assert_int_equal(a.expired, 1);
  assert_int_equal(c.expired, 0);
  assert_int_equal(b.expire_order, 1);
  assert_int_equal(a.expire_order, 2);
  assert_int_equal(crpc__deadline_left(&w.d, &a.core), 0); /* passed */
  assert_false(uv_is_active(crpc__deadlines_handle(&w.d)));
  dl_close(&w);
}

/* Stopping the earliest deadline re-arms for the next one; stopping the last stops the timer. */
static void stopping_rearms(void **state) {
  (void)state;
  dl_world w;
  assert_int_equal(uv_loop_init(&w.loop), 0);
  assert_int_equal(crpc__deadlines_init(&w.d, &w.loop), 0);
  fake a, b;
  fake_init(&a);
  fake_init(&b);
  assert_int_equal(crpc__deadline_start(&w.d, &a.core, 10), 0);
  assert_int_equal(crpc__deadline_start(&w.d, &b.core, 100000), 0);
  uint64_t due = uv_timer_get_due_in((uv_timer_t *)crpc__deadlines_handle(&w.d));
  assert_true(due <= 10);
  crpc__deadline_stop(&w.d, &a.core);
  due = uv_timer_get_due_in((uv_timer_t *)crpc__deadlines_handle(&w.d));
  assert_true(due > 1000);
  crpc__deadline_stop(&w.d, &b.core);
  assert_false(uv_is_active(crpc__deadlines_handle(&w.d)));
  assert_int_equal(a.expired + b.expired, 0);
  dl_close(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(transitions_are_the_documented_ones),
      cmocka_unit_test(off_wire_and_complete),
      cmocka_unit_test(freed_by_the_last_reference),
      cmocka_unit_test(deadlines_fire_in_order),
      cmocka_unit_test(stopping_rearms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
