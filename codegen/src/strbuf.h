/* A growable, NUL-terminated string buffer. Errors are sticky: after a failed allocation every
 * append is a no-op and strbuf_failed() reports it, so emitters check once at the end. */
#ifndef CRPC_GEN_STRBUF_H
#define CRPC_GEN_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
  char *data;  /* NUL-terminated when len > 0 or after any append; may be NULL when empty */
  size_t len;
  size_t cap;
  int failed;  /* non-zero after an allocation failure */
} strbuf;

#if defined(__GNUC__)
#define STRBUF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define STRBUF_PRINTF(f, a)
#endif

void strbuf_init(strbuf *b);
void strbuf_free(strbuf *b);
void strbuf_appendn(strbuf *b, const char *s, size_t n);
void strbuf_append(strbuf *b, const char *s);
void strbuf_putc(strbuf *b, char c);
void strbuf_printf(strbuf *b, const char *fmt, ...) STRBUF_PRINTF(2, 3);

/* Appends s as the inside of a C string literal (quotes not included). */
void strbuf_append_c_string(strbuf *b, const char *s);

/* Appends s so that it is safe inside a C block comment: no comment terminator, no newline. */
void strbuf_append_comment(strbuf *b, const char *s);

/* The contents ("" when empty). Owned by the buffer. */
const char *strbuf_str(const strbuf *b);

int strbuf_failed(const strbuf *b);

#endif
