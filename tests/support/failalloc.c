#include "failalloc.h"

#include <stdatomic.h>
#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static atomic_int armed;
static atomic_int armed_side;
static atomic_long fail_at;
static atomic_long counted;
static atomic_int injected;
static atomic_long total;
static _Thread_local int my_side = FA_CLIENT;
static void (*inject_hook)(void);

void fa_on_inject(void (*hook)(void)) { inject_hook = hook; }

void fa_arm(enum fa_side side, long n) {
  atomic_store(&armed, 0);
  atomic_store(&counted, 0);
  atomic_store(&injected, 0);
  atomic_store(&fail_at, n);
  atomic_store(&armed_side, (int)side);
  atomic_store(&armed, 1);
}

void fa_disarm(void) { atomic_store(&armed, 0); }

enum fa_side fa_set_side(enum fa_side side) {
  int old = my_side;
  my_side = (int)side;
  return (enum fa_side)old;
}

long fa_counted(void) { return atomic_load(&counted); }
int fa_injected(void) { return atomic_load(&injected); }
long fa_total(void) { return atomic_load(&total); }

/* 1 when this allocation is the one to fail. */
static int should_fail(void) {
  atomic_fetch_add(&total, 1);
  if (!atomic_load(&armed)) return 0;
  int side = atomic_load(&armed_side);
  if (side != FA_ANY && side != my_side) return 0;
  long n = atomic_fetch_add(&counted, 1) + 1;
  if (n != atomic_load(&fail_at)) return 0;
  atomic_store(&injected, 1);
  if (inject_hook) inject_hook();
  return 1;
}

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }

void *__wrap_calloc(size_t n, size_t size) { return should_fail() ? NULL : __real_calloc(n, size); }

void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }
