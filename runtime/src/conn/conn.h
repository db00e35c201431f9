/* One connection, either side: socket, read path (decoder), write path (coalescing buffer), and
 * the table of calls in progress on it. The same code serves channels (connecting side, odd call
 * ids) and servers (accepting side, even ids), so that either peer can start calls.
 *
 * Lifecycle: crpc__conn_new() -> (the owner connects or accepts a transport) crpc__conn_attach()
 * -> ... -> crpc__conn_close(): every call still tracked is completed at once (client calls with
 * the given status, server calls marked cancelled), the transport is closed, and the connection's
 * memory is released later from the loop, after which the owner's on_closed hook runs. The
 * connection reaches the socket only through the transport's operations (transport/transport.h). */
#ifndef CRPC_CONN_H
#define CRPC_CONN_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "crpc/status.h"
#include "wire/frame.h"
#include "base/idmap.h"
#include "base/list.h"
#include "base/outbuf.h"
#include "transport/transport.h"

typedef struct crpc__conn crpc__conn;
typedef struct crpc__io_ctx crpc__io_ctx;

/* A stream writer refused because its connection's output is over MAX_WRITE_BUFFER (embedded in
 * the stream). It waits in the connection's list until the output drains to half the cap; then
 * wake runs (once; a writer refused again waits again, at the back). */
typedef struct crpc__wwait {
  crpc__list link; /* in the connection's wwaiters while waiting; unlinked otherwise */
  void (*wake)(struct crpc__wwait *w);
} crpc__wwait;

/* ---- Calls, as the connection sees them --------------------------------------------------------
 * The connection knows a call only by this handle, which the call core embeds (call/core.h), and
 * hands every frame of a call up through the handle's table of events: it names no client or
 * server code, and tells the two apart only where the protocol does (a STATUS may only answer a
 * call we started, a CALL only start one of the peer's). Which table a call has decides what
 * happens to its frames, so calls started by either peer need nothing more of the connection.
 *
 * Events run on the loop thread from inside the read callback; a callee may send frames, untrack
 * calls (this one or others) and close the connection. The call is still tracked during
 * on_message, on_half_close and on_window, and already untracked during on_status, on_cancel and
 * on_end. */
typedef struct crpc__conn_call crpc__conn_call;
typedef struct crpc__call_events {
  /* The STATUS that ends a call we started; f is the frame (its message may be split, see
   * crpc__decoder_split), dec the decoder delivering it. */
  void (*on_status)(crpc__conn_call *cc, const crpc__status_hdr *st, const crpc__frame *f,
                    crpc__decoder *dec);
  /* A MESSAGE frame of the call (f->oversized: larger than MAX_RECV_MESSAGE_SIZE; no payload). */
  void (*on_message)(crpc__conn_call *cc, const crpc__frame *f);
  /* The peer ended its sending side (HALF_CLOSE); NULL: the frame is ignored for this call. */
  void (*on_half_close)(crpc__conn_call *cc);
  /* The peer granted inc more bytes of window (WINDOW, already validated). */
  void (*on_window)(crpc__conn_call *cc, uint32_t inc);
  /* The peer cancelled a call it started (CANCEL). */
  void (*on_cancel)(crpc__conn *c, crpc__conn_call *cc);
  /* The connection ended the call: it is going away, or a frame of the call broke a limit or
   * the protocol. code and why say so (why is the connection's text; copy it to keep it). */
  void (*on_end)(crpc__conn_call *cc, crpc_code code, const char *why);
} crpc__call_events;
struct crpc__conn_call {
  const crpc__call_events *ev;
};

/* Hooks of the connection's owner. */
typedef struct crpc__conn_ops {
  /* A validated CALL frame arrived (hdr decoded, id checked). NULL: answer UNIMPLEMENTED. */
  void (*on_call)(crpc__conn *c, const crpc__frame *f, const crpc__call_hdr *hdr);
  /* The peer sent GOAWAY: it serves no call above last_id. */
  void (*on_goaway)(crpc__conn *c, uint32_t last_id, uint32_t code);
  /* The connection is gone; its memory is released right after this returns (the owner lets
   * go of its held calls here: see `held`). */
  void (*on_closed)(crpc__conn *c);
  /* A large frame is arriving and its first `have` bytes (header included) are in hand: where to
   * split it (crpc__decoder_split), or 0 not to. NULL: never. */
  size_t (*split_at)(crpc__conn *c, const uint8_t *unit, size_t have);
} crpc__conn_ops;

/* Per-owner state shared by its connections: they all run on one loop and one thread. */
struct crpc__io_ctx {
  uv_loop_t *loop;
  const crpc__conn_ops *ops;
  void *owner;
  uint32_t max_recv;  /* MAX_RECV_MESSAGE_SIZE */
  uint32_t max_send;  /* MAX_SEND_MESSAGE_SIZE */
  size_t max_write;   /* MAX_WRITE_BUFFER: a server pauses reading while more is queued */
  uint64_t min_ping_interval; /* server: MIN_PING_INTERVAL_MS (0: any rate) */
  uint8_t *rbuf;      /* one read buffer for every connection: reads are processed at once */
  uv_prepare_t flusher; /* flushes the connections written to in this loop turn, reaps closed ones */
  crpc__list dirty;     /* connections with output to flush */
  crpc__list reap;      /* connections closed without a stream, to release */
  int flusher_on;
  int batch;            /* > 0: output is flushed when the batch ends, not in the prepare phase */
  /* Where the connections' decoders count what they did with large frames (NULL: nowhere). Set
   * before the first connection is made; tests use it. */
  crpc__split_stats *split_stats;
};

enum crpc__conn_state { CRPC__CONN_NEW, CRPC__CONN_OPEN, CRPC__CONN_CLOSING };

struct crpc__conn {
  crpc__io_ctx *ctx;
  crpc__transport *transport; /* the byte stream (its data is c), NULL until attached */
  int state;           /* enum crpc__conn_state */
  int is_client;       /* connecting side: starts odd call ids */
  char *label;         /* endpoint for messages ("tcp://127.0.0.1:5000"); the connection's own copy
                          (a listener that closes first must not take it along) */
  crpc__decoder dec;
  crpc__idmap calls;   /* id -> crpc__conn_call of each call in progress, either side's */
  uint32_t next_id;    /* next id we start a call with; 0 once exhausted */
  uint32_t last_peer_id; /* highest call id the peer started */
  uint32_t goaway_last;  /* peer's GOAWAY last id (valid when got_goaway) */
  int got_goaway;
  uint32_t sent_goaway_last; /* our GOAWAY: peer calls above it are refused (when sent_goaway) */
  int sent_goaway;
  int close_when_flushed;    /* close once everything queued has been written */
  int read_paused;           /* reading stopped: too much output queued for this peer */
  int direct_read;           /* the pending read goes into the decoder's buffer */
  /* Times (loop ms) for the owner's periodic checks: handshake, idle, stall, keepalive. */
  uint64_t created_at, last_read, partial_since, ping_sent_at, last_ping_at;
  uint64_t last_write; /* when the peer last took some of our output */
  unsigned frames_in;        /* frames received: a stalled frame is one with none completing */
  unsigned ping_strikes;
  crpc__outbuf out;    /* frames waiting for the next flush */
  crpc__outbuf wout;   /* frames handed to the transport's write */
  int writing;         /* a transport write is in progress */
  int early_blocked;   /* the socket was found full this turn: no early or direct write until
                          the flush */
  /* Calls the wire has forgotten (CANCEL, deadline) but their owner still holds (a server handler
   * that has not finished): they keep counting against MAX_CALLS_PER_CONN, or CALL+CANCEL pairs
   * would pile up without bound. The owner links and unlinks them, and lets go of them all in
   * its on_closed hook. */
  crpc__list held;
  size_t nheld;
  crpc__list dirty_link;
  crpc__list owner_link; /* for the owner's list of connections */
  crpc__list wwaiters;   /* stream writers waiting for the output to drain (crpc__wwait), oldest
                            first */
  int waking;            /* wwaiters are being woken */
  /* Server side: the method of the previous call (a connection mostly calls the same few), valid
   * while the registry's generation is unchanged. */
  const void *last_method;
  unsigned last_method_gen;
};

/* The preface is queued at once: it goes out with the first flush after attach. label is
 * copied. */
crpc__conn *crpc__conn_new(crpc__io_ctx *ctx, int is_client, const char *label);
/* Takes ownership of a connected transport (t->data is set to c; the connection closes it) and
 * starts reading and writing. Returns 0 or a libuv error (the caller then closes the connection,
 * which closes t). */
int crpc__conn_attach(crpc__conn *c, crpc__transport *t);
/* See the lifecycle above. code/why describe the failure for client calls (why is copied).
 * Safe to call more than once and from inside callbacks of this connection. */
void crpc__conn_close(crpc__conn *c, crpc_code code, const char *why);
/* Sends GOAWAY(code, text) best-effort, then closes with UNAVAILABLE. */
void crpc__conn_abort(crpc__conn *c, uint32_t goaway_code, const char *why);

/* Queues GOAWAY(last_id = highest peer call id seen, code, text): the peer's later calls are
 * refused UNAVAILABLE without running. 0 or CRPC_ENOMEM. */
int crpc__conn_send_goaway(crpc__conn *c, uint32_t code, const char *text);
/* Closes the connection once what is queued has been written (at once when nothing is). */
void crpc__conn_close_when_flushed(crpc__conn *c);
/* Queues a PING (keepalive). */
int crpc__conn_send_ping(crpc__conn *c);
/* 1 while the decoder holds a partial frame. */
static inline int crpc__conn_partial(const crpc__conn *c) { return c->dec.len > 0 && !c->dec.paused; }

/* Gives back the read and write buffers of a connection quiet for a second (they are kept
 * between messages while it is busy). The owner calls it periodically. */
void crpc__conn_trim_idle(crpc__conn *c, uint64_t now);
/* 1 while the connection holds buffers worth trimming. */
int crpc__conn_holds_buffers(const crpc__conn *c);

/* Bytes of output queued and not yet taken by the kernel. */
size_t crpc__conn_queued(const crpc__conn *c);
/* Stream writes (either side) go through this: 1 when the write must be refused with
 * CRPC_EAGAIN because more than MAX_WRITE_BUFFER is queued for the peer, or other writers are
 * already waiting for it to drain (they go first). w is then queued to be woken once the output
 * has drained to half the cap (it keeps its place when it waits already). 0: write. */
int crpc__conn_write_blocked(crpc__conn *c, crpc__wwait *w);
/* Stops waiting (the stream is going away); harmless when not waiting. */
static inline void crpc__wwait_cancel(crpc__wwait *w) {
  if (w->link.next) crpc__list_remove(&w->link);
}
/* Output: reserve n bytes, write a frame there, commit. Commit schedules a flush in this loop
 * turn. reserve returns NULL when out of memory. */
uint8_t *crpc__conn_reserve(crpc__conn *c, size_t n);
void crpc__conn_commit(crpc__conn *c, size_t n);
/* Finishes a frame reserved with crpc__conn_reserve(c, head + len) whose first head bytes are
 * written: packs msg (len = its packed size; NULL: no message) after them and commits. Large
 * messages go to the socket at once from msg's own memory (send_direct.c); either way msg is
 * the caller's again on return. */
void crpc__conn_commit_message(crpc__conn *c, size_t head, const ProtobufCMessage *msg,
                               size_t len);
/* Messages from this size on take the direct path: below it the extra writev bookkeeping costs
 * more than the copy it saves. */
#define CRPC__DIRECT_MIN 65536
/* The direct path of crpc__conn_commit_message: 1 when it sent (or queued) the frame, 0 when the
 * ordinary path must (connection busy writing or not open). len >= CRPC__DIRECT_MIN. */
int crpc__conn_send_direct(crpc__conn *c, size_t head, const ProtobufCMessage *msg, size_t len);
/* Queues a STATUS frame without message; 0 or CRPC_ENOMEM. */
int crpc__conn_send_status(crpc__conn *c, uint32_t id, crpc_code code, const char *text);
/* Queues WINDOW(id, inc) when inc > 0 and the connection is usable (best effort: without it
 * the peer stalls until the deadline or a cancel). */
void crpc__conn_send_window(crpc__conn *c, uint32_t id, uint32_t inc);
/* Queues MESSAGE(id) carrying msg (len = its packed size). 0 or CRPC_ENOMEM. */
int crpc__conn_send_message(crpc__conn *c, uint32_t id, const ProtobufCMessage *msg, size_t len);
/* Queues a frame with an empty payload (CANCEL, HALF_CLOSE); 0 or CRPC_ENOMEM. */
int crpc__conn_send_empty(crpc__conn *c, uint8_t type, uint32_t id);

/* Calls in progress. */
int crpc__conn_track(crpc__conn *c, uint32_t id, crpc__conn_call *cc); /* 0 or CRPC_ENOMEM */
/* Forgets call id; returns its handle, or NULL when it was not tracked (any more). */
crpc__conn_call *crpc__conn_untrack(crpc__conn *c, uint32_t id);
/* The call tracked as id, or NULL. */
static inline crpc__conn_call *crpc__conn_find(crpc__conn *c, uint32_t id) {
  return (crpc__conn_call *)crpc__idmap_get(&c->calls, id);
}
/* Next id of ours, or 0 when this connection has used them all. */
uint32_t crpc__conn_next_id(crpc__conn *c);
/* 1 when id belongs to a call we started. */
static inline int crpc__conn_is_ours(const crpc__conn *c, uint32_t id) {
  return (int)(id & 1u) == c->is_client;
}

/* The owner's shared state. */
void crpc__io_ctx_init(crpc__io_ctx *ctx, uv_loop_t *loop, const crpc__conn_ops *ops,
                       void *owner);
/* Starts the flusher handle; 0 or a libuv error. */
int crpc__io_ctx_start(crpc__io_ctx *ctx);
/* Closes the flusher handle (cb when done) and frees the read buffer. Connections must be gone. */
void crpc__io_ctx_close(crpc__io_ctx *ctx, uv_close_cb cb);
/* A batch of work whose output is written as soon as it ends (loop thread): a read callback's
 * answers, a blocking leader's call. Frames committed meanwhile collect as usual and go out in
 * one write per connection at crpc__io_batch_end, which spares the loop a prepare-phase round
 * and the answer the rest of the loop turn. Output committed outside a batch is flushed in the
 * prepare phase (many callbacks of one turn coalesce). Batches nest; the outermost end flushes. */
void crpc__io_batch_begin(crpc__io_ctx *ctx);
/* Writes what is queued now instead of in the next prepare phase (loop thread): for whoever
 * stops running a loop that may not run again soon. */
void crpc__io_flush(crpc__io_ctx *ctx);
void crpc__io_batch_end(crpc__io_ctx *ctx);

#endif
