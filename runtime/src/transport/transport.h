/* A transport: one connected byte stream under a connection (TCP, a Unix socket; later TLS over
 * TCP). The connection (conn/) frames bytes; the transport only moves them, so a new kind of
 * byte stream is a new ops table and touches no connection or call code.
 *
 * Shape. A transport is a struct crpc__transport (below) embedded first in the implementation's
 * own struct, with a table of operations. The layer above (the transport's *user*: a connection,
 * or a transport stacked on this one) calls the operations and gets events through callbacks it
 * passes in, with t->data for its own pointer. The loop is libuv's and buffers are uv_buf_t
 * (libuv's iovec), so that the libuv implementation (stream.h) forwards them as they are. Who
 * creates a transport includes its implementation's header; who only uses one includes this.
 *
 * Contract, for users and implementations alike:
 *  - One thread: every operation is called, and every callback runs, on the loop's thread.
 *  - No callback runs from inside the operation that caused it: read_start delivers nothing
 *    before it returns, a write's and a close's completion run later from the loop (a transport
 *    already holding bytes, say TLS with plaintext decrypted ahead, delivers them from the loop
 *    too). A user may thus call an operation while its own state is half-updated.
 *  - Reading. read_start(t, alloc, read) asks for bytes until read_stop or close. Before each read
 *    alloc(t, buf) says where the bytes go; the memory is the user's (one buffer shared by many
 *    transports, or a decoder's own buffer for a large frame). Then read(t, n, buf) gets that
 *    buf back with n > 0 bytes at its start; or n == 0 (nothing this time); or n < 0: UV_EOF when
 *    the peer finished sending, UV_ENOBUFS when alloc gave no room, another libuv error when the
 *    stream failed, after which no more reads come (the user closes). The transport keeps no
 *    pointer into buf once read returns. Inside read the user may call read_stop, try_write,
 *    write and close; after read_stop or close no more alloc or read calls come, even for bytes
 *    already received (they wait for the next read_start, or are dropped by close). read_start
 *    may be called again after read_stop, also from a write's callback. Returns 0 or a libuv
 *    error.
 *  - pending(t): bytes a read would return now without waiting, 0 when none or unknown (TCP and
 *    Unix: FIONREAD). Only a hint for sizing the next buffer: a layered transport may count what
 *    it holds decoded and nothing of what is still encrypted.
 *  - try_write(t, bufs, n): writes what it can at once, in order, and returns the number of bytes
 *    taken (0 when none could be: the kernel's buffer is full) or a negative libuv error. Bytes
 *    taken are the transport's from then on (sent, or copied or encrypted into its own buffers):
 *    the caller may reuse or free their memory as soon as try_write returns (send_direct.c
 *    returns the caller's message at once). Not while a write is in progress (bytes would be
 *    reordered; the libuv implementation then takes nothing).
 *  - write(t, bufs, n, cb): writes all of bufs, taking as long as the peer needs, and returns 0
 *    or a negative libuv error (cb then never runs). cb(t, status) runs once, from the loop, when
 *    everything was taken (status 0) or the write failed (status < 0); a close cancels a write in
 *    progress, whose cb then runs with UV_ECANCELED (or its error) before close's cb. The bufs
 *    array may be a local; the memory it points to stays the caller's, unchanged and valid,
 *    until cb runs. At most one write in progress per transport.
 *  - close(t, cb): stops reading, cancels a write in progress and shuts the stream. Called once,
 *    in any state (connected or not), also from inside read or a write's cb (not from inside
 *    alloc). cb(t) (may be NULL) runs once, from the loop, after the cancelled write's cb; t->data
 *    is still the user's there, and the transport's memory is freed as soon as cb returns. No
 *    other operation may be called after close.
 *  - ref(t, on): whether this transport alone keeps the loop running (uv_ref / uv_unref).
 *  - Peer identity (crpc__transport_peer) is filled in when the transport becomes connected and
 *    stays readable until close completes, also after the peer has gone.
 *
 * Layering (TLS over TCP): a TLS transport is a crpc__transport whose implementation owns a
 * lower transport and is that transport's user (lower->data = the TLS transport). It reads
 * ciphertext from below through its own alloc/read callbacks and hands plaintext up through its
 * user's; its try_write encrypts what it takes into its own buffer and pushes that below (taken
 * is not sent: its write completes when the lower one has taken the ciphertext, maybe much
 * later); the handshake happens before the user sees the transport connected; its peer identity
 * starts as a copy of the lower one's with transport "tls" (certificate details on top); its fd
 * is the lower one's; its close closes the lower one and completes when that has. */
#ifndef CRPC_TRANSPORT_H
#define CRPC_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

typedef struct crpc__transport crpc__transport;

typedef void (*crpc__transport_alloc_cb)(crpc__transport *t, uv_buf_t *buf);
typedef void (*crpc__transport_read_cb)(crpc__transport *t, ssize_t n, const uv_buf_t *buf);
typedef void (*crpc__transport_write_cb)(crpc__transport *t, int status);
typedef void (*crpc__transport_close_cb)(crpc__transport *t);

/* The operations; their contract is above. */
typedef struct crpc__transport_ops {
  int (*read_start)(crpc__transport *t, crpc__transport_alloc_cb alloc,
                    crpc__transport_read_cb read);
  void (*read_stop)(crpc__transport *t);
  size_t (*pending)(crpc__transport *t);
  int (*try_write)(crpc__transport *t, const uv_buf_t *bufs, unsigned n);
  int (*write)(crpc__transport *t, const uv_buf_t *bufs, unsigned n, crpc__transport_write_cb cb);
  void (*close)(crpc__transport *t, crpc__transport_close_cb cb);
  void (*ref)(crpc__transport *t, int on);
} crpc__transport_ops;

/* Who is at the other end: what the next layers (TLS, peer-based authorisation) need. */
typedef struct crpc__peer {
  const char *transport; /* "tcp", "unix" (later "tls"): a static string */
  /* The peer's address in the endpoint form (transport/endpoint.h): "tcp://127.0.0.1:5000",
   * "tcp://[::1]:5000", "unix:/run/x.sock", "unix:@name"; "unix:" for an unnamed Unix socket (a
   * connecting client's, usually); "" when the system could not tell. */
  char addr[128];
  /* Unix sockets where the system says (SO_PEERCRED, Linux): the peer process's credentials as
   * they were when it connected (or listened). has_cred 0: unknown. */
  int has_cred;
  uid_t uid;
  gid_t gid;
  pid_t pid;
} crpc__peer;

struct crpc__transport {
  const crpc__transport_ops *ops;
  void *data;    /* the user's (the connection, or a transport stacked on this one) */
  int fd;        /* the OS socket underneath (a layered transport: its lower one's), -1: none */
  crpc__peer peer;
};

static inline const crpc__peer *crpc__transport_peer(const crpc__transport *t) { return &t->peer; }
/* The OS socket under t, or -1: for socket options only (reading or writing it directly would
 * bypass the transport). */
static inline int crpc__transport_fd(const crpc__transport *t) { return t->fd; }

#endif
