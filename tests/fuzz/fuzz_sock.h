/* Plain-socket helpers of the connection fuzzers: the harness plays the peer with ordinary
 * non-blocking Unix-domain sockets, while crpc runs on a libuv loop in the same thread. */
#ifndef CRPC_FUZZ_SOCK_H
#define CRPC_FUZZ_SOCK_H

#include <stddef.h>
#include <stdint.h>

/* Makes a fresh private directory under $TMPDIR (or /tmp) and writes "<dir>/s.sock" into path.
 * Returns 0 or -1. */
int fs_socket_path(char *dir, size_t dir_len, char *path, size_t path_len);
/* Removes what fs_socket_path() made. */
void fs_socket_path_remove(const char *dir, const char *path);

/* A connected, non-blocking client socket, or -1. */
int fs_connect(const char *path);
/* A listening, non-blocking socket, or -1. */
int fs_listen(const char *path);
/* accept() without blocking: a non-blocking connected socket, or -1 when none is waiting. */
int fs_accept(int lfd);

/* Writes what the socket takes now. Returns bytes written (0 when full), or -1 when the peer is
 * gone (EPIPE, ECONNRESET). */
long fs_write_some(int fd, const uint8_t *p, size_t n);
/* Reads and discards what is there. Returns 1 when the peer closed (EOF or reset), else 0.
 * *got (may be NULL) is increased by the bytes read. */
int fs_drain(int fd, size_t *got);

/* SIGPIPE: libcrpc writes to sockets with write(2), so a peer that closes while crpc writes
 * raises SIGPIPE, which kills a process that has not ignored it (as servers commonly do; see
 * README.md, finding F1). By default the connection targets ignore it, like such a server. With
 * CRPC_FUZZ_SIGPIPE=abort in the environment they abort instead, so that libFuzzer saves the input
 * that made crpc write to a closed peer. CRPC_FUZZ_SIGPIPE=default keeps the default disposition,
 * as an application that never thought of SIGPIPE would: crpc itself must then keep the process
 * alive (it ignores SIGPIPE when it finds the default). */
void fs_sigpipe_policy(void);

#endif
