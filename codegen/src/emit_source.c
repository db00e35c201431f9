#include <crpc/method.h>

#include "emit.h"

static void emit_flags(unsigned flags, strbuf *out)
{
  if (flags == 0)
    strbuf_append(out, "0u");
  else if (flags == (CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING))
    strbuf_append(out, "CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING");
  else if (flags == CRPC_METHOD_CLIENT_STREAMING)
    strbuf_append(out, "CRPC_METHOD_CLIENT_STREAMING");
  else
    strbuf_append(out, "CRPC_METHOD_SERVER_STREAMING");
}

static void emit_dispatch(const gen_service *s, const gen_method *m, strbuf *out)
{
  strbuf_printf(out,
      "\n/* Server trampoline of %s (crpc_dispatch_fn). */\n"
      "static void %s(crpc_server_call *call,\n"
      "    const ProtobufCMessage *request, const void *impl, void *user_data)\n"
      "{\n"
      "  const %s *handlers = (const %s *)impl;\n\n"
      "  if (handlers == NULL || handlers->%s == NULL) {\n"
      "    (void)crpc_server_call_fail(call, CRPC_STATUS_UNIMPLEMENTED,\n"
      "        \"",
      m->full_name, m->dispatch_fn, s->handlers_type, s->handlers_type, m->member);
  strbuf_append_c_string(out, m->full_name);
  strbuf_printf(out,
      " is not implemented by this server\");\n"
      "    return;\n"
      "  }\n"
      "  handlers->%s(call, (const %s *)request, user_data);\n"
      "}\n",
      m->member, m->input_c);
}

static void emit_table(const gen_file *f, const gen_service *s, strbuf *out)
{
  if (s->n_methods > 0) {
    strbuf_printf(out, "\nstatic const crpc_method_desc %s[%zu] = {\n", s->methods_array,
                  s->n_methods);
    for (size_t i = 0; i < s->n_methods; i++) {
      const gen_method *m = &s->methods[i];

      strbuf_append(out, "  {\"");
      strbuf_append_c_string(out, m->name);
      strbuf_append(out, "\", \"");
      strbuf_append_c_string(out, m->full_name);
      strbuf_printf(out, "\",\n   &%s, &%s,\n   ", m->input_desc, m->output_desc);
      emit_flags(m->flags, out);
      strbuf_printf(out, ", %s},\n", m->dispatch_fn != NULL ? m->dispatch_fn : "NULL");
    }
    strbuf_append(out, "};\n");
  }
  strbuf_printf(out, "\nconst crpc_service_desc %s = {\n  CRPC_GENERATED_ABI,\n  \"", s->table);
  strbuf_append_c_string(out, s->name);
  strbuf_append(out, "\",\n  \"");
  strbuf_append_c_string(out, s->full_name);
  strbuf_append(out, "\",\n  \"");
  strbuf_append_c_string(out, f->proto_name);
  strbuf_printf(out, "\",\n  %zu,\n  %s\n};\n", s->n_methods,
                s->n_methods > 0 ? s->methods_array : "NULL");
}

static void emit_client(const gen_method *m, strbuf *out)
{
  strbuf_printf(out,
      "\nint %s(crpc_channel *ch, const %s *request,\n"
      "    %s **response, crpc_status *status, const crpc_call_opts *opts)\n"
      "{\n"
      "  ProtobufCMessage *msg = NULL;\n"
      "  int rc;\n\n"
      "  if (response == NULL)\n"
      "    return crpc_channel_unary(ch, %s,\n"
      "        (const ProtobufCMessage *)request, NULL, status, opts);\n"
      "  rc = crpc_channel_unary(ch, %s,\n"
      "      (const ProtobufCMessage *)request, &msg, status, opts);\n"
      "  *response = (%s *)msg;\n"
      "  return rc;\n"
      "}\n",
      m->call_fn, m->input_c, m->output_c, m->macro, m->macro, m->output_c);
  strbuf_printf(out,
      "\n/* Gives the typed callback back its own type before calling it. */\n"
      "static void %s(crpc_call *call, const crpc_status *status,\n"
      "    const ProtobufCMessage *response, void *user_data)\n"
      "{\n"
      "  %s done =\n"
      "      (%s)crpc_call_user_fn(call);\n\n"
      "  done(status, (const %s *)response, user_data);\n"
      "}\n",
      m->adapter_fn, m->done_type, m->done_type, m->output_c);
  strbuf_printf(out,
      "\nint %s(crpc_channel *ch, const %s *request,\n"
      "    const crpc_call_opts *opts, %s done, void *user_data,\n"
      "    crpc_call **call_out)\n"
      "{\n"
      "  if (done == NULL)\n"
      "    return CRPC_EINVAL;\n"
      "  return crpc_gen_unary_async(ch, %s,\n"
      "      (const ProtobufCMessage *)request, opts, %s,\n"
      "      (crpc_fn)done, user_data, call_out);\n"
      "}\n",
      m->start_fn, m->input_c, m->done_type, m->macro, m->adapter_fn);
  strbuf_printf(out,
      "\nint %s(crpc_server_call *call, const %s *response)\n"
      "{\n"
      "  return crpc_server_call_reply(call, (const ProtobufCMessage *)response);\n"
      "}\n",
      m->reply_fn, m->output_c);
}

static void emit_service(const gen_file *f, const gen_service *s, strbuf *out)
{
  strbuf_printf(out, "\n/* ---- service %s ---- */\n", s->full_name);
  for (size_t i = 0; i < s->n_methods; i++)
    if (s->methods[i].dispatch_fn != NULL)
      emit_dispatch(s, &s->methods[i], out);
  emit_table(f, s, out);
  for (size_t i = 0; i < s->n_methods; i++)
    if (s->methods[i].member != NULL)
      emit_client(&s->methods[i], out);
  strbuf_printf(out,
      "\nint %s(crpc_server *server, const %s *handlers,\n"
      "    void *user_data)\n"
      "{\n"
      "  return crpc_server_register(server, &%s, handlers, user_data);\n"
      "}\n",
      s->register_fn, s->handlers_type, s->table);
}

int emit_source(const gen_file *f, strbuf *out)
{
  emit_banner(f, out, "crpc stubs and method tables for the services");
  strbuf_append(out, " */\n");
  strbuf_printf(out, "#include \"%s\"\n", f->header_name);
  if (f->n_services == 0)
    strbuf_append(out, "\n/* This file defines no service: nothing to define here. ISO C wants at "
                       "least one\n * declaration in a translation unit; the header's include "
                       "provides it. */\n");
  for (size_t i = 0; i < f->n_services; i++)
    emit_service(f, &f->services[i], out);
  return strbuf_failed(out) ? -1 : 0;
}
