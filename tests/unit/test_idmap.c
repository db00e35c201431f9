/* The call table (runtime/src/base/idmap.c) against ids a hostile peer chooses.
 *
 * The peer picks its call ids, so the table must not let it choose which slots they land in:
 * with a fixed hash, ids = 1 mod 2^20 (or ids solved against the hash) all share one probe run,
 * and every frame for an unknown id scans it. The cost measure is the number
 * of slots a lookup examines (crpc__idmap_probes), counted, not timed: for 4,000 open calls with
 * adversarial ids, lookups of 150,000 unknown adversarial ids must cost within a small factor of
 * the same with sequential ids, on average and at worst. The table's behaviour as a map (put,
 * get, del, pop under churn, backward-shift deletion) is checked against a plain array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/idmap.h"

#define OPEN 4000     /* calls in progress on the connection */
#define PROBES 150000 /* frames for unknown ids */

typedef struct cost {
  double avg;
  size_t max;
} cost;

/* The ids of a scenario: open[i] for the calls in the table, unknown(j) for frames for calls it
 * does not hold. */
typedef uint32_t (*id_fn)(uint32_t i);

static uint32_t seq_open(uint32_t i) { return 2 * i + 1; }
static uint32_t seq_unknown(uint32_t j) { return 2 * (OPEN + j) + 1; }
/* Same residue mod 2^20: one slot for every id under a multiplicative hash of a table < 2^20.
 * There are 4096 such ids: the 96 the table does not hold are the unknown ones, over and over. */
static uint32_t mod_open(uint32_t i) { return (i << 20) | 1; }
static uint32_t mod_unknown(uint32_t j) { return ((uint32_t)(OPEN + (j % 96)) << 20) | 1; }
/* Solved against the former hash, slot = (id * 2654435761) mod cap: id = inv * (k * 2^13),
 * which puts every id in slot 0 of any table of up to 8192 slots. */
static uint32_t inv_golden(void) {
  uint32_t a = UINT32_C(2654435761), x = a; /* Newton: x = x (2 - a x), 5 steps for 32 bits */
  for (int i = 0; i < 5; i++) x *= 2u - a * x;
  return x;
}
static uint32_t old_open(uint32_t i) { return inv_golden() * ((i + 1) << 13); }
static uint32_t old_unknown(uint32_t j) { return inv_golden() * ((OPEN + 1 + (j % 100000)) << 13); }

static cost measure(crpc__idmap *m, id_fn open, id_fn unknown) {
  static int dummy;
  for (uint32_t i = 0; i < OPEN; i++) {
    assert_int_equal(crpc__idmap_put(m, open(i), &dummy), 0);
  }
  cost c = {0, 0};
  double sum = 0;
  for (uint32_t j = 0; j < PROBES; j++) {
    uint32_t id = unknown(j);
    assert_null(crpc__idmap_get(m, id));
    size_t n = crpc__idmap_probes(m, id);
    sum += (double)n;
    if (n > c.max) c.max = n;
  }
  for (uint32_t i = 0; i < OPEN; i++) { /* the open calls are found, at a bounded cost too */
    assert_ptr_equal(crpc__idmap_get(m, open(i)), &dummy);
    size_t n = crpc__idmap_probes(m, open(i));
    if (n > c.max) c.max = n;
  }
  c.avg = sum / PROBES;
  for (uint32_t i = 0; i < OPEN; i++) assert_ptr_equal(crpc__idmap_del(m, open(i)), &dummy);
  assert_int_equal(m->count, 0);
  crpc__idmap_free(m);
  return c;
}

static void check_key(crpc__idmap *m, const char *what) {
  cost seq = measure(m, seq_open, seq_unknown);
  cost mod = measure(m, mod_open, mod_unknown);
  cost old = measure(m, old_open, old_unknown);
  printf("# %s: probes per lookup avg/max: sequential %.2f/%zu, ids = 1 mod 2^20 %.2f/%zu, "
         "solved against the old hash %.2f/%zu\n",
         what, seq.avg, seq.max, mod.avg, mod.max, old.avg, old.max);
  /* Within a small factor of sequential ids (a random spread at load 4000/8192 gives ~2.4 on
   * average for a miss; the worst run of 4,000 random slots is a few dozen). */
  double bound = 3 * (seq.avg > 1 ? seq.avg : 1);
  assert_true(mod.avg <= bound);
  assert_true(old.avg <= bound);
  size_t maxbound = 4 * (seq.max > 16 ? seq.max : 16);
  assert_true(mod.max <= maxbound);
  assert_true(old.max <= maxbound);
}

static void adversarial_ids_cost_like_sequential(void **state) {
  (void)state;
  static const uint64_t keys[][2] = {
      {UINT64_C(0x9e3779b97f4a7c15), UINT64_C(0xbf58476d1ce4e5b9)},
      {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)},
      {UINT64_C(0xdeadbeefcafef00d), UINT64_C(0x0123456789abcdef)},
  };
  char what[64];
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    crpc__idmap m;
    crpc__idmap_init_key(&m, keys[k][0], keys[k][1]);
    snprintf(what, sizeof what, "key %zu", k);
    check_key(&m, what);
  }
  crpc__idmap m; /* and the random key every connection gets */
  crpc__idmap_init(&m);
  check_key(&m, "random key");
}

/* Odd ids solved against Fibonacci hashing, what a table uses for its own ids: all share the low
 * 13 bits of their hash, so each names one slot of any table of up to 8192 slots. */
static uint32_t golden_odd_unknown(uint32_t j) {
  return inv_golden() * ((((uint32_t)OPEN + 1 + (j % 100000)) << 13) | 1u);
}

/* A table whose odd ids are its own (a client's: crpc__idmap_set_own): its own ids in sequence
 * cost one or two probes, and neither a peer naming odd ids solved against their unkeyed hash
 * nor a peer choosing its even ids against the keyed one makes any lookup long. */
static void own_ids_unkeyed_peer_ids_keyed(void **state) {
  (void)state;
  crpc__idmap m;
  crpc__idmap_init_key(&m, UINT64_C(0x9e3779b97f4a7c15), UINT64_C(0xbf58476d1ce4e5b9));
  crpc__idmap_set_own(&m, 1);
  cost own = measure(&m, seq_open, seq_unknown);
  cost own_attacked = measure(&m, seq_open, golden_odd_unknown);
  cost peer = measure(&m, old_open, old_unknown); /* even: the peer's, keyed */
  printf("# own ids: sequential %.2f/%zu, attacked %.2f/%zu; peer ids solved against the old "
         "hash %.2f/%zu\n", own.avg, own.max, own_attacked.avg, own_attacked.max, peer.avg,
         peer.max);
  assert_true(own.avg <= 2.0 && own.max <= 2);
  assert_true(own_attacked.avg <= 2.0 && own_attacked.max <= 2);
  assert_true(peer.avg <= 8.0 && peer.max <= 64);
  /* both kinds in one table: the peer's keyed ids among ours */
  static int dummy;
  for (uint32_t i = 0; i < OPEN / 2; i++) {
    assert_int_equal(crpc__idmap_put(&m, seq_open(i), &dummy), 0);
    assert_int_equal(crpc__idmap_put(&m, old_open(i), &dummy), 0);
  }
  size_t worst = 0;
  for (uint32_t j = 0; j < PROBES; j++) {
    size_t n = crpc__idmap_probes(&m, golden_odd_unknown(j));
    if (n > worst) worst = n;
  }
  printf("# mixed table, odd ids solved against the unkeyed hash: at most %zu probes\n", worst);
  assert_true(worst <= 64);
  crpc__idmap_free(&m);
}

/* Two tables get different keys (a peer that learnt one table's layout learnt nothing else). */
static void tables_get_their_own_keys(void **state) {
  (void)state;
  crpc__idmap a, b;
  crpc__idmap_init(&a);
  crpc__idmap_init(&b);
  assert_false(a.k0 == b.k0 && a.k1 == b.k1);
}

/* A map like any other: random puts, gets and deletes against a plain array of 1 << 14 ids
 * (churn makes backward-shift deletion move entries across runs and across the table's end). */
static void churn_matches_a_plain_array(void **state) {
  (void)state;
  enum { SPACE = 1 << 14, STEPS = 400000 };
  static char present[SPACE];
  static int vals[SPACE];
  crpc__idmap m;
  crpc__idmap_init_key(&m, 42, 43);
  uint64_t rng = 88172645463325252u;
  size_t count = 0;
  for (int s = 0; s < STEPS; s++) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    uint32_t k = (uint32_t)(rng % SPACE);
    uint32_t id = (k << 18) | 1; /* adversarial shape (1 mod 2^18), distinct for each k */
    int op = (int)((rng >> 32) % 3);
    if (op == 0 && !present[k]) {
      assert_int_equal(crpc__idmap_put(&m, id, &vals[k]), 0);
      present[k] = 1;
      count++;
    } else if (op == 1) {
      void *v = crpc__idmap_del(&m, id);
      assert_ptr_equal(v, present[k] ? &vals[k] : NULL);
      if (present[k]) count--;
      present[k] = 0;
    } else {
      assert_ptr_equal(crpc__idmap_get(&m, id), present[k] ? &vals[k] : NULL);
    }
    assert_int_equal(m.count, count);
  }
  uint32_t key;
  void *v;
  while ((v = crpc__idmap_pop(&m, &key)) != NULL) {
    uint32_t k = key >> 18;
    assert_true(present[k]);
    assert_ptr_equal(v, &vals[k]);
    present[k] = 0;
    count--;
  }
  assert_int_equal(count, 0);
  crpc__idmap_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(adversarial_ids_cost_like_sequential),
      cmocka_unit_test(tables_get_their_own_keys),
      cmocka_unit_test(own_ids_unkeyed_peer_ids_keyed),
      cmocka_unit_test(churn_matches_a_plain_array),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
