/* MAX_WRITE_BUFFER caps what is queued for a connection whoever produces it.
 *
 *  server_broadcast  A server streams to two clients: a loop channel that reads everything, and a
 *                    raw socket holding STALLED_STREAMS streams (each granted a window far larger
 *                    than anything sent) that stops reading. The test broadcasts ROUNDS messages
 *                    to every stream, with the typed send for some streams and
 *                    crpc_server_call_write() for the others. The bytes queued for the stalled
 *                    connection must never exceed MAX_WRITE_BUFFER plus one message frame; its
 *                    writes must be refused with CRPC_EAGAIN; once the socket reads again every
 *                    refused stream gets on_writable, with the queue drained to half the cap; the
 *                    healthy client gets every message and never sees CRPC_EAGAIN.
 *  client_async      A loop channel streams into a fake server that takes the call, grants a large
 *                    window and stops reading: the channel's queue stays within the cap, the
 *                    write is refused with CRPC_EAGAIN, and on_writable follows once it reads.
 *  client_blocking   The same with crpc_stream_send_wait() on a private-loop channel: the
 *                    blocking writer waits instead of failing.
 *  client_ping_flood A fake server floods a channel with PINGs and reads nothing: the answers
 *                    queued stay within the cap (a PING is not answered past it), and a CALL
 *                    from that peer past the cap closes the connection instead of being queued.
 *  client_blocking_status_while_parked  A blocking send parked for credit when the server ends
 *                    the call with a message still unread: the send returns CRPC_ESTATE at once
 *                    and finish reports the server's status.
 *
 * Queued bytes are read with crpc__conn_queued() through crpc_testing (runtime/src). Server,
 * channels and raw sockets share one loop on the test's thread (the blocking client runs on a
 * helper thread); every wait is bounded. */
#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "client/call.h"
#include "conn/conn.h"
#include "wire/frame.h"
#include "rawpeer.h"
#include "stream.h"
#include "server/call.h"

#define CAP (256 * 1024)
#define MSG_SIZE (32 * 1024)
#define ROUNDS 128
#define STALLED_STREAMS 3
#define NSUB (STALLED_STREAMS + 1)
#define GRANT (64u * 1024 * 1024) /* the raw client's window per stream: never the limit here */
#define RAW_RCVBUF 4096

/* ---- Raw sockets ------------------------------------------------------------------------------ */

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  assert_true(fl >= 0);
  assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static int raw_connect(int port) {
  char ep[64];
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
  int fd = ts_connect_fd(ep, RAW_RCVBUF);
  if (fd < 0) fail_msg("connect: %s", strerror(-fd));
  return fd;
}

static void raw_frame(int fd, uint8_t type, uint8_t flags, uint32_t id, const void *payload,
                      size_t len) {
  uint8_t *buf = malloc(CRPC__HDR_LEN + len + 1);
  assert_non_null(buf);
  crpc__hdr_encode(buf, type, flags, id, (uint32_t)len);
  if (len) memcpy(buf + CRPC__HDR_LEN, payload, len);
  ts_send_all(fd, buf, CRPC__HDR_LEN + len);
  free(buf);
}

static void raw_window(int fd, uint32_t id, uint32_t inc) {
  uint8_t p[4];
  crpc__be32_put(p, inc);
  raw_frame(fd, CRPC__F_WINDOW, 0, id, p, 4);
}

/* Reads whatever the socket holds (non-blocking); returns the bytes read, counts EOF. */
static size_t raw_drain(int fd, int *eof) {
  static uint8_t buf[65536];
  size_t total = 0;
  for (;;) {
    ssize_t k = recv(fd, buf, sizeof buf, 0);
    if (k > 0) {
      total += (size_t)k;
      continue;
    }
    if (k == 0) *eof = 1;
    if (k < 0 && errno == EINTR) continue;
    return total;
  }
}

/* The sending side's kernel buffer, fixed (no autotuning), so that what the kernel takes from a
 * connection whose peer does not read is small and known whatever the host's tcp_wmem. */
#define SEND_BUF 65536

static void fix_sndbuf(crpc__conn *c) {
  int fd = crpc__transport_fd(c->transport);
  assert_true(fd >= 0);
  int v = SEND_BUF;
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
}

/* ---- Messages --------------------------------------------------------------------------------- */

static uint8_t *payload_bytes(void) {
  static uint8_t *p;
  if (!p) {
    p = malloc(MSG_SIZE);
    assert_non_null(p);
    for (size_t i = 0; i < MSG_SIZE; i++) p[i] = (uint8_t)(i * 7u);
  }
  return p;
}

static void response_init(Itest__OutputResponse *r, Itest__Blob *b, int seq) {
  itest__output_response__init(r);
  itest__blob__init(b);
  b->data.data = payload_bytes();
  b->data.len = MSG_SIZE;
  r->payload = b;
  r->seq = seq;
}

/* ---- Server broadcast ------------------------------------------------------------------------- */

#define GREEDY_EXTRA 128 /* messages each stalled stream writes in the greedy phase */
#define MAX_WAKES 512

typedef struct bc_world bc_world;

typedef struct sub {
  bc_world *w;
  crpc_server_call *call;
  int typed;        /* write with the generated send, else crpc_server_call_write() */
  int blocked;      /* refused with CRPC_EAGAIN, on_writable not seen yet */
  int eagain;       /* writes refused */
  int sent;         /* writes taken */
  int writable;     /* on_writable callbacks */
  size_t queued_at_writable; /* the connection's queue when on_writable ran */
  int quota;        /* greedy phase: messages still to write */
} sub;

struct bc_world {
  st_env e;
  sub subs[NSUB];
  int nsubs;
  /* The healthy client. */
  crpc_stream *hs;
  int h_read, h_bad, h_done, h_writable;
  crpc_code h_code;
  /* Greedy phase: each on_writable writes until refused; the wake-ups, in order, with the set of
   * streams whose quota was done at that moment. */
  int greedy;
  int wake_log[MAX_WAKES];
  unsigned wake_done[MAX_WAKES];
  int nwakes;
};

static int sub_write(sub *s, int seq);

/* Writes until refused or the quota is done. */
static void greedy_write(sub *s) {
  while (s->quota > 0) {
    int rc = sub_write(s, s->sent);
    if (rc == CRPC_EAGAIN) {
      s->blocked = 1;
      s->eagain++;
      return;
    }
    assert_int_equal(rc, 0);
    s->sent++;
    s->quota--;
    assert_true(crpc__conn_queued(s->call->core.conn) <= (size_t)CAP + MSG_SIZE + 64);
  }
}

static void sub_writable(crpc_server_call *call, void *ud) {
  sub *s = ud;
  s->writable++;
  s->blocked = 0;
  s->queued_at_writable = crpc__conn_queued(call->core.conn);
  bc_world *w = s->w;
  if (!w->greedy) return;
  assert_true(w->nwakes < MAX_WAKES);
  unsigned done = 0;
  for (int i = 0; i < STALLED_STREAMS; i++)
    if (w->subs[i].quota == 0) done |= 1u << i;
  w->wake_done[w->nwakes] = done;
  w->wake_log[w->nwakes++] = (int)(s - w->subs);
  greedy_write(s);
}

static void sub_cancelled(crpc_server_call *call, void *ud) {
  sub *s = ud;
  s->call = NULL;
  crpc_server_call_end(call, CRPC_STATUS_CANCELLED, NULL);
}

static void on_streaming_output(crpc_server_call *call, const Itest__OutputRequest *req, void *ud) {
  bc_world *w = ud;
  (void)req;
  assert_true(w->nsubs < NSUB);
  sub *s = &w->subs[w->nsubs];
  s->w = w;
  s->call = call;
  s->typed = w->nsubs % 2 == 0;
  w->nsubs++;
  assert_int_equal(crpc_server_call_stream_handlers(call, NULL, sub_writable, s, 0), 0);
  crpc_server_call_on_cancel(call, sub_cancelled, s);
}

static const Itest__Test__Handlers bc_handlers = {.streaming_output = on_streaming_output};

static void h_read(crpc_stream *s, const Itest__OutputResponse *msg, void *ud) {
  bc_world *w = ud;
  (void)s;
  if (msg->seq == w->h_read && msg->payload && msg->payload->data.len == MSG_SIZE &&
      memcmp(msg->payload->data.data, payload_bytes(), MSG_SIZE) == 0)
    w->h_read++;
  else
    w->h_bad++;
}

static void h_writable(crpc_stream *s, void *ud) {
  (void)s;
  ((bc_world *)ud)->h_writable++;
}

static void h_done(crpc_stream *s, const crpc_status *st, void *ud) {
  bc_world *w = ud;
  (void)s;
  w->h_done++;
  w->h_code = st->code;
  w->hs = NULL;
}

static const Itest__Test__StreamingOutputHandlers h_handlers = {
    .on_read = h_read, .on_writable = h_writable, .on_done = h_done, .auto_read = 1};

static int sub_write(sub *s, int seq) {
  Itest__OutputResponse r;
  Itest__Blob b;
  response_init(&r, &b, seq);
  return s->typed ? itest__test__streaming_output__server_write(s->call, &r)
                  : crpc_server_call_write(s->call, (const ProtobufCMessage *)&r);
}

typedef struct wait_subs {
  bc_world *w;
  int n;
} wait_subs;

static int subs_arrived(void *p) {
  wait_subs *ws = p;
  return ws->w->nsubs >= ws->n;
}

static int granted(void *p) {
  bc_world *w = p;
  for (int i = 0; i < w->nsubs; i++)
    if (w->subs[i].call->core.conn && w->subs[i].call->core.flow.send_window < (int64_t)GRANT)
      return 0;
  return 1;
}

typedef struct healthy_wait {
  bc_world *w;
  int want;
} healthy_wait;

static int healthy_has(void *p) {
  healthy_wait *h = p;
  return h->w->h_read + h->w->h_bad >= h->want;
}

typedef struct drain_wait {
  bc_world *w;
  int fd;
  int eof;
  size_t read;
} drain_wait;

static int stalled_all_writable(void *p) {
  drain_wait *d = p;
  d->read += raw_drain(d->fd, &d->eof);
  for (int i = 0; i < d->w->nsubs; i++)
    if (d->w->subs[i].eagain && !d->w->subs[i].writable) return 0;
  return 1;
}

static int greedy_done(void *p) {
  drain_wait *d = p;
  d->read += raw_drain(d->fd, &d->eof);
  for (int i = 0; i < STALLED_STREAMS; i++)
    if (d->w->subs[i].quota > 0) return d->eof;
  return 1;
}

static void test_server_broadcast(void **state) {
  (void)state;
  bc_world *w = calloc(1, sizeof *w);
  assert_non_null(w);
  st_env *e = &w->e;
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
  assert_int_equal(crpc_server_new(&e->srv, &e->loop), 0);
  assert_int_equal(crpc_server_set_option(e->srv, CRPC_OPT_MAX_WRITE_BUFFER, CAP), 0);
  assert_int_equal(crpc_server_listen(e->srv, "tcp://127.0.0.1:0", &e->port), 0);
  assert_int_equal(itest__test__crpc_register(e->srv, &bc_handlers, w), 0);
  snprintf(e->endpoint, sizeof e->endpoint, "tcp://127.0.0.1:%d", e->port);

  /* The stalled client: STALLED_STREAMS server streams with a large window each. */
  int fd = raw_connect(e->port);
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  ts_send_all(fd, preface, sizeof preface);
  Itest__OutputRequest req = ITEST__OUTPUT_REQUEST__INIT;
  req.flood_size = 1; /* any non-empty request */
  uint8_t reqbuf[16];
  size_t reqlen = itest__output_request__pack(&req, reqbuf);
  const char *method = "itest.Test/StreamingOutput";
  size_t ml = strlen(method);
  size_t fixed = crpc__call_fixed_size(ml, 0);
  uint8_t callbuf[256];
  assert_true(fixed + reqlen <= sizeof callbuf);
  for (uint32_t i = 0; i < STALLED_STREAMS; i++) {
    uint8_t *end = crpc__call_fixed_encode(callbuf, method, (uint16_t)ml, 0, NULL, 0);
    memcpy(end, reqbuf, reqlen);
    raw_frame(fd, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, 2 * i + 1, callbuf,
              fixed + reqlen);
    raw_window(fd, 2 * i + 1, GRANT);
  }
  wait_subs ws = {w, STALLED_STREAMS};
  assert_true(st_run_until(e, subs_arrived, &ws, 10000));
  assert_true(st_run_until(e, granted, w, 10000));
  crpc__conn *stalled = w->subs[0].call->core.conn;
  for (int i = 0; i < STALLED_STREAMS; i++) assert_ptr_equal(w->subs[i].call->core.conn, stalled);
  fix_sndbuf(stalled);

  /* The healthy client: a loop channel whose window is never the limit either. */
  assert_int_equal(crpc_channel_new(&e->ch, &e->loop, e->endpoint), 0);
  assert_int_equal(crpc_channel_set_option(e->ch, CRPC_OPT_STREAM_WINDOW, 1073741824), 0);
  assert_int_equal(itest__test__streaming_output__stream(e->ch, NULL, &h_handlers, w, &w->hs), 0);
  assert_int_equal(itest__test__streaming_output__write(w->hs, &req), 0);
  assert_int_equal(crpc_stream_close_send(w->hs), 0);
  ws.n = NSUB;
  assert_true(st_run_until(e, subs_arrived, &ws, 10000));
  sub *healthy = &w->subs[NSUB - 1];
  assert_ptr_not_equal(healthy->call->core.conn, stalled);

  /* Broadcast. A stream refused with CRPC_EAGAIN is skipped until its on_writable. */
  Itest__OutputResponse probe;
  Itest__Blob pb;
  response_init(&probe, &pb, ROUNDS);
  size_t frame = CRPC__HDR_LEN + itest__output_response__get_packed_size(&probe);
  size_t peak = 0, offered = 0;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < NSUB; i++) {
      sub *s = &w->subs[i];
      if (s->blocked) continue;
      int rc = sub_write(s, s->sent);
      if (rc == CRPC_EAGAIN) {
        s->blocked = 1;
        s->eagain++;
      } else {
        assert_int_equal(rc, 0);
        s->sent++;
        if (s != healthy) offered += frame;
      }
      size_t q = crpc__conn_queued(stalled);
      if (q > peak) peak = q;
    }
    healthy_wait hw = {w, round + 1};
    if (!st_run_until(e, healthy_has, &hw, 10000))
      fail_msg("the healthy client has %d of %d messages after round %d", w->h_read, round + 1,
               round);
    size_t q = crpc__conn_queued(stalled);
    if (q > peak) peak = q;
  }
  int stalled_eagain = 0, stalled_sent = 0;
  for (int i = 0; i < STALLED_STREAMS; i++) {
    stalled_eagain += w->subs[i].eagain;
    stalled_sent += w->subs[i].sent;
  }
  printf("stalled connection: %d of %d writes taken (%.2f MiB), %d refused with CRPC_EAGAIN; "
         "peak %zu bytes (%.2f MiB) queued against MAX_WRITE_BUFFER %d (%.2f MiB) + one frame of "
         "%zu\n",
         stalled_sent, STALLED_STREAMS * ROUNDS, offered / 1048576.0, stalled_eagain, peak,
         peak / 1048576.0, CAP, CAP / 1048576.0, frame);
  assert_true(peak <= (size_t)CAP + frame);
  for (int i = 0; i < STALLED_STREAMS; i++) {
    assert_true(w->subs[i].eagain > 0);
    assert_int_equal(w->subs[i].writable, 0); /* nothing drained yet */
  }
  /* The healthy client was not held back: every message arrived, in order, none refused. */
  assert_int_equal(healthy->eagain, 0);
  assert_int_equal(healthy->sent, ROUNDS);
  assert_int_equal(w->h_read, ROUNDS);
  assert_int_equal(w->h_bad, 0);

  /* The stalled client reads again: every refused stream is told, once the queue has drained to
   * half the cap. */
  set_nonblock(fd);
  drain_wait d = {w, fd, 0, 0};
  assert_true(st_run_until(e, stalled_all_writable, &d, 20000));
  assert_false(d.eof);
  for (int i = 0; i < STALLED_STREAMS; i++) {
    printf("stalled stream %d: %d written, on_writable %d time(s), queue %zu bytes then\n", i,
           w->subs[i].sent, w->subs[i].writable, w->subs[i].queued_at_writable);
    assert_int_equal(w->subs[i].writable, 1);
    assert_true(w->subs[i].queued_at_writable <= CAP / 2);
    /* And the write goes through now. */
    assert_int_equal(sub_write(&w->subs[i], w->subs[i].sent), 0);
    w->subs[i].sent++;
  }

  /* Fairness: every stalled stream now writes greedily (until refused, from on_writable too)
   * while the client reads. Each must get its turns: between two wake-ups of one stream, every
   * other stream still writing is woken. */
  w->greedy = 1;
  for (int i = 0; i < STALLED_STREAMS; i++) {
    w->subs[i].quota = GREEDY_EXTRA;
    greedy_write(&w->subs[i]);
  }
  assert_true(st_run_until(e, greedy_done, &d, 30000));
  assert_false(d.eof);
  printf("greedy phase: %d wake-ups:", w->nwakes);
  for (int j = 0; j < w->nwakes; j++) printf(" %d", w->wake_log[j]);
  printf("\n");
  for (int j = 0; j < w->nwakes; j++) {
    int x = w->wake_log[j], prev = -1;
    for (int i = j - 1; i >= 0 && prev < 0; i--)
      if (w->wake_log[i] == x) prev = i;
    if (prev < 0) continue;
    for (int y = 0; y < STALLED_STREAMS; y++) {
      if (y == x || (w->wake_done[j] & (1u << y))) continue;
      int seen = 0;
      for (int i = prev + 1; i < j; i++) seen |= w->wake_log[i] == y;
      if (!seen) fail_msg("stream %d woken twice (wake-ups %d and %d) while stream %d waited", x,
                          prev, j, y);
    }
  }
  for (int i = 0; i < STALLED_STREAMS; i++) assert_int_equal(w->subs[i].quota, 0);

  /* End every stream; the healthy client sees OK. */
  for (int i = 0; i < NSUB; i++) {
    crpc_server_call_on_cancel(w->subs[i].call, NULL, NULL);
    assert_int_equal(crpc_server_call_end(w->subs[i].call, CRPC_STATUS_OK, NULL), 0);
  }
  st_wait_count(e, &w->h_done, 1, 10000, "healthy stream done");
  assert_int_equal(w->h_code, CRPC_STATUS_OK);
  assert_int_equal(w->h_writable, 0);
  close(fd);
  st_env_finish(e);
  free(w);
}

/* ---- Client side ------------------------------------------------------------------------------ */

/* A fake server: accepts one connection, takes the preface and the CALL of call 1, answers with
 * its preface and a large window, then reads only when told to. */
typedef struct fake {
  int lfd, fd, port;
  int eof;
  size_t got; /* bytes read */
} fake;

static void fake_listen(fake *f) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  f->lfd = ts_listen_fd(RAW_RCVBUF, &f->port); /* the accepted socket inherits RAW_RCVBUF */
}

static int fake_accepted(void *p) {
  fake *f = p;
  if (f->fd < 0) {
    f->fd = accept(f->lfd, NULL, NULL);
    if (f->fd < 0) return 0;
    set_nonblock(f->fd);
  }
  return 1;
}

/* The preface and call 1's CALL have arrived (read and dropped). */
static int fake_has_call(void *p) {
  fake *f = p;
  if (!fake_accepted(f)) return 0;
  f->got += raw_drain(f->fd, &f->eof);
  return f->got >= CRPC__PREFACE_LEN + CRPC__HDR_LEN;
}

static void fake_start(st_env *e, fake *f) {
  assert_true(st_run_until(e, fake_has_call, f, 10000));
  int fl = fcntl(f->fd, F_GETFL);
  assert_int_equal(fcntl(f->fd, F_SETFL, fl & ~O_NONBLOCK), 0);
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  ts_send_all(f->fd, preface, sizeof preface);
  raw_window(f->fd, 1, GRANT);
  set_nonblock(f->fd);
}

static void fake_close(fake *f) {
  if (f->fd >= 0) close(f->fd);
  close(f->lfd);
}

typedef struct cl_world {
  st_env e;
  fake f;
  crpc_stream *s;
  int writable, done;
  crpc_code code;
} cl_world;

static void cl_writable(crpc_stream *s, void *ud) {
  (void)s;
  ((cl_world *)ud)->writable++;
}

static void cl_done(crpc_stream *s, const crpc_status *st, void *ud) {
  cl_world *w = ud;
  (void)s;
  w->done++;
  w->code = st->code;
}

static const Itest__Test__FullDuplexHandlers cl_handlers = {.on_writable = cl_writable,
                                                            .on_done = cl_done};

static int cl_window_in(void *p) {
  cl_world *w = p;
  crpc_call *call = (crpc_call *)(void *)w->s;
  return call->core.flow.send_window >= (int64_t)GRANT;
}

static int cl_drained_writable(void *p) {
  cl_world *w = p;
  w->f.got += raw_drain(w->f.fd, &w->f.eof);
  return w->writable > 0;
}

/* A channel with MAX_WRITE_BUFFER = CAP and an async FullDuplex stream to the fake server, which
 * has granted the stream its window. */
static cl_world *cl_open(void) {
  cl_world *w = calloc(1, sizeof *w);
  assert_non_null(w);
  st_env *e = &w->e;
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
  fake_listen(&w->f);
  snprintf(e->endpoint, sizeof e->endpoint, "tcp://127.0.0.1:%d", w->f.port);
  assert_int_equal(crpc_channel_new(&e->ch, &e->loop, e->endpoint), 0);
  assert_int_equal(crpc_channel_set_option(e->ch, CRPC_OPT_MAX_WRITE_BUFFER, CAP), 0);
  assert_int_equal(itest__test__full_duplex__stream(e->ch, NULL, &cl_handlers, w, &w->s), 0);
  fake_start(e, &w->f);
  assert_true(st_run_until(e, cl_window_in, w, 10000));
  return w;
}

static void test_client_async(void **state) {
  (void)state;
  cl_world *w = cl_open();
  st_env *e = &w->e;
  crpc_call *call = (crpc_call *)(void *)w->s;
  crpc__conn *conn = call->core.conn;
  fix_sndbuf(conn);

  /* Write until refused (bounded: the window alone would allow GRANT bytes). */
  st_outreq o;
  st_outreq_init(&o, NULL, 0, MSG_SIZE);
  size_t frame = CRPC__HDR_LEN + itest__output_request__get_packed_size(&o.req);
  size_t peak = 0, written = 0;
  int rc = 0, n = 0;
  while (n < (int)(GRANT / MSG_SIZE) - 1) {
    rc = itest__test__full_duplex__write(w->s, &o.req);
    if (rc != 0) break;
    n++;
    written += frame;
    size_t q = crpc__conn_queued(conn);
    if (q > peak) peak = q;
    if (n % 8 == 0) uv_run(&e->loop, UV_RUN_NOWAIT); /* let the flushes happen */
  }
  printf("client: %d writes taken (%.2f MiB) before %s; peak %zu bytes (%.2f MiB) queued against "
         "MAX_WRITE_BUFFER %d + one frame of %zu\n",
         n, written / 1048576.0, rc ? crpc_strerror(rc) : "the end of the window", peak,
         peak / 1048576.0, CAP, frame);
  assert_int_equal(rc, CRPC_EAGAIN);
  assert_true(peak <= (size_t)CAP + frame);
  assert_int_equal(w->writable, 0);
  /* A retry before the queue drained is refused too, and does not lose the wake-up. */
  assert_int_equal(itest__test__full_duplex__write(w->s, &o.req), CRPC_EAGAIN);

  assert_true(st_run_until(e, cl_drained_writable, w, 20000));
  assert_int_equal(w->writable, 1);
  assert_true(crpc__conn_queued(conn) <= CAP / 2);
  assert_int_equal(itest__test__full_duplex__write(w->s, &o.req), 0);
  st_outreq_free(&o);

  crpc_stream_cancel(w->s);
  assert_int_equal(w->done, 1);
  assert_int_equal(w->code, CRPC_STATUS_CANCELLED);
  fake_close(&w->f);
  crpc_channel_close(e->ch, NULL, NULL);
  e->ch = NULL;
  uv_close((uv_handle_t *)&e->tick, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  free(w);
}

/* A fake server that floods PINGs without reading, then starts a call: the channel, which keeps
 * reading, must not queue an answer per PING past the cap, and closes the connection (GOAWAY
 * ENHANCE_YOUR_CALM) on the CALL rather than queue its refusal. */
#define FLOOD_PINGS 400000 /* 8 MiB of PINGs: far more answers than the kernel buffers hold */

typedef struct flood {
  cl_world *w;
  crpc__conn *conn;
  uint8_t *buf;
  size_t len, off;
  size_t peak;
} flood;

static int flood_sent(void *p) {
  flood *fl = p;
  while (fl->off < fl->len) {
    ssize_t k = send(fl->w->f.fd, fl->buf + fl->off, fl->len - fl->off, MSG_NOSIGNAL);
    if (k <= 0) break;
    fl->off += (size_t)k;
  }
  size_t q = fl->conn->state == CRPC__CONN_OPEN ? crpc__conn_queued(fl->conn) : 0;
  if (q > fl->peak) fl->peak = q;
  return fl->off == fl->len || fl->w->done;
}

static int cl_is_done(void *p) { return ((cl_world *)p)->done > 0; }

static void test_client_ping_flood(void **state) {
  (void)state;
  cl_world *w = cl_open();
  st_env *e = &w->e;
  flood fl = {w, ((crpc_call *)(void *)w->s)->core.conn, NULL, (size_t)FLOOD_PINGS * 20, 0, 0};
  fix_sndbuf(fl.conn);
  fl.buf = calloc(FLOOD_PINGS, 20);
  assert_non_null(fl.buf);
  for (size_t i = 0; i < FLOOD_PINGS; i++) crpc__hdr_encode(fl.buf + 20 * i, CRPC__F_PING, 0, 0, 8);
  assert_true(st_run_until(e, flood_sent, &fl, 30000));
  printf("ping flood: %d PINGs (%.2f MiB) sent to a channel by a peer that reads nothing; peak "
         "%zu bytes (%.2f MiB) queued for it against MAX_WRITE_BUFFER %d\n",
         FLOOD_PINGS, fl.len / 1048576.0, fl.peak, fl.peak / 1048576.0, CAP);
  assert_int_equal(w->done, 0); /* the call goes on */
  assert_true(fl.peak <= (size_t)CAP + CRPC__HDR_LEN + 8);
  free(fl.buf);

  /* Over the cap still (nothing was read): a CALL from the peer ends the connection. */
  const char *method = "any.Service/Method";
  uint8_t callbuf[128];
  size_t ml = strlen(method);
  size_t fixed = crpc__call_fixed_size(ml, 0);
  crpc__call_fixed_encode(callbuf, method, (uint16_t)ml, 0, NULL, 0);
  int fdfl = fcntl(w->f.fd, F_GETFL);
  assert_int_equal(fcntl(w->f.fd, F_SETFL, fdfl & ~O_NONBLOCK), 0);
  raw_frame(w->f.fd, CRPC__F_CALL, CRPC__FL_END, 2, callbuf, fixed);
  assert_true(st_run_until(e, cl_is_done, w, 10000));
  assert_int_equal(w->code, CRPC_STATUS_UNAVAILABLE);
  fake_close(&w->f);
  crpc_channel_close(e->ch, NULL, NULL);
  e->ch = NULL;
  uv_close((uv_handle_t *)&e->tick, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  free(w);
}

/* Blocking: a helper thread sends n messages with send_wait on a private-loop channel to the
 * fake server, which reads nothing until the sender has stopped making progress, then reads
 * everything. n is chosen so that the kernel buffers (a 4 KiB receiver, a sender autotuned up to
 * tcp_wmem's maximum) plus MAX_WRITE_BUFFER hold far less: with the cap the sender must wait;
 * without it every send_wait returns at once. Either way no send_wait may fail. */
#define BLOCKING_MAX 4096

static int blocking_count(void) {
  long wmem_max = 4194304; /* Linux's default when /proc cannot say */
  FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
  if (f) {
    long lo, def, hi;
    if (fscanf(f, "%ld %ld %ld", &lo, &def, &hi) == 3 && hi > 0) wmem_max = hi;
    fclose(f);
  }
  long n = (wmem_max + 1048576 + CAP) / MSG_SIZE + 64;
  if (n < 256) n = 256;
  return n > BLOCKING_MAX ? BLOCKING_MAX : (int)n;
}
#define STILL_MS 300 /* no progress for this long: the sender is waiting */

typedef struct bl_job {
  const char *endpoint;
  int n;
  int rcs[BLOCKING_MAX];
  int open_rc;
  atomic_int progress; /* send_wait calls returned 0 */
  crpc_status st;
} bl_job;

static void bl_sender(void *p) {
  bl_job *j = p;
  crpc_channel *ch;
  j->open_rc = -1;
  if (crpc_channel_new(&ch, NULL, j->endpoint) != 0) return;
  crpc_channel_set_option(ch, CRPC_OPT_MAX_WRITE_BUFFER, CAP);
  crpc_stream *s;
  j->open_rc = itest__test__full_duplex__open(ch, NULL, &s);
  if (j->open_rc == 0) {
    st_outreq o;
    st_outreq_init(&o, NULL, 0, MSG_SIZE);
    for (int i = 0; i < j->n; i++) {
      j->rcs[i] = itest__test__full_duplex__send_wait(s, &o.req);
      if (j->rcs[i] != 0) break;
      atomic_fetch_add(&j->progress, 1);
    }
    st_outreq_free(&o);
    crpc_stream_cancel_async(s);
    itest__test__full_duplex__finish_wait(s, &j->st);
  }
  crpc_channel_close(ch, NULL, NULL);
}

static void sleep_ms(long ms) { nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL); }

static void test_client_blocking(void **state) {
  (void)state;
  st_env *e = calloc(1, sizeof *e);
  assert_non_null(e);
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
  fake f;
  fake_listen(&f);
  char endpoint[64];
  snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", f.port);
  bl_job *j = calloc(1, sizeof *j);
  assert_non_null(j);
  j->endpoint = endpoint;
  atomic_init(&j->progress, 0);
  j->n = blocking_count();
  for (int i = 0; i < j->n; i++) j->rcs[i] = 1; /* not sent */
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, bl_sender, j), 0);
  fake_start(e, &f);
  /* Read nothing until the sender stops making progress (or is done). */
  int last = -1, now = 0;
  uint64_t still_since = ts_now_ms(), end = ts_now_ms() + 10000;
  while (ts_now_ms() < end) {
    now = atomic_load(&j->progress);
    if (now == j->n) break;
    if (now != last) {
      last = now;
      still_since = ts_now_ms();
    } else if (ts_now_ms() - still_since >= STILL_MS) {
      break;
    }
    sleep_ms(10);
  }
  int stalled_at = atomic_load(&j->progress);
  /* Now read everything, until the sender is done with its sends. */
  end = ts_now_ms() + 30000;
  while (atomic_load(&j->progress) < j->n && !f.eof && ts_now_ms() < end) {
    size_t k = raw_drain(f.fd, &f.eof);
    f.got += k;
    if (!k) sleep_ms(1);
  }
  /* The sender cancels and finishes on its own: answer nothing more, let it go. */
  fake_close(&f);
  uv_thread_join(&t);
  printf("blocking client: the sender waited after %d of %d send_wait calls (%.2f MiB) while the "
         "server read nothing; all returned once it read (%zu bytes read)\n",
         stalled_at, j->n, stalled_at * (double)MSG_SIZE / 1048576.0, f.got);
  assert_int_equal(j->open_rc, 0);
  for (int i = 0; i < j->n; i++)
    if (j->rcs[i] != 0) fail_msg("send_wait %d returned %s", i, crpc_strerror(j->rcs[i]));
  assert_true(stalled_at < j->n);
  crpc_status_reset(&j->st);
  free(j);
  uv_close((uv_handle_t *)&e->tick, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  free(e);
}


/* A blocking send parked (window used up) when the server ends the call while one of its
 * messages is still unread: the STATUS is kept for the reads, and the parked send must return
 * CRPC_ESTATE at once (stream.h: the call has ended), not wait for credit that can never come
 * (the call is gone from the wire) until a deadline. The call has a deadline only so that the
 * test ends either way; the result tells which happened: the finish reports the server's OK, not
 * DEADLINE_EXCEEDED. */
#define PARK_DEADLINE_MS 3000

typedef struct park_job {
  const char *endpoint;
  int rcs[3];
  int open_rc;
  atomic_int progress; /* send_wait calls returned (any result) */
  crpc_status st;
} park_job;

static void park_sender(void *p) {
  park_job *j = p;
  crpc_channel *ch;
  j->open_rc = -1;
  if (crpc_channel_new(&ch, NULL, j->endpoint) != 0) return;
  crpc_call_opts opts = {.timeout_ms = PARK_DEADLINE_MS};
  crpc_stream *s;
  j->open_rc = itest__test__full_duplex__open(ch, &opts, &s);
  if (j->open_rc == 0) {
    st_outreq o;
    st_outreq_init(&o, NULL, 0, MSG_SIZE);
    for (int i = 0; i < 3; i++) { /* two fit the initial window of 65536; the third parks */
      j->rcs[i] = itest__test__full_duplex__send_wait(s, &o.req);
      atomic_fetch_add(&j->progress, 1);
      if (j->rcs[i] != 0) break;
    }
    st_outreq_free(&o);
    itest__test__full_duplex__finish_wait(s, &j->st);
  }
  crpc_channel_close(ch, NULL, NULL);
}

static void test_client_blocking_status_while_parked(void **state) {
  (void)state;
  fake f;
  fake_listen(&f);
  char endpoint[64];
  snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", f.port);
  park_job *j = calloc(1, sizeof *j);
  assert_non_null(j);
  j->endpoint = endpoint;
  atomic_init(&j->progress, 0);
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, park_sender, j), 0);
  /* Accept; answer the preface, grant nothing beyond the protocol's 65536. */
  uint64_t end = ts_now_ms() + 10000;
  while (!fake_accepted(&f) && ts_now_ms() < end) sleep_ms(1);
  assert_true(f.fd >= 0);
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  int fl = fcntl(f.fd, F_GETFL);
  assert_int_equal(fcntl(f.fd, F_SETFL, fl & ~O_NONBLOCK), 0);
  ts_send_all(f.fd, preface, sizeof preface);
  set_nonblock(f.fd);
  /* The two sends that fit have returned; give the third time to park (not needed for the
   * result: a send after the STATUS is CRPC_ESTATE as well). */
  while (atomic_load(&j->progress) < 2 && ts_now_ms() < end) {
    f.got += raw_drain(f.fd, &f.eof);
    sleep_ms(1);
  }
  assert_int_equal(atomic_load(&j->progress), 2);
  sleep_ms(200);
  f.got += raw_drain(f.fd, &f.eof);
  /* One response (an empty OutputResponse), unread by the client, then STATUS OK. */
  fcntl(f.fd, F_SETFL, fl & ~O_NONBLOCK);
  raw_frame(f.fd, CRPC__F_MESSAGE, 0, 1, NULL, 0);
  uint8_t stp[16] = {0}; /* code OK, no text, no metadata, no details */
  raw_frame(f.fd, CRPC__F_STATUS, 0, 1, stp, sizeof stp);
  set_nonblock(f.fd);
  end = ts_now_ms() + 10000;
  while (atomic_load(&j->progress) < 3 && ts_now_ms() < end) {
    f.got += raw_drain(f.fd, &f.eof);
    sleep_ms(1);
  }
  uv_thread_join(&t);
  fake_close(&f);
  printf("parked send_wait returned %s; finish: %s \"%s\"\n", crpc_strerror(j->rcs[2]),
         crpc_code_name(j->st.code), j->st.message ? j->st.message : "");
  assert_int_equal(j->open_rc, 0);
  assert_int_equal(j->rcs[0], 0);
  assert_int_equal(j->rcs[1], 0);
  assert_int_equal(j->rcs[2], CRPC_ESTATE);
  assert_int_equal(j->st.code, CRPC_STATUS_OK); /* the server's status, not the deadline */
  crpc_status_reset(&j->st);
  free(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_server_broadcast),
      cmocka_unit_test(test_client_async),
      cmocka_unit_test(test_client_blocking),
      cmocka_unit_test(test_client_ping_flood),
      cmocka_unit_test(test_client_blocking_status_while_parked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
