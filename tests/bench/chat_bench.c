/* chat-bench: the load examples/chat/README.md's limits are about, against a running chat_server.
 *
 *   chat-bench ENDPOINT ACTIVE SILENT CHURN SERVER_PID      (LINE=bytes per line, default 1000)
 *
 * Joins ACTIVE participants that read everything and SILENT ones that never read (8 per
 * connection), then a listener L and a talker T. While T sends 300 lines of LINE bytes, 10 ms
 * apart, each stamped with the time it was sent, CHURN participants (8 per connection) join and
 * leave again in a loop. Prints how many participants the server kept, the churn rate, the
 * latency of T's lines at L, and the server's VmRSS (/proc/SERVER_PID/status) before and after.
 * A figure, not a test: nothing here passes or fails.
 *
 * Example (from the build directory):
 *   examples/chat/chat_server tcp://127.0.0.1:50053 & \
 *   tests/bench/chat-bench tcp://127.0.0.1:50053 0 240 0 $!; kill %1 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "chat.crpc.h"

#define TALK_LINES 300
#define TALK_EVERY_MS 10
#define PER_CONN 8

enum kind { ACTIVE, SILENT, LISTENER, TALKER, CHURN };

typedef struct member {
  crpc_stream *s;
  enum kind kind;
  int idx;
  int done;
} member;

static uv_loop_t *loop;
static const char *endpoint;
static int server_pid;
static double lat_max, lat_sum;
static int lat_n, churn_events, talk_sent, stop_churn, line_len = 1000;
static crpc_channel **churn_ch;
static member talker;
static uv_timer_t talk_timer;

static long rss_kib(void)
{
  char path[64], line[256];
  long v = -1;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", server_pid);
  if ((f = fopen(path, "r")) == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0)
      v = atol(line + 6);
  fclose(f);
  return v;
}

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static void on_read(crpc_stream *s, const Chat__Line *msg, void *ud)
{
  member *m = ud;

  (void)s;
  if (m->kind == LISTENER && strcmp(msg->from, "T") == 0) {
    double d = now_ms() - atof(msg->text);

    if (d > lat_max)
      lat_max = d;
    lat_sum += d;
    lat_n++;
  }
}

static void churn_start(member *m);

static void on_done(crpc_stream *s, const crpc_status *st, void *ud)
{
  member *m = ud;

  (void)s;
  (void)st;
  m->done = 1;
  m->s = NULL;
  if (m->kind == CHURN) {
    churn_events++;
    if (!stop_churn)
      churn_start(m);
  }
}

static const Chat__Room__TalkHandlers reading = {on_read, NULL, on_done, 1};
static const Chat__Room__TalkHandlers not_reading = {on_read, NULL, on_done, 0};

static void join(crpc_channel *ch, member *m, const char *name, int reads)
{
  Chat__Line hello = CHAT__LINE__INIT;

  m->done = 0;
  if (chat__room__talk__stream(ch, NULL, reads ? &reading : &not_reading, m, &m->s) != 0) {
    m->done = 1;
    return;
  }
  hello.from = (char *)name;
  hello.text = "";
  chat__room__talk__write(m->s, &hello);
}

/* Joins, and leaves at once (closes its side): the server ends the call OK, on_done rejoins. */
static void churn_start(member *m)
{
  char name[32];

  snprintf(name, sizeof(name), "c%d", m->idx);
  join(churn_ch[m->idx / PER_CONN], m, name, 1);
  if (m->s != NULL)
    crpc_stream_close_send(m->s);
}

static crpc_channel *channel(void)
{
  crpc_channel *ch;
  int rc = crpc_channel_new(&ch, loop, endpoint);

  if (rc != 0) {
    fprintf(stderr, "chat-bench: %s: %s\n", endpoint, crpc_strerror(rc));
    exit(1);
  }
  return ch;
}

static void on_talk(uv_timer_t *t)
{
  static char text[4097];
  Chat__Line line = CHAT__LINE__INIT;
  int n;

  if (talk_sent >= TALK_LINES || talker.s == NULL) {
    uv_timer_stop(t);
    stop_churn = 1;
    uv_stop(loop);
    return;
  }
  memset(text, 'x', (size_t)line_len);
  text[line_len] = '\0';
  n = snprintf(text, sizeof(text), "%.3f ", now_ms());
  if (n < line_len)
    text[n] = 'x';
  line.from = "T";
  line.text = text;
  if (chat__room__talk__write(talker.s, &line) == 0)
    talk_sent++;
}

static void settle(uint64_t ms)
{
  uint64_t end = uv_hrtime() / 1000000u + ms;

  while (uv_hrtime() / 1000000u < end) {
    uv_run(loop, UV_RUN_NOWAIT);
    uv_sleep(1);
  }
}

int main(int argc, char **argv)
{
  int active, silent, churn, n, nconn, alive = 0;
  crpc_channel **chs;
  member *ms, listener = {.kind = LISTENER};
  long rss0, rss1;
  uint64_t t0;
  double secs;

  if (argc != 6) {
    fprintf(stderr, "usage: chat-bench ENDPOINT ACTIVE SILENT CHURN SERVER_PID\n");
    return 2;
  }
  endpoint = argv[1];
  active = atoi(argv[2]);
  silent = atoi(argv[3]);
  churn = atoi(argv[4]);
  server_pid = atoi(argv[5]);
  if (getenv("LINE") != NULL)
    line_len = atoi(getenv("LINE"));
  if (active < 0 || silent < 0 || churn < 0 || line_len < 16 || line_len > 4096) {
    fprintf(stderr, "chat-bench: bad arguments\n");
    return 2;
  }
  loop = uv_default_loop();
  rss0 = rss_kib();
  n = active + silent;
  nconn = (n + PER_CONN - 1) / PER_CONN;
  chs = calloc((size_t)nconn + 1, sizeof(*chs));
  ms = calloc((size_t)n + 1, sizeof(*ms));
  churn_ch = calloc((size_t)(churn + PER_CONN - 1) / PER_CONN + 1, sizeof(*churn_ch));
  if (chs == NULL || ms == NULL || churn_ch == NULL)
    return 1;
  for (int i = 0; i < nconn; i++)
    chs[i] = channel();
  for (int i = 0; i < n; i++) {
    char name[32];

    snprintf(name, sizeof(name), "p%d", i);
    ms[i].kind = i < active ? ACTIVE : SILENT;
    join(chs[i / PER_CONN], &ms[i], name, i < active);
  }
  settle(1500);
  for (int i = 0; i < n; i++)
    alive += !ms[i].done;
  join(channel(), &listener, "L", 1);
  talker.kind = TALKER;
  join(channel(), &talker, "T", 1);
  settle(500);
  for (int i = 0; i < (churn + PER_CONN - 1) / PER_CONN; i++)
    churn_ch[i] = channel();
  for (int i = 0; i < churn; i++) {
    member *m = calloc(1, sizeof(*m));

    if (m == NULL)
      return 1;
    m->kind = CHURN;
    m->idx = i;
    churn_start(m);
  }
  uv_timer_init(loop, &talk_timer);
  uv_timer_start(&talk_timer, on_talk, TALK_EVERY_MS, TALK_EVERY_MS);
  t0 = uv_hrtime();
  uv_run(loop, UV_RUN_DEFAULT);
  secs = (double)(uv_hrtime() - t0) / 1e9;
  settle(1000);
  rss1 = rss_kib();
  printf("participants kept %d of %d (%d silent); churn %d joins+leaves in %.1f s (%.0f/s); "
         "T's lines at L: %d of %d, latency avg %.1f ms, max %.1f ms; server VmRSS %ld -> %ld KiB "
         "(%+.1f MiB)\n",
         alive, n, silent, churn_events, secs, secs > 0 ? churn_events / secs : 0.0, lat_n,
         talk_sent, lat_n ? lat_sum / lat_n : 0.0, lat_max, rss0, rss1, (double)(rss1 - rss0) / 1024.0);
  return 0; /* the process exit releases the channels */
}
