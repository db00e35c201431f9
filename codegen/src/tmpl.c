#include "tmpl.h"

#include <string.h>

/* Stands for a space that must not be broken at, between filling and wrapping. Filled-in values
 * cannot contain it: strbuf_append_comment() turns control characters into '?'. */
#define NBSP '\001'

void tmpl_set(tmpl_vars *vars, const char *name, const char *value)
{
  for (size_t i = 0; i < vars->n; i++)
    if (strcmp(vars->v[i].name, name) == 0) {
      vars->v[i].value = value;
      return;
    }
  if (vars->n == TMPL_MAX_VARS) {
    vars->n = TMPL_MAX_VARS + 1; /* reported by fill() */
    return;
  }
  if (vars->n > TMPL_MAX_VARS)
    return;
  vars->v[vars->n].name = name;
  vars->v[vars->n].value = value;
  vars->n++;
}

static const char *lookup(const tmpl_vars *vars, const char *name, size_t len)
{
  for (size_t i = 0; i < vars->n && i < TMPL_MAX_VARS; i++)
    if (strncmp(vars->v[i].name, name, len) == 0 && vars->v[i].name[len] == '\0')
      return vars->v[i].value;
  return NULL;
}

enum fill_mode { FILL_CODE, FILL_COMMENT };

static void fill(strbuf *out, const char *text, const tmpl_vars *vars, enum fill_mode mode)
{
  if (vars != NULL && vars->n > TMPL_MAX_VARS)
    out->failed = 1;
  while (*text != '\0') {
    const char *end;
    const char *value;
    size_t len;
    int as_str = 0;

    if (mode == FILL_COMMENT && *text == '~') {
      strbuf_putc(out, NBSP);
      text++;
      continue;
    }
    if (text[0] != '$' || text[1] != '{') {
      strbuf_putc(out, *text++);
      continue;
    }
    end = strchr(text + 2, '}');
    if (end == NULL) {
      out->failed = 1;
      return;
    }
    len = (size_t)(end - (text + 2));
    if (len > 4 && memcmp(end - 4, ":str", 4) == 0) {
      as_str = 1;
      len -= 4;
    }
    value = vars != NULL ? lookup(vars, text + 2, len) : NULL;
    if (value == NULL) {
      out->failed = 1;
      return;
    }
    if (mode == FILL_COMMENT)
      strbuf_append_comment(out, value);
    else if (as_str)
      strbuf_append_c_string(out, value);
    else
      strbuf_append(out, value);
    text = end + 1;
  }
}

void tmpl_code(strbuf *out, const char *text, const tmpl_vars *vars)
{
  fill(out, text, vars, FILL_CODE);
}

static void put_word(strbuf *out, const char *w, size_t n)
{
  for (size_t i = 0; i < n; i++)
    strbuf_putc(out, w[i] == NBSP ? ' ' : w[i]);
}

/* One line of the prose (no '\n' in it), wrapped. */
static void wrap_line(strbuf *out, const char *indent, int *first, const char *s, size_t n)
{
  size_t lead = 0;
  size_t col;
  int words = 0;

  /* A line that starts with spaces (an item of a list) keeps them, on its continuations too. */
  while (lead < n && s[lead] == ' ')
    lead++;
  col = strlen(indent) + 2 + lead;
  strbuf_append(out, indent);
  strbuf_append(out, *first ? "/*" : " *");
  *first = 0;
  for (size_t i = 0; i < lead; i++)
    strbuf_putc(out, ' ');
  for (size_t i = lead; i < n;) {
    size_t w;

    if (s[i] == ' ') {
      i++;
      continue;
    }
    for (w = 0; i + w < n && s[i + w] != ' '; w++)
      ;
    if (words > 0 && col + 1 + w > TMPL_WIDTH) {
      strbuf_putc(out, '\n');
      strbuf_append(out, indent);
      strbuf_append(out, " *");
      for (size_t k = 0; k < lead; k++)
        strbuf_putc(out, ' ');
      col = strlen(indent) + 2 + lead;
    }
    strbuf_putc(out, ' ');
    put_word(out, s + i, w);
    col += 1 + w;
    words++;
    i += w;
  }
  strbuf_putc(out, '\n');
}

void tmpl_comment(strbuf *out, const char *indent, const char *text, const tmpl_vars *vars)
{
  strbuf prose;
  const char *s;
  int first = 1;

  strbuf_init(&prose);
  fill(&prose, text, vars, FILL_COMMENT);
  /* The terminator sticks to the last word, so that it never stands on a line of its own. */
  strbuf_putc(&prose, NBSP);
  strbuf_append(&prose, "*/");
  if (strbuf_failed(&prose)) {
    out->failed = 1;
    strbuf_free(&prose);
    return;
  }
  s = strbuf_str(&prose);
  for (;;) {
    const char *eol = strchr(s, '\n');
    size_t n = eol != NULL ? (size_t)(eol - s) : strlen(s);

    wrap_line(out, indent, &first, s, n);
    if (eol == NULL)
      break;
    s = eol + 1;
  }
  strbuf_free(&prose);
}
