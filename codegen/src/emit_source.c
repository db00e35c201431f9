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
  strbuf_append(out,
      " is not implemented by this server\");\n"
      "    return;\n"
      "  }\n");
  if (m->flags & CRPC_METHOD_CLIENT_STREAMING)
    strbuf_printf(out,
        "  (void)request; /* NULL: the messages come through the reader */\n"
        "  handlers->%s(call, user_data);\n"
        "}\n",
        m->member);
  else
    strbuf_printf(out,
        "  handlers->%s(call, (const %s *)request, user_data);\n"
        "}\n",
        m->member, m->input_c);
}

static void emit_table(const gen_file *f, const gen_service *s, strbuf *out)
{
  if (s->n_methods > 0) {
    strbuf_printf(out, "\nconst crpc_method_desc %s[%zu] = {\n", s->methods_array,
                  s->n_methods);
    for (size_t i = 0; i < s->n_methods; i++) {
      const gen_method *m = &s->methods[i];

      strbuf_append(out, "  {\"");
      strbuf_append_c_string(out, m->name);
      strbuf_append(out, "\", \"");
      strbuf_append_c_string(out, m->full_name);
      strbuf_printf(out, "\",\n   &%s, &%s,\n   ", m->input_desc, m->output_desc);
      emit_flags(m->flags, out);
      strbuf_printf(out, ", %s},\n", m->dispatch_fn);
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

static void emit_stream_server(const gen_method *m, strbuf *out)
{
  strbuf_printf(out,
      "\nint %s(crpc_server_call *call, const %s *msg)\n"
      "{\n"
      "  return crpc_server_call_write(call, (const ProtobufCMessage *)msg);\n"
      "}\n",
      m->send_fn, m->output_c);
  if (m->set_reader_fn == NULL)
    return;
  strbuf_printf(out,
      "\n/* Gives the typed reader back its own type before calling it. */\n"
      "static void %s(crpc_server_call *call,\n"
      "    const ProtobufCMessage *msg, void *user_data)\n"
      "{\n"
      "  void (*on_read)(crpc_server_call *, const %s *, void *) =\n"
      "      (void (*)(crpc_server_call *, const %s *, void *))crpc_server_call_user_fn(call);\n\n"
      "  on_read(call, (const %s *)msg, user_data);\n"
      "}\n",
      m->read_adapter_fn, m->input_c, m->input_c, m->input_c);
  strbuf_printf(out,
      "\nint %s(crpc_server_call *call,\n"
      "    void (*on_read)(crpc_server_call *, const %s *, void *),\n"
      "    crpc_server_writable_cb on_writable, void *user_data, int auto_read)\n"
      "{\n"
      "  return crpc_gen_server_stream_handlers(call, on_read != NULL ? %s : NULL,\n"
      "      (crpc_fn)on_read, on_writable, user_data, auto_read);\n"
      "}\n",
      m->set_reader_fn, m->input_c, m->read_adapter_fn);
}

static void emit_stream_async(const gen_method *m, strbuf *out)
{
  const char *h = m->stream_handlers_type;

  strbuf_printf(out,
      "\n/* The adapters find the typed table with crpc_stream_typed(). */\n"
      "static void %s(crpc_stream *s, const ProtobufCMessage *msg,\n"
      "    void *user_data)\n"
      "{\n"
      "  const %s *h = (const %s *)crpc_stream_typed(s);\n\n"
      "  h->on_read(s, (const %s *)msg, user_data);\n"
      "}\n",
      m->on_read_adapter_fn, h, h, m->output_c);
  strbuf_printf(out,
      "\nstatic void %s(crpc_stream *s, void *user_data)\n"
      "{\n"
      "  const %s *h = (const %s *)crpc_stream_typed(s);\n\n"
      "  h->on_writable(s, user_data);\n"
      "}\n",
      m->on_writable_adapter_fn, h, h);
  strbuf_printf(out,
      "\nstatic void %s(crpc_stream *s, const crpc_status *status,\n"
      "    void *user_data)\n"
      "{\n"
      "  const %s *h = (const %s *)crpc_stream_typed(s);\n\n"
      "  h->on_done(s, status, user_data);\n"
      "}\n",
      m->on_done_adapter_fn, h, h);
  strbuf_printf(out,
      "\nint %s(crpc_channel *ch, const crpc_call_opts *opts,\n"
      "    const %s *handlers, void *user_data, crpc_stream **out)\n"
      "{\n"
      "  crpc_stream_handlers adapters;\n\n"
      "  if (handlers == NULL || handlers->on_done == NULL) {\n"
      "    if (out != NULL)\n"
      "      *out = NULL;\n"
      "    return CRPC_EINVAL;\n"
      "  }\n"
      "  adapters.on_read = handlers->on_read != NULL ? %s : NULL;\n"
      "  adapters.on_writable =\n"
      "      handlers->on_writable != NULL ? %s : NULL;\n"
      "  adapters.on_done = %s;\n"
      "  adapters.auto_read = handlers->auto_read;\n"
      "  return crpc_gen_stream(ch, %s, opts, &adapters, handlers,\n"
      "      user_data, out);\n"
      "}\n",
      m->stream_fn, h, m->on_read_adapter_fn, m->on_writable_adapter_fn, m->on_done_adapter_fn,
      m->macro);
  strbuf_printf(out,
      "\nint %s(crpc_stream *s, const %s *msg)\n"
      "{\n"
      "  return crpc_stream_write(s, (const ProtobufCMessage *)msg);\n"
      "}\n",
      m->write_fn, m->input_c);
}

static void emit_stream_blocking(const gen_method *m, strbuf *out)
{
  strbuf_printf(out,
      "\nint %s(crpc_channel *ch, const crpc_call_opts *opts, crpc_stream **out)\n"
      "{\n"
      "  return crpc_channel_stream_open(ch, %s, opts, out);\n"
      "}\n",
      m->open_fn, m->macro);
  strbuf_printf(out,
      "\nint %s(crpc_stream *s, const %s *msg)\n"
      "{\n"
      "  return crpc_stream_send_wait(s, (const ProtobufCMessage *)msg);\n"
      "}\n",
      m->write_wait_fn, m->input_c);
  strbuf_printf(out,
      "\nint %s(crpc_stream *s, %s **msg)\n"
      "{\n"
      "  ProtobufCMessage *got = NULL;\n"
      "  int rc;\n\n"
      "  if (msg == NULL)\n"
      "    return CRPC_EINVAL;\n"
      "  rc = crpc_stream_recv_wait(s, &got);\n"
      "  *msg = (%s *)got;\n"
      "  return rc;\n"
      "}\n",
      m->read_wait_fn, m->output_c, m->output_c);
  strbuf_printf(out,
      "\nint %s(crpc_stream *s, crpc_status *status)\n"
      "{\n"
      "  return crpc_stream_finish_wait(s, status);\n"
      "}\n",
      m->finish_fn);
}

static void emit_service(const gen_file *f, const gen_service *s, strbuf *out)
{
  strbuf_printf(out, "\n/* ---- service %s ---- */\n", s->full_name);
  for (size_t i = 0; i < s->n_methods; i++)
    emit_dispatch(s, &s->methods[i], out);
  emit_table(f, s, out);
  for (size_t i = 0; i < s->n_methods; i++) {
    const gen_method *m = &s->methods[i];

    if (m->flags == 0) {
      emit_client(m, out);
    } else {
      emit_stream_server(m, out);
      emit_stream_async(m, out);
      emit_stream_blocking(m, out);
    }
  }
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
