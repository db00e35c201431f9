#include "plan.h"

#include <string.h>

#include <crpc/method.h>

#include "names.h"
#include "nameset.h"

typedef struct planner {
  arena *a;
  const gen_request *req;
  const gen_file_proto *file;
  const gen_file_proto **closure;
  size_t n_closure;
  nameset taken;
  gen_file *out;
  strbuf *error;
  int oom;
  int invalid; /* the request contradicts itself: message in error */
} planner;

/* --- protobuf-c's c_package --------------------------------------------------------------- */

/* The full name whose pieces make the C names of `full`, a definition of file f: `full` itself,
 * or, when f sets option (pb_c_file).c_package, the name with f's package replaced by it, exactly
 * as protoc-c (OverrideFullName) does: c_package, then "." when f has no package, then what
 * follows the package in `full`. ("acme.v1.Req" with c_package "acme_c" -> "acme_c.Req", which
 * protobuf-c turns into AcmeC__Req; c_package "" drops the package: "Req".) */
static const char *c_full(planner *p, const gen_file_proto *f, const char *full)
{
  const char *pkg = f->package != NULL ? f->package : "";
  size_t plen = strlen(pkg);
  gen_c_options o;
  const char *cpkg, *s;

  if (full == NULL)
    return NULL;
  if (request_c_options(f, &o) != 0 || !o.has_c_package)
    return full; /* request_decode() rejected undecodable options */
  if (strncmp(full, pkg, plen) != 0) {
    p->invalid = 1;
    strbuf_printf(p->error, "%s: %s is not inside the file's package", f->name, full);
    return NULL;
  }
  cpkg = arena_strndup(p->a, o.c_package, o.c_package_len);
  s = cpkg != NULL ? names_cat(p->a, cpkg, plen == 0 ? "." : "", full + plen, NULL) : NULL;
  if (s == NULL)
    p->oom = 1;
  return s;
}

/* Non-zero when every piece of s between dots is empty (protoc-c skips those) or an
 * identifier: then the C names protoc-c pastes together from it are identifiers. */
static int pieces_are_idents(const char *s)
{
  for (;;) {
    const char *dot = strchr(s, '.');
    size_t len = dot != NULL ? (size_t)(dot - s) : strlen(s);

    if (len > 0) {
      if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
      for (size_t i = 1; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
          return 0;
    }
    if (dot == NULL)
      return 1;
    s = dot + 1;
  }
}

/* A c_package that protobuf-c pastes into C names must make identifiers of them. */
static int check_c_package(planner *p, const gen_file_proto *f)
{
  gen_c_options o;
  const char *cpkg;

  if (request_c_options(f, &o) != 0 || !o.has_c_package)
    return 0;
  cpkg = arena_strndup(p->a, o.c_package, o.c_package_len);
  if (cpkg == NULL)
    return p->oom = 1, -1;
  if (strlen(cpkg) != o.c_package_len || !pieces_are_idents(cpkg)) {
    strbuf_printf(p->error, "%s: option (pb_c_file).c_package = \"%s\" is not a package name "
                  "(identifiers separated by dots): protobuf-c's C names would not be identifiers",
                  f->name, cpkg);
    return -1;
  }
  return 0;
}

static int no_generate(const gen_file_proto *f)
{
  gen_c_options o;

  return request_c_options(f, &o) == 0 && o.no_generate;
}

/* --- protobuf-c's names ------------------------------------------------------------------- */

static const char *const message_suffixes[] = {
    "__descriptor", "__init", "__get_packed_size", "__pack", "__pack_to_buffer", "__unpack",
    "__free_unpacked"};

static void take(planner *p, const char *name)
{
  if (name == NULL || nameset_add(&p->taken, name) < 0)
    p->oom = 1;
}

static const char *join(planner *p, const char *a, const char *b)
{
  const char *s = a != NULL && b != NULL ? names_cat(p->a, a, b, NULL, NULL) : NULL;

  if (s == NULL)
    p->oom = 1;
  return s;
}

static const char *qualify(planner *p, const char *scope, const char *name)
{
  const char *s = scope[0] != '\0' ? names_cat(p->a, scope, ".", name, NULL) : name;

  if (s == NULL)
    p->oom = 1;
  return s;
}

static void take_enum(planner *p, const gen_file_proto *f, const char *scope,
                      const gen_enum_proto *e)
{
  const char *full = c_full(p, f, qualify(p, scope, e->name));
  const char *uc = full != NULL ? names_full_to_upper(p->a, full) : NULL;

  if (uc == NULL) {
    p->oom = 1;
    return;
  }
  take(p, names_full_to_c(p->a, full));
  take(p, join(p, "_", names_full_to_c(p->a, full)));
  take(p, join(p, names_full_to_lower(p->a, full), "__descriptor"));
  take(p, names_cat(p->a, "_", uc, "_IS_INT_SIZE", NULL));
  for (size_t i = 0; i < e->n_value; i++)
    take(p, names_cat(p->a, uc, "__", e->value[i]->name, NULL));
}

static void take_oneofs(planner *p, const gen_message_proto *m, const char *cn, const char *uc)
{
  for (size_t i = 0; i < m->n_oneof_decl; i++) {
    const char *oneof_uc = names_camel_to_upper(p->a, m->oneof_decl[i]->name);

    take(p, names_cat(p->a, cn, "__", names_to_camel(p->a, m->oneof_decl[i]->name), "Case"));
    take(p, names_cat(p->a, uc, "__", oneof_uc, "__NOT_SET"));
    for (size_t f = 0; f < m->n_field; f++)
      if (m->field[f]->has_oneof_index && m->field[f]->oneof_index == (int32_t)i)
        take(p, names_cat(p->a, uc, "__", oneof_uc,
                          join(p, "_", names_camel_to_upper(p->a, m->field[f]->name))));
  }
}

static void take_message(planner *p, const gen_file_proto *f, const char *scope,
                         const gen_message_proto *m)
{
  const char *full = qualify(p, scope, m->name); /* proto name: the scope of nested types */
  const char *cfull = c_full(p, f, full);
  const char *cn = cfull != NULL ? names_full_to_c(p->a, cfull) : NULL;
  const char *lc = cfull != NULL ? names_full_to_lower(p->a, cfull) : NULL;
  const char *uc = cfull != NULL ? names_full_to_upper(p->a, cfull) : NULL;

  if (cn == NULL || lc == NULL || uc == NULL) {
    p->oom = 1;
    return;
  }
  take(p, cn);
  take(p, join(p, cn, "_Closure"));
  take(p, join(p, uc, "__INIT"));
  for (size_t i = 0; i < sizeof(message_suffixes) / sizeof(message_suffixes[0]); i++)
    take(p, join(p, lc, message_suffixes[i]));
  for (size_t i = 0; i < m->n_field; i++)
    take(p, names_cat(p->a, lc, "__", names_camel_to_lower(p->a, m->field[i]->name),
                      "__default_value"));
  take_oneofs(p, m, cn, uc);
  for (size_t i = 0; i < m->n_enum_type; i++)
    take_enum(p, f, full, m->enum_type[i]);
  for (size_t i = 0; i < m->n_nested_type; i++)
    take_message(p, f, full, m->nested_type[i]);
}

static const char *service_full_name(planner *p, const gen_file_proto *f, const char *name)
{
  return qualify(p, f->package != NULL ? f->package : "", name);
}

/* Enters protobuf-c's names for a service. For the file being generated (check != 0), a name
 * protobuf-c would define twice is an error: its output would not compile. */
static int take_service(planner *p, const gen_file_proto *f, const gen_service_proto *s, int check)
{
  const char *full = service_full_name(p, f, s->name);
  const char *cfull = c_full(p, f, full);
  const char *cn = cfull != NULL ? names_full_to_c(p->a, cfull) : NULL;
  const char *lc = cfull != NULL ? names_full_to_lower(p->a, cfull) : NULL;
  const char *uc = cfull != NULL ? names_full_to_upper(p->a, cfull) : NULL;
  const char *desc = join(p, lc, "__descriptor");

  if (cn == NULL || lc == NULL || uc == NULL || desc == NULL)
    return p->oom = 1, -1;
  if (check && nameset_has(&p->taken, desc)) {
    strbuf_printf(p->error, "%s: service %s: protobuf-c would name its descriptor %s, which "
                  "another definition already has; rename the service",
                  f->name, full, desc);
    return -1;
  }
  take(p, desc);
  take(p, join(p, cn, "_Service"));
  take(p, join(p, cn, "_ServiceDestroy"));
  take(p, join(p, lc, "__init"));
  take(p, join(p, lc, "__method_indices_by_name"));
  take(p, join(p, uc, "__BASE_INIT"));
  take(p, join(p, uc, "__INIT"));
  for (size_t i = 0; i < s->n_method; i++) {
    const char *ml = names_camel_to_lower(p->a, s->method[i]->name);
    const char *fn = ml != NULL ? names_cat(p->a, lc, "__", ml, NULL) : NULL;

    if (fn == NULL)
      return p->oom = 1, -1;
    if (check && names_is_keyword(ml)) {
      strbuf_printf(p->error, "%s: service %s: method %s becomes a struct member named %s in "
                    "protobuf-c's generated code, a C keyword; protobuf-c's output would not "
                    "compile: rename the method",
                    f->name, full, s->method[i]->name, ml);
      return -1;
    }
    if (check && nameset_has(&p->taken, fn)) {
      strbuf_printf(p->error, "%s: service %s: method %s becomes the C function %s in "
                    "protobuf-c's generated code, a name that is already used there",
                    f->name, full, s->method[i]->name, fn);
      for (size_t j = 0; j < i; j++) {
        const char *other = names_camel_to_lower(p->a, s->method[j]->name);

        if (other != NULL && strcmp(other, ml) == 0)
          strbuf_printf(p->error, " (by method %s)", s->method[j]->name);
      }
      strbuf_append(p->error, "; protobuf-c's output would not compile: rename the method");
      return -1;
    }
    take(p, fn);
  }
  return 0;
}

static int take_protobuf_c_names(planner *p)
{
  /* Messages and enums of every file first, then services: a service colliding with them is
   * reported as the service's problem. A file protoc-c does not generate (no_generate) defines
   * no C names. */
  for (size_t i = 0; i < p->n_closure; i++)
    if (check_c_package(p, p->closure[i]) != 0)
      return -1;
  for (size_t i = 0; i < p->n_closure; i++) {
    const gen_file_proto *f = p->closure[i];
    const char *pkg = f->package != NULL ? f->package : "";

    if (no_generate(f))
      continue;
    for (size_t m = 0; m < f->n_message_type; m++)
      take_message(p, f, pkg, f->message_type[m]);
    for (size_t e = 0; e < f->n_enum_type; e++)
      take_enum(p, f, pkg, f->enum_type[e]);
  }
  for (size_t i = 0; i < p->n_closure; i++)
    for (size_t s = 0; !no_generate(p->closure[i]) && s < p->closure[i]->n_service; s++)
      if (take_service(p, p->closure[i], p->closure[i]->service[s], p->closure[i] == p->file) !=
          0)
        return -1;
  return p->oom ? -1 : 0;
}

/* --- crpc's names ------------------------------------------------------------------------- */

/* Claims base (or base_, base__, ...) and records a rename. */
static const char *claim(planner *p, const char *base)
{
  const char *got = base != NULL ? nameset_claim(&p->taken, base) : NULL;

  if (got == NULL) {
    p->oom = 1;
    return NULL;
  }
  if (strcmp(got, base) != 0)
    strbuf_printf(&p->out->renames, "  %s instead of %s (already used)\n", got, base);
  return got;
}

static int plan_service_names(planner *p, const gen_service_proto *s, gen_service *gs)
{
  const char *full = service_full_name(p, p->file, s->name);
  const char *cfull = c_full(p, p->file, full);
  const char *cn = cfull != NULL ? names_full_to_c(p->a, cfull) : NULL;
  const char *lc = cfull != NULL ? names_full_to_lower(p->a, cfull) : NULL;

  if (cn == NULL || lc == NULL)
    return p->oom = 1, -1;
  gs->name = s->name;
  gs->full_name = full;
  gs->c_full_name = cfull;
  gs->table = claim(p, join(p, lc, "__crpc_service"));
  gs->methods_array = claim(p, join(p, lc, "__crpc_methods"));
  gs->handlers_type = claim(p, join(p, cn, "__Handlers"));
  gs->register_fn = claim(p, join(p, lc, "__crpc_register"));
  gs->n_methods = s->n_method;
  if (s->n_method > 0) {
    gs->methods = arena_alloc(p->a, s->n_method * sizeof(*gs->methods));
    if (gs->methods == NULL)
      p->oom = 1;
  }
  return p->oom ? -1 : 0;
}

static int resolve_type(planner *p, const char *type_name, const char **full, const char **c,
                        const char **desc)
{
  const gen_file_proto *owner;

  const char *cfull;

  if (request_find_message(p->closure, p->n_closure, type_name, &owner) == NULL) {
    strbuf_printf(p->error, "%s: message type %s is not defined in the file or its imports",
                  p->file->name, type_name);
    p->invalid = 1;
    return -1;
  }
  if (no_generate(owner)) {
    strbuf_printf(p->error, "%s: message type %s is defined in %s, which sets option "
                  "(pb_c_file).no_generate: protobuf-c generates no C type for it",
                  p->file->name, type_name + 1, owner->name);
    return -1;
  }
  *full = type_name + 1;
  cfull = c_full(p, owner, *full);
  if (cfull == NULL)
    return p->oom = 1, -1;
  *c = names_full_to_c(p->a, cfull);
  *desc = join(p, names_full_to_lower(p->a, cfull), "__descriptor");
  if (*c == NULL || *desc == NULL)
    return p->oom = 1, -1;
  return 0;
}

/* Method names in the handler table share a scope of their own, free of C keywords. */
static const char *plan_member(planner *p, nameset *members, const char *ml)
{
  const char *member = names_is_keyword(ml) ? join(p, ml, "_") : ml;
  const char *got = member != NULL ? nameset_claim(members, member) : NULL;

  if (got == NULL)
    p->oom = 1;
  return got;
}

/* The claiming order of unary names is part of the rename rules: do not reorder. */
static void plan_unary_names(planner *p, const char *prefix, const char *cn, const char *camel,
                             gen_method *gm)
{
  gm->call_fn = claim(p, join(p, prefix, "call"));
  gm->start_fn = claim(p, join(p, prefix, "start"));
  gm->reply_fn = claim(p, join(p, prefix, "reply"));
  gm->done_type = claim(p, names_cat(p->a, cn, "__", camel, "Done"));
  gm->dispatch_fn = claim(p, join(p, prefix, "dispatch"));
  gm->adapter_fn = claim(p, join(p, prefix, "adapter"));
}

/* The claiming order of streaming names is part of the rename rules too. The old names, now
 * deprecated aliases, keep their places, so that they come out as before. */
static void plan_stream_names(planner *p, const char *prefix, const char *cn, const char *camel,
                              gen_method *gm)
{
  gm->dispatch_fn = claim(p, join(p, prefix, "dispatch"));
  gm->old_send_fn = claim(p, join(p, prefix, "send"));
  if (gm->flags & CRPC_METHOD_CLIENT_STREAMING) {
    gm->set_reader_fn = claim(p, join(p, prefix, "set_reader"));
    gm->read_adapter_fn = claim(p, join(p, prefix, "read_adapter"));
  }
  gm->stream_handlers_type = claim(p, names_cat(p->a, cn, "__", camel, "Handlers"));
  gm->stream_fn = claim(p, join(p, prefix, "stream"));
  gm->write_fn = claim(p, join(p, prefix, "write"));
  gm->open_fn = claim(p, join(p, prefix, "open"));
  gm->old_write_wait_fn = claim(p, join(p, prefix, "write_wait"));
  gm->old_read_wait_fn = claim(p, join(p, prefix, "read_wait"));
  gm->old_finish_fn = claim(p, join(p, prefix, "finish"));
  gm->on_read_adapter_fn = claim(p, join(p, prefix, "on_read_adapter"));
  gm->on_writable_adapter_fn = claim(p, join(p, prefix, "on_writable_adapter"));
  gm->on_done_adapter_fn = claim(p, join(p, prefix, "on_done_adapter"));
}

/* The current names of the streaming stubs, claimed after every older name of the file (see
 * plan.h), in .proto order. */
static void plan_stream_verbs(planner *p, const char *lc, const gen_service *gs)
{
  for (size_t i = 0; i < gs->n_methods; i++) {
    gen_method *gm = &gs->methods[i];
    const char *ml = names_camel_to_lower(p->a, gm->name);
    const char *prefix = ml != NULL ? names_cat(p->a, lc, "__", ml, "__") : NULL;

    if (gm->flags == 0)
      continue;
    if (prefix == NULL) {
      p->oom = 1;
      return;
    }
    gm->server_write_fn = claim(p, join(p, prefix, "server_write"));
    gm->send_wait_fn = claim(p, join(p, prefix, "send_wait"));
    gm->recv_wait_fn = claim(p, join(p, prefix, "recv_wait"));
    gm->finish_wait_fn = claim(p, join(p, prefix, "finish_wait"));
  }
}

static int plan_method_names(planner *p, nameset *members, const gen_method_proto *m,
                             const char *lc, const char *cn, gen_method *gm)
{
  const char *ml = names_camel_to_lower(p->a, m->name);
  const char *camel = names_to_camel(p->a, m->name);
  const char *prefix = ml != NULL ? names_cat(p->a, lc, "__", ml, "__") : NULL;

  if (camel == NULL || prefix == NULL)
    return p->oom = 1, -1;
  gm->member = plan_member(p, members, ml);
  if (gm->flags == 0)
    plan_unary_names(p, prefix, cn, camel, gm);
  else
    plan_stream_names(p, prefix, cn, camel, gm);
  return p->oom ? -1 : 0;
}

static int plan_methods(planner *p, const gen_service_proto *s, gen_service *gs)
{
  const char *lc = names_full_to_lower(p->a, gs->c_full_name);
  const char *uc = names_full_to_upper(p->a, gs->c_full_name);
  const char *cn = names_full_to_c(p->a, gs->c_full_name);
  nameset members;

  if (lc == NULL || uc == NULL || cn == NULL || nameset_init(&members, p->a) != 0)
    return p->oom = 1, -1;
  for (size_t i = 0; i < s->n_method; i++) {
    const gen_method_proto *m = s->method[i];
    gen_method *gm = &gs->methods[i];

    gm->name = m->name;
    gm->full_name = names_cat(p->a, gs->full_name, "/", m->name, NULL);
    if (resolve_type(p, m->input_type, &gm->input_full, &gm->input_c, &gm->input_desc) != 0 ||
        resolve_type(p, m->output_type, &gm->output_full, &gm->output_c, &gm->output_desc) != 0)
      return -1;
    gm->flags = (m->client_streaming ? CRPC_METHOD_CLIENT_STREAMING : 0u) |
                (m->server_streaming ? CRPC_METHOD_SERVER_STREAMING : 0u);
    gm->macro = claim(p, names_cat(p->a, uc, "__", names_camel_to_upper(p->a, m->name),
                                   "__METHOD"));
    if (gm->full_name == NULL || gm->macro == NULL)
      return p->oom = 1, -1;
    if (plan_method_names(p, &members, m, lc, cn, gm) != 0)
      return -1;
  }
  return 0;
}

/* --- files -------------------------------------------------------------------------------- */

static const char *strip_proto(planner *p, const char *name)
{
  size_t n = strlen(name);
  const char *s;

  if (n > 11 && strcmp(name + n - 11, ".protodevel") == 0)
    n -= 11;
  else if (n > 6 && strcmp(name + n - 6, ".proto") == 0)
    n -= 6;
  s = arena_strndup(p->a, name, n);
  if (s == NULL)
    p->oom = 1;
  return s;
}

/* The file name goes into #include "..." lines, which have no escapes. */
static int includable(const char *name)
{
  for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++)
    if (*c < 0x20 || *c == 0x7f || *c == '"' || *c == '\\')
      return 0;
  return 1;
}

static int plan_file_names(planner *p)
{
  gen_file *out = p->out;
  const char *base;

  if (!includable(p->file->name)) {
    strbuf_printf(p->error, "%s: the file name cannot be written in a C #include line",
                  p->file->name);
    return -1;
  }
  base = strip_proto(p, p->file->name);
  out->proto_name = p->file->name;
  out->syntax = p->file->syntax != NULL && p->file->syntax[0] != '\0' ? p->file->syntax
                                                                       : "proto2";
  out->header_name = join(p, base, ".crpc.h");
  out->source_name = join(p, base, ".crpc.c");
  out->pbc_header = join(p, base, ".pb-c.h");
  out->guard = names_cat(p->a, "CRPC_GENERATED_", names_file_ident(p->a, p->file->name),
                         "_CRPC_H", NULL);
  if (out->guard == NULL)
    p->oom = 1;
  return p->oom ? -1 : 0;
}

static enum plan_result finish(planner *p, int rc)
{
  if (p->oom || strbuf_failed(&p->out->renames)) {
    strbuf_free(p->error);
    strbuf_append(p->error, "out of memory");
    return PLAN_INTERNAL_ERROR;
  }
  if (p->invalid)
    return PLAN_INTERNAL_ERROR;
  return rc == 0 ? PLAN_OK : PLAN_PROTO_ERROR;
}

enum plan_result plan_file(arena *a, const gen_request *req, const gen_file_proto *file,
                           gen_file *out, strbuf *error)
{
  planner p = {.a = a, .req = req, .file = file, .out = out, .error = error};
  const gen_file_proto **closure;
  int rc;

  memset(out, 0, sizeof(*out));
  strbuf_init(&out->renames);
  p.n_closure = request_closure(req, file, a, &closure);
  p.closure = closure;
  if (p.n_closure == (size_t)-1 || nameset_init(&p.taken, a) != 0)
    return p.oom = 1, finish(&p, -1);
  if (plan_file_names(&p) != 0 || take_protobuf_c_names(&p) != 0)
    return finish(&p, -1);
  out->n_services = file->n_service;
  if (file->n_service > 0) {
    out->services = arena_alloc(a, file->n_service * sizeof(*out->services));
    if (out->services == NULL)
      return p.oom = 1, finish(&p, -1);
  }
  rc = 0;
  for (size_t i = 0; rc == 0 && i < file->n_service; i++)
    rc = plan_service_names(&p, file->service[i], &out->services[i]);
  for (size_t i = 0; rc == 0 && i < file->n_service; i++)
    rc = plan_methods(&p, file->service[i], &out->services[i]);
  for (size_t i = 0; rc == 0 && i < file->n_service; i++) {
    const char *lc = names_full_to_lower(a, out->services[i].c_full_name);

    if (lc == NULL)
      p.oom = 1;
    else
      plan_stream_verbs(&p, lc, &out->services[i]);
  }
  return finish(&p, rc);
}

void plan_release(gen_file *f)
{
  strbuf_free(&f->renames);
}
