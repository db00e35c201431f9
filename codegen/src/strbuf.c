#include "strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(strbuf *b)
{
  memset(b, 0, sizeof(*b));
}

void strbuf_free(strbuf *b)
{
  free(b->data);
  strbuf_init(b);
}

static int reserve(strbuf *b, size_t extra)
{
  size_t cap = b->cap ? b->cap : 256;
  char *p;

  if (b->failed)
    return -1;
  if (extra > SIZE_MAX / 2 - b->len) {
    b->failed = 1;
    return -1;
  }
  if (b->len + extra + 1 <= b->cap)
    return 0;
  while (cap < b->len + extra + 1)
    cap *= 2;
  p = realloc(b->data, cap);
  if (p == NULL) {
    b->failed = 1;
    return -1;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void strbuf_appendn(strbuf *b, const char *s, size_t n)
{
  if (reserve(b, n) != 0)
    return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void strbuf_append(strbuf *b, const char *s)
{
  strbuf_appendn(b, s, strlen(s));
}

void strbuf_putc(strbuf *b, char c)
{
  strbuf_appendn(b, &c, 1);
}

void strbuf_printf(strbuf *b, const char *fmt, ...)
{
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = 1;
    return;
  }
  if (reserve(b, (size_t)n) != 0)
    return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void strbuf_append_c_string(strbuf *b, const char *s)
{
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;

    if (c == '"' || c == '\\')
      strbuf_printf(b, "\\%c", c);
    else if (c == '?')
      strbuf_append(b, "\\?"); /* never a trigraph */
    else if (c < 0x20 || c >= 0x7f)
      strbuf_printf(b, "\\%03o", c);
    else
      strbuf_putc(b, (char)c);
  }
}

void strbuf_append_comment(strbuf *b, const char *s)
{
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;

    if (c == '*' && s[1] == '/')
      strbuf_append(b, "* ");
    else if (c == '/' && s[1] == '*')
      strbuf_append(b, "/ ");
    else if (c < 0x20 || c == 0x7f)
      strbuf_putc(b, '?');
    else
      strbuf_putc(b, (char)c);
  }
}

const char *strbuf_str(const strbuf *b)
{
  return b->data != NULL ? b->data : "";
}

int strbuf_failed(const strbuf *b)
{
  return b->failed;
}
