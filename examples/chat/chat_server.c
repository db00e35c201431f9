/* Chat server: a room where every line a participant sends reaches every other participant.
 *
 *   chat_server [ENDPOINT]        (default tcp://127.0.0.1:50053)
 *
 * Prints "listening on ENDPOINT" ("listening on port N" for port 0) once it serves; stops on
 * SIGINT/SIGTERM. A loop server: crpc lives on a uv_loop_t this program owns and runs, next to
 * its own handles (here the signal watchers and the notice timer). Everything runs on that one
 * thread, so the room needs no lock.
 *
 * Each participant is one bidirectional stream (chat.Room/Talk). Its first message names it;
 * later ones are lines, sent on to the others.
 *
 * Limits. Whatever a client does, the server's memory and work stay bounded:
 *  - at most ROOM_MAX participants, and at most PER_CONN_MAX on one connection (the server's
 *    CRPC_OPT_MAX_CALLS_PER_CONN: crpc refuses more with RESOURCE_EXHAUSTED before talk() runs);
 *  - a message larger than MSG_MAX fails that participant's call (CRPC_OPT_MAX_RECV_MESSAGE_SIZE);
 *  - per participant at most OUTBOX_MAX_BYTES of lines waiting for it (below), plus what crpc has
 *    sent within its stream window (CRPC_OPT_STREAM_WINDOW, 64 KiB);
 *  - joins and leaves are announced at once up to NOTICE_BURST in a row, then one notice per
 *    NOTICE_MS at most that gathers those since the last (below): churn in a large room does
 *    not cost a send to everyone per join or leave.
 *
 * Slow readers. A write is refused with CRPC_EAGAIN while a participant has a window (64 KiB) of
 * lines it has not read yet. The server then has three choices: block (impossible: one slow
 * participant would stall the room), drop the line, or queue it. This server queues, per
 * participant, up to OUTBOX_MAX_BYTES of lines and sends them in order from on_writable: a burst
 * or a brief stall loses nothing. A participant whose outbox would grow past that has fallen
 * behind for good: it is disconnected (its call ends RESOURCE_EXHAUSTED, after the lines it was
 * sent), so a reader that stops costs at most window + outbox, and only until it is found out,
 * and never slows the others. (Dropping its lines instead would keep a participant that reads
 * nothing in the room forever, costing memory and a send per line.) */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "chat.crpc.h"

#define ROOM_MAX 256               /* participants in the room, named or not yet */
#define PER_CONN_MAX 8             /* participants (Talk calls) on one connection */
#define OUTBOX_MAX_BYTES (32 * 1024) /* lines queued per participant while its window is full */
#define NOTICE_BURST 5             /* joins and leaves announced one by one in a row, ... */
#define NOTICE_MS 200              /* ... then one notice per this period at most */
#define NAME_MAX_LEN 32
#define TEXT_MAX_LEN 4096
#define MSG_MAX 8192               /* a Line of a name and a text, encoded */

typedef struct queued {
  struct queued *next;
  size_t size; /* what it counts against the outbox */
  char *text;  /* into data, after from */
  char data[]; /* from, NUL, text, NUL */
} queued;

typedef struct participant {
  struct participant *prev, *next;
  crpc_server_call *call;
  char name[NAME_MAX_LEN + 1]; /* empty until the first message */
  queued *head, *tail;         /* the outbox */
  size_t queued_bytes;
  int in_callback; /* on_line is running for it: leave() leaves the memory to on_line ... */
  int gone;        /* ... which frees it on return once this is set */
} participant;

/* Named participants, who receive lines, and those that have not sent their name yet: a line
 * is sent to the named ones only, without walking past the others. */
typedef struct plist {
  participant *head;
  size_t count;
} plist;

static plist room, lobby;
static uv_loop_t *loop;
static crpc_server *server;
static uv_signal_t sigint_watch, sigterm_watch;
static int closing;
static int broadcasting; /* a broadcast is walking the room: nobody else may leave the list */

/* Joins and leaves. Each is announced at once while a token is left (NOTICE_BURST tokens, one
 * more per NOTICE_MS); otherwise it waits here, "alice joined, bob left" plus how many more did
 * not fit, and all of them go out as one notice when the timer fires or before the next line. */
static uv_timer_t notice_timer;
static char notice[512];
static size_t notice_len;
static unsigned notice_more;
static unsigned notice_tokens = NOTICE_BURST;
static uint64_t notice_refilled; /* loop time of the last refill */

static void plist_add(plist *l, participant *p)
{
  p->prev = NULL;
  p->next = l->head;
  if (l->head != NULL)
    l->head->prev = p;
  l->head = p;
  l->count++;
}

static void plist_remove(plist *l, participant *p)
{
  if (p->prev != NULL)
    p->prev->next = p->next;
  else
    l->head = p->next;
  if (p->next != NULL)
    p->next->prev = p->prev;
  l->count--;
}

/* ---- Sending, with the per-participant outbox ---------------------------------------------- */

static void leave(participant *p, crpc_code code, const char *why);

static int send_now(participant *p, const char *from, const char *text)
{
  Chat__Line line = CHAT__LINE__INIT;

  line.from = (char *)from;
  line.text = (char *)text;
  return chat__room__talk__server_write(p->call, &line); /* encoded now: from/text stay ours */
}

/* Queues a line for p. Returns 0, or -1 when p has fallen behind (or memory ran out) and has
 * left. */
static int enqueue(participant *p, const char *from, const char *text)
{
  size_t from_len = strlen(from), text_len = strlen(text);
  size_t size = sizeof(queued) + from_len + text_len + 2;
  queued *q;

  if (p->queued_bytes + size > OUTBOX_MAX_BYTES || (q = malloc(size)) == NULL) {
    printf("%s fell behind (%zu bytes queued): disconnected\n",
           p->name[0] != '\0' ? p->name : "(unnamed)", p->queued_bytes);
    fflush(stdout);
    leave(p, CRPC_STATUS_RESOURCE_EXHAUSTED, "you fell behind: too many lines unread");
    return -1;
  }
  q->next = NULL;
  q->size = size;
  memcpy(q->data, from, from_len + 1);
  q->text = q->data + from_len + 1;
  memcpy(q->text, text, text_len + 1);
  if (p->tail != NULL)
    p->tail->next = q;
  else
    p->head = q;
  p->tail = q;
  p->queued_bytes += size;
  return 0;
}

/* Sends queued lines until the window refuses one. */
static void flush(participant *p)
{
  while (p->head != NULL) {
    queued *q = p->head;

    if (send_now(p, q->data, q->text) == CRPC_EAGAIN)
      return; /* on_writable calls again */
    p->head = q->next;
    if (p->head == NULL)
      p->tail = NULL;
    p->queued_bytes -= q->size;
    free(q);
  }
}

/* Returns 0, or -1 when p has fallen behind and left. */
static int deliver(participant *p, const char *from, const char *text)
{
  /* Order matters: anything already queued goes first. Other errors (the participant is gone)
   * are ignored here; its on_cancel removes it. */
  if (p->head != NULL || send_now(p, from, text) == CRPC_EAGAIN)
    return enqueue(p, from, text);
  return 0;
}

/* To every named participant but `sender`. deliver() may make the one it delivers to leave,
 * never another (its notice then waits: see notice_add()). */
static void broadcast(const participant *sender, const char *from, const char *text)
{
  participant *next;

  broadcasting++;
  for (participant *p = room.head; p != NULL; p = next) {
    next = p->next;
    if (p != sender)
      deliver(p, from, text);
  }
  broadcasting--;
}

/* ---- Join and leave notices ---------------------------------------------------------------- */

static void notice_flush(void)
{
  char text[sizeof(notice) + 48];

  uv_timer_stop(&notice_timer);
  if (notice_len == 0 && notice_more == 0)
    return;
  if (notice_more > 0)
    snprintf(text, sizeof(text), "%s%s%u more joined or left", notice,
             notice_len > 0 ? ", and " : "", notice_more);
  else
    snprintf(text, sizeof(text), "%s", notice);
  notice_len = 0;
  notice[0] = '\0';
  notice_more = 0;
  broadcast(NULL, "*", text);
}

static void on_notice_timer(uv_timer_t *t)
{
  (void)t;
  notice_flush();
}

static int notice_token(void)
{
  uint64_t now = uv_now(loop), periods = (now - notice_refilled) / NOTICE_MS;

  if (periods > 0) {
    unsigned t = notice_tokens + (periods < NOTICE_BURST ? (unsigned)periods : NOTICE_BURST);

    notice_tokens = t < NOTICE_BURST ? t : NOTICE_BURST;
    notice_refilled += periods * NOTICE_MS;
  }
  if (notice_tokens == 0)
    return 0;
  notice_tokens--;
  return 1;
}

/* Announces "NAME joined" or "NAME left" to everyone but p (who has just joined, or has left),
 * now if a token is left and nothing waits; else records it for the next notice and starts the
 * timer if it is idle. During a broadcast it always waits: sending now could make others leave
 * the list the broadcast is walking. */
static void notice_add(const participant *p, const char *name, const char *what)
{
  size_t need = (notice_len > 0 ? 2 : 0) + strlen(name) + 1 + strlen(what);

  if (closing)
    return;
  if (!broadcasting && notice_len == 0 && notice_more == 0 && notice_token()) {
    char text[NAME_MAX_LEN + 16];

    snprintf(text, sizeof(text), "%s %s", name, what);
    broadcast(p, "*", text);
    return;
  }
  if (notice_len + need < sizeof(notice))
    notice_len += (size_t)snprintf(notice + notice_len, sizeof(notice) - notice_len, "%s%s %s",
                                   notice_len > 0 ? ", " : "", name, what);
  else
    notice_more++;
  if (!uv_is_active((uv_handle_t *)&notice_timer))
    uv_timer_start(&notice_timer, on_notice_timer, NOTICE_MS, 0);
}

/* ---- Participants -------------------------------------------------------------------------- */

/* Ends p's call and takes it out of the room; frees it unless its on_line is running (which
 * then does). */
static void leave(participant *p, crpc_code code, const char *why)
{
  plist_remove(p->name[0] != '\0' ? &room : &lobby, p);
  crpc_server_call_end(p->call, code, why);
  if (p->name[0] != '\0')
    notice_add(p, p->name, "left");
  while (p->head != NULL) {
    queued *q = p->head;

    p->head = q->next;
    free(q);
  }
  p->tail = NULL;
  p->queued_bytes = 0;
  if (p->in_callback)
    p->gone = 1;
  else
    free(p);
}

/* "welcome, NAME; here: ..." with as many names as fit: at most a few hundred steps. */
static int welcome(participant *p)
{
  char text[512] = "welcome, ";
  size_t n = strlen(text);

  n += (size_t)snprintf(text + n, sizeof(text) - n, "%s; here:", p->name);
  for (participant *o = room.head; o != NULL && n < sizeof(text); o = o->next)
    n += (size_t)snprintf(text + n, sizeof(text) - n, " %s", o->name);
  return deliver(p, "*", text);
}

static void join(participant *p, const Chat__Line *first)
{
  size_t len = first->from != NULL ? strlen(first->from) : 0;

  if (len == 0 || len > NAME_MAX_LEN || strcmp(first->from, "*") == 0) {
    leave(p, CRPC_STATUS_INVALID_ARGUMENT, "the first message must carry a name (1-32 bytes)");
    return;
  }
  plist_remove(&lobby, p);
  memcpy(p->name, first->from, len + 1);
  plist_add(&room, p);
  if (welcome(p) != 0)
    return;
  notice_add(p, p->name, "joined");
  printf("%s joined\n", p->name);
  fflush(stdout);
}

static void on_line(crpc_server_call *call, const Chat__Line *msg, void *user_data)
{
  participant *p = user_data;

  (void)call;
  p->in_callback = 1;
  if (msg == NULL) { /* the client closed its side: it has left */
    printf("%s left\n", p->name[0] != '\0' ? p->name : "(unnamed)");
    fflush(stdout);
    leave(p, CRPC_STATUS_OK, NULL);
  } else if (p->name[0] == '\0') {
    join(p, msg);
  } else if (msg->text != NULL && strlen(msg->text) > TEXT_MAX_LEN) {
    /* Not relayed, and its sender is told so: nothing is dropped without a word. */
    (void)deliver(p, "*", "your line was not sent: a line is at most 4096 bytes");
  } else if (msg->text != NULL) {
    notice_flush(); /* who joined or left before this line is told first (p may fall behind) */
    if (!p->gone)
      broadcast(p, p->name, msg->text);
  }
  p->in_callback = 0;
  if (p->gone)
    free(p);
}

static void on_writable(crpc_server_call *call, void *user_data)
{
  (void)call;
  flush(user_data);
}

static void on_cancel(crpc_server_call *call, void *user_data)
{
  (void)call;
  leave(user_data, CRPC_STATUS_CANCELLED, "gone"); /* client went away, or we are closing */
}

static void talk(crpc_server_call *call, void *user_data)
{
  participant *p;

  (void)user_data;
  if (room.count + lobby.count >= ROOM_MAX) {
    crpc_server_call_fail(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "the room is full");
    return;
  }
  if ((p = calloc(1, sizeof(*p))) == NULL) {
    crpc_server_call_fail(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
    return;
  }
  p->call = call;
  plist_add(&lobby, p);
  crpc_server_call_on_cancel(call, on_cancel, p);
  chat__room__talk__set_reader(call, on_line, on_writable, p, 1);
}

static const Chat__Room__Handlers handlers = {.talk = talk};

/* ---- Main ---------------------------------------------------------------------------------- */

static void on_signal(uv_signal_t *w, int signum)
{
  (void)w;
  (void)signum;
  /* Closing cancels every call (on_cancel ends each); the loop then runs dry and main returns. */
  closing = 1;
  crpc_server_close(server, NULL, NULL);
  uv_close((uv_handle_t *)&notice_timer, NULL);
  uv_close((uv_handle_t *)&sigint_watch, NULL);
  uv_close((uv_handle_t *)&sigterm_watch, NULL);
}

int main(int argc, char **argv)
{
  const char *endpoint = argc > 1 ? argv[1] : "tcp://127.0.0.1:50053";
  size_t len = strlen(endpoint);
  int port = 0, rc;

  loop = uv_default_loop();
  if ((rc = crpc_server_new(&server, loop)) != 0 ||
      (rc = crpc_server_set_option(server, CRPC_OPT_MAX_CALLS_PER_CONN, PER_CONN_MAX)) != 0 ||
      (rc = crpc_server_set_option(server, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, MSG_MAX)) != 0 ||
      (rc = chat__room__crpc_register(server, &handlers, NULL)) != 0 ||
      (rc = crpc_server_listen(server, endpoint, &port)) != 0) {
    fprintf(stderr, "chat_server: %s: %s\n", endpoint, crpc_strerror(rc));
    return 1;
  }
  uv_timer_init(loop, &notice_timer);
  notice_refilled = uv_now(loop);
  uv_signal_init(loop, &sigint_watch);
  uv_signal_init(loop, &sigterm_watch);
  uv_signal_start(&sigint_watch, on_signal, SIGINT);
  uv_signal_start(&sigterm_watch, on_signal, SIGTERM);
  if (strncmp(endpoint, "tcp:", 4) == 0 && len > 2 && strcmp(endpoint + len - 2, ":0") == 0)
    printf("listening on port %d\n", port);
  else
    printf("listening on %s\n", endpoint);
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
