/* The worked examples of runtime/PROTOCOL.md, checked against the codec: the bytes are read out
 * of the document's ```hex blocks at test time, so the specification cannot drift from the
 * code. Each block is also decoded back and its fields compared with what the example says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/frame.h"

#ifndef CRPC_PROTOCOL_MD
#error "CRPC_PROTOCOL_MD must name runtime/PROTOCOL.md"
#endif

typedef struct bytes {
  uint8_t b[512];
  size_t len;
} bytes;

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Parses one line of a hex block into out; fails the test on anything but bytes and a comment. */
static void parse_hex_line(const char *line, bytes *out, const char *label) {
  const char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '\0' || *p == '\n' || *p == '#')
      return;
    int hi = hexval((unsigned char)p[0]), lo = hi < 0 ? -1 : hexval((unsigned char)p[1]);
    if (hi < 0 || lo < 0 || (p[2] != ' ' && p[2] != '\t' && p[2] != '\n' && p[2] != '\0'))
      fail_msg("block %s: bad token in line: %s", label, line);
    assert_true(out->len < sizeof out->b);
    out->b[out->len++] = (uint8_t)(hi << 4 | lo);
    p += 2;
  }
}

/* Reads the block labelled `label` from PROTOCOL.md. */
static void read_block(const char *label, bytes *out) {
  FILE *f = fopen(CRPC_PROTOCOL_MD, "r");
  if (f == NULL)
    fail_msg("cannot open %s", CRPC_PROTOCOL_MD);
  char line[1024], open[128];
  snprintf(open, sizeof open, "```hex %s", label);
  int in = 0, found = 0;
  out->len = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    if (!in) {
      size_t n = strlen(open);
      if (strncmp(line, open, n) == 0 && (line[n] == '\n' || line[n] == '\0')) {
        in = found = 1;
      }
      continue;
    }
    if (strncmp(line, "```", 3) == 0)
      break;
    parse_hex_line(line, out, label);
  }
  fclose(f);
  if (!found)
    fail_msg("no ```hex %s block in %s", label, CRPC_PROTOCOL_MD);
  assert_true(out->len > 0);
}

static const uint8_t hello_request[] = {0x0a, 0x05, 'w', 'o', 'r', 'l', 'd'};

/* What the codec writes for a unary CALL: header, fixed fields, request. */
static void encode_call(bytes *out, uint32_t id, const char *method) {
  size_t fixed = crpc__call_fixed_size(strlen(method), 0);
  size_t plen = fixed + sizeof hello_request;
  crpc__hdr_encode(out->b + out->len, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, id,
                   (uint32_t)plen);
  uint8_t *p = out->b + out->len + CRPC__HDR_LEN;
  p = crpc__call_fixed_encode(p, method, (uint16_t)strlen(method), 0, NULL, 0);
  memcpy(p, hello_request, sizeof hello_request);
  out->len += CRPC__HDR_LEN + plen;
}

static void encode_status(bytes *out, uint32_t id, uint32_t code, const char *text,
                          const uint8_t *msg, size_t msg_len, uint8_t flags) {
  size_t fixed = crpc__status_fixed_size(strlen(text), 0, 0);
  size_t plen = fixed + msg_len;
  crpc__hdr_encode(out->b + out->len, CRPC__F_STATUS, flags, id, (uint32_t)plen);
  uint8_t *p = out->b + out->len + CRPC__HDR_LEN;
  p = crpc__status_fixed_encode(p, code, text, (uint32_t)strlen(text), NULL, 0, NULL, 0);
  if (msg_len)
    memcpy(p, msg, msg_len);
  out->len += CRPC__HDR_LEN + plen;
}

static void assert_same(const bytes *doc, const bytes *enc, const char *label) {
  if (doc->len != enc->len)
    fail_msg("%s: PROTOCOL.md has %zu bytes, the codec writes %zu", label, doc->len, enc->len);
  for (size_t i = 0; i < doc->len; i++)
    if (doc->b[i] != enc->b[i])
      fail_msg("%s: byte %zu differs: PROTOCOL.md %02x, codec %02x", label, i, doc->b[i],
               enc->b[i]);
}

/* Decodes a block with the streaming decoder and keeps its single frame. */
typedef struct one {
  int n;
  crpc__frame f;
  uint8_t payload[512];
} one;

static int keep(void *ud, const crpc__frame *f) {
  one *o = ud;
  o->n++;
  o->f = *f;
  memcpy(o->payload, f->payload, f->length);
  o->f.payload = o->payload;
  return 0;
}

static void decode_block(const bytes *b, int with_preface, one *o) {
  crpc__decoder d;
  memset(o, 0, sizeof *o);
  crpc__decoder_init(&d, 4096, with_preface);
  assert_int_equal(crpc__decoder_feed(&d, b->b, b->len, keep, o), 0);
  assert_int_equal(d.len, 0);
  assert_int_equal(o->n, 1);
  crpc__decoder_free(&d);
}

static void check_call(const one *o, uint32_t id, const char *method) {
  crpc__call_hdr c;
  assert_int_equal(o->f.type, CRPC__F_CALL);
  assert_int_equal(o->f.flags, CRPC__FL_END | CRPC__FL_MESSAGE);
  assert_int_equal(o->f.call_id, id);
  assert_int_equal(crpc__call_decode(&o->f, &c), 0);
  assert_int_equal(c.method_len, strlen(method));
  assert_memory_equal(c.method, method, c.method_len);
  assert_int_equal(c.timeout_ms, 0);
  assert_int_equal(c.metadata_len, 0);
  assert_int_equal(c.message_len, sizeof hello_request);
  assert_memory_equal(c.message, hello_request, sizeof hello_request);
}

static void test_example1(void **state) {
  (void)state;
  static const uint8_t reply[] = {0x0a, 0x0c, 'H', 'e', 'l', 'l', 'o', ',',
                                  ' ',  'w',  'o', 'r', 'l', 'd'};
  bytes doc, enc = {0};
  one o;
  read_block("ex1-client-to-server", &doc);
  crpc__preface_encode(enc.b);
  enc.len = CRPC__PREFACE_LEN;
  encode_call(&enc, 1, "helloworld.Greeter/SayHello");
  assert_same(&doc, &enc, "ex1-client-to-server");
  decode_block(&doc, 1, &o);
  check_call(&o, 1, "helloworld.Greeter/SayHello");

  read_block("ex1-server-to-client", &doc);
  enc.len = 0;
  crpc__preface_encode(enc.b);
  enc.len = CRPC__PREFACE_LEN;
  encode_status(&enc, 1, 0, "", reply, sizeof reply, CRPC__FL_MESSAGE);
  assert_same(&doc, &enc, "ex1-server-to-client");
  decode_block(&doc, 1, &o);
  crpc__status_hdr s;
  assert_int_equal(o.f.type, CRPC__F_STATUS);
  assert_int_equal(o.f.call_id, 1);
  assert_int_equal(crpc__status_decode(&o.f, &s), 0);
  assert_int_equal(s.code, 0);
  assert_int_equal(s.text_len, 0);
  assert_int_equal(s.message_len, sizeof reply);
  assert_memory_equal(s.message, reply, sizeof reply);
}

static void test_example2(void **state) {
  (void)state;
  const char *text = "unknown method helloworld.Greeter/Nope";
  bytes doc, enc = {0};
  one o;
  read_block("ex2-client-to-server", &doc);
  encode_call(&enc, 3, "helloworld.Greeter/Nope");
  assert_same(&doc, &enc, "ex2-client-to-server");
  decode_block(&doc, 0, &o);
  check_call(&o, 3, "helloworld.Greeter/Nope");

  read_block("ex2-server-to-client", &doc);
  enc.len = 0;
  encode_status(&enc, 3, 12, text, NULL, 0, 0);
  assert_same(&doc, &enc, "ex2-server-to-client");
  decode_block(&doc, 0, &o);
  crpc__status_hdr s;
  assert_int_equal(o.f.flags, 0);
  assert_int_equal(crpc__status_decode(&o.f, &s), 0);
  assert_int_equal(s.code, 12);
  assert_int_equal(s.text_len, strlen(text));
  assert_memory_equal(s.text, text, s.text_len);
  assert_null(s.message);
}

/* §11.4: a malformed CALL 3 (metadata_len overruns the frame) frames correctly but does not
 * decode, and the GOAWAY that answers it names call 1, the last one processed (§6.7). */
static void test_example4(void **state) {
  (void)state;
  const char *text = "malformed CALL frame";
  bytes doc, enc = {0};
  one o;
  read_block("ex4-client-to-server", &doc);
  encode_call(&enc, 3, "helloworld.Greeter/SayHello");
  crpc__be32_put(enc.b + CRPC__HDR_LEN + 2 + strlen("helloworld.Greeter/SayHello") + 4, 1000);
  assert_same(&doc, &enc, "ex4-client-to-server");
  decode_block(&doc, 0, &o);
  crpc__call_hdr c;
  assert_int_equal(o.f.type, CRPC__F_CALL);
  assert_int_equal(o.f.call_id, 3);
  assert_int_not_equal(crpc__call_decode(&o.f, &c), 0);

  read_block("ex4-server-to-client", &doc);
  enc.len = 0;
  size_t n = crpc__goaway_size(strlen(text));
  crpc__hdr_encode(enc.b, CRPC__F_GOAWAY, 0, 0, (uint32_t)n);
  crpc__goaway_encode(enc.b + CRPC__HDR_LEN, 1, CRPC__GOAWAY_PROTOCOL_ERROR, text,
                      (uint32_t)strlen(text));
  enc.len = CRPC__HDR_LEN + n;
  assert_same(&doc, &enc, "ex4-server-to-client");
  decode_block(&doc, 0, &o);
  crpc__goaway g;
  assert_int_equal(crpc__goaway_decode(&o.f, &g), 0);
  assert_int_equal(g.last_call_id, 1);
  assert_int_equal(g.code, CRPC__GOAWAY_PROTOCOL_ERROR);
  assert_int_equal(g.text_len, strlen(text));
  assert_memory_equal(g.text, text, g.text_len);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_example1),
      cmocka_unit_test(test_example2),
      cmocka_unit_test(test_example4),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
