#include <stdio.h>

#include <crpc/method.h>
#include <crpc/version.h>

#include "emit.h"

static void emit_prologue(const gen_file *f, strbuf *out)
{
  tmpl_vars v;
  strbuf more;

  strbuf_init(&more);
  emit_vars(&v, f, NULL, NULL);
  /* More of the banner's template. The renames are C identifiers, which hold no '$' or '~'. */
  strbuf_append(&more, "\nThe messages are protobuf-c's, in ${pbc_header}.");
  if (f->n_services == 0)
    strbuf_append(&more, "\n\nThis file defines no service, so this header declares nothing. "
                         "protoc-gen-crpc always writes the .crpc.h/.crpc.c pair, so that build "
                         "systems can name the outputs in advance.");
  if (f->renames.len > 0) {
    strbuf_append(&more, "\n\nRenamed to stay clear of other C names (protobuf-c's or crpc's):\n");
    strbuf_appendn(&more, strbuf_str(&f->renames), f->renames.len - 1); /* without the last \n */
  }
  if (strbuf_failed(&more))
    out->failed = 1;
  else
    emit_banner(f, out, strbuf_str(&more));
  strbuf_free(&more);
  tmpl_code(out,
            "#ifndef ${guard}\n"
            "#define ${guard}\n"
            "\n"
            "#include <crpc/crpc.h>\n"
            "#include <crpc/gen.h>\n"
            "\n"
            "#include \"${pbc_header}\"\n"
            "\n",
            &v);
  strbuf_printf(out,
                "#if !defined(CRPC_GENERATED_ABI) || CRPC_GENERATED_ABI != %d\n"
                "#error \"",
                CRPC_GENERATED_ABI);
  tmpl_code(out, "${header:str}", &v);
  strbuf_printf(out, " was generated for crpc generated-code ABI %d, which <crpc/crpc.h> "
                     "does not provide: regenerate it with the protoc-gen-crpc of this crpc\"\n"
                     "#endif\n\n",
                CRPC_GENERATED_ABI);
  strbuf_append(out, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
}

static void emit_unary(const tmpl_vars *v, strbuf *out)
{
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Calls ${method} and waits for its outcome (crpc_channel_unary()). Returns 0 when the call "
      "ran; status->code tells how it ended. On CRPC_STATUS_OK *response is the reply, owned by "
      "the caller (free it with protobuf_c_message_free_unpacked(), allocator NULL); otherwise it "
      "is NULL. Release status with crpc_status_reset() in every case. A negative return "
      "(CRPC_E*): nothing was sent. request and opts (may be NULL) stay the caller's. "
      "Thread-safe.", v);
  tmpl_code(out,
      "int ${call_fn}(crpc_channel *ch, const ${input} *request,\n"
      "    ${output} **response, crpc_status *status, const crpc_call_opts *opts);\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Completion of ${method}: runs once, on the channel's loop thread. status and response "
      "(NULL unless status->code is CRPC_STATUS_OK) belong to crpc and are valid during the "
      "callback only.", v);
  tmpl_code(out,
      "typedef void (*${done_type})(const crpc_status *status,\n"
      "    const ${output} *response, void *user_data);\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Starts ${method} on a loop channel, on its loop thread (crpc_channel_unary_async()). "
      "request is encoded before this returns and stays the caller's, as does opts (may be "
      "NULL). Returns 0 when started: done (not NULL) then runs exactly once, never before this "
      "returns; *call_out (call_out may be NULL) is a handle for crpc_call_cancel(), valid until "
      "done returns. A negative return: done never runs.", v);
  tmpl_code(out,
      "int ${start_fn}(crpc_channel *ch, const ${input} *request,\n"
      "    const crpc_call_opts *opts, ${done_type} done, void *user_data,\n"
      "    crpc_call **call_out);\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Server side: finishes a ${method} call with status OK and response, which is encoded "
      "before this returns and stays the caller's (crpc_server_call_reply()). The call and its "
      "request are released: do not use them afterwards. Loop thread only.", v);
  tmpl_code(out, "int ${reply_fn}(crpc_server_call *call, const ${output} *response);\n", v);
}

static void emit_stream_server(const gen_method *m, const tmpl_vars *v, strbuf *out)
{
  int server_streaming = (m->flags & CRPC_METHOD_SERVER_STREAMING) != 0;

  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      server_streaming
          ? "Server side of ${method}: writes msg to the client (crpc_server_call_write(); msg is "
            "encoded before this returns and stays the caller's). Returns 0, CRPC_EAGAIN (the "
            "client's window is used up, or more than MAX_WRITE_BUFFER is queued for the client's "
            "connection, whichever call filled it: nothing sent; the call's on_writable runs when "
            "a write may be retried), CRPC_ESTATE (cancelled: the client is gone), CRPC_ELIMIT "
            "(larger than MAX_SEND_MESSAGE_SIZE), CRPC_EINVAL (call finished, msg NULL), "
            "CRPC_ENOMEM. Write any number, then end the call once with crpc_server_call_end() "
            "(or _fail). Loop thread only. A handler that wants on_writable sets it with "
            "crpc_server_call_stream_handlers(call,~NULL,~on_writable,~user_data,~0)."
          : "Server side of ${method}: writes msg to the client (crpc_server_call_write(); msg is "
            "encoded before this returns and stays the caller's). Returns 0, CRPC_EAGAIN (the "
            "client's window is used up, or more than MAX_WRITE_BUFFER is queued for the client's "
            "connection, whichever call filled it: nothing sent; the call's on_writable runs when "
            "a write may be retried), CRPC_ESTATE (cancelled: the client is gone; or the one "
            "response was already written), CRPC_ELIMIT (larger than MAX_SEND_MESSAGE_SIZE), "
            "CRPC_EINVAL (call finished, msg NULL), CRPC_ENOMEM. Write the one response (ending "
            "the call OK without it ends it INTERNAL), then end the call once with "
            "crpc_server_call_end() (or _fail). Loop thread only.",
      v);
  tmpl_code(out, "int ${server_write_fn}(crpc_server_call *call, const ${output} *msg);\n", v);
  if (m->set_reader_fn == NULL)
    return;
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Server side of ${method}: sets the call's stream callbacks "
      "(crpc_server_call_stream_handlers()), usually from the handler. on_read gets each client "
      "message (owned by crpc, valid during the callback only) and then, once, msg NULL: the "
      "client closed its side. on_writable: a write refused with CRPC_EAGAIN may be retried. "
      "Either may be NULL. auto_read non-zero: every message is delivered as it arrives; 0: one "
      "per crpc_server_call_read(). Returns 0 or CRPC_EINVAL (the call is finished). Loop thread "
      "only.", v);
  tmpl_code(out,
      "int ${set_reader_fn}(crpc_server_call *call,\n"
      "    void (*on_read)(crpc_server_call *call, const ${input} *msg, void *user_data),\n"
      "    crpc_server_writable_cb on_writable, void *user_data, int auto_read);\n", v);
}

static void emit_stream_async(const gen_method *m, const tmpl_vars *v, strbuf *out)
{
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "The client's callbacks for a stream of ${method}, run on the channel's loop thread with "
      "the user_data given to ${stream_fn}().", v);
  tmpl_code(out, "typedef struct ${stream_handlers_type} {\n", v);
  tmpl_comment(out, "  ",
      "A response, in answer to crpc_stream_read() or, with auto_read, as it arrives. Owned by "
      "crpc, valid during the callback only. May be NULL.", v);
  tmpl_code(out, "  void (*on_read)(crpc_stream *s, const ${output} *msg, void *user_data);\n", v);
  tmpl_comment(out, "  ", "A write refused with CRPC_EAGAIN may now be retried. May be NULL.", v);
  strbuf_append(out, "  void (*on_writable)(crpc_stream *s, void *user_data);\n");
  tmpl_comment(out, "  ",
      "The call ended: exactly once, the stream's last callback (after the server's status once "
      "every response that arrived has been read; at once on cancel, deadline, connection loss "
      "or channel close). status is valid during the callback; s is invalid after it. Required.",
      v);
  strbuf_append(out,
      "  void (*on_done)(crpc_stream *s, const crpc_status *status, void *user_data);\n");
  tmpl_comment(out, "  ",
      "Non-zero: deliver every response as it arrives, no crpc_stream_read().", v);
  tmpl_code(out, "  int auto_read;\n} ${stream_handlers_type};\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      m->set_reader_fn == NULL
          ? "Starts a stream of ${method} (${kind}) on a loop channel, on its loop thread "
            "(crpc_channel_stream()). handlers is not copied: it must stay valid until on_done "
            "returns (a static table is the norm); opts (may be NULL) stays the caller's. Write "
            "the one request with ${write_fn}(), then crpc_stream_close_send(*out). Read with "
            "crpc_stream_read(), cancel with crpc_stream_cancel(). Returns 0: on_done will run "
            "exactly once, never inside this call, and *out is valid until it returns. "
            "CRPC_EINVAL (handlers or its on_done NULL, out NULL), CRPC_ENOTSUP (private-loop "
            "channel), CRPC_ECLOSED, CRPC_ENOMEM: nothing started."
          : "Starts a stream of ${method} (${kind}) on a loop channel, on its loop thread "
            "(crpc_channel_stream()). handlers is not copied: it must stay valid until on_done "
            "returns (a static table is the norm); opts (may be NULL) stays the caller's. Write "
            "requests with ${write_fn}(), then crpc_stream_close_send(*out). Read with "
            "crpc_stream_read(), cancel with crpc_stream_cancel(). Returns 0: on_done will run "
            "exactly once, never inside this call, and *out is valid until it returns. "
            "CRPC_EINVAL (handlers or its on_done NULL, out NULL), CRPC_ENOTSUP (private-loop "
            "channel), CRPC_ECLOSED, CRPC_ENOMEM: nothing started.",
      v);
  tmpl_code(out,
      "int ${stream_fn}(crpc_channel *ch, const crpc_call_opts *opts,\n"
      "    const ${stream_handlers_type} *handlers, void *user_data, crpc_stream **out);\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Writes a request on a stream of ${method} started with ${stream_fn}() "
      "(crpc_stream_write(); msg is encoded before this returns and stays the caller's). "
      "Returns 0, CRPC_EAGAIN (the window is used up, or MAX_WRITE_BUFFER is queued for the "
      "connection: nothing sent, on_writable follows), CRPC_ESTATE (sending side closed, or the "
      "call ended), CRPC_ELIMIT, CRPC_EINVAL, CRPC_ENOMEM. Loop thread.", v);
  tmpl_code(out, "int ${write_fn}(crpc_stream *s, const ${input} *msg);\n", v);
}

static void emit_stream_blocking(const tmpl_vars *v, strbuf *out)
{
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Starts a stream of ${method} on a private-loop channel (crpc_channel_stream_open()). "
      "Returns 0 and *out, owned by the caller until ${finish_wait_fn}(); or CRPC_EINVAL, "
      "CRPC_ENOTSUP (loop channel), CRPC_ECLOSED, CRPC_ENOMEM. Any thread; one thread at a time "
      "per stream. crpc_stream_cancel_async(*out) cancels it from another thread.", v);
  tmpl_code(out,
      "int ${open_fn}(crpc_channel *ch, const crpc_call_opts *opts, crpc_stream **out);\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Sends a request on a stream from ${open_fn}(), waiting while the window is used up or "
      "MAX_WRITE_BUFFER is queued for the connection (crpc_stream_send_wait(); msg stays the "
      "caller's). Returns 0, or CRPC_ESTATE (the call has ended or the sending side is closed: "
      "finish the stream to learn the status), CRPC_ELIMIT, CRPC_EINVAL, CRPC_ENOMEM.", v);
  tmpl_code(out, "int ${send_wait_fn}(crpc_stream *s, const ${input} *msg);\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Waits for the next response on a stream from ${open_fn}() (crpc_stream_recv_wait()). "
      "Returns 1 and *msg, owned by the caller (free it with "
      "protobuf_c_message_free_unpacked(), allocator NULL); 0 and *msg NULL when no more will "
      "come (finish the stream to learn why); or a negative CRPC_E* and *msg NULL.", v);
  tmpl_code(out, "int ${recv_wait_fn}(crpc_stream *s, ${output} **msg);\n", v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Closes the sending side if still open, waits for the status (unread responses are "
      "dropped), fills *status (the caller's: release it with crpc_status_reset()) and releases "
      "the stream from ${open_fn}() (crpc_stream_finish_wait()): do not use s afterwards. "
      "Returns 0, or CRPC_EINVAL.", v);
  tmpl_code(out, "int ${finish_wait_fn}(crpc_stream *s, crpc_status *status);\n", v);
}

/* The names an older protoc-gen-crpc gave the streaming stubs, as inline aliases: code written
 * against them compiles unchanged (codegen/README.md, "Verbs"). */
static void emit_stream_aliases(const tmpl_vars *v, strbuf *out)
{
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Deprecated names of the stubs above, from protoc-gen-crpc 0.1.0, which named them "
      "otherwise than the runtime functions they wrap. They stay, as aliases, so that code "
      "written against them still compiles; define CRPC_WARN_DEPRECATED (crpc/gen.h) to have "
      "the compiler point them out.", v);
  tmpl_code(out,
      "CRPC_GEN_DEPRECATED(\"${server_write_fn}\")\n"
      "static inline int ${old_send_fn}(crpc_server_call *call, const ${output} *msg)\n"
      "{\n"
      "  return ${server_write_fn}(call, msg);\n"
      "}\n"
      "CRPC_GEN_DEPRECATED(\"${send_wait_fn}\")\n"
      "static inline int ${old_write_wait_fn}(crpc_stream *s, const ${input} *msg)\n"
      "{\n"
      "  return ${send_wait_fn}(s, msg);\n"
      "}\n"
      "CRPC_GEN_DEPRECATED(\"${recv_wait_fn}\")\n"
      "static inline int ${old_read_wait_fn}(crpc_stream *s, ${output} **msg)\n"
      "{\n"
      "  return ${recv_wait_fn}(s, msg);\n"
      "}\n"
      "CRPC_GEN_DEPRECATED(\"${finish_wait_fn}\")\n"
      "static inline int ${old_finish_fn}(crpc_stream *s, crpc_status *status)\n"
      "{\n"
      "  return ${finish_wait_fn}(s, status);\n"
      "}\n",
      v);
}

static void emit_member(const gen_method *m, const tmpl_vars *v, strbuf *out)
{
  if (m->flags == 0) {
    tmpl_code(out,
              "  void (*${member})(crpc_server_call *call, const ${input} *request,\n"
              "      void *user_data);\n", v);
    return;
  }
  if (m->set_reader_fn == NULL) {
    tmpl_comment(out, "  ", "${kind}: the one request; then write with ${server_write_fn}().", v);
    tmpl_code(out,
              "  void (*${member})(crpc_server_call *call, const ${input} *request,\n"
              "      void *user_data);\n", v);
    return;
  }
  tmpl_comment(out, "  ",
               "${kind}: read with ${set_reader_fn}(); write with ${server_write_fn}().", v);
  tmpl_code(out, "  void (*${member})(crpc_server_call *call, void *user_data);\n", v);
}

static void emit_handlers(const gen_file *f, const gen_service *s, strbuf *out)
{
  tmpl_vars v;

  emit_vars(&v, f, s, NULL);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "The server's handlers for ${service}, one per method, each run on the server's loop "
      "thread. A handler must finish its call exactly once, now or later: a unary one with the "
      "method's __reply function or crpc_server_call_fail(), a streaming one with "
      "crpc_server_call_end() or crpc_server_call_fail(). A request belongs to the call and lives "
      "until then. A NULL handler answers UNIMPLEMENTED.", &v);
  tmpl_code(out, "typedef struct ${handlers_type} {\n", &v);
  for (size_t i = 0; i < s->n_methods; i++) {
    tmpl_vars mv;

    emit_vars(&mv, f, s, &s->methods[i]);
    emit_member(&s->methods[i], &mv, out);
  }
  if (s->n_methods == 0)
    strbuf_append(out, "  char unused_; /* no methods: ISO C wants a member */\n");
  tmpl_code(out, "} ${handlers_type};\n", &v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "",
      "Serves ${service} on server: calls go to handlers, with user_data "
      "(crpc_server_register()). handlers is not copied and must outlive the server. Returns 0, "
      "CRPC_EINVAL, CRPC_EABI, CRPC_EEXIST or CRPC_ENOMEM.", &v);
  tmpl_code(out,
      "int ${register_fn}(crpc_server *server, const ${handlers_type} *handlers,\n"
      "    void *user_data);\n", &v);
}

static void emit_service(const gen_file *f, const gen_service *s, strbuf *out)
{
  tmpl_vars v;
  char count[32];

  emit_vars(&v, f, s, NULL);
  snprintf(count, sizeof(count), "%zu method%s", s->n_methods, s->n_methods == 1 ? "" : "s");
  tmpl_set(&v, "count", count);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "", "---- service ${service} ----", &v);
  strbuf_putc(out, '\n');
  tmpl_comment(out, "", "The method table of ${service} (${count}, in .proto order).", &v);
  tmpl_code(out, "extern const crpc_service_desc ${table};\n", &v);
  if (s->n_methods > 0) {
    snprintf(count, sizeof(count), "%zu", s->n_methods);
    tmpl_comment(out, "",
        "Its methods (${table}.methods points here); the __METHOD macros below are addresses of "
        "its elements, constant expressions that may initialise a static.", &v);
    tmpl_code(out, "extern const crpc_method_desc ${methods_array}[${count}];\n", &v);
  }
  for (size_t i = 0; i < s->n_methods; i++) {
    const gen_method *m = &s->methods[i];
    tmpl_vars mv;
    char index[32];

    emit_vars(&mv, f, s, m);
    snprintf(index, sizeof(index), "%zu", i);
    tmpl_set(&mv, "index", index);
    tmpl_set(&mv, "input_full", m->input_full);
    tmpl_set(&mv, "output_full", m->output_full);
    tmpl_set(&mv, "in_stream", m->flags & CRPC_METHOD_CLIENT_STREAMING ? "stream " : "");
    tmpl_set(&mv, "out_stream", m->flags & CRPC_METHOD_SERVER_STREAMING ? "stream " : "");
    strbuf_putc(out, '\n');
    tmpl_comment(out, "",
        "rpc ${method_name}(${in_stream}${input_full}) returns (${out_stream}${output_full}): its "
        "crpc_method_desc.", &mv);
    tmpl_code(out, "#define ${macro} (&${methods_array}[${index}])\n", &mv);
    if (m->flags == 0) {
      emit_unary(&mv, out);
    } else {
      emit_stream_server(m, &mv, out);
      emit_stream_async(m, &mv, out);
      emit_stream_blocking(&mv, out);
      emit_stream_aliases(&mv, out);
    }
  }
  emit_handlers(f, s, out);
}

int emit_header(const gen_file *f, strbuf *out)
{
  tmpl_vars v;

  emit_vars(&v, f, NULL, NULL);
  emit_prologue(f, out);
  for (size_t i = 0; i < f->n_services; i++)
    emit_service(f, &f->services[i], out);
  tmpl_code(out, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* ${guard} */\n", &v);
  return strbuf_failed(out) ? -1 : 0;
}
