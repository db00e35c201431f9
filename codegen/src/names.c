#include "names.h"

#include <string.h>

/* ASCII only, independent of the locale: protobuf names are ASCII identifiers. */
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(char c) { return c >= 'a' && c <= 'z'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static char to_lower(char c) { return is_upper(c) ? (char)(c - 'A' + 'a') : c; }
static char to_upper(char c) { return is_lower(c) ? (char)(c - 'a' + 'A') : c; }

enum piece_style { STYLE_LOWER, STYLE_UPPER, STYLE_CAMEL };

/* Appends the mangled form of s[0..n) at out; returns the number of bytes written (at most 2n). */
static size_t mangle_piece(char *out, const char *s, size_t n, enum piece_style style)
{
  size_t o = 0;
  int prev_upper = 1; /* no '_' before a leading capital */
  int raise = 1;

  for (size_t i = 0; i < n; i++) {
    char c = s[i];

    if (style == STYLE_CAMEL) {
      if (c == '_') {
        raise = 1;
        continue;
      }
      out[o++] = raise ? to_upper(c) : c;
      raise = 0;
      continue;
    }
    if (is_upper(c) && !prev_upper)
      out[o++] = '_';
    out[o++] = style == STYLE_LOWER ? to_lower(c) : to_upper(c);
    prev_upper = is_upper(c);
  }
  return o;
}

static char *mangle_one(arena *a, const char *s, enum piece_style style)
{
  size_t n = strlen(s);
  char *out = arena_alloc(a, 2 * n + 1);

  if (out != NULL)
    out[mangle_piece(out, s, n, style)] = '\0';
  return out;
}

static char *mangle_full(arena *a, const char *full, enum piece_style style)
{
  size_t n = strlen(full);
  char *out = arena_alloc(a, 4 * n + 1);
  size_t o = 0;
  const char *p = full;

  if (out == NULL)
    return NULL;
  while (*p != '\0') {
    const char *dot = strchr(p, '.');
    size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);

    if (len > 0) {
      if (o > 0) {
        out[o++] = '_';
        out[o++] = '_';
      }
      o += mangle_piece(out + o, p, len, style);
    }
    p += len;
    if (*p == '.')
      p++;
  }
  out[o] = '\0';
  return out;
}

char *names_camel_to_lower(arena *a, const char *s) { return mangle_one(a, s, STYLE_LOWER); }
char *names_camel_to_upper(arena *a, const char *s) { return mangle_one(a, s, STYLE_UPPER); }
char *names_to_camel(arena *a, const char *s) { return mangle_one(a, s, STYLE_CAMEL); }
char *names_full_to_lower(arena *a, const char *f) { return mangle_full(a, f, STYLE_LOWER); }
char *names_full_to_upper(arena *a, const char *f) { return mangle_full(a, f, STYLE_UPPER); }
char *names_full_to_c(arena *a, const char *f) { return mangle_full(a, f, STYLE_CAMEL); }

char *names_cat(arena *a, const char *s1, const char *s2, const char *s3, const char *s4)
{
  const char *parts[4] = {s1, s2, s3, s4};
  size_t total = 0;
  char *out;
  char *p;

  int n = 0;

  while (n < 4 && parts[n] != NULL)
    n++;
  for (int i = n; i < 4; i++)
    if (parts[i] != NULL)
      return NULL; /* a NULL in the middle: an allocation failed upstream */
  for (int i = 0; i < n; i++)
    total += strlen(parts[i]);
  out = arena_alloc(a, total + 1);
  if (out == NULL)
    return NULL;
  p = out;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(parts[i]);

    memcpy(p, parts[i], len);
    p += len;
  }
  *p = '\0';
  return out;
}

char *names_file_ident(arena *a, const char *file_name)
{
  static const char hex[] = "0123456789abcdef";
  size_t n = strlen(file_name);
  char *out = arena_alloc(a, 3 * n + 1);
  size_t o = 0;

  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)file_name[i];

    if (is_upper((char)c) || is_lower((char)c) || is_digit((char)c)) {
      out[o++] = (char)c;
    } else {
      out[o++] = '_';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
  return out;
}

static int ident_len(const char *s)
{
  int n = 0;

  if (!(is_upper(s[0]) || is_lower(s[0]) || s[0] == '_'))
    return 0;
  while (is_upper(s[n]) || is_lower(s[n]) || is_digit(s[n]) || s[n] == '_')
    n++;
  return n;
}

int names_is_ident(const char *s)
{
  int n = ident_len(s);

  return n > 0 && s[n] == '\0';
}

int names_is_dotted(const char *s, int allow_empty)
{
  if (*s == '\0')
    return allow_empty;
  if (*s == '.')
    s++;
  for (;;) {
    int n = ident_len(s);

    if (n == 0)
      return 0;
    s += n;
    if (*s == '\0')
      return 1;
    if (*s != '.')
      return 0;
    s++;
  }
}

int names_is_keyword(const char *s)
{
  /* C11 keywords, and the macros standard headers define that would break a member name. */
  static const char *const words[] = {
      "_Alignas", "_Alignof", "_Atomic", "_Bool", "_Complex", "_Generic", "_Imaginary",
      "_Noreturn", "_Static_assert", "_Thread_local", "alignas", "alignof", "auto", "bool",
      "break", "case", "char", "complex", "const", "continue", "default", "do", "double",
      "else", "enum", "extern", "false", "float", "for", "goto", "if", "imaginary", "inline",
      "int", "long", "noreturn", "register", "restrict", "return", "short", "signed", "sizeof",
      "static", "static_assert", "struct", "switch", "thread_local", "true", "typedef",
      "union", "unsigned", "void", "volatile", "while"};

  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if (strcmp(s, words[i]) == 0)
      return 1;
  return 0;
}
