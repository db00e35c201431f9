#include <stdio.h>

#include <crpc/method.h>

#include "emit.h"

static const char *flags_expr(unsigned flags)
{
  if (flags == 0)
    return "0u";
  if (flags == (CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING))
    return "CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING";
  if (flags == CRPC_METHOD_CLIENT_STREAMING)
    return "CRPC_METHOD_CLIENT_STREAMING";
  return "CRPC_METHOD_SERVER_STREAMING";
}

static void emit_dispatch(const gen_method *m, const tmpl_vars *v, strbuf *out)
{
  strbuf_putc(out, '\n');
  tmpl_comment(out, "", "Server trampoline of ${method} (crpc_dispatch_fn).", v);
  tmpl_code(out,
      "static void ${dispatch_fn}(crpc_server_call *call,\n"
      "    const ProtobufCMessage *request, const void *impl, void *user_data)\n"
      "{\n"
      "  const ${handlers_type} *handlers = (const ${handlers_type} *)impl;\n"
      "\n"
      "  if (handlers == NULL || handlers->${member} == NULL) {\n"
      "    (void)crpc_server_call_fail(call, CRPC_STATUS_UNIMPLEMENTED,\n"
      "        \"${method:str} is not implemented by this server\");\n"
      "    return;\n"
      "  }\n", v);
  if (m->flags & CRPC_METHOD_CLIENT_STREAMING)
    tmpl_code(out,
        "  (void)request; /* NULL: the messages come through the reader */\n"
        "  handlers->${member}(call, user_data);\n"
        "}\n", v);
  else
    tmpl_code(out,
        "  handlers->${member}(call, (const ${input} *)request, user_data);\n"
        "}\n", v);
}

static void emit_table(const gen_file *f, const gen_service *s, strbuf *out)
{
  tmpl_vars v;
  char count[32];

  emit_vars(&v, f, s, NULL);
  snprintf(count, sizeof(count), "%zu", s->n_methods);
  tmpl_set(&v, "count", count);
  tmpl_set(&v, "methods", s->n_methods > 0 ? s->methods_array : "NULL");
  if (s->n_methods > 0) {
    tmpl_code(out, "\nconst crpc_method_desc ${methods_array}[${count}] = {\n", &v);
    for (size_t i = 0; i < s->n_methods; i++) {
      const gen_method *m = &s->methods[i];
      tmpl_vars mv;

      emit_vars(&mv, f, s, m);
      tmpl_set(&mv, "flags", flags_expr(m->flags));
      tmpl_code(out,
          "  {\n"
          "    .name = \"${method_name:str}\",\n"
          "    .full_name = \"${method:str}\",\n"
          "    .input = &${input_desc},\n"
          "    .output = &${output_desc},\n"
          "    .flags = ${flags},\n"
          "    .dispatch = ${dispatch_fn},\n"
          "  },\n", &mv);
    }
    strbuf_append(out, "};\n");
  }
  tmpl_code(out,
      "\nconst crpc_service_desc ${table} = {\n"
      "  .abi = CRPC_GENERATED_ABI,\n"
      "  .name = \"${service_name:str}\",\n"
      "  .full_name = \"${service:str}\",\n"
      "  .proto_file = \"${proto:str}\",\n"
      "  .n_methods = ${count},\n"
      "  .methods = ${methods},\n"
      "};\n", &v);
}

static void emit_client(const tmpl_vars *v, strbuf *out)
{
  tmpl_code(out,
      "\nint ${call_fn}(crpc_channel *ch, const ${input} *request,\n"
      "    ${output} **response, crpc_status *status, const crpc_call_opts *opts)\n"
      "{\n"
      "  ProtobufCMessage *msg = NULL;\n"
      "  int rc;\n"
      "\n"
      "  if (response == NULL)\n"
      "    return crpc_channel_unary(ch, ${macro},\n"
      "        (const ProtobufCMessage *)request, NULL, status, opts);\n"
      "  rc = crpc_channel_unary(ch, ${macro},\n"
      "      (const ProtobufCMessage *)request, &msg, status, opts);\n"
      "  *response = (${output} *)msg;\n"
      "  return rc;\n"
      "}\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "", "Gives the typed callback back its own type before calling it.", v);
  tmpl_code(out,
      "static void ${adapter_fn}(crpc_call *call, const crpc_status *status,\n"
      "    const ProtobufCMessage *response, void *user_data)\n"
      "{\n"
      "  ${done_type} done =\n"
      "      (${done_type})crpc_call_user_fn(call);\n"
      "\n"
      "  done(status, (const ${output} *)response, user_data);\n"
      "}\n", v);
  tmpl_code(out,
      "\nint ${start_fn}(crpc_channel *ch, const ${input} *request,\n"
      "    const crpc_call_opts *opts, ${done_type} done, void *user_data,\n"
      "    crpc_call **call_out)\n"
      "{\n"
      "  if (done == NULL)\n"
      "    return CRPC_EINVAL;\n"
      "  return crpc_gen_unary_async(ch, ${macro},\n"
      "      (const ProtobufCMessage *)request, opts, ${adapter_fn},\n"
      "      (crpc_fn)done, user_data, call_out);\n"
      "}\n", v);
  tmpl_code(out,
      "\nint ${reply_fn}(crpc_server_call *call, const ${output} *response)\n"
      "{\n"
      "  return crpc_server_call_reply(call, (const ProtobufCMessage *)response);\n"
      "}\n", v);
}

static void emit_stream_server(const gen_method *m, const tmpl_vars *v, strbuf *out)
{
  tmpl_code(out,
      "\nint ${server_write_fn}(crpc_server_call *call, const ${output} *msg)\n"
      "{\n"
      "  return crpc_server_call_write(call, (const ProtobufCMessage *)msg);\n"
      "}\n", v);
  if (m->set_reader_fn == NULL)
    return;
  strbuf_putc(out, '\n');
  tmpl_comment(out, "", "Gives the typed reader back its own type before calling it.", v);
  tmpl_code(out,
      "static void ${read_adapter_fn}(crpc_server_call *call,\n"
      "    const ProtobufCMessage *msg, void *user_data)\n"
      "{\n"
      "  void (*on_read)(crpc_server_call *, const ${input} *, void *) =\n"
      "      (void (*)(crpc_server_call *, const ${input} *, void *))crpc_server_call_user_fn(call);\n"
      "\n"
      "  on_read(call, (const ${input} *)msg, user_data);\n"
      "}\n", v);
  tmpl_code(out,
      "\nint ${set_reader_fn}(crpc_server_call *call,\n"
      "    void (*on_read)(crpc_server_call *, const ${input} *, void *),\n"
      "    crpc_server_writable_cb on_writable, void *user_data, int auto_read)\n"
      "{\n"
      "  return crpc_gen_server_stream_handlers(call, on_read != NULL ? ${read_adapter_fn} : NULL,\n"
      "      (crpc_fn)on_read, on_writable, user_data, auto_read);\n"
      "}\n", v);
}

static void emit_stream_async(const tmpl_vars *v, strbuf *out)
{
  strbuf_putc(out, '\n');
  tmpl_comment(out, "", "The adapters find the typed table with crpc_stream_typed().", v);
  tmpl_code(out,
      "static void ${on_read_adapter_fn}(crpc_stream *s, const ProtobufCMessage *msg,\n"
      "    void *user_data)\n"
      "{\n"
      "  const ${stream_handlers_type} *h = (const ${stream_handlers_type} *)crpc_stream_typed(s);\n"
      "\n"
      "  h->on_read(s, (const ${output} *)msg, user_data);\n"
      "}\n"
      "\n"
      "static void ${on_writable_adapter_fn}(crpc_stream *s, void *user_data)\n"
      "{\n"
      "  const ${stream_handlers_type} *h = (const ${stream_handlers_type} *)crpc_stream_typed(s);\n"
      "\n"
      "  h->on_writable(s, user_data);\n"
      "}\n"
      "\n"
      "static void ${on_done_adapter_fn}(crpc_stream *s, const crpc_status *status,\n"
      "    void *user_data)\n"
      "{\n"
      "  const ${stream_handlers_type} *h = (const ${stream_handlers_type} *)crpc_stream_typed(s);\n"
      "\n"
      "  h->on_done(s, status, user_data);\n"
      "}\n"
      "\n"
      "int ${stream_fn}(crpc_channel *ch, const crpc_call_opts *opts,\n"
      "    const ${stream_handlers_type} *handlers, void *user_data, crpc_stream **out)\n"
      "{\n"
      "  crpc_stream_handlers adapters;\n"
      "\n"
      "  if (handlers == NULL || handlers->on_done == NULL) {\n"
      "    if (out != NULL)\n"
      "      *out = NULL;\n"
      "    return CRPC_EINVAL;\n"
      "  }\n"
      "  adapters.on_read = handlers->on_read != NULL ? ${on_read_adapter_fn} : NULL;\n"
      "  adapters.on_writable =\n"
      "      handlers->on_writable != NULL ? ${on_writable_adapter_fn} : NULL;\n"
      "  adapters.on_done = ${on_done_adapter_fn};\n"
      "  adapters.auto_read = handlers->auto_read;\n"
      "  return crpc_gen_stream(ch, ${macro}, opts, &adapters, handlers,\n"
      "      user_data, out);\n"
      "}\n"
      "\n"
      "int ${write_fn}(crpc_stream *s, const ${input} *msg)\n"
      "{\n"
      "  return crpc_stream_write(s, (const ProtobufCMessage *)msg);\n"
      "}\n", v);
}

static void emit_stream_blocking(const tmpl_vars *v, strbuf *out)
{
  tmpl_code(out,
      "\nint ${open_fn}(crpc_channel *ch, const crpc_call_opts *opts, crpc_stream **out)\n"
      "{\n"
      "  return crpc_channel_stream_open(ch, ${macro}, opts, out);\n"
      "}\n"
      "\n"
      "int ${send_wait_fn}(crpc_stream *s, const ${input} *msg)\n"
      "{\n"
      "  return crpc_stream_send_wait(s, (const ProtobufCMessage *)msg);\n"
      "}\n"
      "\n"
      "int ${recv_wait_fn}(crpc_stream *s, ${output} **msg)\n"
      "{\n"
      "  ProtobufCMessage *got = NULL;\n"
      "  int rc;\n"
      "\n"
      "  if (msg == NULL)\n"
      "    return CRPC_EINVAL;\n"
      "  rc = crpc_stream_recv_wait(s, &got);\n"
      "  *msg = (${output} *)got;\n"
      "  return rc;\n"
      "}\n"
      "\n"
      "int ${finish_wait_fn}(crpc_stream *s, crpc_status *status)\n"
      "{\n"
      "  return crpc_stream_finish_wait(s, status);\n"
      "}\n", v);
}

static void emit_service(const gen_file *f, const gen_service *s, strbuf *out)
{
  tmpl_vars v;

  emit_vars(&v, f, s, NULL);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "", "---- service ${service} ----", &v);
  for (size_t i = 0; i < s->n_methods; i++) {
    tmpl_vars mv;

    emit_vars(&mv, f, s, &s->methods[i]);
    emit_dispatch(&s->methods[i], &mv, out);
  }
  emit_table(f, s, out);
  for (size_t i = 0; i < s->n_methods; i++) {
    const gen_method *m = &s->methods[i];
    tmpl_vars mv;

    emit_vars(&mv, f, s, m);
    if (m->flags == 0) {
      emit_client(&mv, out);
    } else {
      emit_stream_server(m, &mv, out);
      emit_stream_async(&mv, out);
      emit_stream_blocking(&mv, out);
    }
  }
  tmpl_code(out,
      "\nint ${register_fn}(crpc_server *server, const ${handlers_type} *handlers,\n"
      "    void *user_data)\n"
      "{\n"
      "  return crpc_server_register(server, &${table}, handlers, user_data);\n"
      "}\n", &v);
}

int emit_source(const gen_file *f, strbuf *out)
{
  tmpl_vars v;

  emit_vars(&v, f, NULL, NULL);
  emit_banner(f, out, "");
  tmpl_code(out, "#include \"${header}\"\n\n#include <crpc/gen.h>\n", &v);
  if (f->n_services == 0) {
    strbuf_putc(out, '\n');
    tmpl_comment(out, "",
        "This file defines no service: nothing to define here. ISO C wants at least one "
        "declaration in a translation unit; the header's include provides it.", &v);
  }
  for (size_t i = 0; i < f->n_services; i++)
    emit_service(f, &f->services[i], out);
  return strbuf_failed(out) ? -1 : 0;
}
