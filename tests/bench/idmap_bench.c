/* idmap-bench: nanoseconds per call-table lookup (runtime/src/base/idmap.c) for a hostile peer's
 * ids: 4,000 calls open with ids a peer chose, then 150,000 frames (CANCELs) for ids the table
 * does not hold, each a lookup. Sequential ids against ids = 1 mod 2^20 and ids solved against the
 * former fixed-multiplier hash. Prints one line per shape; no assertion (tests/unit/test_idmap.c
 * checks the probe counts). Uses only crpc__idmap_init/put/get/del, so that it also builds against
 * an older idmap.c for a before/after comparison. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "base/idmap.h"

#define OPEN 4000
#define FRAMES 150000
#define ROUNDS 20

static uint32_t inv_golden(void) {
  uint32_t a = UINT32_C(2654435761), x = a;
  for (int i = 0; i < 5; i++) x *= 2u - a * x;
  return x;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t ids_open[OPEN], ids_unknown[FRAMES];

static double run(const char *name) {
  static int dummy;
  double best = 1e30;
  for (int r = 0; r < ROUNDS; r++) {
    crpc__idmap m;
    crpc__idmap_init(&m);
    for (int i = 0; i < OPEN; i++) crpc__idmap_put(&m, ids_open[i], &dummy);
    uint64_t t0 = now_ns();
    size_t hits = 0;
    for (int j = 0; j < FRAMES; j++) hits += crpc__idmap_get(&m, ids_unknown[j]) != NULL;
    uint64_t t1 = now_ns();
    for (int i = 0; i < OPEN; i++) crpc__idmap_del(&m, ids_open[i]);
    crpc__idmap_free(&m);
    double ns = (double)(t1 - t0) / FRAMES;
    if (hits) ns = -1; /* cannot happen: the unknown ids are unknown */
    if (ns < best) best = ns;
  }
  printf("%-32s %8.1f ns per lookup of an unknown id (%d open, best of %d)\n", name, best, OPEN,
         ROUNDS);
  return best;
}

/* The common case: a few calls in progress (the table stays in L1), each looked up by id, put
 * and deleted as calls come and go: ns per call (one put, two gets, one del). */
static double run_churn(void) {
  static int dummy;
  enum { INFLIGHT = 64, CALLS = 2000000 };
  crpc__idmap m;
  crpc__idmap_init(&m);
  uint32_t id = 1;
  for (int i = 0; i < INFLIGHT; i++, id += 2) crpc__idmap_put(&m, id, &dummy);
  uint64_t t0 = now_ns();
  size_t hits = 0;
  for (int c = 0; c < CALLS; c++, id += 2) {
    uint32_t old = id - 2 * INFLIGHT;
    hits += crpc__idmap_get(&m, old) != NULL;
    hits += crpc__idmap_get(&m, old + 2) != NULL;
    crpc__idmap_del(&m, old);
    crpc__idmap_put(&m, id, &dummy);
  }
  uint64_t t1 = now_ns();
  crpc__idmap_free(&m);
  double ns = (double)(t1 - t0) / CALLS;
  printf("%-32s %8.1f ns per call (put + 2 gets + del, %d in flight; %zu hits)\n",
         "sequential ids, churn", ns, INFLIGHT, hits);
  return ns;
}

int main(int argc, char **argv) {
  if (argc > 1) { /* "churn": that shape alone, once (for instruction counts) */
    run_churn();
    return 0;
  }
  (void)argv;
  uint32_t inv = inv_golden();
  for (uint32_t i = 0; i < OPEN; i++) ids_open[i] = 2 * i + 1;
  for (uint32_t j = 0; j < FRAMES; j++) ids_unknown[j] = 2 * (OPEN + j) + 1;
  double seq = run("sequential ids");
  for (uint32_t i = 0; i < OPEN; i++) ids_open[i] = (i << 20) | 1;
  for (uint32_t j = 0; j < FRAMES; j++) ids_unknown[j] = ((OPEN + j % 96) << 20) | 1;
  double mod = run("ids = 1 mod 2^20");
  for (uint32_t i = 0; i < OPEN; i++) ids_open[i] = inv * ((i + 1) << 13);
  for (uint32_t j = 0; j < FRAMES; j++) ids_unknown[j] = inv * ((OPEN + 1 + j) << 13);
  double old = run("ids solved against the old hash");
  printf("adversarial / sequential: %.1fx and %.1fx\n", mod / seq, old / seq);
  double best = 1e30;
  for (int r = 0; r < 5; r++) {
    double ns = run_churn();
    if (ns < best) best = ns;
  }
  printf("churn: best %.1f ns per call\n", best);
  return 0;
}
