/* Large messages written from the sender's own memory.
 *
 * Packing a message copies its bytes and strings into the output buffer, and the kernel copies
 * them again. For a 1 MiB payload the first copy is a quarter of the work of a round trip, so a
 * message of CRPC__DIRECT_MIN bytes or more is packed through a ProtobufCBuffer that copies only
 * the small pieces (tags, lengths, scalars) and remembers where the large ones live; the frame is
 * then handed to the kernel at once with one writev that points into the caller's message.
 *
 * The caller's message may be freed as soon as the send function returns, so nothing may keep
 * pointing into it: what the kernel did not take at once is copied into the output buffer before
 * returning (the region was reserved beforehand, so that copy cannot fail) and goes out with the
 * next flush, exactly as if the message had been packed the ordinary way.
 *
 * Only when nothing is being written already (a transport write in progress means frames are
 * queued ahead of this one) and the connection is open; otherwise the ordinary path packs the
 * message. The transport's try_write contract (transport/transport.h) is what makes this safe:
 * the bytes it takes are its own, so the message may go as soon as we return. */
#include <limits.h>
#include <string.h>

#include "conn/conn.h"

/* Pieces appended by protobuf-c from this size on are referenced rather than copied. */
#define CRPC__DIRECT_PIECE 4096
/* At most this many referenced pieces per message; later large pieces are copied. */
#define CRPC__DIRECT_MAX_REFS 16

typedef struct direct_ref {
  size_t off; /* where the piece belongs in the output buffer */
  size_t len;
  const uint8_t *src;
} direct_ref;

typedef struct direct_buf {
  ProtobufCBuffer base; /* first: protobuf-c hands this pointer back to append */
  uint8_t *start;       /* the output buffer's data */
  uint8_t *at;          /* where the next piece goes */
  uint8_t *end;         /* end of the reserved region */
  direct_ref refs[CRPC__DIRECT_MAX_REFS];
  unsigned nrefs;
  int overrun; /* protobuf-c appended more than its own packed size: never expected */
} direct_buf;

static void direct_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data) {
  direct_buf *b = (direct_buf *)buffer;
  if (len > (size_t)(b->end - b->at)) {
    b->overrun = 1;
    return;
  }
  if (len >= CRPC__DIRECT_PIECE && b->nrefs < CRPC__DIRECT_MAX_REFS) {
    b->refs[b->nrefs++] = (direct_ref){(size_t)(b->at - b->start), len, data};
  } else if (len) {
    memcpy(b->at, data, len);
  }
  b->at += len;
}

int crpc__conn_send_direct(crpc__conn *c, size_t head, const ProtobufCMessage *msg, size_t len) {
  /* Once the socket was found full this turn, trying again would only move the queue again. */
  if (c->state != CRPC__CONN_OPEN || !c->transport || c->writing || c->early_blocked)
    return 0;
  /* The frame was reserved by the caller: out.data + out.len + head is where the message goes. */
  size_t total = c->out.len + head + len;
  if (total > INT_MAX) return 0; /* try_write reports an int */
  direct_buf b = {.base = {.append = direct_append}};
  b.start = c->out.data;
  b.at = c->out.data + c->out.len + head;
  b.end = b.at + len;
  protobuf_c_message_pack_to_buffer(msg, &b.base);
  if (b.overrun || b.at != b.end) {
    /* protobuf-c disagreed with its own get_packed_size: let the ordinary path pack it. */
    return 0;
  }

  /* One writev: the buffered bytes between the referenced pieces, and the pieces themselves. */
  uv_buf_t iov[2 * CRPC__DIRECT_MAX_REFS + 1];
  unsigned n = 0;
  size_t from = 0;
  for (unsigned i = 0; i < b.nrefs; i++) {
    if (b.refs[i].off > from)
      iov[n++] = uv_buf_init((char *)b.start + from, (unsigned)(b.refs[i].off - from));
    iov[n++] = uv_buf_init((char *)(uintptr_t)b.refs[i].src, (unsigned)b.refs[i].len);
    from = b.refs[i].off + b.refs[i].len;
  }
  if (total > from) iov[n++] = uv_buf_init((char *)b.start + from, (unsigned)(total - from));
  int w = c->transport->ops->try_write(c->transport, iov, n);
  size_t sent = w > 0 ? (size_t)w : 0; /* errors: the flush retries the write and reports them */
  if (sent < total) c->early_blocked = 1;
  if (sent) c->last_write = uv_now(c->ctx->loop);

  /* Whatever the kernel did not take moves to the front of the output buffer, referenced pieces
   * copied from the message now (it is the caller's again once we return). */
  size_t dst = 0, pos = 0;
  for (unsigned i = 0; i < n; i++) {
    size_t blen = iov[i].len;
    if (pos + blen > sent) {
      size_t skip = sent > pos ? sent - pos : 0;
      memmove(b.start + dst, iov[i].base + skip, blen - skip);
      dst += blen - skip;
    }
    pos += blen;
  }
  c->out.len = dst;
  crpc__conn_commit(c, 0); /* schedules the flush (or the after-write checks when all went) */
  return 1;
}
