/* UTF-8 for status texts: repair (U+FFFD for each maximal ill-formed subpart) and quoting. */
#include "base/utf8.h"

#include <string.h>

size_t crpc__utf8_seq(const uint8_t *p, size_t n, size_t *bad) {
  *bad = 1;
  if (n == 0) return 0;
  uint8_t b = p[0];
  if (b < 0x80) return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xbf; /* the range of the second byte (Unicode Table 3-7) */
  if (b >= 0xc2 && b <= 0xdf) {
    need = 2;
  } else if (b >= 0xe0 && b <= 0xef) {
    need = 3;
    if (b == 0xe0) lo = 0xa0;      /* no overlong forms */
    else if (b == 0xed) hi = 0x9f; /* no surrogates */
  } else if (b >= 0xf0 && b <= 0xf4) {
    need = 4;
    if (b == 0xf0) lo = 0x90;      /* no overlong forms */
    else if (b == 0xf4) hi = 0x8f; /* nothing above U+10FFFF */
  } else {
    return 0; /* 0x80..0xc1, 0xf5..0xff never start a character */
  }
  size_t i = 1;
  for (; i < need && i < n; i++) {
    uint8_t lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xbf;
    if (p[i] < lo_i || p[i] > hi_i) break;
  }
  if (i == need) return need;
  *bad = i; /* the lead byte and the continuation bytes that fitted */
  return 0;
}

size_t crpc__utf8_repair(const char *text, size_t n, char *out, size_t out_cap, size_t max) {
  static const char fffd[3] = {(char)0xef, (char)0xbf, (char)0xbd};
  const uint8_t *p = (const uint8_t *)text;
  size_t len = 0;
  if (out && out_cap < max) max = out_cap;
  while (n) {
    size_t bad;
    size_t k = crpc__utf8_seq(p, n, &bad);
    const char *src = (const char *)p;
    size_t out_k = k;
    if (k == 0 || (k == 1 && p[0] == 0)) { /* replaced */
      if (k == 0) k = bad;
      src = fffd;
      out_k = sizeof fffd;
    }
    if (len + out_k > max) break;
    if (out) memcpy(out + len, src, out_k);
    len += out_k;
    p += k;
    n -= k;
  }
  return len;
}

size_t crpc__quote_bytes(const char *p, size_t n, char *out, size_t out_cap) {
  static const char hex[] = "0123456789abcdef";
  size_t len = 0;
  if (out_cap == 0) return 0;
  for (size_t i = 0; i < n && len + 5 <= out_cap; i++) {
    uint8_t b = (uint8_t)p[i];
    if (b >= 0x20 && b <= 0x7e && b != '\\') {
      out[len++] = (char)b;
    } else {
      out[len++] = '\\';
      out[len++] = 'x';
      out[len++] = hex[b >> 4];
      out[len++] = hex[b & 15];
    }
  }
  out[len] = '\0';
  return len;
}
