/* Allocation failure, exhaustively: for every N, fail the N-th allocation crpc makes along one
 * path (a phase), and check that the failure comes out clean:
 *  - an API function returns CRPC_ENOMEM, or
 *  - a call completes exactly once with its expected outcome or RESOURCE_EXHAUSTED, UNAVAILABLE
 *    or INTERNAL (a dropped connection shows as UNAVAILABLE),
 *  - a stream (a bidi Chat: chunks both ways, one larger than the 64 KiB window each way, so that
 *    EAGAIN, on_writable and WINDOW frames are exercised) ends exactly once (on_done, or the
 *    blocking finish) with OK -- every reply there and intact -- or RESOURCE_EXHAUSTED,
 *    UNAVAILABLE, INTERNAL or CANCELLED (the application cancels when a write fails CRPC_ENOMEM),
 *    and the server handler ends its call exactly once (itself, or from on_cancel),
 * that the system still works afterwards (a follow-up call with failures off succeeds, or the
 * objects close cleanly), and that nothing leaks: every close callback runs once, both loops
 * close with no handle left (uv_loop_close() == 0), and LeakSanitizer finds nothing.
 *
 * N runs from 1 until a run in which the N-th allocation never came (the phase made fewer): that
 * run is the baseline, and must pass with everything OK.
 *
 * The allocator is tests/support/failalloc.c, reached through the linker's --wrap (see CMakeLists.txt). The
 * client and the server live in one process, each on its own loop, both driven by the main
 * thread in turn; the thread's allocator side follows the loop it runs, so a phase can fail the
 * N-th allocation of the client, of the server, or of either.
 *
 * Every (phase, N) runs in a forked child: a crash, a leak (LeakSanitizer at the child's exit)
 * or a hang (alarm) is pinned to its N, and the next N still runs. The parent prints what the
 * child wrote for the first failures of each phase and a one-line summary for the rest. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <crpc/crpc.h>

#if defined(__SANITIZE_ADDRESS__)
#define FA_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FA_HAVE_ASAN 1
#endif
#endif
#ifdef FA_HAVE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#include "fa.crpc.h"
#include "failalloc.h"

#define FA_MAX_N 600          /* no phase needs more allocations than this */
#define FA_CHILD_ALARM_S 30   /* a child still running after this is a hang */
#define FA_WAIT_MS 3000       /* how long a call, a close or a follow-up may take */
#define FA_FAIL_CODE CRPC_STATUS_FAILED_PRECONDITION
#define FA_PRINT_FULL 3       /* failures per phase whose child output is printed in full */

/* ---- Checks (in the child) ------------------------------------------------------------------ */

static const char *g_phase;
static long g_n;
static atomic_int g_failures; /* the server thread of the private-loop phases checks too */

static void check_failed(int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAILALLOC %s N=%ld (line %d): ", g_phase, g_n, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  g_failures++;
}
#define CHECK(cond, ...)                                      \
  do {                                                        \
    if (!(cond)) check_failed(__LINE__, __VA_ARGS__);         \
  } while (0)

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

/* ---- The world: a server loop and a client loop in one thread ------------------------------ */

/* The server side of one Chat stream (a slot in the world: the handler allocates nothing, so that
 * only crpc's allocations are counted and failed). */
#define CHAT_SLOTS 32
typedef struct chat_srv {
  struct world *w;
  crpc_server_call *call;
  uint32_t next_seq; /* next client chunk expected */
  uint32_t todo[8];  /* seqs whose replies are due, in order */
  int n_todo, n_sent;
  int eof;           /* the client closed its side */
  int ended;         /* crpc_server_call_end() called */
} chat_srv;

typedef struct world {
  uv_loop_t cl, sl;
  /* Keep each loop alive like an application's other handles would: uv_run() does not even poll
   * a loop with no referenced active handle, and crpc unreferences idle channels' handles. */
  uv_async_t cl_keep, sl_keep;
  int unix_transport;
  char listen_ep[256];
  char target[256];
  crpc_server *srv;
  crpc_channel *ch;
  int srv_closed, ch_closed; /* close callbacks run */
  /* Server side (the handler). */
  atomic_int received, finished;
  crpc_server_call *held;
  int md_missing;
  int trailer_bad;
  /* Chat streams at the server: handler runs, calls ended (each exactly once), on_cancel runs. */
  chat_srv chats[CHAT_SLOTS];
  int chat_started, chat_ended, chat_cancels;
} world;

static world W;

#define ON_SERVER(stmt)                        \
  do {                                         \
    enum fa_side old_ = fa_set_side(FA_SERVER); \
    stmt;                                      \
    fa_set_side(old_);                         \
  } while (0)

static void run_both(world *w) {
  enum fa_side old = fa_set_side(FA_CLIENT);
  uv_run(&w->cl, UV_RUN_NOWAIT);
  fa_set_side(FA_SERVER);
  uv_run(&w->sl, UV_RUN_NOWAIT);
  fa_set_side(old);
}

/* Runs both loops until pred(arg) holds or ms pass; 1 when it held. */
static int drive(world *w, int (*pred)(void *), void *arg, uint64_t ms) {
  uint64_t end = now_ms() + ms;
  for (;;) {
    run_both(w);
    if (pred && pred(arg)) return 1;
    if (now_ms() >= end) return 0;
  }
}

/* ---- Server handler ------------------------------------------------------------------------ */

static const uint8_t details[] = {0x0a, 0x03, 'b', 'a', 'd'};

static void held_cancelled(crpc_server_call *call, void *ud) {
  world *w = ud;
  if (w->held == call) w->held = NULL;
  crpc_server_call_fail(call, CRPC_STATUS_CANCELLED, NULL);
  atomic_fetch_add(&w->finished, 1);
}

static void echo(crpc_server_call *call, const Fa__Req *req, void *ud) {
  world *w = ud;
  atomic_fetch_add(&w->received, 1);
  size_t count = 0;
  const crpc_metadata *md = crpc_server_call_metadata(call, &count);
  if (!crpc_metadata_find(md, count, "x-fa")) w->md_missing++;
  int rc = crpc_server_call_add_trailer(call, "x-fa-trailer", (const uint8_t *)"t", 1);
  if (rc != 0 && rc != CRPC_ENOMEM) w->trailer_bad++;
  if (req->hold) {
    w->held = call;
    crpc_server_call_on_cancel(call, held_cancelled, w);
    return;
  }
  if (req->fail_code) {
    crpc_server_call_fail_details(call, (crpc_code)req->fail_code, "failed as asked", details,
                                  sizeof details);
  } else {
    char text[128];
    snprintf(text, sizeof text, "hi %s", req->name ? req->name : "");
    Fa__Rep rep = FA__REP__INIT;
    rep.message = text;
    rep.payload = req->payload;
    fa__svc__echo__reply(call, &rep);
  }
  atomic_fetch_add(&w->finished, 1);
}

/* ---- Chat (bidi stream) at the server ------------------------------------------------------ */

/* Client chunks and the server's replies, by seq: the second each way is larger than the 64 KiB
 * window, so that the writer overshoots it once, the next write waits for a WINDOW frame, and
 * the reader grants one. */
#define CHAT_N 3
#define CHAT_MAX (100 * 1024)
static const uint32_t chat_req_size[CHAT_N] = {100, 100 * 1024, 200};
static const uint32_t chat_rep_size[CHAT_N] = {300, 80 * 1024, 64};
static uint8_t chat_data[CHAT_MAX]; /* chunk data: the first len bytes of this (main() fills it) */

static int chat_data_ok(const ProtobufCBinaryData *d, uint32_t len) {
  return d->len == len && (len == 0 || memcmp(d->data, chat_data, len) == 0);
}

static void chat_end(chat_srv *c, crpc_code code, const char *why) {
  c->ended = 1;
  c->w->chat_ended++;
  int rc = crpc_server_call_end(c->call, code, why);
  CHECK(rc == 0, "server: crpc_server_call_end(%s) returned %s", crpc_code_name(code),
        crpc_err_name(rc));
}

/* Writes the replies that are due until refused; ends the call once the client has closed and
 * everything is written. Returns 1 when the call has ended (here or from a callback inside). */
static int chat_srv_pump(chat_srv *c) {
  while (!c->ended && c->n_sent < c->n_todo) {
    uint32_t seq = c->todo[c->n_sent];
    Fa__Chunk m = FA__CHUNK__INIT;
    m.seq = seq;
    m.data.data = chat_data;
    m.data.len = chat_rep_size[seq];
    int rc = fa__svc__chat__server_write(c->call, &m);
    if (c->ended) return 1; /* on_cancel ran inside */
    if (rc == CRPC_EAGAIN) return 0; /* on_writable resumes */
    if (rc == CRPC_ESTATE) {
      /* Cancelled: on_cancel has run or will run and ends the call. */
      return c->ended;
    }
    if (rc == CRPC_ENOMEM) { /* what an application does: give up on the call */
      chat_end(c, CRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
      return 1;
    }
    CHECK(rc == 0, "server: send returned %s (want 0, CRPC_EAGAIN, CRPC_ESTATE or CRPC_ENOMEM)",
          crpc_err_name(rc));
    if (rc != 0) {
      chat_end(c, CRPC_STATUS_INTERNAL, "unexpected send result");
      return 1;
    }
    c->n_sent++;
  }
  if (!c->ended && c->eof && c->n_sent == c->n_todo) {
    chat_end(c, CRPC_STATUS_OK, NULL);
    return 1;
  }
  return c->ended;
}

static void chat_srv_read(crpc_server_call *call, const Fa__Chunk *msg, void *ud) {
  chat_srv *c = ud;
  CHECK(!c->ended, "server: on_read after the call was ended");
  CHECK(call == c->call, "server: on_read for another call");
  if (c->ended) return;
  if (!msg) {
    CHECK(!c->eof, "server: the end of the client's messages delivered twice");
    c->eof = 1;
    chat_srv_pump(c);
    return;
  }
  int ok = c->next_seq < CHAT_N && msg->seq == c->next_seq &&
           chat_data_ok(&msg->data, chat_req_size[msg->seq]) &&
           msg->reply_size == chat_rep_size[msg->seq];
  CHECK(ok, "server: client chunk %u (%zu bytes) is not chunk %u (%u bytes) intact", msg->seq,
        msg->data.len, c->next_seq, c->next_seq < CHAT_N ? chat_req_size[c->next_seq] : 0);
  if (!ok) {
    chat_end(c, CRPC_STATUS_INTERNAL, "corrupted chunk");
    return;
  }
  c->todo[c->n_todo++] = c->next_seq++;
  if (chat_srv_pump(c)) return;
  int rc = crpc_server_call_read(call); /* may deliver the next one (or the end) inside */
  if (rc == CRPC_ESTATE && c->ended) return;
  CHECK(rc == 0 || rc == CRPC_ESTATE, "server: crpc_server_call_read returned %s",
        crpc_err_name(rc));
  /* CRPC_ESTATE while not ended: cancelled, on_cancel follows. */
}

static void chat_srv_writable(crpc_server_call *call, void *ud) {
  chat_srv *c = ud;
  CHECK(!c->ended, "server: on_writable after the call was ended");
  CHECK(call == c->call, "server: on_writable for another call");
  if (!c->ended) chat_srv_pump(c);
}

static void chat_srv_cancel(crpc_server_call *call, void *ud) {
  chat_srv *c = ud;
  CHECK(!c->ended, "server: on_cancel after the call was ended");
  CHECK(call == c->call, "server: on_cancel for another call");
  if (c->ended) return;
  c->w->chat_cancels++;
  chat_end(c, CRPC_STATUS_CANCELLED, NULL);
}

static void chat_handler(crpc_server_call *call, void *ud) {
  world *w = ud;
  if (w->chat_started == CHAT_SLOTS) {
    crpc_server_call_end(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "test: out of chat slots");
    return;
  }
  chat_srv *c = &w->chats[w->chat_started++];
  memset(c, 0, sizeof *c);
  c->w = w;
  c->call = call;
  crpc_server_call_on_cancel(call, chat_srv_cancel, c); /* runs now if already cancelled */
  if (c->ended) return;
  int rc = fa__svc__chat__set_reader(call, chat_srv_read, chat_srv_writable, c, 0);
  CHECK(rc == 0, "server: set_reader returned %s", crpc_err_name(rc));
  if (rc != 0) {
    chat_end(c, CRPC_STATUS_INTERNAL, "set_reader failed");
    return;
  }
  rc = crpc_server_call_read(call);
  if (rc == CRPC_ESTATE && c->ended) return;
  CHECK(rc == 0 || rc == CRPC_ESTATE, "server: first crpc_server_call_read returned %s",
        crpc_err_name(rc));
}

static const Fa__Svc__Handlers handlers = {.echo = echo, .chat = chat_handler};

/* ---- Client calls -------------------------------------------------------------------------- */

typedef struct rec {
  int completions;
  crpc_code code;
  int msg_null;
  char message[200];
  int resp_ok;    /* the response was there and right */
  int resp_bad;   /* a response came with a non-OK code, or a wrong one */
  int details_bad;
  const char *name;
} rec;

static const crpc_metadata call_md[] = {{"x-fa", (const uint8_t *)"v", 1}};
static const crpc_call_opts call_opts = {.timeout_ms = 30000, .metadata = call_md,
                                         .metadata_count = 1};

static void req_init(Fa__Req *req, const char *name, uint32_t fail_code, int hold) {
  static uint8_t payload[] = "payload-bytes";
  *req = (Fa__Req)FA__REQ__INIT;
  req->name = (char *)name;
  req->payload.data = payload;
  req->payload.len = sizeof payload - 1;
  req->fail_code = fail_code;
  req->hold = hold;
}

static void rec_done(const crpc_status *st, const Fa__Rep *rep, void *ud) {
  rec *r = ud;
  r->completions++;
  r->code = st->code;
  r->msg_null = st->message == NULL;
  snprintf(r->message, sizeof r->message, "%s", st->message ? st->message : "(null)");
  if (st->details && (st->details_len != sizeof details ||
                      memcmp(st->details, details, sizeof details) != 0))
    r->details_bad = 1;
  if (st->code == CRPC_STATUS_OK) {
    char want[128];
    snprintf(want, sizeof want, "hi %s", r->name);
    r->resp_ok = rep && rep->message && strcmp(rep->message, want) == 0 &&
                 rep->payload.len == 13 && memcmp(rep->payload.data, "payload-bytes", 13) == 0;
    if (!r->resp_ok) r->resp_bad = 1;
  } else if (rep) {
    r->resp_bad = 1;
  }
}

/* Every call started, to check at teardown that each completed exactly once. */
static rec *g_started[16];
static int g_nstarted;

/* Starts an echo call; returns the start function's result. r must outlive the child (static):
 * a call that never completes in time still completes when its channel closes. */
static int start(world *w, rec *r, const char *name, uint32_t fail_code, int hold) {
  Fa__Req req;
  req_init(&req, name, fail_code, hold);
  memset(r, 0, sizeof *r);
  r->name = name;
  int rc = fa__svc__echo__start(w->ch, &req, &call_opts, rec_done, r, NULL);
  int known = 0;
  for (int i = 0; i < g_nstarted; i++) known |= g_started[i] == r;
  if (rc == 0 && !known && g_nstarted < 16) g_started[g_nstarted++] = r;
  return rc;
}

static int rec_done_p(void *p) { return ((rec *)p)->completions > 0; }

typedef struct recs {
  rec *r;
  int n;
} recs;
static int all_done_p(void *p) {
  recs *rs = p;
  for (int i = 0; i < rs->n; i++)
    if (!rs->r[i].completions) return 0;
  return 1;
}

static int clean_code(crpc_code c) {
  return c == CRPC_STATUS_RESOURCE_EXHAUSTED || c == CRPC_STATUS_UNAVAILABLE ||
         c == CRPC_STATUS_INTERNAL;
}

/* A call that ran under failure injection: exactly one completion, with `expect` or a clean
 * failure; exactly `expect` when nothing was injected. */
static void check_rec(const rec *r, const char *what, crpc_code expect, int strict) {
  CHECK(r->completions == 1, "%s: completed %d times (want exactly once)", what, r->completions);
  if (r->completions == 0) return;
  if (strict)
    CHECK(r->code == expect, "%s: %s (%s) without any failure injected, want %s", what,
          crpc_code_name(r->code), r->message, crpc_code_name(expect));
  else
    CHECK(r->code == expect || clean_code(r->code), "%s: completed %s (%s), want %s or a clean "
          "RESOURCE_EXHAUSTED/UNAVAILABLE/INTERNAL", what, crpc_code_name(r->code), r->message,
          crpc_code_name(expect));
  CHECK(!r->resp_bad, "%s: %s with a wrong or unexpected response", what, crpc_code_name(r->code));
  CHECK(!r->details_bad, "%s: details corrupted", what);
}

/* Waits for a started call. */
static void wait_rec(world *w, rec *r, const char *what) {
  CHECK(drive(w, rec_done_p, r, FA_WAIT_MS), "%s: did not complete within %d ms (hang)", what,
        FA_WAIT_MS);
}

/* With failures off: a call must succeed (after reconnecting, if the connection went). */
static void followup(world *w) {
  fa_disarm();
  uint64_t end = now_ms() + FA_WAIT_MS;
  static rec r; /* static: a call that never completes may complete at teardown */
  for (;;) {
    int rc = start(w, &r, "after", 0, 0);
    CHECK(rc == 0, "follow-up call: start returned %s", crpc_err_name(rc));
    if (rc != 0) return;
    if (!drive(w, rec_done_p, &r, FA_WAIT_MS)) {
      CHECK(0, "follow-up call did not complete within %d ms (hang)", FA_WAIT_MS);
      return;
    }
    if (r.code == CRPC_STATUS_OK) break;
    if (r.code != CRPC_STATUS_UNAVAILABLE || now_ms() >= end) {
      CHECK(0, "follow-up call (failures off) completed %s (%s)", crpc_code_name(r.code),
            r.message);
      return;
    }
    drive(w, NULL, NULL, 5); /* reconnect backoff (1..20 ms) */
  }
  check_rec(&r, "follow-up call", CRPC_STATUS_OK, 1);
}

/* ---- Chat (bidi stream) at the client, async ----------------------------------------------- */

static const crpc_call_opts chat_opts = {.timeout_ms = 20000, .metadata = call_md,
                                         .metadata_count = 1};

/* One async Chat stream: writes the CHAT_N chunks (resuming from on_writable after CRPC_EAGAIN),
 * closes its side, reads every reply (explicit reads). A write that fails CRPC_ENOMEM cancels
 * the stream, as an application would. */
typedef struct chat_cli {
  const char *name;
  crpc_stream *s;    /* NULL once done */
  int rc;            /* of the start */
  int n_written, eagain, writable, closed_send, write_estate, cancelled;
  int n_read, bad_read;
  int done;          /* on_done runs (must end at 1) */
  crpc_code code;
  char message[200];
  int msg_null;
} chat_cli;

/* Every stream started, to check at teardown that each was done exactly once. */
static chat_cli *g_chats[16];
static int g_nchats;

static int chat_code_ok(crpc_code c) {
  return c == CRPC_STATUS_OK || c == CRPC_STATUS_RESOURCE_EXHAUSTED ||
         c == CRPC_STATUS_UNAVAILABLE || c == CRPC_STATUS_INTERNAL || c == CRPC_STATUS_CANCELLED;
}

/* ---- Setup and teardown -------------------------------------------------------------------- */

static void srv_closed(void *ud) { ((world *)ud)->srv_closed++; }
static void ch_closed(void *ud) { ((world *)ud)->ch_closed++; }

static void world_init(world *w, int unix_transport, const char *sock_dir) {
  memset(w, 0, sizeof *w);
  w->unix_transport = unix_transport;
  if (uv_loop_init(&w->cl) != 0 || uv_loop_init(&w->sl) != 0 ||
      uv_async_init(&w->cl, &w->cl_keep, NULL) != 0 || uv_async_init(&w->sl, &w->sl_keep, NULL) != 0)
    abort();
  if (unix_transport) {
    snprintf(w->listen_ep, sizeof w->listen_ep, "unix:%s/s-%ld.sock", sock_dir, (long)getpid());
    unlink(w->listen_ep + 5);
  } else {
    snprintf(w->listen_ep, sizeof w->listen_ep, "tcp://127.0.0.1:0");
  }
}

static void set_target(world *w, int port) {
  if (w->unix_transport)
    snprintf(w->target, sizeof w->target, "%s", w->listen_ep);
  else
    snprintf(w->target, sizeof w->target, "tcp://127.0.0.1:%d", port);
}

/* Server up, failures off (asserted: there is nothing to inject into here). */
static void server_up(world *w) {
  int port = 0, rc;
  ON_SERVER(rc = crpc_server_new(&w->srv, &w->sl));
  CHECK(rc == 0, "server_new: %s", crpc_err_name(rc));
  ON_SERVER(rc = fa__svc__crpc_register(w->srv, &handlers, w));
  CHECK(rc == 0, "register: %s", crpc_err_name(rc));
  ON_SERVER(rc = crpc_server_listen(w->srv, w->listen_ep, &port));
  CHECK(rc == 0, "listen: %s", crpc_err_name(rc));
  set_target(w, port);
}

static void channel_options(crpc_channel *ch) {
  crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_INITIAL_MS, 1);
  crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_MAX_MS, 20);
}

static void channel_up(world *w) {
  int rc = crpc_channel_new(&w->ch, &w->cl, w->target);
  CHECK(rc == 0, "channel_new: %s", crpc_err_name(rc));
  channel_options(w->ch);
}

static void warm_up(world *w) {
  static rec r; /* static: a call that never completes may complete at teardown */
  CHECK(start(w, &r, "warm", 0, 0) == 0, "warm-up call did not start");
  drive(w, rec_done_p, &r, FA_WAIT_MS);
  check_rec(&r, "warm-up call", CRPC_STATUS_OK, 1);
}

static int closed_p(void *p) {
  world *w = p;
  return w->srv_closed && w->ch_closed;
}

static void print_handle(uv_handle_t *h, void *arg) {
  fprintf(stderr, "  %s: leftover handle %s (active %d)\n", (const char *)arg,
          uv_handle_type_name(h->type), uv_is_active(h));
}

static void close_loop(uv_loop_t *loop, const char *name) {
  int rc = uv_loop_close(loop);
  CHECK(rc == 0, "uv_loop_close(%s loop): %s (a handle was left behind)", name, uv_err_name(rc));
  if (rc != 0) uv_walk(loop, print_handle, (void *)name);
}

/* Closes whatever is still open (failures off), checks each close callback ran exactly once
 * and both loops close. */
static void world_teardown(world *w) {
  fa_disarm();
  int had_ch = w->ch != NULL || w->ch_closed, had_srv = w->srv != NULL || w->srv_closed;
  if (w->ch) crpc_channel_close(w->ch, ch_closed, w);
  if (w->srv) ON_SERVER(crpc_server_close(w->srv, srv_closed, w));
  w->ch = NULL;
  w->srv = NULL;
  if (!had_ch) w->ch_closed = 1;
  if (!had_srv) w->srv_closed = 1;
  CHECK(drive(w, closed_p, w, FA_WAIT_MS), "close did not finish within %d ms (server %d, "
        "channel %d close callbacks)", FA_WAIT_MS, w->srv_closed, w->ch_closed);
  CHECK(w->srv_closed == 1 && w->ch_closed == 1, "close callbacks ran %d (server) and %d "
        "(channel) times", w->srv_closed, w->ch_closed);
  for (int i = 0; i < g_nstarted; i++)
    CHECK(g_started[i]->completions == 1, "call \"%s\" completed %d times by the end of the "
          "teardown (want exactly once)", g_started[i]->name, g_started[i]->completions);
  for (int i = 0; i < g_nchats; i++)
    CHECK(g_chats[i]->done == 1, "stream \"%s\": on_done ran %d times by the end of the "
          "teardown (want exactly once)", g_chats[i]->name, g_chats[i]->done);
  CHECK(w->chat_ended == w->chat_started, "server: %d Chat calls started, %d ended by the end of "
        "the teardown (each must be ended exactly once)", w->chat_started, w->chat_ended);
  uv_close((uv_handle_t *)&w->cl_keep, NULL);
  uv_close((uv_handle_t *)&w->sl_keep, NULL);
  drive(w, NULL, NULL, 2); /* the last close callbacks of libuv */
  close_loop(&w->cl, "client");
  close_loop(&w->sl, "server");
  if (w->unix_transport) unlink(w->listen_ep + 5);
}

/* ---- Phases -------------------------------------------------------------------------------- */

/* Server creation, registration and listening: each returns 0 or CRPC_ENOMEM, and what failed
 * can be done again. */
static void phase_listen(world *w, long n) {
  int port = 0, rc_new, rc_reg = -1, rc_lis = -1;
  fa_set_side(FA_SERVER);
  fa_arm(FA_SERVER, n);
  rc_new = crpc_server_new(&w->srv, &w->sl);
  if (rc_new == 0) rc_reg = fa__svc__crpc_register(w->srv, &handlers, w);
  if (rc_new == 0) rc_lis = crpc_server_listen(w->srv, w->listen_ep, &port);
  fa_disarm();
  CHECK(rc_new == 0 || rc_new == CRPC_ENOMEM, "server_new returned %s", crpc_err_name(rc_new));
  CHECK(rc_new != 0 || rc_reg == 0 || rc_reg == CRPC_ENOMEM, "register returned %s",
        crpc_err_name(rc_reg));
  CHECK(rc_new != 0 || rc_lis == 0 || rc_lis == CRPC_ENOMEM, "listen returned %s",
        crpc_err_name(rc_lis));
  if (rc_new != 0) {
    w->srv = NULL;
    rc_new = crpc_server_new(&w->srv, &w->sl);
    CHECK(rc_new == 0, "server_new again (failures off): %s", crpc_err_name(rc_new));
    if (rc_new != 0) return;
    rc_reg = rc_lis = -1;
  }
  if (rc_reg != 0) {
    rc_reg = fa__svc__crpc_register(w->srv, &handlers, w);
    CHECK(rc_reg == 0, "register again (failures off): %s", crpc_err_name(rc_reg));
  }
  if (rc_lis != 0) {
    rc_lis = crpc_server_listen(w->srv, w->listen_ep, &port);
    CHECK(rc_lis == 0, "listen again (failures off): %s", crpc_err_name(rc_lis));
  }
  fa_set_side(FA_CLIENT);
  if (rc_lis != 0) return;
  set_target(w, port);
  channel_up(w);
  followup(w);
}

/* Channel creation and the first call, which connects: client side. */
static void phase_connect(world *w, long n) {
  server_up(w);
  static rec r;
  int rc_call = -1;
  fa_arm(FA_CLIENT, n);
  int rc = crpc_channel_new(&w->ch, &w->cl, w->target);
  if (rc == 0) {
    channel_options(w->ch);
    rc_call = start(w, &r, "first", 0, 0);
    if (rc_call == 0) wait_rec(w, &r, "first call");
  }
  int injected = fa_injected();
  fa_disarm();
  CHECK(rc == 0 || rc == CRPC_ENOMEM, "channel_new returned %s", crpc_err_name(rc));
  if (rc != 0) w->ch = NULL;
  CHECK(rc != 0 || rc_call == 0 || rc_call == CRPC_ENOMEM, "call start returned %s",
        crpc_err_name(rc_call));
  if (rc_call == 0) check_rec(&r, "first call", CRPC_STATUS_OK, !injected);
  if (!w->ch) channel_up(w);
  followup(w);
}

/* A new connection and its first call, as the server sees them: server side. */
static void phase_accept(world *w, long n) {
  server_up(w);
  channel_up(w);
  static rec r; /* static: a call that never completes may complete at teardown */
  fa_arm(FA_SERVER, n);
  int rc = start(w, &r, "first", 0, 0);
  if (rc == 0) wait_rec(w, &r, "first call");
  int injected = fa_injected();
  fa_disarm();
  CHECK(rc == 0, "call start returned %s (no client failure was injected)", crpc_err_name(rc));
  if (rc == 0) check_rec(&r, "first call", CRPC_STATUS_OK, !injected);
  followup(w);
}

/* Two concurrent calls on a warm connection, one answered OK with a trailer, one failed with
 * details and a trailer: metadata, deadlines, encoding, decoding, completion. */
static void phase_unary(world *w, long n, enum fa_side side, int warm) {
  server_up(w);
  channel_up(w);
  if (warm) warm_up(w);
  static rec r[2];
  int rc[2];
  fa_arm(side, n);
  rc[0] = start(w, &r[0], "one", 0, 0);
  rc[1] = start(w, &r[1], "two", FA_FAIL_CODE, 0);
  recs rs = {r, 2};
  for (int i = 0; i < 2; i++)
    if (rc[i] != 0) r[i].completions = -1; /* not to be waited for */
  CHECK(drive(w, all_done_p, &rs, FA_WAIT_MS), "calls did not complete within %d ms (hang): "
        "completions %d, %d", FA_WAIT_MS, r[0].completions, r[1].completions);
  int injected = fa_injected();
  fa_disarm();
  drive(w, NULL, NULL, 2); /* a second completion would show up now */
  const crpc_code want[2] = {CRPC_STATUS_OK, FA_FAIL_CODE};
  const char *what[2] = {"call one (OK)", "call two (fails with details)"};
  for (int i = 0; i < 2; i++) {
    CHECK(rc[i] == 0 || (side != FA_SERVER && rc[i] == CRPC_ENOMEM), "%s: start returned %s",
          what[i], crpc_err_name(rc[i]));
    if (rc[i] == 0) check_rec(&r[i], what[i], want[i], !injected);
  }
  CHECK(!w->md_missing, "the handler saw a call without its metadata");
  CHECK(!w->trailer_bad, "add_trailer returned something else than 0 or CRPC_ENOMEM");
  followup(w);
}
static void phase_unary_client(world *w, long n) { phase_unary(w, n, FA_CLIENT, 1); }
static void phase_unary_server(world *w, long n) { phase_unary(w, n, FA_SERVER, 1); }
/* The same on a channel that has not connected yet, failing either side: connection setup and
 * the first calls' allocations (pools empty, tables and buffers growing) on both ends. */
static void phase_unary_cold(world *w, long n) { phase_unary(w, n, FA_ANY, 0); }

/* Blocking call outcome, from any thread. */
typedef struct bcall {
  crpc_channel *ch;
  const char *name;
  int rc;
  crpc_code code;
  int msg_null;
  char message[200];
  int has_resp, resp_ok;
  atomic_int done;
} bcall;

static void bcall_run(bcall *b) {
  Fa__Req req;
  req_init(&req, b->name, 0, 0);
  Fa__Rep *rep = NULL;
  crpc_status st;
  b->rc = fa__svc__echo__call(b->ch, &req, &rep, &st, &call_opts);
  b->code = st.code;
  b->msg_null = st.message == NULL;
  snprintf(b->message, sizeof b->message, "%s", st.message ? st.message : "(null)");
  b->has_resp = rep != NULL;
  char want[128];
  snprintf(want, sizeof want, "hi %s", b->name);
  b->resp_ok = rep && rep->message && strcmp(rep->message, want) == 0;
  if (rep) protobuf_c_message_free_unpacked(&rep->base, NULL);
  crpc_status_reset(&st);
  atomic_store(&b->done, 1);
}

static void bcall_check(const bcall *b, const char *what, int strict) {
  CHECK(b->rc == 0 || (!strict && b->rc == CRPC_ENOMEM), "%s: returned %s", what,
        crpc_err_name(b->rc));
  if (b->rc != 0) {
    CHECK(b->code == CRPC_STATUS_INTERNAL && !b->has_resp, "%s: returned %s with status %s and "
          "%s response", what, crpc_err_name(b->rc), crpc_code_name(b->code),
          b->has_resp ? "a" : "no");
  } else if (strict) {
    CHECK(b->code == CRPC_STATUS_OK, "%s: %s (%s) without any failure injected", what,
          crpc_code_name(b->code), b->message);
  } else {
    CHECK(b->code == CRPC_STATUS_OK || clean_code(b->code), "%s: completed %s (%s)", what,
          crpc_code_name(b->code), b->message);
  }
  CHECK(b->code != CRPC_STATUS_OK || b->resp_ok, "%s: OK without the right response", what);
  CHECK(b->code == CRPC_STATUS_OK || !b->has_resp, "%s: %s with a response", what,
        crpc_code_name(b->code));
  /* crpc/status.h: message is "never NULL for a status crpc produced itself on failure". */
  CHECK(b->code == CRPC_STATUS_OK || !b->msg_null, "%s: %s status with message NULL (status.h "
        "promises a message on failure)", what, crpc_code_name(b->code));
}

static void bcall_thread(void *arg) {
  fa_set_side(FA_CLIENT);
  bcall_run(arg);
}
static int bcall_done_p(void *p) { return atomic_load(&((bcall *)p)->done); }

/* A blocking call from another thread on a loop channel (not connected yet): client side. */
static void phase_blocking_loop(world *w, long n) {
  server_up(w);
  channel_up(w);
  bcall b = {.ch = w->ch, .name = "blocking"};
  atomic_init(&b.done, 0);
  uv_thread_t t;
  fa_arm(FA_CLIENT, n);
  if (uv_thread_create(&t, bcall_thread, &b) != 0) abort();
  int done = drive(w, bcall_done_p, &b, FA_WAIT_MS);
  CHECK(done, "blocking call did not return within %d ms (hang)", FA_WAIT_MS);
  if (!done) {
    /* Closing the channel completes it (CANCELLED); then the thread can be joined. */
    crpc_channel_close(w->ch, ch_closed, w);
    w->ch = NULL;
    drive(w, bcall_done_p, &b, FA_WAIT_MS);
  }
  uv_thread_join(&t);
  int injected = fa_injected();
  fa_disarm();
  if (done) bcall_check(&b, "blocking call", !injected);
  if (w->ch) followup(w);
}

/* The server of phase_blocking_private, on its own thread and loop. */
typedef struct srv_thread {
  world *w;
  uv_loop_t loop;
  uv_async_t stop;
  crpc_server *srv;
  uv_sem_t ready;
  int port, rc, closed, loop_rc;
  uv_thread_t tid;
} srv_thread;

static void st_closed(void *ud) { ((srv_thread *)ud)->closed++; }
static void st_stop(uv_async_t *a) {
  srv_thread *t = a->data;
  crpc_server_close(t->srv, st_closed, t);
  uv_close((uv_handle_t *)a, NULL);
}

static void st_main(void *arg) {
  srv_thread *t = arg;
  fa_set_side(FA_SERVER);
  if (uv_loop_init(&t->loop) != 0 || uv_async_init(&t->loop, &t->stop, st_stop) != 0) abort();
  t->stop.data = t;
  t->rc = crpc_server_new(&t->srv, &t->loop);
  if (t->rc == 0) t->rc = fa__svc__crpc_register(t->srv, &handlers, t->w);
  if (t->rc == 0) t->rc = crpc_server_listen(t->srv, t->w->listen_ep, &t->port);
  uv_sem_post(&t->ready);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  t->loop_rc = uv_loop_close(&t->loop);
}

/* A private-loop channel: creation and a blocking call on the calling thread, which drives the
 * channel's own loop (the leader path); the server runs on another thread: client side. */
static void phase_blocking_private(world *w, long n) {
  srv_thread t;
  memset(&t, 0, sizeof t);
  t.w = w;
  if (uv_sem_init(&t.ready, 0) != 0 || uv_thread_create(&t.tid, st_main, &t) != 0) abort();
  uv_sem_wait(&t.ready);
  uv_sem_destroy(&t.ready);
  CHECK(t.rc == 0, "server thread: %s", crpc_err_name(t.rc));
  set_target(w, t.port);
  crpc_channel *ch = NULL;
  bcall b = {.name = "private"};
  fa_arm(FA_CLIENT, n);
  int rc = crpc_channel_new(&ch, NULL, w->target);
  if (rc == 0) {
    channel_options(ch);
    b.ch = ch;
    bcall_run(&b);
  }
  int injected = fa_injected();
  fa_disarm();
  CHECK(rc == 0 || rc == CRPC_ENOMEM, "channel_new returned %s", crpc_err_name(rc));
  if (rc == 0) bcall_check(&b, "blocking call", !injected);
  if (rc != 0) {
    rc = crpc_channel_new(&ch, NULL, w->target);
    CHECK(rc == 0, "channel_new again (failures off): %s", crpc_err_name(rc));
    if (rc == 0) channel_options(ch);
  }
  if (ch) {
    uint64_t end = now_ms() + FA_WAIT_MS;
    bcall f;
    do { /* the connection may be backing off: 1..20 ms */
      memset(&f, 0, sizeof f);
      f.ch = ch;
      f.name = "after";
      bcall_run(&f);
    } while (f.rc == 0 && f.code == CRPC_STATUS_UNAVAILABLE && now_ms() < end);
    bcall_check(&f, "follow-up blocking call", 1);
    int closed = 0;
    crpc_channel_close(ch, ch_closed, w);
    closed = w->ch_closed;
    CHECK(closed == 1, "private channel close ran its callback %d times", closed);
    w->ch_closed = 0;
  }
  uv_async_send(&t.stop);
  uv_thread_join(&t.tid);
  CHECK(t.closed == 1, "server close callback ran %d times", t.closed);
  CHECK(t.loop_rc == 0, "server thread loop_close: %s", uv_err_name(t.loop_rc));
}

static int held_p(void *p) { return ((world *)p)->held != NULL; }

/* A held call in flight; which side closes first is the phase's. */
static void hold_one(world *w, rec *h) {
  server_up(w);
  channel_up(w);
  warm_up(w);
  CHECK(start(w, h, "held", 0, 1) == 0, "held call did not start");
  CHECK(drive(w, held_p, w, FA_WAIT_MS), "the server never received the held call");
}

static int held_gone_p(void *p) {
  world *w = p;
  return w->ch_closed && w->held == NULL;
}

/* Channel close with a call in flight, then server close: either side may fail. */
static void phase_close_channel(world *w, long n) {
  static rec h;
  hold_one(w, &h);
  fa_arm(FA_ANY, n);
  crpc_channel_close(w->ch, ch_closed, w);
  w->ch = NULL;
  CHECK(drive(w, held_gone_p, w, FA_WAIT_MS), "channel close: close callback %d, server still "
        "holds the call: %s", w->ch_closed, w->held ? "yes" : "no");
  ON_SERVER(crpc_server_close(w->srv, srv_closed, w));
  w->srv = NULL;
  CHECK(drive(w, closed_p, w, FA_WAIT_MS), "server close did not finish within %d ms",
        FA_WAIT_MS);
  fa_disarm();
  CHECK(h.completions == 1 && h.code == CRPC_STATUS_CANCELLED, "held call: %d completions, %s "
        "(%s), want one CANCELLED (channel.h)", h.completions, crpc_code_name(h.code), h.message);
  CHECK(w->held == NULL, "the server never finished the held call");
}

static int srv_closed_and_held_done_p(void *p) {
  rec *h = p;
  return W.srv_closed && h->completions;
}

/* Server close with a call in flight, then channel close: either side may fail. */
static void phase_close_server(world *w, long n) {
  static rec h;
  hold_one(w, &h);
  fa_arm(FA_ANY, n);
  ON_SERVER(crpc_server_close(w->srv, srv_closed, w));
  w->srv = NULL;
  CHECK(drive(w, srv_closed_and_held_done_p, &h, FA_WAIT_MS), "server close: close callback %d, "
        "held call completions %d", w->srv_closed, h.completions);
  crpc_channel_close(w->ch, ch_closed, w);
  w->ch = NULL;
  CHECK(drive(w, closed_p, w, FA_WAIT_MS), "channel close did not finish within %d ms",
        FA_WAIT_MS);
  int injected = fa_injected();
  fa_disarm();
  CHECK(h.completions == 1, "held call completed %d times", h.completions);
  CHECK(h.code == CRPC_STATUS_UNAVAILABLE || (injected && clean_code(h.code)),
        "held call completed %s (%s) when the server closed", crpc_code_name(h.code), h.message);
}

/* Graceful shutdown of a server with an idle connection and one call in progress (which must
 * still be answered), then the channel: either side may fail. */
static void phase_shutdown(world *w, long n) {
  server_up(w);
  channel_up(w);
  warm_up(w);
  static rec r; /* static: a call that never completes may complete at teardown */
  CHECK(start(w, &r, "late", 0, 0) == 0, "call did not start");
  fa_arm(FA_ANY, n);
  int rc;
  ON_SERVER(rc = crpc_server_shutdown(w->srv, 300, srv_closed, w));
  CHECK(rc == 0, "shutdown returned %s", crpc_err_name(rc));
  w->srv = NULL;
  wait_rec(w, &r, "call in flight");
  CHECK(drive(w, closed_p, w, FA_WAIT_MS) || w->srv_closed, "shutdown did not finish within %d "
        "ms", FA_WAIT_MS);
  crpc_channel_close(w->ch, ch_closed, w);
  w->ch = NULL;
  CHECK(drive(w, closed_p, w, FA_WAIT_MS), "channel close did not finish within %d ms",
        FA_WAIT_MS);
  int injected = fa_injected();
  fa_disarm();
  /* The call was sent before the shutdown: served (OK), or refused as not processed
   * (UNAVAILABLE) when it reached the server after the GOAWAY. */
  CHECK(r.completions == 1, "call in flight completed %d times", r.completions);
  CHECK(r.code == CRPC_STATUS_OK || r.code == CRPC_STATUS_UNAVAILABLE ||
            (injected && clean_code(r.code)),
        "call in flight completed %s (%s)", crpc_code_name(r.code), r.message);
}

/* ---- Streams -------------------------------------------------------------------------------- */

static void chat_cli_pump(chat_cli *c);

static void chat_cli_read(chat_cli *c) {
  int rc = crpc_stream_read(c->s); /* may deliver a reply (and on_done) inside */
  /* CRPC_ESTATE: no reply will come any more (on_done follows). */
  CHECK(rc == 0 || rc == CRPC_ESTATE, "%s: crpc_stream_read returned %s", c->name,
        crpc_err_name(rc));
}

static void chat_cli_on_read(crpc_stream *s, const Fa__Chunk *msg, void *ud) {
  chat_cli *c = ud;
  CHECK(!c->done, "%s: on_read after on_done", c->name);
  CHECK(s == c->s, "%s: on_read for another stream", c->name);
  int ok = msg && msg->seq == (uint32_t)c->n_read && msg->seq < CHAT_N &&
           chat_data_ok(&msg->data, chat_rep_size[msg->seq]);
  CHECK(ok, "%s: reply %d is wrong (seq %u, %zu bytes)", c->name, c->n_read,
        msg ? msg->seq : 0, msg ? msg->data.len : 0);
  if (!ok) c->bad_read++;
  c->n_read++;
  if (!c->done) chat_cli_read(c); /* always keep one read pending */
}

static void chat_cli_on_writable(crpc_stream *s, void *ud) {
  chat_cli *c = ud;
  CHECK(!c->done, "%s: on_writable after on_done", c->name);
  CHECK(s == c->s, "%s: on_writable for another stream", c->name);
  c->writable++;
  chat_cli_pump(c);
}

static void chat_cli_on_done(crpc_stream *s, const crpc_status *st, void *ud) {
  chat_cli *c = ud;
  CHECK(s == c->s || c->done, "%s: on_done for another stream", c->name);
  c->done++;
  c->code = st->code;
  c->msg_null = st->message == NULL;
  snprintf(c->message, sizeof c->message, "%s", st->message ? st->message : "(null)");
  c->s = NULL;
}

static const Fa__Svc__ChatHandlers chat_cli_handlers = {chat_cli_on_read, chat_cli_on_writable,
                                                        chat_cli_on_done, 0};

/* Writes what is left until refused, then closes the sending side. */
static void chat_cli_pump(chat_cli *c) {
  while (!c->done && !c->write_estate && c->n_written < CHAT_N) {
    Fa__Chunk m = FA__CHUNK__INIT;
    m.seq = (uint32_t)c->n_written;
    m.data.data = chat_data;
    m.data.len = chat_req_size[c->n_written];
    m.reply_size = chat_rep_size[c->n_written];
    int rc = fa__svc__chat__write(c->s, &m);
    if (c->done) return; /* ended inside the write */
    if (rc == CRPC_EAGAIN) {
      c->eagain++;
      return; /* on_writable resumes */
    }
    if (rc == CRPC_ESTATE) { /* the call ended (the server's status is coming): stop writing */
      c->write_estate = 1;
      return;
    }
    if (rc != 0) {
      CHECK(rc == CRPC_ENOMEM, "%s: write returned %s (want 0, CRPC_EAGAIN, CRPC_ESTATE or "
            "CRPC_ENOMEM)", c->name, crpc_err_name(rc));
      c->cancelled = 1;
      crpc_stream_cancel(c->s); /* on_done (CANCELLED) runs inside */
      CHECK(c->done == 1, "%s: crpc_stream_cancel returned before on_done ran (stream.h: it runs "
            "before cancel returns)", c->name);
      return;
    }
    c->n_written++;
  }
  if (!c->done && !c->write_estate && c->n_written == CHAT_N && !c->closed_send) {
    int rc = crpc_stream_close_send(c->s);
    CHECK(rc == 0 || rc == CRPC_ESTATE, "%s: close_send returned %s", c->name, crpc_err_name(rc));
    c->closed_send = 1;
  }
}

/* Starts the stream; it then runs from the loops' callbacks. c must outlive the child (static): a
 * stream that does not end in time still ends when its channel closes. */
static int chat_start(world *w, chat_cli *c, const char *name) {
  memset(c, 0, sizeof *c);
  c->name = name;
  c->rc = fa__svc__chat__stream(w->ch, &chat_opts, &chat_cli_handlers, c, &c->s);
  if (c->rc != 0) return c->rc;
  int known = 0;
  for (int i = 0; i < g_nchats; i++) known |= g_chats[i] == c;
  if (!known && g_nchats < 16) g_chats[g_nchats++] = c;
  CHECK(!c->done, "%s: on_done ran inside the start (stream.h: never inside)", c->name);
  chat_cli_pump(c);
  if (!c->done) chat_cli_read(c);
  return 0;
}

typedef struct chat_wait {
  world *w;
  chat_cli *c;
} chat_wait;

/* The client's stream is done and every Chat call the server got has been ended. */
static int chat_settled_p(void *p) {
  chat_wait *cw = p;
  return cw->c->done && cw->w->chat_ended == cw->w->chat_started;
}

/* A stream that ran under failure injection (strict: nothing was injected). */
static void chat_check(const chat_cli *c, int strict) {
  CHECK(c->done == 1, "%s: on_done ran %d times (want exactly once)", c->name, c->done);
  CHECK(!c->bad_read, "%s: %d wrong replies", c->name, c->bad_read);
  if (c->done != 1) return;
  if (strict) {
    CHECK(c->code == CRPC_STATUS_OK, "%s: %s (%s) without any failure injected", c->name,
          crpc_code_name(c->code), c->message);
  } else {
    CHECK(chat_code_ok(c->code), "%s: ended %s (%s), want OK or a clean RESOURCE_EXHAUSTED/"
          "UNAVAILABLE/INTERNAL/CANCELLED", c->name, crpc_code_name(c->code), c->message);
  }
  if (c->code == CRPC_STATUS_OK)
    CHECK(c->n_written == CHAT_N && c->closed_send && c->n_read == CHAT_N && !c->cancelled,
          "%s: OK after %d of %d chunks written (close_send %d, cancelled %d) and %d of %d "
          "replies read", c->name, c->n_written, CHAT_N, c->closed_send, c->cancelled, c->n_read,
          CHAT_N);
  if (c->cancelled)
    CHECK(c->code == CRPC_STATUS_CANCELLED, "%s: cancelled by the application, ended %s (%s)",
          c->name, crpc_code_name(c->code), c->message);
  CHECK(c->code == CRPC_STATUS_OK || !c->msg_null, "%s: %s status with message NULL (status.h "
        "promises a message on failure)", c->name, crpc_code_name(c->code));
}

/* With failures off: a stream must run to OK (after reconnecting, if the connection went). */
static void chat_followup(world *w) {
  fa_disarm();
  static chat_cli c; /* static: a stream that never ends may end at teardown */
  uint64_t end = now_ms() + FA_WAIT_MS;
  for (;;) {
    int rc = chat_start(w, &c, "follow-up stream");
    CHECK(rc == 0, "follow-up stream: start returned %s", crpc_err_name(rc));
    if (rc != 0) return;
    chat_wait cw = {w, &c};
    if (!drive(w, chat_settled_p, &cw, FA_WAIT_MS)) {
      CHECK(0, "follow-up stream did not end within %d ms (hang): done %d, %d written, %d read",
            FA_WAIT_MS, c.done, c.n_written, c.n_read);
      return;
    }
    if (c.code != CRPC_STATUS_UNAVAILABLE || now_ms() >= end) break;
    drive(w, NULL, NULL, 5); /* reconnect backoff (1..20 ms) */
  }
  chat_check(&c, 1);
}

/* A bidi stream on a warm loop channel, failing the N-th allocation of `side`; then a unary call
 * and a stream with failures off. */
static void phase_stream(world *w, long n, enum fa_side side, int warm) {
  server_up(w);
  channel_up(w);
  if (warm) warm_up(w);
  static chat_cli c; /* static: a stream that never ends may end at teardown */
  fa_arm(side, n);
  int rc = chat_start(w, &c, "stream");
  chat_wait cw = {w, &c};
  int settled = rc != 0 || drive(w, chat_settled_p, &cw, FA_WAIT_MS);
  int injected = fa_injected();
  fa_disarm();
  CHECK(rc == 0 || (side != FA_SERVER && rc == CRPC_ENOMEM), "stream start returned %s",
        crpc_err_name(rc));
  CHECK(settled, "stream did not settle within %d ms (hang): client on_done %d (%d written, "
        "%d read, %d EAGAIN, %d on_writable), server %d started / %d ended", FA_WAIT_MS, c.done,
        c.n_written, c.n_read, c.eagain, c.writable, w->chat_started, w->chat_ended);
  if (rc == 0 && settled) {
    chat_check(&c, !injected);
    if (!injected)
      CHECK(c.eagain > 0 && c.writable > 0, "stream: the window never refused a write (%d "
            "EAGAIN, %d on_writable): flow control not exercised", c.eagain, c.writable);
  }
  drive(w, NULL, NULL, 2); /* a second on_done would show up now */
  CHECK(c.rc != 0 || c.done <= 1, "stream: on_done ran %d times", c.done);
  followup(w);
  chat_followup(w);
}
static void phase_stream_client(world *w, long n) { phase_stream(w, n, FA_CLIENT, 1); }
static void phase_stream_server(world *w, long n) { phase_stream(w, n, FA_SERVER, 1); }
/* On a channel that has not connected yet, failing either side. */
static void phase_stream_cold(world *w, long n) { phase_stream(w, n, FA_ANY, 0); }

/* A blocking Chat stream on a private-loop channel: open, send_wait every chunk, close_send,
 * recv_wait every reply, finish_wait. A write that fails ends the writing: the stream is finished
 * at once (which closes the sending side) and its status taken as it comes. */
typedef struct bchat {
  const char *name;
  int rc_open, rc_write, rc_close, rc_read, rc_finish;
  int n_written, n_read, bad_read, reads;
  crpc_code code;
  char message[200];
  int msg_null;
} bchat;

static void bchat_run(crpc_channel *ch, bchat *b) {
  const char *name = b->name;
  memset(b, 0, sizeof *b);
  b->name = name;
  crpc_stream *s = NULL;
  b->rc_open = fa__svc__chat__open(ch, &chat_opts, &s);
  if (b->rc_open != 0) return;
  for (; b->n_written < CHAT_N; b->n_written++) {
    Fa__Chunk m = FA__CHUNK__INIT;
    m.seq = (uint32_t)b->n_written;
    m.data.data = chat_data;
    m.data.len = chat_req_size[b->n_written];
    m.reply_size = chat_rep_size[b->n_written];
    b->rc_write = fa__svc__chat__send_wait(s, &m);
    if (b->rc_write != 0) break;
  }
  if (b->rc_write == 0) {
    b->rc_close = crpc_stream_close_send(s);
    for (int i = 0; i < CHAT_N + 2; i++) { /* bounded: CHAT_N replies, then the end */
      Fa__Chunk *m = NULL;
      b->reads++;
      b->rc_read = fa__svc__chat__recv_wait(s, &m);
      if (b->rc_read != 1) {
        if (m) b->bad_read++; /* *msg must be NULL then */
        break;
      }
      int ok = m && m->seq == (uint32_t)b->n_read && m->seq < CHAT_N &&
               chat_data_ok(&m->data, chat_rep_size[m->seq]);
      if (!ok) b->bad_read++;
      b->n_read++;
      if (m) protobuf_c_message_free_unpacked(&m->base, NULL);
    }
  }
  crpc_status st;
  memset(&st, 0, sizeof st);
  b->rc_finish = fa__svc__chat__finish_wait(s, &st);
  b->code = st.code;
  b->msg_null = st.message == NULL;
  snprintf(b->message, sizeof b->message, "%s", st.message ? st.message : "(null)");
  crpc_status_reset(&st);
}

static void bchat_check(const bchat *b, int strict) {
  CHECK(b->rc_open == 0 || (!strict && b->rc_open == CRPC_ENOMEM), "%s: open returned %s",
        b->name, crpc_err_name(b->rc_open));
  if (b->rc_open != 0) return;
  CHECK(b->rc_write == 0 || (!strict && (b->rc_write == CRPC_ENOMEM ||
                                         b->rc_write == CRPC_ESTATE)),
        "%s: send_wait of chunk %d returned %s", b->name, b->n_written,
        crpc_err_name(b->rc_write));
  CHECK(b->rc_close == 0 || (!strict && b->rc_close == CRPC_ESTATE), "%s: close_send returned %s",
        b->name, crpc_err_name(b->rc_close));
  CHECK(b->rc_write != 0 || b->rc_read == 0 || (!strict && b->rc_read == CRPC_ENOMEM),
        "%s: recv_wait %d returned %s (want 1 per reply, then 0)", b->name, b->reads,
        b->rc_read == 1 ? "1 (more replies than asked for)" : crpc_err_name(b->rc_read));
  CHECK(!b->bad_read, "%s: %d wrong replies", b->name, b->bad_read);
  CHECK(b->rc_finish == 0, "%s: finish returned %s", b->name, crpc_err_name(b->rc_finish));
  if (strict)
    CHECK(b->code == CRPC_STATUS_OK, "%s: %s (%s) without any failure injected", b->name,
          crpc_code_name(b->code), b->message);
  else
    CHECK(chat_code_ok(b->code), "%s: ended %s (%s), want OK or a clean RESOURCE_EXHAUSTED/"
          "UNAVAILABLE/INTERNAL/CANCELLED", b->name, crpc_code_name(b->code), b->message);
  /* OK with every chunk written and every reply read to the end: all CHAT_N replies came. */
  if (b->code == CRPC_STATUS_OK && b->rc_write == 0 && b->rc_read == 0)
    CHECK(b->n_read == CHAT_N, "%s: OK with %d of %d replies", b->name, b->n_read, CHAT_N);
  CHECK(b->code == CRPC_STATUS_OK || !b->msg_null, "%s: %s status with message NULL (status.h "
        "promises a message on failure)", b->name, crpc_code_name(b->code));
}

/* A blocking stream on a private-loop channel (the server on its own thread), connected by a
 * warm-up call or not (the stream then connects it): client side; then a blocking call and a
 * blocking stream with failures off. */
static void phase_stream_blocking_(world *w, long n, int warm) {
  srv_thread t;
  memset(&t, 0, sizeof t);
  t.w = w;
  if (uv_sem_init(&t.ready, 0) != 0 || uv_thread_create(&t.tid, st_main, &t) != 0) abort();
  uv_sem_wait(&t.ready);
  uv_sem_destroy(&t.ready);
  CHECK(t.rc == 0, "server thread: %s", crpc_err_name(t.rc));
  set_target(w, t.port);
  crpc_channel *ch = NULL;
  int rc = crpc_channel_new(&ch, NULL, w->target);
  CHECK(rc == 0, "channel_new: %s", crpc_err_name(rc));
  if (rc == 0) {
    channel_options(ch);
    if (warm) {
      bcall b0 = {.ch = ch, .name = "warm"};
      bcall_run(&b0);
      bcall_check(&b0, "warm-up blocking call", 1);
    }
    bchat b = {.name = "blocking stream"};
    fa_arm(FA_CLIENT, n);
    bchat_run(ch, &b);
    int injected = fa_injected();
    fa_disarm();
    bchat_check(&b, !injected);
    uint64_t end = now_ms() + FA_WAIT_MS;
    bcall f;
    do { /* the connection may be backing off: 1..20 ms */
      memset(&f, 0, sizeof f);
      f.ch = ch;
      f.name = "after";
      bcall_run(&f);
    } while (f.rc == 0 && f.code == CRPC_STATUS_UNAVAILABLE && now_ms() < end);
    bcall_check(&f, "follow-up blocking call", 1);
    bchat fs = {.name = "follow-up blocking stream"};
    bchat_run(ch, &fs);
    bchat_check(&fs, 1);
    crpc_channel_close(ch, ch_closed, w);
    CHECK(w->ch_closed == 1, "private channel close ran its callback %d times", w->ch_closed);
    w->ch_closed = 0;
  }
  uv_async_send(&t.stop);
  uv_thread_join(&t.tid);
  CHECK(t.closed == 1, "server close callback ran %d times", t.closed);
  CHECK(t.loop_rc == 0, "server thread loop_close: %s", uv_err_name(t.loop_rc));
  CHECK(w->chat_ended == w->chat_started, "server: %d Chat calls started, %d ended",
        w->chat_started, w->chat_ended);
}
static void phase_stream_blocking(world *w, long n) { phase_stream_blocking_(w, n, 1); }
static void phase_stream_blocking_cold(world *w, long n) { phase_stream_blocking_(w, n, 0); }

/* ---- Phase table and the parent ------------------------------------------------------------- */

typedef struct phase {
  const char *name;
  void (*fn)(world *w, long n);
  int unix_transport;
} phase;

typedef struct shared {
  long counted;  /* allocations counted in the armed window */
  int injected;  /* the N-th came (and failed) */
  long total;    /* allocations through the wrappers in the child */
} shared;

static shared *g_shared;
/* The signal handlers from before cmocka installed its own (AddressSanitizer's, or the
 * defaults): a child gets them back, so that a crash is reported and ends the child instead of
 * being caught by cmocka, which would carry on with the next test in the child. */
static const int g_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS};
static struct sigaction g_saved[sizeof g_signals / sizeof g_signals[0]];
static char g_sock_dir[128];

/* Where the failure was injected: printed in the child's log, shown when the child fails. */
static void print_injection(void) {
  /* Said here, not only at the child's end: a child that crashes after it still counts as one
   * that injected, and the next N runs. */
  g_shared->injected = 1;
  fprintf(stderr, "FAILALLOC-INJECT %s: allocation %ld of the phase fails here:\n", g_phase, g_n);
#ifdef FA_HAVE_ASAN
  __sanitizer_print_stack_trace();
#endif
}

static void child(const phase *ph, long n) {
  fa_on_inject(print_injection);
  for (size_t i = 0; i < sizeof g_signals / sizeof g_signals[0]; i++)
    sigaction(g_signals[i], &g_saved[i], NULL);
  alarm(FA_CHILD_ALARM_S);
  g_phase = ph->name;
  g_n = n;
  world_init(&W, ph->unix_transport, g_sock_dir);
  ph->fn(&W, n);
  world_teardown(&W);
  g_shared->counted = fa_counted();
  g_shared->injected = fa_injected();
  g_shared->total = fa_total();
  fflush(stderr);
  exit(g_failures ? 3 : 0); /* exit(): LeakSanitizer checks now */
}

static void print_file(const char *path, size_t max) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char buf[4096];
  size_t left = max, got;
  while (left && (got = fread(buf, 1, left < sizeof buf ? left : sizeof buf, f)) > 0) {
    fwrite(buf, 1, got, stderr);
    left -= got;
  }
  if (!left) fprintf(stderr, "[... truncated]\n");
  fclose(f);
}

/* The first line of the child's output that says what went wrong. */
static void first_problem(const char *path, char *out, size_t len) {
  snprintf(out, len, "(no message)");
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "FAILALLOC ") || strstr(line, "ERROR: ") || strstr(line, "runtime error")) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(out, len, "%s", line);
      break;
    }
  }
  fclose(f);
}

static void run_phase(void **state) {
  const phase *ph = *state;
  int failures = 0;
  long n;
  long baseline = -1;
  for (n = 1; n <= FA_MAX_N; n++) {
    char log[] = "/tmp/failalloc-XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    memset(g_shared, 0, sizeof *g_shared);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      dup2(fd, 2);
      close(fd);
      child(ph, n);
    }
    close(fd);
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    int ok = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
    int injected = g_shared->injected;
    if (!ok) {
      failures++;
      char why[64], first[600];
      if (WIFSIGNALED(ws))
        snprintf(why, sizeof why, "killed by signal %d%s", WTERMSIG(ws),
                 WTERMSIG(ws) == SIGALRM ? " (hang)" : "");
      else if (WEXITSTATUS(ws) == 3)
        snprintf(why, sizeof why, "checks failed");
      else if (WEXITSTATUS(ws) == 23)
        snprintf(why, sizeof why, "leak (LeakSanitizer)");
      else
        snprintf(why, sizeof why, "exit %d (sanitizer error?)", WEXITSTATUS(ws));
      first_problem(log, first, sizeof first);
      fprintf(stderr, "[%s] N=%ld: %s: %s\n", ph->name, n, why, first);
      if (failures <= FA_PRINT_FULL) {
        fprintf(stderr, "----- output of %s N=%ld -----\n", ph->name, n);
        print_file(log, 24000);
        fprintf(stderr, "----- end of %s N=%ld -----\n", ph->name, n);
      }
    }
    unlink(log);
    if (ok && !injected) {
      baseline = g_shared->counted;
      /* The wrapping must apply: the phase allocated through the wrappers. */
      assert_true(g_shared->counted > 0);
      break;
    }
    if (!ok && !injected && WIFEXITED(ws)) break; /* the failure-free run failed: no end */
  }
  fprintf(stderr, "[%s] N=1..%ld: %d failing, %ld allocations in the phase\n", ph->name,
          n > FA_MAX_N ? FA_MAX_N : n, failures, baseline);
  assert_true(n <= FA_MAX_N); /* never reached a run without failure */
  assert_int_equal(failures, 0);
}

static const phase phases[] = {
    {"listen/tcp", phase_listen, 0},
    {"listen/unix", phase_listen, 1},
    {"connect/tcp", phase_connect, 0},
    {"connect/unix", phase_connect, 1},
    {"accept/tcp", phase_accept, 0},
    {"accept/unix", phase_accept, 1},
    {"unary_client/tcp", phase_unary_client, 0},
    {"unary_server/tcp", phase_unary_server, 0},
    {"unary_client/unix", phase_unary_client, 1},
    {"unary_server/unix", phase_unary_server, 1},
    {"unary_cold/tcp", phase_unary_cold, 0},
    {"unary_cold/unix", phase_unary_cold, 1},
    {"blocking_loop/tcp", phase_blocking_loop, 0},
    {"blocking_private/tcp", phase_blocking_private, 0},
    {"close_channel/tcp", phase_close_channel, 0},
    {"close_server/tcp", phase_close_server, 0},
    {"shutdown/tcp", phase_shutdown, 0},
    {"stream_client/tcp", phase_stream_client, 0},
    {"stream_server/tcp", phase_stream_server, 0},
    {"stream_cold/tcp", phase_stream_cold, 0},
    {"stream_blocking/tcp", phase_stream_blocking, 0},
    {"stream_blocking_cold/tcp", phase_stream_blocking_cold, 0},
};

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  for (size_t i = 0; i < sizeof g_signals / sizeof g_signals[0]; i++)
    sigaction(g_signals[i], NULL, &g_saved[i]);
  for (size_t i = 0; i < sizeof chat_data; i++) chat_data[i] = (uint8_t)(i * 7u + 3u);
  g_shared = mmap(NULL, sizeof *g_shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (g_shared == MAP_FAILED) return 1;
  snprintf(g_sock_dir, sizeof g_sock_dir, "/tmp/failalloc-XXXXXX");
  if (!mkdtemp(g_sock_dir)) return 1;
  struct CMUnitTest tests[sizeof phases / sizeof phases[0]];
  size_t count = 0;
  for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
    /* An argument runs the phases whose name starts with it only ("unary", "accept/tcp"). */
    if (argc > 1 && strncmp(phases[i].name, argv[1], strlen(argv[1])) != 0) continue;
    tests[count++] = (struct CMUnitTest){phases[i].name, run_phase, NULL, NULL,
                                         (void *)&phases[i]};
  }
  int rc = _cmocka_run_group_tests("failalloc", tests, count, NULL, NULL);
  rmdir(g_sock_dir);
  return rc;
}
