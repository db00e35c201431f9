/* Server child processes; see proc.h. */
#include "proc.h"

#include <stdlib.h>
#include <string.h>

struct chaos_proc {
  uv_process_t process;
  uv_pipe_t out;
  chaos_proc_cbs cbs;
  void *ud;
  int handles;  /* open handles; freed at 0 */
  int ready;
  char line[128];
  size_t len;
};

static void handle_closed(uv_handle_t *h) {
  chaos_proc *p = h->data;
  if (--p->handles == 0) free(p);
}

static void out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  chaos_proc *p = h->data;
  (void)hint;
  *buf = uv_buf_init(p->line + p->len, (unsigned)(sizeof p->line - 1 - p->len));
}

static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  chaos_proc *p = s->data;
  (void)buf;
  if (n < 0) {
    uv_read_stop(s);
    return;
  }
  p->len += (size_t)n;
  p->line[p->len] = '\0';
  char *nl = strchr(p->line, '\n');
  if (!p->ready && nl) {
    p->ready = 1;
    int port = 0;
    const char *prefix = "listening on port ";
    if (strncmp(p->line, prefix, strlen(prefix)) == 0) port = atoi(p->line + strlen(prefix));
    p->cbs.ready(p, port, p->ud);
  }
  if (p->ready || p->len == sizeof p->line - 1) p->len = 0; /* ignore whatever follows */
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int term_signal) {
  chaos_proc *p = proc->data;
  p->cbs.exited(p, status, term_signal, p->ud);
  uv_close((uv_handle_t *)&p->process, handle_closed);
  uv_close((uv_handle_t *)&p->out, handle_closed);
}

int chaos_proc_spawn(chaos_proc **out, uv_loop_t *loop, char **argv, const chaos_proc_cbs *cbs,
                     void *ud) {
  chaos_proc *p = calloc(1, sizeof *p);
  if (!p) return UV_ENOMEM;
  p->cbs = *cbs;
  p->ud = ud;
  uv_pipe_init(loop, &p->out, 0);
  p->out.data = p;
  p->process.data = p;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->out},
      {.flags = UV_INHERIT_FD, .data.fd = 2},
  };
  uv_process_options_t o = {.exit_cb = on_exit_cb, .file = argv[0], .args = argv,
                            .stdio = stdio, .stdio_count = 3};
  int rc = uv_spawn(loop, &p->process, &o);
  if (rc != 0) {
    p->handles = 2; /* uv_spawn initialised the process handle even on failure */
    uv_close((uv_handle_t *)&p->process, handle_closed);
    uv_close((uv_handle_t *)&p->out, handle_closed);
    return rc;
  }
  p->handles = 2;
  uv_read_start((uv_stream_t *)&p->out, out_alloc, out_read);
  *out = p;
  return 0;
}

int chaos_proc_signal(chaos_proc *p, int signum) { return uv_process_kill(&p->process, signum); }

pid_t chaos_proc_pid(const chaos_proc *p) { return p->process.pid; }
