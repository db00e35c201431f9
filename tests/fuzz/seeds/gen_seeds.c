/* Writes the seed corpora of the frame and connection fuzz targets: small valid inputs (the
 * worked examples of runtime/PROTOCOL.md, one of each frame type, valid calls of fuzz.Target and
 * answers to them) plus a few near-misses. Run by make_corpus.sh; the output is checked in:
 *
 *   gen_seeds OUT_DIR      writes OUT_DIR/{frame_decoder,server_conn,client_conn}/seed-*
 *
 * Frames are built with the codec's own encoders (runtime/src/wire/frame.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"

typedef struct buf {
  uint8_t b[8192];
  size_t len;
} buf;

static void put(buf *w, const void *p, size_t n) {
  if (w->len + n > sizeof w->b) {
    fprintf(stderr, "seed too large\n");
    exit(1);
  }
  memcpy(w->b + w->len, p, n);
  w->len += n;
}
static void put8(buf *w, uint8_t v) { put(w, &v, 1); }

static void preface(buf *w) {
  uint8_t p[CRPC__PREFACE_LEN];
  crpc__preface_encode(p);
  put(w, p, sizeof p);
}

static void hdr(buf *w, uint8_t type, uint8_t flags, uint32_t id, size_t len) {
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, type, flags, id, (uint32_t)len);
  put(w, h, sizeof h);
}

/* protobuf of fuzz.Msg{text, n} (n >= 0, < 128 for a one-byte varint; 0: omitted). */
static size_t msg(uint8_t *out, const char *text, unsigned n) {
  size_t k = 0, t = strlen(text);
  if (t) {
    out[k++] = 0x0a;
    out[k++] = (uint8_t)t;
    memcpy(out + k, text, t);
    k += t;
  }
  if (n) {
    out[k++] = 0x10;
    out[k++] = (uint8_t)n;
  }
  return k;
}

static void call(buf *w, uint32_t id, const char *method, uint32_t timeout, const uint8_t *md,
                 size_t md_len, const uint8_t *m, size_t m_len) {
  size_t ml = strlen(method);
  size_t fixed = crpc__call_fixed_size(ml, md_len);
  hdr(w, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, id, fixed + m_len);
  uint8_t tmp[4096];
  crpc__call_fixed_encode(tmp, method, (uint16_t)ml, timeout, md, (uint32_t)md_len);
  put(w, tmp, fixed);
  put(w, m, m_len);
}

static void status(buf *w, uint32_t id, uint32_t code, const char *text, const uint8_t *m,
                   size_t m_len, int with_msg) {
  size_t tl = strlen(text);
  size_t fixed = crpc__status_fixed_size(tl, 0, 0);
  hdr(w, CRPC__F_STATUS, with_msg ? CRPC__FL_MESSAGE : 0, id, fixed + m_len);
  uint8_t tmp[4096];
  crpc__status_fixed_encode(tmp, code, text, (uint32_t)tl, NULL, 0, NULL, 0);
  put(w, tmp, fixed);
  put(w, m, m_len);
}

static void goaway(buf *w, uint32_t last, uint32_t code, const char *text) {
  size_t n = crpc__goaway_size(strlen(text));
  hdr(w, CRPC__F_GOAWAY, 0, 0, n);
  uint8_t tmp[256];
  crpc__goaway_encode(tmp, last, code, text, (uint32_t)strlen(text));
  put(w, tmp, n);
}

static void ping(buf *w, int ack) {
  hdr(w, CRPC__F_PING, ack ? CRPC__FL_ACK : 0, 0, 8);
  put(w, "pingpong", 8);
}

static size_t md_one(uint8_t *out, const char *k, const char *v) {
  uint8_t *e = crpc__md_entry_encode(out, k, (uint16_t)strlen(k), (const uint8_t *)v,
                                     (uint32_t)strlen(v));
  return (size_t)(e - out);
}

static const char *g_dir;

static void save(const char *target, const char *name, const buf *w) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/seed-%s", g_dir, target, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(w->b, 1, w->len, f) != w->len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* ---- frame_decoder: 3 config bytes [flags, max_payload index, n cuts] + cuts + stream --------*/

static void fd_seed(const char *name, uint8_t cfg, uint8_t maxi, const uint8_t *cuts,
                    size_t ncuts, const buf *stream) {
  buf w = {.len = 0};
  put8(&w, cfg);
  put8(&w, maxi);
  put8(&w, (uint8_t)ncuts);
  put(&w, cuts, ncuts);
  put(&w, stream->b, stream->len);
  save("frame_decoder", name, &w);
}

/* PROTOCOL.md §11.1 and §11.2, byte for byte. */
static void ex1_client(buf *w) {
  uint8_t m[16];
  preface(w);
  call(w, 1, "helloworld.Greeter/SayHello", 0, NULL, 0, m, msg(m, "world", 0));
}
static void ex1_server(buf *w) {
  uint8_t m[32];
  preface(w);
  status(w, 1, 0, "", m, msg(m, "Hello, world", 0), 1);
}
static void ex2_client(buf *w) {
  uint8_t m[16];
  call(w, 3, "helloworld.Greeter/Nope", 0, NULL, 0, m, msg(m, "world", 0));
}
static void ex2_server(buf *w) {
  status(w, 3, 12, "unknown method helloworld.Greeter/Nope", NULL, 0, 0);
}

static void frame_decoder(void) {
  static const uint8_t cuts[] = {1, 5, 13, 2, 0, 20, 7};
  buf s = {.len = 0};
  ex1_client(&s);
  ex2_client(&s);
  fd_seed("ex-client", 0x01, 6, NULL, 0, &s);
  fd_seed("ex-client-cut", 0x03, 6, cuts, sizeof cuts, &s);
  fd_seed("ex-client-pause-feed", 0x0f, 4, cuts, 3, &s);
  s.len = 0;
  ex1_server(&s);
  ex2_server(&s);
  fd_seed("ex-server", 0x01, 6, NULL, 0, &s);
  fd_seed("ex-server-pause3", 0x05, 3, cuts, 4, &s);

  /* One of each type, no preface; small max_payload so the CALL is oversized in one seed. */
  s.len = 0;
  uint8_t md[64], m[16];
  size_t mdl = md_one(md, "user-agent", "crpc-fuzz");
  mdl += md_one(md + mdl, "trace-bin", "\x01\x02");
  call(&s, 5, "fuzz.Target/Echo", 250, md, mdl, m, msg(m, "hi", 7));
  hdr(&s, CRPC__F_MESSAGE, CRPC__FL_END, 5, 2);
  put(&s, "\x08\x01", 2);
  hdr(&s, CRPC__F_HALF_CLOSE, 0, 5, 0);
  hdr(&s, CRPC__F_CANCEL, 0, 5, 0);
  ping(&s, 0);
  ping(&s, 1);
  hdr(&s, CRPC__F_WINDOW, 0, 0, 4);
  put(&s, "\x00\x00\x10\x00", 4);
  hdr(&s, CRPC__F_HEADERS, 0, 5, mdl);
  put(&s, md, mdl);
  hdr(&s, 0x7f, 0xff, 9, 3);
  put(&s, "abc", 3);
  status(&s, 5, 8, "too big", NULL, 0, 0);
  goaway(&s, 5, 0, "bye");
  fd_seed("all-types", 0x00, 6, NULL, 0, &s);
  fd_seed("all-types-max64", 0x08, 3, cuts, sizeof cuts, &s);
  fd_seed("all-types-max0", 0x02, 0, cuts, 2, &s);

  s.len = 0;
  preface(&s);
  s.b[6] = 2; /* major 2 */
  fd_seed("preface-version", 0x01, 6, NULL, 0, &s);
  s.len = 0;
  put(&s, "GET / HTTP/1.1\r\n\r\n", 18);
  fd_seed("preface-http", 0x01, 6, NULL, 0, &s);
}

/* ---- server_conn: the bytes after the client's preface ----------------------------------------*/

static void server_conn(void) {
  uint8_t m[64], md[64];
  buf s = {.len = 0};
  call(&s, 1, "fuzz.Target/Echo", 0, NULL, 0, m, msg(m, "hello", 0));
  save("server_conn", "echo", &s);

  s.len = 0;
  call(&s, 1, "fuzz.Target/Fail", 0, NULL, 0, m, msg(m, "nope", 5));
  call(&s, 3, "fuzz.Target/Fail", 0, NULL, 0, m, msg(m, "ok?", 0));
  call(&s, 5, "fuzz.Target/Unimpl", 0, NULL, 0, m, msg(m, "", 0));
  call(&s, 7, "fuzz.Target/Nope", 0, NULL, 0, m, msg(m, "", 0));
  call(&s, 9, "other.Service/Echo", 0, NULL, 0, m, msg(m, "", 0));
  save("server_conn", "fail-unimpl-unknown", &s);

  s.len = 0;
  call(&s, 1, "fuzz.Target/Later", 0, NULL, 0, m, msg(m, "a", 0));
  call(&s, 3, "fuzz.Target/Later", 0, NULL, 0, m, msg(m, "b", 1));
  call(&s, 5, "fuzz.Target/Later", 0, NULL, 0, m, msg(m, "c", 2));
  call(&s, 7, "fuzz.Target/Later", 0, NULL, 0, m, msg(m, "d", 3));
  hdr(&s, CRPC__F_CANCEL, 0, 3, 0);
  save("server_conn", "later-cancel", &s);

  s.len = 0;
  size_t mdl = md_one(md, "authorization", "Bearer x");
  mdl += md_one(md + mdl, "blob-bin", "\xff\x00");
  call(&s, 1, "fuzz.Target/Echo", 5000, md, mdl, m, msg(m, "with metadata", 3));
  ping(&s, 0);
  call(&s, 3, "fuzz.Target/Later", 1, NULL, 0, m, msg(m, "deadline", 0));
  goaway(&s, 0, 0, "done");
  save("server_conn", "metadata-ping-goaway", &s);

  s.len = 0;
  uint8_t big[700];
  big[0] = 0x1a; /* blob, 2-byte length: 600 > MAX_RECV_MESSAGE_SIZE 512 */
  big[1] = 0xd8;
  big[2] = 0x04;
  memset(big + 3, 'x', 600);
  call(&s, 1, "fuzz.Target/Echo", 0, NULL, 0, big, 603);
  call(&s, 3, "fuzz.Target/Echo", 0, NULL, 0, m, msg(m, "after", 0));
  save("server_conn", "oversized", &s);

  s.len = 0;
  call(&s, 3, "fuzz.Target/Echo", 0, NULL, 0, m, msg(m, "x", 0));
  call(&s, 1, "fuzz.Target/Echo", 0, NULL, 0, m, msg(m, "id goes down", 0));
  save("server_conn", "bad-id-order", &s);

  s.len = 0;
  call(&s, 2, "fuzz.Target/Echo", 0, NULL, 0, m, msg(m, "even id", 0));
  save("server_conn", "bad-id-parity", &s);

  s.len = 0;
  for (uint32_t id = 1; id <= 21; id += 2)
    call(&s, id, "fuzz.Target/Later", 0, NULL, 0, m, msg(m, "many", 0));
  save("server_conn", "too-many-calls", &s);

  s.len = 0;
  uint8_t nest[40] = {0x22, 0x06, 0x22, 0x04, 0x22, 0x02, 0x0a, 0x00};
  call(&s, 1, "fuzz.Target/Echo", 0, NULL, 0, nest, 8);
  uint8_t bad[4] = {0x0a, 0x7f, 'x', 'y'}; /* string longer than the message */
  call(&s, 3, "fuzz.Target/Echo", 0, NULL, 0, bad, 4);
  save("server_conn", "nested-and-bad-protobuf", &s);
}

/* ---- client_conn: config byte + the bytes after the server's preface --------------------------*/

static void client_conn(void) {
  uint8_t m[64];
  buf s = {.len = 0};
  put8(&s, 0x03); /* 4 calls: ids 1, 3, 5, 7 */
  status(&s, 1, 0, "", m, msg(m, "echoed", 0), 1);
  status(&s, 3, 5, "not found", NULL, 0, 0);
  status(&s, 5, 0, "", m, msg(m, "", 0), 1);
  status(&s, 7, 12, "unknown method", NULL, 0, 0);
  save("client_conn", "all-answered", &s);

  s.len = 0;
  put8(&s, 0x0b); /* 4 calls, the last cancelled: its STATUS is moot */
  status(&s, 7, 0, "", m, msg(m, "late", 0), 1);
  status(&s, 1, 0, "", NULL, 0, 0); /* OK without a message: INTERNAL */
  goaway(&s, 3, 0, "draining");
  status(&s, 3, 0, "", m, msg(m, "served", 0), 1);
  save("client_conn", "cancel-goaway", &s);

  s.len = 0;
  put8(&s, 0x17); /* 4 calls, close from the first callback, small max recv */
  uint8_t big[100];
  memset(big, 0, sizeof big);
  big[0] = 0x1a;
  big[1] = 90;
  status(&s, 1, 0, "", big, 92, 1);
  ping(&s, 0);
  save("client_conn", "oversized-close-in-cb", &s);

  s.len = 0;
  put8(&s, 0x21); /* 2 calls, a new call from the first callback */
  goaway(&s, 0, 1, "protocol error");
  save("client_conn", "goaway-error-recall", &s);

  s.len = 0;
  put8(&s, 0x00);
  hdr(&s, CRPC__F_STATUS, 0, 2, 16); /* even id: not ours */
  put(&s, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
  save("client_conn", "status-wrong-parity", &s);

  s.len = 0;
  put8(&s, 0x01);
  uint8_t md[32];
  size_t mdl = md_one(md, "k", "v");
  hdr(&s, CRPC__F_HEADERS, 0, 1, mdl);
  put(&s, md, mdl);
  hdr(&s, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, 2, 0); /* malformed CALL from server */
  save("client_conn", "headers-then-bad-call", &s);

  s.len = 0;
  put8(&s, 0x01);
  uint8_t mm[16];
  call(&s, 2, "fuzz.Target/Echo", 0, NULL, 0, mm, msg(mm, "p2p", 0)); /* server calls client */
  status(&s, 1, 0, "", m, msg(m, "ok", 0), 1);
  save("client_conn", "server-calls-client", &s);

  /* A large OK answer whose bytes field's value has barely begun: the channel splits the frame
   * there (crpc__decoder_split) and the server then goes away mid-value. */
  s.len = 0;
  put8(&s, 0x00); /* one call */
  uint8_t head[4] = {0x1a, 0xa0, 0x8d, 0x06}; /* blob, 100,000 bytes */
  hdr(&s, CRPC__F_STATUS, CRPC__FL_MESSAGE, 1, 16 + sizeof head + 100000);
  put(&s, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16); /* OK, no text, metadata, details */
  put(&s, head, sizeof head);
  uint8_t some[2000];
  memset(some, 'x', sizeof some);
  put(&s, some, sizeof some);
  save("client_conn", "split-then-close", &s);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  frame_decoder();
  server_conn();
  client_conn();
  return 0;
}
