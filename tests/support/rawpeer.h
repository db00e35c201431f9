/* The raw peer: a non-blocking socket that speaks runtime/PROTOCOL.md byte by byte through the
 * codec of runtime/src/wire/frame.h, for what a well-behaved crpc peer never sends (hand-made
 * frames, protocol violations, a peer that stops reading or closes mid-call). The test pumps it
 * (ts_raw_pump, or a loop wait whose predicate pumps): it sends what is queued and reads
 * everything available. A fake server (ts_fake) accepts connections on 127.0.0.1 and hands each
 * to the test as a ts_raw. */
#ifndef CRPC_TEST_SUPPORT_RAWPEER_H
#define CRPC_TEST_SUPPORT_RAWPEER_H

#include <stddef.h>
#include <stdint.h>

#include "wire/frame.h"

typedef struct ts_raw {
  int fd;
  uint8_t *in;   /* everything received */
  size_t in_len, in_cap;
  uint8_t *out;  /* waiting to be sent */
  size_t out_len, out_cap;
  int eof;       /* peer closed (or reset) */
  int reading;   /* 0: pump does not read (a peer that does not read) */
} ts_raw;

/* Connects (blocking connect; the listen backlog takes it) to 127.0.0.1:port. rcvbuf > 0 sets
 * SO_RCVBUF first. The socket is then non-blocking; reading is on. */
void ts_raw_connect(ts_raw *r, int port, int rcvbuf);
/* The same for a crpc endpoint: "tcp://HOST:PORT" (IPv4 or [IPv6] literal), "unix:PATH" or
 * "unix:@NAME" (abstract). Returns 0, or the connect error (-errno, e.g. -ECONNREFUSED) without
 * failing the test; on error r is left closed (fd -1). */
int ts_raw_connect_endpoint(ts_raw *r, const char *endpoint, int rcvbuf);
void ts_raw_from_fd(ts_raw *r, int fd); /* makes fd non-blocking; r owns it */

/* Socket-level helpers for peers that drive their own descriptor.
 * ts_connect_fd: a blocking socket connected to a crpc endpoint (as ts_raw_connect_endpoint;
 * TCP_NODELAY on TCP), or -errno. ts_send_all: sends all n bytes on a blocking socket, failing
 * the test otherwise. ts_listen_fd: a non-blocking listening socket on 127.0.0.1 (any port, in
 * *port); rcvbuf > 0 sets SO_RCVBUF, which accepted sockets inherit. */
int ts_connect_fd(const char *endpoint, int rcvbuf);
void ts_send_all(int fd, const void *data, size_t n);
int ts_listen_fd(int rcvbuf, int *port);
void ts_raw_send(ts_raw *r, const void *data, size_t len);  /* queued; pump sends */
void ts_raw_pump(ts_raw *r);                                 /* send what it can, read all */
void ts_raw_close(ts_raw *r);
int ts_pred_raw_eof(void *r /* ts_raw */);                   /* pumps, then r->eof */

void ts_raw_send_preface(ts_raw *r);
/* Queues a frame with the given header fields and payload. */
void ts_raw_send_frame(ts_raw *r, uint8_t type, uint8_t flags, uint32_t id, const void *payload,
                        size_t len);
/* Queues a unary CALL (END|MESSAGE) with no metadata. */
void ts_raw_send_call(ts_raw *r, uint32_t id, const char *method, uint32_t timeout_ms,
                       const void *msg, size_t msg_len);
/* Queues a STATUS. msg may be NULL (no MESSAGE flag). */
void ts_raw_send_status(ts_raw *r, uint32_t id, uint32_t code, const char *text,
                         const void *msg, size_t msg_len);
void ts_raw_send_goaway(ts_raw *r, uint32_t last_id, uint32_t code, const char *text);

/* Frame reader over r->in: *pos starts at 0 (the preface is skipped first). Returns 1 and the
 * frame (payload points into r->in, valid until the next pump) when a whole frame is there, else
 * 0. Asserts the peer's preface is right. */
int ts_raw_next(ts_raw *r, size_t *pos, crpc__frame *f);
/* Pumps r, then looks for a STATUS of call `id` among what it has read: 1 with *code set when
 * there is one, else 0. */
int ts_raw_find_status(ts_raw *r, uint32_t id, uint32_t *code);

/* A fake server: a listening socket on 127.0.0.1 that the test drives by hand. */
#define TS_FAKE_MAX_CONNS 8
typedef struct ts_fake {
  int fd;
  int port;
  int naccepted;
  ts_raw conns[TS_FAKE_MAX_CONNS];
  size_t pos[TS_FAKE_MAX_CONNS];
} ts_fake;
void ts_fake_open(ts_fake *f);
void ts_fake_pump(ts_fake *f); /* accepts, then pumps every connection */
void ts_fake_close(ts_fake *f);

#endif
