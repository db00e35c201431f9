/* floor-bench: the W1 workload with crpc's dependencies and nothing of crpc — the floor under
 * crpc-bench's W1 on a given machine.
 *
 * A libuv TCP server and a blocking client on a private libuv loop exchange bench.Msg values
 * packed by protobuf-c in frames of a 4-byte big-endian length and the message. Each side does
 * per call what crpc does with its libraries and nothing else: the sender sizes and packs the
 * message and tries one write; the receiver waits in one loop iteration, reads, and unpacks (the
 * client with malloc, freed with free_unpacked as a crpc caller frees a response). No call ids,
 * status, metadata, deadlines or flow control: a W1 p50 here is what any design that runs
 * libuv's loop and protobuf-c on both sides pays before its own code. tests/bench/RESULTS.md
 * compares it with raw TCP and crpc.
 *
 *   floor-bench server --port P             serves until SIGINT/SIGTERM
 *   floor-bench --port P [--calls N] [--size N]
 *       2,000 warm-up calls, then N timed (default 20,000) with an N-byte payload (default 32);
 *       prints "W1 calls_per_s=... p50_us=... p99_us=..." like the workload contract's peers.
 * Any failure: a message on stderr, exit status 1. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "echo.pb-c.h"

#define HDR 4
#define MAX_MSG (16u << 20) /* larger declared lengths are refused before anything is allocated */
#define READ_CHUNK 65536

static void die(const char *what, int rc) {
  fprintf(stderr, "floor-bench: %s: %s\n", what, rc ? uv_strerror(rc) : "failed");
  exit(1);
}

static uint32_t be32_get(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void be32_put(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* A growable byte buffer: what was read and not yet consumed, or what is to be written. */
typedef struct {
  uint8_t *p;
  size_t len, cap;
} buf;

static uint8_t *buf_room(buf *b, size_t n) {
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) die("realloc", 0);
    b->p = p;
    b->cap = cap;
  }
  return b->p + b->len;
}

static void buf_consume(buf *b, size_t n) {
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
}

/* Appends one frame holding msg to out. */
static void frame_msg(buf *out, const Bench__Msg *msg) {
  size_t n = bench__msg__get_packed_size(msg);
  uint8_t *p = buf_room(out, HDR + n);
  be32_put(p, (uint32_t)n);
  bench__msg__pack(msg, p + HDR);
  out->len += HDR + n;
}

/* Writes out: what the socket does not take at once goes through uv_write from a copy. */
static void on_written(uv_write_t *req, int status) {
  if (status < 0) fprintf(stderr, "floor-bench: write: %s\n", uv_strerror(status));
  free(req);
}

static int flush(uv_stream_t *s, buf *out) {
  if (out->len == 0) return 0;
  uv_buf_t b = uv_buf_init((char *)out->p, (unsigned)out->len);
  int n = uv_try_write(s, &b, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) return n;
  if ((size_t)n < out->len) {
    size_t rest = out->len - (size_t)n;
    uv_write_t *req = malloc(sizeof *req + rest);
    if (!req) die("malloc", 0);
    memcpy(req + 1, out->p + n, rest);
    b = uv_buf_init((char *)(req + 1), (unsigned)rest);
    int rc = uv_write(req, s, &b, 1, on_written);
    if (rc < 0) {
      free(req);
      return rc;
    }
  }
  out->len = 0;
  return 0;
}

/* 1: a whole frame is at the front of in (its length in *len); 0: not yet; -1: refused. */
static int frame_ready(const buf *in, uint32_t *len) {
  if (in->len < HDR) return 0;
  *len = be32_get(in->p);
  if (*len > MAX_MSG) return -1;
  return in->len - HDR >= *len;
}

/* ---- Server ---------------------------------------------------------------------------------- */

typedef struct {
  uv_tcp_t h;
  buf in, out;
} peer;

static void on_peer_closed(uv_handle_t *h) {
  peer *p = h->data;
  free(p->in.p);
  free(p->out.p);
  free(p);
}

static void on_server_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  peer *p = h->data;
  (void)suggested;
  *b = uv_buf_init((char *)buf_room(&p->in, READ_CHUNK), READ_CHUNK);
}

static void on_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  peer *p = s->data;
  (void)b;
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_peer_closed);
    return;
  }
  p->in.len += (size_t)n;
  uint32_t len;
  int ready;
  while ((ready = frame_ready(&p->in, &len)) == 1) {
    Bench__Msg *req = bench__msg__unpack(NULL, len, p->in.p + HDR);
    if (!req) {
      ready = -1;
      break;
    }
    Bench__Msg resp = BENCH__MSG__INIT;
    resp.payload = req->payload;
    frame_msg(&p->out, &resp);
    bench__msg__free_unpacked(req, NULL);
    buf_consume(&p->in, HDR + len);
  }
  if (ready < 0 || flush(s, &p->out) < 0) uv_close((uv_handle_t *)s, on_peer_closed);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  peer *p = calloc(1, sizeof *p);
  if (!p) die("calloc", 0);
  uv_tcp_init(server->loop, &p->h);
  p->h.data = p;
  if (uv_accept(server, (uv_stream_t *)&p->h) != 0) {
    uv_close((uv_handle_t *)&p->h, on_peer_closed);
    return;
  }
  uv_tcp_nodelay(&p->h, 1);
  uv_read_start((uv_stream_t *)&p->h, on_server_alloc, on_server_read);
}

/* Stops by closing every handle (connections free their peer), so the loop ends on its own. */
static void close_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, h->type == UV_TCP && h->data ? on_peer_closed : NULL);
}

static void on_signal(uv_signal_t *sig, int signum) {
  (void)signum;
  uv_walk(sig->loop, close_handle, NULL);
}

static void run_server(int port) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  server.data = NULL; /* not a peer (close_handle) */
  int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&server, 128, on_connection);
  if (rc < 0) die("listen", rc);
  uv_signal_t sigint, sigterm;
  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  int namelen = sizeof addr;
  uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &namelen);
  printf("floor-bench: serving on tcp://127.0.0.1:%d\n", ntohs(addr.sin_port));
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
}

/* ---- Client ---------------------------------------------------------------------------------- */

typedef struct {
  buf in, out;
  uv_tcp_t h;
  uv_loop_t loop;
  int connected, failed;
} client;

static void on_connect(uv_connect_t *req, int status) {
  client *c = req->data;
  if (status < 0) die("connect", status);
  c->connected = 1;
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  client *c = h->data;
  (void)suggested;
  *b = uv_buf_init((char *)buf_room(&c->in, READ_CHUNK), READ_CHUNK);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  client *c = s->data;
  (void)b;
  if (n < 0) {
    c->failed = (int)n;
    return;
  }
  c->in.len += (size_t)n;
}

/* One blocking call: send req, wait for the answer, check it, free it. */
static void call(client *c, const Bench__Msg *req) {
  frame_msg(&c->out, req);
  int rc = flush((uv_stream_t *)&c->h, &c->out);
  if (rc < 0) die("write", rc);
  uint32_t len;
  int ready;
  while ((ready = frame_ready(&c->in, &len)) == 0) {
    uv_run(&c->loop, UV_RUN_ONCE);
    if (c->failed) die("read", c->failed);
  }
  if (ready < 0) die("oversized answer", 0);
  Bench__Msg *resp = bench__msg__unpack(NULL, len, c->in.p + HDR);
  if (!resp || resp->payload.len != req->payload.len) die("bad answer", 0);
  bench__msg__free_unpacked(resp, NULL);
  buf_consume(&c->in, HDR + len);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void run_client(int port, long calls, size_t size) {
  client c;
  memset(&c, 0, sizeof c);
  if (uv_loop_init(&c.loop) != 0) die("uv_loop_init", 0);
  uv_tcp_init(&c.loop, &c.h);
  c.h.data = &c;
  uv_tcp_nodelay(&c.h, 1);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_connect_t creq;
  creq.data = &c;
  int rc = uv_tcp_connect(&creq, &c.h, (const struct sockaddr *)&addr, on_connect);
  if (rc < 0) die("connect", rc);
  while (!c.connected) uv_run(&c.loop, UV_RUN_ONCE);
  uv_read_start((uv_stream_t *)&c.h, on_client_alloc, on_client_read);

  uint8_t *payload = malloc(size ? size : 1);
  uint64_t *lat = malloc(sizeof *lat * (size_t)calls);
  if (!payload || !lat) die("malloc", 0);
  memset(payload, 'x', size);
  Bench__Msg req = BENCH__MSG__INIT;
  req.payload.data = payload;
  req.payload.len = size;

  for (long i = 0; i < 2000; i++) call(&c, &req);
  uint64_t t0 = uv_hrtime();
  for (long i = 0; i < calls; i++) {
    uint64_t s = uv_hrtime();
    call(&c, &req);
    lat[i] = uv_hrtime() - s;
  }
  double elapsed_s = (double)(uv_hrtime() - t0) / 1e9;
  qsort(lat, (size_t)calls, sizeof *lat, cmp_u64);
  printf("W1 calls_per_s=%.0f p50_us=%.1f p99_us=%.1f\n", (double)calls / elapsed_s,
         (double)lat[calls / 2] / 1e3, (double)lat[calls * 99 / 100] / 1e3);

  uv_close((uv_handle_t *)&c.h, NULL);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  uv_loop_close(&c.loop);
  free(c.in.p);
  free(c.out.p);
  free(lat);
  free(payload);
}

int main(int argc, char **argv) {
  int server = 0, port = -1;
  long calls = 20000, size = 32;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "server")) {
      server = 1;
    } else if (i + 1 < argc && !strcmp(argv[i], "--port")) {
      port = atoi(argv[++i]);
    } else if (i + 1 < argc && !strcmp(argv[i], "--calls")) {
      calls = atol(argv[++i]);
    } else if (i + 1 < argc && !strcmp(argv[i], "--size")) {
      size = atol(argv[++i]);
    } else if (i + 1 < argc && !strcmp(argv[i], "--workload")) {
      if (strcmp(argv[++i], "W1") != 0) {
        fprintf(stderr, "floor-bench: only W1\n");
        return 2;
      }
    } else {
      fprintf(stderr, "usage: floor-bench server --port P | floor-bench --port P [--calls N] [--size N]\n");
      return 2;
    }
  }
  if (port < 0 || port > 65535 || calls < 1 || size < 0 || (size_t)size > MAX_MSG - 16 ||
      (!server && port == 0)) {
    fprintf(stderr, "floor-bench: bad arguments\n");
    return 2;
  }
  if (server)
    run_server(port);
  else
    run_client(port, calls, (size_t)size);
  return 0;
}
