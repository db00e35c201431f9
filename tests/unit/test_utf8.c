/* Status texts as UTF-8 (utf8.c): the well-formed sequences of RFC 3629 / Unicode Table 3-7 are
 * recognised exactly (checked against a reference decoder over every 1-, 2- and 3-byte input and
 * every 4-byte input around the boundaries), ill-formed ones are replaced one U+FFFD per maximal
 * subpart, a cut never splits a character, and quoting leaves only printable ASCII. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/utf8.h"

/* Reference: the length of the well-formed sequence at p, by decoding and range checks. */
static size_t ref_seq(const uint8_t *p, size_t n) {
  static const uint8_t lead_mask[5] = {0, 0x80, 0xe0, 0xf0, 0xf8};
  static const uint8_t lead_bits[5] = {0, 0x00, 0xc0, 0xe0, 0xf0};
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  for (size_t len = 1; len <= 4 && len <= n; len++) {
    if ((p[0] & lead_mask[len]) != lead_bits[len]) continue;
    uint32_t cp = p[0] & (uint8_t)~lead_mask[len];
    size_t i = 1;
    for (; i < len; i++) {
      if ((p[i] & 0xc0) != 0x80) break;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (i < len) return 0;
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
  }
  return 0;
}

static void matches_reference(void **state) {
  (void)state;
  uint8_t p[4];
  size_t bad;
  for (uint32_t v = 0; v < (1u << 24); v++) { /* every 3-byte input, and its 1-, 2-byte prefixes */
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
    for (size_t n = 1; n <= 3; n++) {
      size_t got = crpc__utf8_seq(p, n, &bad);
      if (got != ref_seq(p, n)) fail_msg("%02x %02x %02x (n %zu): %zu", p[0], p[1], p[2], n, got);
      if (got == 0 && (bad < 1 || bad > n)) fail_msg("bad %zu", bad);
    }
  }
  static const uint8_t edge[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
  for (uint32_t lead = 0xf0; lead <= 0xff; lead++)
    for (uint32_t b1 = 0; b1 < 256; b1++)
      for (size_t i = 0; i < sizeof edge; i++)
        for (size_t j = 0; j < sizeof edge; j++) {
          p[0] = (uint8_t)lead;
          p[1] = (uint8_t)b1;
          p[2] = edge[i];
          p[3] = edge[j];
          if (crpc__utf8_seq(p, 4, &bad) != ref_seq(p, 4))
            fail_msg("%02x %02x %02x %02x", p[0], p[1], p[2], p[3]);
        }
}

static void repair_case(const char *in, size_t n, const char *want) {
  char out[256];
  size_t len = crpc__utf8_repair(in, n, NULL, 0, sizeof out);
  assert_int_equal(len, strlen(want));
  assert_int_equal(crpc__utf8_repair(in, n, out, sizeof out, sizeof out), len);
  out[len] = '\0';
  assert_string_equal(out, want);
}

#define R "\xef\xbf\xbd" /* U+FFFD */

static void repairs_maximal_subparts(void **state) {
  (void)state;
  repair_case("plain", 5, "plain");
  repair_case("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  repair_case("\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80", 10, "\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80");
  repair_case("\xc0\xaf", 2, R R);             /* overlong: C0 never starts a character */
  repair_case("\xe0\x80\x80", 3, R R R);       /* overlong 3-byte form */
  repair_case("\xed\xa0\x80", 3, R R R);       /* a surrogate */
  repair_case("\xf4\x90\x80\x80", 4, R R R R); /* above U+10FFFF */
  repair_case("\xf5\x80", 2, R R);
  repair_case("a\x80" "b", 3, "a" R "b");
  repair_case("\xe2\x82", 2, R);               /* truncated at the end: one subpart */
  repair_case("\xe2\x82" "A", 3, R "A");
  repair_case("\xf0\x9f\x98" "A", 4, R "A");
  repair_case("a\0b", 3, "a" R "b");           /* NUL: the application gets a C string */
}

static void cuts_between_characters(void **state) {
  (void)state;
  char out[8];
  assert_int_equal(crpc__utf8_repair("a\xc3\xa9", 3, out, sizeof out, 2), 1);
  assert_int_equal(crpc__utf8_repair("a\xc3\xa9", 3, out, sizeof out, 3), 3);
  assert_int_equal(crpc__utf8_repair("a\xff", 2, out, sizeof out, 3), 1);  /* U+FFFD is 3 bytes */
  assert_int_equal(crpc__utf8_repair("a\xff", 2, out, 3, 100), 1);         /* out_cap bounds too */
  assert_int_equal(crpc__utf8_repair("abc", 3, out, sizeof out, 0), 0);
}

static void quotes_to_printable_ascii(void **state) {
  (void)state;
  char out[4 * 6 + 1];
  assert_int_equal(crpc__quote_bytes("a\\\0\xff~ ", 6, out, sizeof out), strlen("a\\x5c\\x00\\xff~ "));
  assert_string_equal(out, "a\\x5c\\x00\\xff~ ");
  assert_int_equal(crpc__quote_bytes("\x7f\x1f", 2, out, sizeof out), 8);
  assert_string_equal(out, "\\x7f\\x1f");
  assert_int_equal(crpc__quote_bytes("", 0, out, sizeof out), 0);
  assert_string_equal(out, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(matches_reference),
      cmocka_unit_test(repairs_maximal_subparts),
      cmocka_unit_test(cuts_between_characters),
      cmocka_unit_test(quotes_to_printable_ascii),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
