/* A failing allocator for tests, in the spirit of nghttp2's malloc_wrapper, without any hook in
 * the library: the test executable is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,
 * so every call to those functions made by the statically linked crpc_testing objects (and the
 * generated code, and the test itself) goes through __wrap_malloc & co. here. Shared libraries
 * (libuv, protobuf-c, libc) are not affected.
 *
 * While armed, allocations are numbered from 1 and the N-th one fails (returns NULL, as malloc
 * does when out of memory); every other one is passed to the real allocator.
 *
 * Sides. Each thread has a side (FA_CLIENT, FA_SERVER), set with fa_set_side(); arming for one
 * side counts only the allocations made by threads currently on that side, so a test that runs
 * a client loop and a server loop on one thread can fail the N-th allocation of one of them by
 * switching the side as it runs each loop. FA_ANY counts every thread's allocations. */
#ifndef FAILMALLOC_H
#define FAILMALLOC_H

#include <stddef.h>

enum fa_side { FA_ANY = 0, FA_CLIENT = 1, FA_SERVER = 2 };

/* Fail the fail_at-th allocation of `side` from now on (0: count, fail none). Resets the count. */
void fa_arm(enum fa_side side, long fail_at);
/* Stop counting and failing. */
void fa_disarm(void);
/* The calling thread's side; returns the previous one. */
enum fa_side fa_set_side(enum fa_side side);
/* Allocations counted since fa_arm(). */
long fa_counted(void);
/* Whether the armed failure has happened. */
int fa_injected(void);
/* Called (from inside the failing allocation) when the armed failure happens, e.g. to print
 * where; NULL: nothing. It must not allocate through the wrappers. */
void fa_on_inject(void (*hook)(void));
/* Every allocation that went through the wrappers since the process started, armed or not
 * (to check that the wrapping applies at all). */
long fa_total(void);

#endif
