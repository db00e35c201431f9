/* A TCP relay on the test's loop that can reset every connection through it on demand.
 *
 * Each accepted connection is relayed to 127.0.0.1:upstream_port. chaos_proxy_reset_all() closes
 * every relayed pair with a TCP RST on both sides (SO_LINGER 0), as a middlebox or a peer crash
 * would. An upstream that refuses, or resets, takes its client connection down with a reset; an
 * orderly close (EOF) on one side is passed on as one after the queued bytes are written. */
#ifndef CHAOS_PROXY_H
#define CHAOS_PROXY_H

#include <stddef.h>

#include <uv.h>

typedef struct chaos_proxy chaos_proxy;

/* Listens on 127.0.0.1 (a free port, written to *port_out). 0 or a libuv error. */
int chaos_proxy_start(chaos_proxy **out, uv_loop_t *loop, int upstream_port, int *port_out);
/* Resets every relayed connection; returns how many pairs were reset. */
size_t chaos_proxy_reset_all(chaos_proxy *px);
/* Connections accepted so far. */
size_t chaos_proxy_accepted(const chaos_proxy *px);
/* Stops listening, resets every pair, and frees everything; cb runs once all handles are closed. */
void chaos_proxy_close(chaos_proxy *px, void (*cb)(void *ud), void *ud);

#endif
