/* The transport interface (runtime/src/transport/transport.h) itself, over real sockets: a TCP
 * connection on 127.0.0.1 and a Unix socket in a temporary directory, both ends made the way the
 * channel (connect) and the server (accept) make theirs. Every test runs once per transport.
 *
 *  identity        peer address text on both ends; SO_PEERCRED (Unix) is this process
 *  pending         bytes written by the peer are counted by pending() before any read, and
 *                  read_start delivers nothing before it returns
 *  partial_write   try_write of an iovec takes part of it once the kernel is full, then nothing;
 *                  the asynchronous write of the rest completes later (never inside write), and
 *                  the peer receives every byte in order
 *  close_in_read   close called from inside the read callback: no read after it, the write in
 *                  progress completes cancelled before close's callback, which runs once, later,
 *                  with the user's data still there; the peer then sees the end of the stream
 *
 * Loops are bounded by iteration counts (a ticking timer keeps each turn short); no result depends
 * on timing. */
/* SO_PEERCRED is a Linux extension that glibc only declares with _GNU_SOURCE. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "transport/stream.h"

#define MAX_TURNS 20000 /* loop turns any wait may take: a 5 ms tick makes this ~100 s at most */

typedef struct pair {
  int kind; /* CRPC__STREAM_TCP or CRPC__STREAM_UNIX */
  uv_loop_t loop;
  uv_timer_t tick;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } lst;
  uv_connect_t req;
  char dir[64];
  char path[96];
  int port;
  crpc__transport *a; /* the connecting end */
  crpc__transport *b; /* the accepting end */
  int connected;
} pair;

static void on_tick(uv_timer_t *t) { (void)t; }

static void run_until(pair *p, int (*done)(void *), void *arg) {
  for (int i = 0; i < MAX_TURNS && !done(arg); i++) uv_run(&p->loop, UV_RUN_ONCE);
  assert_true(done(arg));
}

static void on_accept(uv_stream_t *ls, int status) {
  pair *p = ls->data;
  assert_int_equal(status, 0);
  assert_null(p->b);
  assert_int_equal(crpc__stream_new(&p->loop, p->kind, &p->b), 0);
  assert_int_equal(uv_accept(ls, crpc__stream_handle(p->b)), 0);
  crpc__stream_connected(p->b);
}

static void on_connect(uv_connect_t *req, int status) {
  pair *p = req->data;
  assert_int_equal(status, 0);
  crpc__stream_connected(p->a);
  p->connected = 1;
}

static int both_ends(void *arg) {
  pair *p = arg;
  return p->connected && p->b != NULL;
}

static int setup(void **state, int kind) {
  pair *p = calloc(1, sizeof *p);
  assert_non_null(p);
  p->kind = kind;
  assert_int_equal(uv_loop_init(&p->loop), 0);
  assert_int_equal(uv_timer_init(&p->loop, &p->tick), 0);
  assert_int_equal(uv_timer_start(&p->tick, on_tick, 5, 5), 0);
  p->lst.handle.data = p;
  p->req.data = p;
  assert_int_equal(crpc__stream_new(&p->loop, kind, &p->a), 0);
  if (kind == CRPC__STREAM_TCP) {
    struct sockaddr_in sa;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_init(&p->loop, &p->lst.tcp), 0);
    assert_int_equal(uv_tcp_bind(&p->lst.tcp, (const struct sockaddr *)&sa, 0), 0);
    int len = sizeof sa;
    assert_int_equal(uv_tcp_getsockname(&p->lst.tcp, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    assert_int_equal(uv_listen(&p->lst.stream, 8, on_accept), 0);
    assert_int_equal(uv_tcp_connect(&p->req, (uv_tcp_t *)crpc__stream_handle(p->a),
                                    (const struct sockaddr *)&sa, on_connect),
                     0);
  } else {
    snprintf(p->dir, sizeof p->dir, "/tmp/crpc-transport-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->path, sizeof p->path, "%s/s", p->dir);
    assert_int_equal(uv_pipe_init(&p->loop, &p->lst.pipe, 0), 0);
    assert_int_equal(uv_pipe_bind(&p->lst.pipe, p->path), 0);
    assert_int_equal(uv_listen(&p->lst.stream, 8, on_accept), 0);
    uv_pipe_connect(&p->req, (uv_pipe_t *)crpc__stream_handle(p->a), p->path, on_connect);
  }
  run_until(p, both_ends, p);
  *state = p;
  return 0;
}

static int setup_tcp(void **state) { return setup(state, CRPC__STREAM_TCP); }
static int setup_unix(void **state) { return setup(state, CRPC__STREAM_UNIX); }

static int teardown(void **state) {
  pair *p = *state;
  /* Ends the tests left open are closed here (a test that closes one sets it to NULL). */
  if (p->a) p->a->ops->close(p->a, NULL);
  if (p->b) p->b->ops->close(p->b, NULL);
  uv_close(&p->lst.handle, NULL);
  uv_close((uv_handle_t *)&p->tick, NULL);
  assert_int_equal(uv_run(&p->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&p->loop), 0);
  if (p->path[0]) unlink(p->path);
  if (p->dir[0]) rmdir(p->dir);
  free(p);
  return 0;
}

/* ---- Reading into a growing buffer ------------------------------------------------------------ */

typedef struct sink {
  uint8_t chunk[65536];
  uint8_t *data;
  size_t len, cap;
  int allocs, reads, eof; /* eof: the read error seen (UV_EOF or another), 0 until then */
  int after_close;        /* alloc or read calls after the sink's own close */
  int closed;             /* the sink closed its transport */
  int close_in_read;      /* close from inside the first read that brings bytes */
  int closes;             /* close callbacks run */
  int write_status, writes; /* a write's completions, and its last status */
  int writes_before_close;  /* write completions seen when close's callback ran */
} sink;

static void sink_alloc(crpc__transport *t, uv_buf_t *buf) {
  sink *s = t->data;
  if (s->closed) s->after_close++;
  s->allocs++;
  *buf = uv_buf_init((char *)s->chunk, sizeof s->chunk);
}

static void sink_closed(crpc__transport *t) {
  sink *s = t->data; /* the user's pointer is still there */
  s->closes++;
  s->writes_before_close = s->writes;
}

static void sink_read(crpc__transport *t, ssize_t n, const uv_buf_t *buf) {
  sink *s = t->data;
  if (s->closed) s->after_close++;
  s->reads++;
  if (n < 0) {
    s->eof = (int)n;
    t->ops->read_stop(t);
    return;
  }
  assert_ptr_equal(buf->base, (char *)s->chunk);
  if (s->len + (size_t)n > s->cap) {
    s->cap = (s->len + (size_t)n) * 2;
    s->data = realloc(s->data, s->cap);
    assert_non_null(s->data);
  }
  memcpy(s->data + s->len, buf->base, (size_t)n);
  s->len += (size_t)n;
  if (n > 0 && s->close_in_read && !s->closed) {
    s->closed = 1;
    t->ops->close(t, sink_closed);
    assert_int_equal(s->closes, 0); /* never from inside close */
  }
}

static sink *sink_new(crpc__transport *t) {
  sink *s = calloc(1, sizeof *s);
  assert_non_null(s);
  t->data = s;
  return s;
}

static void sink_free(sink *s) {
  free(s->data);
  free(s);
}

static void sink_written(crpc__transport *t, int status) {
  sink *s = t->data;
  s->writes++;
  s->write_status = status;
}

static void pattern(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 131u + (i >> 13));
}

/* ---- Tests ------------------------------------------------------------------------------------ */

static void identity(void **state) {
  pair *p = *state;
  const crpc__peer *pa = crpc__transport_peer(p->a), *pb = crpc__transport_peer(p->b);
  assert_true(crpc__transport_fd(p->a) >= 0);
  assert_true(crpc__transport_fd(p->b) >= 0);
  char want[160];
  if (p->kind == CRPC__STREAM_TCP) {
    assert_string_equal(pa->transport, "tcp");
    assert_string_equal(pb->transport, "tcp");
    /* The connecting end sees the listener's address; the accepting end the connecting one's
     * own (ephemeral) port. */
    snprintf(want, sizeof want, "tcp://127.0.0.1:%d", p->port);
    assert_string_equal(pa->addr, want);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(crpc__transport_fd(p->a), (struct sockaddr *)&sa, &len), 0);
    snprintf(want, sizeof want, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
    assert_string_equal(pb->addr, want);
    assert_int_equal(pa->has_cred, 0);
    assert_int_equal(pb->has_cred, 0);
  } else {
    assert_string_equal(pa->transport, "unix");
    assert_string_equal(pb->transport, "unix");
    snprintf(want, sizeof want, "unix:%s", p->path);
    assert_string_equal(pa->addr, want);
    assert_string_equal(pb->addr, "unix:"); /* the connecting socket has no name */
#if defined(__linux__) && !defined(SO_PEERCRED)
#error "SO_PEERCRED is missing: the credentials check would be skipped"
#endif
#ifdef SO_PEERCRED
    /* Both ends are this process. */
    const crpc__peer *ends[] = {pa, pb};
    for (int i = 0; i < 2; i++) {
      assert_int_equal(ends[i]->has_cred, 1);
      assert_int_equal(ends[i]->uid, getuid());
      assert_int_equal(ends[i]->gid, getgid());
      assert_int_equal(ends[i]->pid, getpid());
    }
#endif
  }
}

typedef struct want_pending {
  crpc__transport *t;
  size_t n;
} want_pending;

static int pending_reached(void *arg) {
  want_pending *w = arg;
  return w->t->ops->pending(w->t) >= w->n;
}

static int sink_has(void *arg) {
  sink *s = arg;
  return s->len >= 1000;
}

static void pending(void **state) {
  pair *p = *state;
  sink *sb = sink_new(p->b);
  assert_int_equal(p->b->ops->pending(p->b), 0);
  uint8_t msg[1000];
  pattern(msg, sizeof msg);
  uv_buf_t b = uv_buf_init((char *)msg, sizeof msg);
  assert_int_equal(p->a->ops->try_write(p->a, &b, 1), (int)sizeof msg);
  want_pending w = {p->b, sizeof msg};
  run_until(p, pending_reached, &w);
  assert_int_equal(p->b->ops->pending(p->b), sizeof msg);
  assert_int_equal(p->b->ops->read_start(p->b, sink_alloc, sink_read), 0);
  assert_int_equal(sb->allocs + sb->reads, 0); /* nothing from inside read_start */
  run_until(p, sink_has, sb);
  assert_int_equal(sb->len, sizeof msg);
  assert_memory_equal(sb->data, msg, sizeof msg);
  assert_int_equal(p->b->ops->pending(p->b), 0);
  sink_free(sb);
  p->b->data = NULL;
}

#define BIG (8u << 20) /* far more than both kernel buffers, however they are tuned */

static int small_buffers(crpc__transport *t) {
  int v = 16384;
  int fd = crpc__transport_fd(t);
  return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) |
         setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
}

typedef struct big_state {
  sink *reader, *writer;
} big_state;

static int big_done(void *arg) {
  big_state *st = arg;
  return st->writer->writes == 1 && st->reader->len == BIG;
}

static void partial_write(void **state) {
  pair *p = *state;
  assert_int_equal(small_buffers(p->a), 0);
  assert_int_equal(small_buffers(p->b), 0);
  uint8_t *data = malloc(BIG);
  assert_non_null(data);
  pattern(data, BIG);
  sink *sa = sink_new(p->a), *sb = sink_new(p->b);

  /* An iovec of three pieces: the kernel takes some of it, in order, and not all. */
  uv_buf_t iov[3] = {uv_buf_init((char *)data, 1000), uv_buf_init((char *)data + 1000, 3u << 20),
                     uv_buf_init((char *)data + 1000 + (3u << 20), BIG - 1000 - (3u << 20))};
  int taken = p->a->ops->try_write(p->a, iov, 3);
  assert_true(taken > 0);
  assert_true((size_t)taken < BIG);
  /* Offered again until it takes nothing: the kernel is full (bounded: each round takes > 0). */
  size_t sent = (size_t)taken;
  for (int i = 0; i < 1000; i++) {
    uv_buf_t rest = uv_buf_init((char *)data + sent, (unsigned)(BIG - sent));
    int n = p->a->ops->try_write(p->a, &rest, 1);
    assert_true(n >= 0);
    if (n == 0) break;
    sent += (size_t)n;
  }
  assert_true(sent < BIG);

  /* The rest asynchronously: it cannot complete before the peer reads, nor inside write. */
  uv_buf_t rest = uv_buf_init((char *)data + sent, (unsigned)(BIG - sent));
  assert_int_equal(p->a->ops->write(p->a, &rest, 1, sink_written), 0);
  assert_int_equal(sa->writes, 0);
  /* While it is in progress try_write takes nothing (it would jump the queue). */
  uint8_t x = 0;
  uv_buf_t one = uv_buf_init((char *)&x, 1);
  assert_int_equal(p->a->ops->try_write(p->a, &one, 1), 0);
  for (int i = 0; i < 10; i++) uv_run(&p->loop, UV_RUN_NOWAIT);
  assert_int_equal(sa->writes, 0);

  assert_int_equal(p->b->ops->read_start(p->b, sink_alloc, sink_read), 0);
  big_state st = {sb, sa};
  run_until(p, big_done, &st);
  assert_int_equal(sa->write_status, 0);
  assert_int_equal(sb->len, BIG);
  assert_memory_equal(sb->data, data, BIG);
  assert_int_equal(sb->eof, 0);
  free(data);
  sink_free(sa);
  sink_free(sb);
  p->a->data = p->b->data = NULL;
}

static int closed_and_eof(void *arg) {
  sink **s = arg;
  return s[1]->closes == 1 && s[0]->eof != 0;
}

static void close_in_read(void **state) {
  pair *p = *state;
  assert_int_equal(small_buffers(p->a), 0);
  assert_int_equal(small_buffers(p->b), 0);
  sink *sa = sink_new(p->a), *sb = sink_new(p->b);
  /* b has a write in progress that a, not reading yet, cannot let complete. */
  uint8_t *data = malloc(BIG);
  assert_non_null(data);
  pattern(data, BIG);
  uv_buf_t all = uv_buf_init((char *)data, BIG);
  assert_int_equal(p->b->ops->write(p->b, &all, 1, sink_written), 0);
  for (int i = 0; i < 10; i++) uv_run(&p->loop, UV_RUN_NOWAIT);
  assert_int_equal(sb->writes, 0);

  /* a sends two pieces; b closes from inside the read that brings the first bytes. */
  sb->close_in_read = 1;
  assert_int_equal(p->b->ops->read_start(p->b, sink_alloc, sink_read), 0);
  uint8_t msg[100];
  pattern(msg, sizeof msg);
  uv_buf_t b = uv_buf_init((char *)msg, sizeof msg);
  assert_int_equal(p->a->ops->try_write(p->a, &b, 1), (int)sizeof msg);
  assert_int_equal(p->a->ops->try_write(p->a, &b, 1), (int)sizeof msg);
  assert_int_equal(p->a->ops->read_start(p->a, sink_alloc, sink_read), 0);
  sink *both[2] = {sa, sb};
  run_until(p, closed_and_eof, both);
  p->b = NULL; /* closed and freed */

  assert_int_equal(sb->closes, 1);
  assert_int_equal(sb->after_close, 0);
  assert_true(sb->len >= 1 && sb->len <= 2 * sizeof msg);
  assert_memory_equal(sb->data, msg, sb->len < sizeof msg ? sb->len : sizeof msg);
  /* The cancelled write completed, with an error, before close's callback. */
  assert_int_equal(sb->writes, 1);
  assert_int_equal(sb->writes_before_close, 1);
  assert_true(sb->write_status < 0);
  /* a read what b had sent before the close (in order), then the end of the stream. */
  assert_true(sa->len <= BIG);
  if (sa->len) assert_memory_equal(sa->data, data, sa->len);
  assert_true(sa->eof < 0);
  free(data);
  sink_free(sa);
  sink_free(sb);
  p->a->data = NULL;
}

/* One named test per transport, so that a failure says which. */
#define PER_TRANSPORT(fn)                                            \
  static void tcp_##fn(void **state) { fn(state); }                 \
  static void unix_##fn(void **state) { fn(state); }
PER_TRANSPORT(identity)
PER_TRANSPORT(pending)
PER_TRANSPORT(partial_write)
PER_TRANSPORT(close_in_read)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(tcp_identity, setup_tcp, teardown),
      cmocka_unit_test_setup_teardown(unix_identity, setup_unix, teardown),
      cmocka_unit_test_setup_teardown(tcp_pending, setup_tcp, teardown),
      cmocka_unit_test_setup_teardown(unix_pending, setup_unix, teardown),
      cmocka_unit_test_setup_teardown(tcp_partial_write, setup_tcp, teardown),
      cmocka_unit_test_setup_teardown(unix_partial_write, setup_unix, teardown),
      cmocka_unit_test_setup_teardown(tcp_close_in_read, setup_tcp, teardown),
      cmocka_unit_test_setup_teardown(unix_close_in_read, setup_unix, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
