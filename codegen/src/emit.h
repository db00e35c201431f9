/* Writing the generated pair from a plan (plan.h). Both return 0, or -1 when out of memory. */
#ifndef CRPC_GEN_EMIT_H
#define CRPC_GEN_EMIT_H

#include "plan.h"
#include "strbuf.h"

int emit_header(const gen_file *f, strbuf *out);
int emit_source(const gen_file *f, strbuf *out);

/* The first lines of both files: what generated them, from which .proto. */
void emit_banner(const gen_file *f, strbuf *out, const char *what);

#endif
