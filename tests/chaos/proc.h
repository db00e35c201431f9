/* A server child process driven from a libuv loop: spawned with uv_spawn, its
 * "listening on port PORT" line read from a pipe, signalled, and reaped, without blocking the
 * loop.
 *
 * Lifecycle: chaos_proc_spawn() → ready_cb(port) once the line arrives (not if the process dies
 * first) → exit_cb(status, term_signal) once the process has exited. After exit_cb returns the
 * object releases itself (its handles close on the loop); do not use it any more. */
#ifndef CHAOS_PROC_H
#define CHAOS_PROC_H

#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

typedef struct chaos_proc chaos_proc;

typedef struct chaos_proc_cbs {
  void (*ready)(chaos_proc *p, int port, void *ud);
  void (*exited)(chaos_proc *p, int64_t status, int term_signal, void *ud);
} chaos_proc_cbs;

/* Spawns argv[0] with argv (NULL-terminated); the child's stderr is the test's. 0 and *out, or a
 * libuv error (no callback will run). */
int chaos_proc_spawn(chaos_proc **out, uv_loop_t *loop, char **argv, const chaos_proc_cbs *cbs,
                     void *ud);
/* Sends signum; 0 or a libuv error. Only before exit_cb. */
int chaos_proc_signal(chaos_proc *p, int signum);
pid_t chaos_proc_pid(const chaos_proc *p);

#endif
