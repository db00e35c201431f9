/* Templates with named placeholders. The emitters write the generated text as templates in which
 * ${name} stands for a C name of the plan; comments are written as running prose, filled in
 * first and wrapped afterwards, so that a long name never leaves a line too long or a phrase
 * broken by hand at a place that only fitted the name the template was written for. */
#ifndef CRPC_GEN_TMPL_H
#define CRPC_GEN_TMPL_H

#include <stddef.h>

#include "strbuf.h"

/* Generated comments are wrapped to this many columns, indentation included. */
#define TMPL_WIDTH 100

typedef struct tmpl_var {
  const char *name;
  const char *value;
} tmpl_var;

/* A set of variables, filled by the emitters (emit.h). */
#define TMPL_MAX_VARS 64
typedef struct tmpl_vars {
  tmpl_var v[TMPL_MAX_VARS];
  size_t n;
} tmpl_vars;

/* Adds name = value (value may be NULL: the name then must not be used). The last value given
 * for a name wins. More than TMPL_MAX_VARS names is a bug of the emitter: it marks the output
 * failed when the template is filled. */
void tmpl_set(tmpl_vars *vars, const char *name, const char *value);

/* Appends code: text with every ${name} replaced by its value, and ${name:str} by the value
 * written as the inside of a C string literal (strbuf_append_c_string()). A name without a value
 * marks out failed (a bug of the emitter, caught by every test that generates code). */
void tmpl_code(strbuf *out, const char *text, const tmpl_vars *vars);

/* Appends a block comment. text is prose: its placeholders are filled in (values made safe for a
 * comment with strbuf_append_comment()), then it is wrapped at spaces to TMPL_WIDTH columns, each
 * line starting with indent, the first with slash-star, the others with " *"; the terminator
 * goes at the end of the last line. In text, "\n" ends a line ("\n\n" leaves an empty comment
 * line between paragraphs) and '~' is a space the wrapping never breaks at, for code quoted in
 * the prose ("crpc_server_call_end(call,~CRPC_STATUS_OK,~NULL)"). A line that starts with spaces
 * keeps them, and its continuation lines get as many: for lists. */
void tmpl_comment(strbuf *out, const char *indent, const char *text, const tmpl_vars *vars);

#endif
