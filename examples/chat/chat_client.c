/* Chat client: joins the room as NAME, sends each line typed on stdin, prints what the others
 * say.
 *
 *   chat_client NAME [ENDPOINT]   (default tcp://127.0.0.1:50053)
 *
 * Ends on end of input (Ctrl-D: the client closes its side, the server ends the call OK) or on
 * SIGINT (the stream is cancelled). Exit status 0 when the chat ended that way, 1 otherwise.
 *
 * Everything runs on one libuv loop that this program owns: the crpc loop channel, stdin (a
 * uv_tty_t for a terminal, a uv_pipe_t for a pipe or FIFO) and a SIGINT watcher. Flow control:
 * when the window refuses a line (CRPC_EAGAIN) the client stops reading stdin and resumes from
 * on_writable, so typing (or piping) faster than the server reads never grows memory. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "chat.crpc.h"

typedef struct client {
  uv_loop_t *loop;
  crpc_channel *ch;
  crpc_stream *stream; /* NULL once done */
  const char *name;
  union {
    uv_tty_t tty;
    uv_pipe_t pipe;
  } in;
  uv_signal_t sigint_watch;
  char *buf; /* stdin bytes not yet sent as lines */
  size_t len, cap;
  int blocked; /* a write was refused: stdin paused until on_writable */
  int eof;     /* stdin ended */
  int in_closed;
  int is_tty;
  int sent_close; /* our side is closed */
  int ok;      /* how the chat ended: 1 for OK or cancelled by the user */
} client;

static client c;

static uv_stream_t *in_stream(void) { return (uv_stream_t *)&c.in; }

static void close_input(void)
{
  if (!c.in_closed) {
    c.in_closed = 1;
    uv_close((uv_handle_t *)&c.in, NULL);
    uv_close((uv_handle_t *)&c.sigint_watch, NULL);
  }
}

/* Sends the complete lines in buf; stops at the first one the window refuses. */
static void send_lines(void)
{
  char *nl;

  while (c.stream != NULL && (nl = memchr(c.buf, '\n', c.len)) != NULL) {
    Chat__Line line = CHAT__LINE__INIT;
    size_t n = (size_t)(nl - c.buf);
    int rc;

    *nl = '\0';
    if (n > 0 && c.buf[n - 1] == '\r')
      c.buf[n - 1] = '\0';
    line.from = (char *)c.name;
    line.text = c.buf;
    rc = chat__room__talk__write(c.stream, &line);
    if (rc == CRPC_EAGAIN) {
      *nl = '\n'; /* keep it for on_writable */
      if (!c.blocked && !c.eof)
        uv_read_stop(in_stream());
      c.blocked = 1;
      return;
    }
    if (rc != 0)
      fprintf(stderr, "chat_client: send: %s\n", crpc_strerror(rc));
    memmove(c.buf, nl + 1, c.len - n - 1);
    c.len -= n + 1;
  }
  if (c.eof && c.stream != NULL && !c.sent_close) {
    c.sent_close = 1;
    crpc_stream_close_send(c.stream); /* everything sent: we are leaving */
  }
}

/* Room for `extra` more bytes in buf: 0, or -1 when out of memory. */
static int reserve(size_t extra)
{
  char *p;

  if (c.cap - c.len >= extra)
    return 0;
  p = realloc(c.buf, c.len + extra);
  if (p == NULL)
    return -1;
  c.buf = p;
  c.cap = c.len + extra;
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  (void)h;
  if (reserve(suggested) != 0)
    *b = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
  else
    *b = uv_buf_init(c.buf + c.len, (unsigned)(c.cap - c.len));
}

static void on_stdin(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
  (void)b;
  if (nread > 0) {
    c.len += (size_t)nread;
  } else if (nread < 0) { /* UV_EOF, or an error: either way no more input */
    uv_read_stop(s);
    c.eof = 1;
    if (c.len > 0 && c.buf[c.len - 1] != '\n' && reserve(1) == 0)
      c.buf[c.len++] = '\n'; /* a last line without its newline */
  }
  send_lines();
}

static void on_read(crpc_stream *s, const Chat__Line *msg, void *user_data)
{
  (void)s;
  (void)user_data;
  if (strcmp(msg->from, "*") == 0)
    printf("* %s\n", msg->text);
  else
    printf("[%s] %s\n", msg->from, msg->text);
  fflush(stdout);
}

static void on_writable(crpc_stream *s, void *user_data)
{
  (void)s;
  (void)user_data;
  c.blocked = 0;
  send_lines();
  if (!c.blocked && !c.eof && c.stream != NULL)
    uv_read_start(in_stream(), on_alloc, on_stdin);
}

static void on_done(crpc_stream *s, const crpc_status *status, void *user_data)
{
  (void)s;
  (void)user_data;
  c.stream = NULL;
  c.ok = status->code == CRPC_STATUS_OK || status->code == CRPC_STATUS_CANCELLED;
  if (status->code != CRPC_STATUS_OK)
    fprintf(stderr, "chat ended: %s%s%s\n", crpc_code_name(status->code),
            status->message != NULL ? ": " : "", status->message != NULL ? status->message : "");
  close_input();
  crpc_channel_close(c.ch, NULL, NULL); /* legal from a callback; the loop then runs dry */
}

static const Chat__Room__TalkHandlers talk_handlers = {on_read, on_writable, on_done, 1};

static void on_sigint(uv_signal_t *w, int signum)
{
  (void)w;
  (void)signum;
  if (c.stream != NULL)
    crpc_stream_cancel(c.stream); /* on_done runs now, with CANCELLED */
}

static int open_stdin(void)
{
  switch (uv_guess_handle(0)) {
  case UV_TTY:
    c.is_tty = 1;
    return uv_tty_init(c.loop, &c.in.tty, 0, 1);
  case UV_NAMED_PIPE:
    if (uv_pipe_init(c.loop, &c.in.pipe, 0) != 0)
      return -1;
    return uv_pipe_open(&c.in.pipe, 0);
  default:
    fprintf(stderr, "chat_client: stdin must be a terminal or a pipe (try: cat FILE | ...)\n");
    return -1;
  }
}

static int join(void)
{
  Chat__Line hello = CHAT__LINE__INIT;
  int rc;

  if ((rc = chat__room__talk__stream(c.ch, NULL, &talk_handlers, NULL, &c.stream)) != 0)
    return rc;
  hello.from = (char *)c.name;
  hello.text = "";
  return chat__room__talk__write(c.stream, &hello); /* a fresh window: never CRPC_EAGAIN */
}

int main(int argc, char **argv)
{
  const char *endpoint = argc > 2 ? argv[2] : "tcp://127.0.0.1:50053";
  int rc;

  if (argc < 2 || argv[1][0] == '\0') {
    fprintf(stderr, "usage: chat_client NAME [ENDPOINT]\n");
    return 2;
  }
  c.name = argv[1];
  c.loop = uv_default_loop();
  if (open_stdin() != 0)
    return 1;
  uv_signal_init(c.loop, &c.sigint_watch);
  uv_signal_start(&c.sigint_watch, on_sigint, SIGINT);
  if ((rc = crpc_channel_new(&c.ch, c.loop, endpoint)) != 0) {
    fprintf(stderr, "chat_client: %s: %s\n", endpoint, crpc_strerror(rc));
    return 1;
  }
  if ((rc = join()) != 0) {
    fprintf(stderr, "chat_client: %s\n", crpc_strerror(rc));
    if (c.stream != NULL) {
      crpc_stream_cancel(c.stream); /* on_done closes everything */
    } else {
      close_input();
      crpc_channel_close(c.ch, NULL, NULL);
    }
  } else {
    uv_read_start(in_stream(), on_alloc, on_stdin);
  }
  uv_run(c.loop, UV_RUN_DEFAULT);
  if (c.is_tty)
    uv_tty_reset_mode();
  free(c.buf);
  uv_loop_close(c.loop);
  return rc == 0 && c.ok ? 0 : 1;
}
