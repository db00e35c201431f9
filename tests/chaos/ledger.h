/* The server-side ledger: one run counter per call id, in a file that the test and every server
 * process map shared. A server increments the counter of each call its handler receives; the
 * counters live in the page cache, so what a server ran survives its SIGKILL.
 *
 * The test creates the ledger (chaos_ledger_create) before it starts the first server; servers
 * open it (chaos_ledger_open). Counters saturate at 255. */
#ifndef CHAOS_LEDGER_H
#define CHAOS_LEDGER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct chaos_ledger_hdr {
  uint32_t magic;
  uint32_t n;                    /* counters that follow: ids 0 .. n-1 */
  atomic_uint runs_total;        /* handler invocations, all servers together */
  atomic_uint out_of_range;      /* invocations with an id >= n (never expected) */
} chaos_ledger_hdr;

typedef struct chaos_ledger {
  chaos_ledger_hdr *hdr;
  atomic_uchar *runs; /* n counters */
  size_t map_len;
} chaos_ledger;

/* Creates (truncates) the file at path with n zeroed counters and maps it. 0 or -errno. */
int chaos_ledger_create(chaos_ledger *l, const char *path, uint32_t n);
/* Maps an existing ledger. 0 or -errno (-EINVAL: not a ledger). */
int chaos_ledger_open(chaos_ledger *l, const char *path);
/* Counts one run of call `id`. Async-signal-safe, lock-free. */
void chaos_ledger_record(chaos_ledger *l, uint64_t id);
/* How many times call `id` ran (0 for an id outside the ledger). */
unsigned chaos_ledger_runs(const chaos_ledger *l, uint64_t id);
void chaos_ledger_close(chaos_ledger *l);

#endif
