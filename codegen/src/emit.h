/* Writing the generated pair from a plan (plan.h). Both return 0, or -1 when out of memory. */
#ifndef CRPC_GEN_EMIT_H
#define CRPC_GEN_EMIT_H

#include "plan.h"
#include "strbuf.h"
#include "tmpl.h"

int emit_header(const gen_file *f, strbuf *out);
int emit_source(const gen_file *f, strbuf *out);

/* The opening comment of both files: what generated them, from which .proto; `more` is more
 * prose for it, a template (tmpl.h) filled with the file's variables. */
void emit_banner(const gen_file *f, strbuf *out, const char *more);

/* The template variables of a file, a service (may be NULL) and a method (may be NULL): every
 * name of the plan, as ${field} (the plan.h field, e.g. ${send_wait_fn}), and ${method},
 * ${service}, ${proto}, ${input}, ${output}, ${kind}. */
void emit_vars(tmpl_vars *v, const gen_file *f, const gen_service *s, const gen_method *m);

#endif
