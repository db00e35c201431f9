/* Raw peers of the hostile test: loopback sockets that speak runtime/PROTOCOL.md through the codec
 * of frame.h. Nothing here allocates: frames are written into the caller's buffers and what a
 * peer receives is kept in a fixed buffer of its own, so that the test's memory stays still while
 * the server's is measured. */
#ifndef HOSTILE_PEERS_H
#define HOSTILE_PEERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rawpeer.h" /* the codec of wire/frame.h, and the socket helpers */

/* Connects to 127.0.0.1:port (blocking: the listen backlog takes it before the server accepts),
 * then makes the socket non-blocking with TCP_NODELAY. rcvbuf > 0 sets SO_RCVBUF before the
 * connect. Fails the test when it cannot. */
int hp_connect(int port, int rcvbuf);

/* One non-blocking send: bytes sent (0: the socket buffer is full), or -1 once the peer is gone. */
ssize_t hp_send(int fd, const void *data, size_t len);

/* What a peer received: the first HP_IN_CAP bytes are kept, the rest only counted. */
#define HP_IN_CAP 1024
typedef struct hp_inbox {
  uint8_t data[HP_IN_CAP];
  size_t len;
  size_t dropped;
} hp_inbox;

/* Reads everything available into box. Returns 1 once the peer closed (EOF or reset), else 0. */
int hp_drain(int fd, hp_inbox *box);

/* Writes the preface; returns CRPC__PREFACE_LEN. */
size_t hp_preface(uint8_t *out);
/* Writes a unary CALL frame (END|MESSAGE, no metadata, no timeout) for method with the encoded
 * request msg; returns its size, or 0 when it does not fit in cap. */
size_t hp_call(uint8_t *out, size_t cap, uint32_t id, const char *method, const uint8_t *msg,
               size_t msg_len);
/* Writes a PING (no ACK) with 8 opaque bytes; returns its size. */
size_t hp_ping(uint8_t *out, uint64_t opaque);

/* What a server sent a peer, from its inbox: preface first, then frames. */
typedef struct hp_seen {
  int preface_ok;
  int frames;
  int statuses;       /* STATUS frames: calls served */
  int ping_acks;
  int goaways;
  uint32_t goaway_code; /* of the last GOAWAY */
  int truncated;        /* the inbox ended inside a frame */
} hp_seen;
void hp_scan(const hp_inbox *box, hp_seen *seen);

#endif
