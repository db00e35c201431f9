/* The call core: what every call has, whichever peer started it and whatever its shape — its
 * place on a connection, its state, which directions have ended, its flow-control windows, its
 * deadline, its arena, and the one rule for when it is freed. Client calls (client/call.h) and
 * server calls (server/call.h) embed a crpc__core; a unary call is the shape with one message
 * each way.
 *
 * ---- States ---------------------------------------------------------------------------------
 *
 *   IDLE ──open──► OPEN ──off_wire──► CLOSED
 *     │              │                   │
 *     └─────────────►┴──────complete────►┴──► DONE ──(last reference)──► released
 *
 *   IDLE    set up, not on a connection: being started, or refused before it was sent.
 *   OPEN    tracked on a connection (crpc__core_open): its frames reach it through the
 *           connection's event table (conn/conn.h). The shut bits say which directions ended.
 *   CLOSED  the wire is done with it (STATUS received but not yet delivered, CANCEL, deadline,
 *           connection gone) while the application still has it: a server handler that has not
 *           finished, a client stream whose status waits behind unread messages. Nothing more
 *           is sent or received for it.
 *   DONE    complete: the client's application was given the outcome, or the server's handler
 *           finished it. Final; nothing the application does changes it any more.
 *
 * Only these transitions happen (crpc__core_set_state asserts it; the sanitizer builds of the
 * test suite keep assertions on): IDLE→OPEN, IDLE→DONE, OPEN→CLOSED, OPEN→DONE, CLOSED→DONE.
 *
 * Shut bits (independent of the state while OPEN): CRPC__SHUT_SEND once our side sent its last
 * message (a unary request, a stream's HALF_CLOSE or END flag); CRPC__SHUT_RECV once the peer's
 * side ended (HALF_CLOSE or END received, or the STATUS that ends the call).
 *
 * ---- Lifetime: one rule --------------------------------------------------------------------
 *
 * A call is freed when its reference count drops to zero, and only then. It starts with one
 * reference, the owner's, dropped once when the call is complete (client: after the outcome was
 * handed over, or by crpc_stream_finish_wait; server: when the handler finishes it). Every user
 * callback of the call runs between crpc__core_enter and crpc__core_leave, which hold a
 * reference: a call completed from inside its own callback stays valid until that callback
 * returns, and is freed as it returns. The caller of crpc__core_leave must not touch the call
 * when it returns 1. in_cb counts the callbacks running, so that deliveries are never nested
 * inside one (they wait until it returns).
 *
 * Loop thread only; no locks. */
#ifndef CRPC_CALL_CORE_H
#define CRPC_CALL_CORE_H

#include <assert.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/dlheap.h"
#include "base/list.h"
#include "call/flow.h"
#include "conn/conn.h"

enum crpc__call_state {
  CRPC__CALL_IDLE,
  CRPC__CALL_OPEN,
  CRPC__CALL_CLOSED,
  CRPC__CALL_DONE
};

#define CRPC__SHUT_SEND 1u /* our side sent its last message */
#define CRPC__SHUT_RECV 2u /* the peer's side ended */

typedef struct crpc__core crpc__core;

/* What differs between kinds of call, below the connection's events. */
typedef struct crpc__core_kind {
  /* Frees (or pools) the call: its last reference is gone. */
  void (*release)(crpc__core *core);
  /* Its deadline passed (call/deadline.h); the core is off the deadline heap already. */
  void (*expire)(crpc__core *core);
} crpc__core_kind;

struct crpc__core {
  crpc__conn_call cc;         /* the connection's handle: which events its frames raise */
  const crpc__core_kind *kind;
  crpc__conn *conn;           /* the connection it is tracked on while OPEN, else NULL */
  uint32_t id;                /* its call id on conn (0 before it has one) */
  uint8_t state;              /* enum crpc__call_state */
  uint8_t shut;               /* CRPC__SHUT_* */
  uint16_t in_cb;             /* user callbacks of this call running now */
  uint32_t refs;              /* see Lifetime above */
  crpc__dl_node dl;           /* its deadline (call/deadline.h); unqueued when it has none */
  crpc__list link;            /* on one list of its owner's: live calls, deferred failures, or
                                 the spare objects (call/pool.h) */
  crpc__arena arena;          /* memory that lives as long as the call */
  crpc__flow flow;            /* windows both ways and the unread messages (call/flow.h), set up
                                 when a stream starts; a unary call only keeps its queue empty */
};

/* Sets up a core taken from the owner's pool (call/pool.h: its arena and link are the pool's,
 * kept across reuse). */
static inline void crpc__core_init(crpc__core *core, const crpc__call_events *ev,
                                   const crpc__core_kind *kind) {
  core->cc.ev = ev;
  core->kind = kind;
  core->conn = NULL;
  core->id = 0;
  core->state = CRPC__CALL_IDLE;
  core->shut = 0;
  core->in_cb = 0;
  core->refs = 1;
  crpc__dl_node_init(&core->dl);
  /* Unary calls are not flow-controlled (PROTOCOL.md §6.8): streams set the flow state up when
   * they start, and all a unary call needs is an empty queue. (link is the pool's: unlinked.) */
  core->flow.head = NULL;
}

static inline int crpc__core_transition_ok(unsigned from, unsigned to) {
  switch (from) {
    case CRPC__CALL_IDLE: return to == CRPC__CALL_OPEN || to == CRPC__CALL_DONE;
    case CRPC__CALL_OPEN: return to == CRPC__CALL_CLOSED || to == CRPC__CALL_DONE;
    case CRPC__CALL_CLOSED: return to == CRPC__CALL_DONE;
    default: return 0;
  }
}

static inline void crpc__core_set_state(crpc__core *core, enum crpc__call_state to) {
  assert(crpc__core_transition_ok(core->state, (unsigned)to));
  core->state = (uint8_t)to;
}

static inline int crpc__core_done(const crpc__core *core) { return core->state == CRPC__CALL_DONE; }

/* IDLE → OPEN: tracks the call as id on conn. 0, or CRPC_ENOMEM (still IDLE). */
int crpc__core_open(crpc__core *core, crpc__conn *conn, uint32_t id);
/* The next two return the connection the call was OPEN on (NULL when it was not) and leave
 * untracking it to the caller: the connection pops a call itself before raising on_status,
 * on_cancel or on_end, and a lookup for nothing would cost every call. */
/* OPEN → CLOSED (harmless in any other state). */
static inline crpc__conn *crpc__core_off_wire(crpc__core *core) {
  crpc__conn *conn = core->conn;
  if (core->state != CRPC__CALL_OPEN) return NULL;
  crpc__core_set_state(core, CRPC__CALL_CLOSED);
  core->conn = NULL;
  return conn;
}
/* → DONE, from IDLE, OPEN or CLOSED. */
static inline crpc__conn *crpc__core_complete(crpc__core *core) {
  crpc__conn *conn = core->state == CRPC__CALL_OPEN ? core->conn : NULL;
  crpc__core_set_state(core, CRPC__CALL_DONE);
  core->conn = NULL;
  return conn;
}

/* ---- Lifetime (see above) ---- */
static inline void crpc__core_enter(crpc__core *core) {
  core->refs++;
  core->in_cb++;
}
/* Drops a reference; returns 1 when that freed the call. */
static inline int crpc__core_unref(crpc__core *core) {
  assert(core->refs > 0);
  if (--core->refs) return 0;
  core->kind->release(core);
  return 1;
}
static inline int crpc__core_leave(crpc__core *core) {
  core->in_cb--;
  return crpc__core_unref(core);
}

#endif
