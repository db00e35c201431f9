/* Chat server: a room where every line a participant sends reaches every other participant.
 *
 *   chat_server [ENDPOINT]        (default tcp://127.0.0.1:50053)
 *
 * Prints "listening on ENDPOINT" ("listening on port N" for port 0) once it serves; stops on
 * SIGINT/SIGTERM. A loop server: crpc lives on a uv_loop_t this program owns and runs, next to
 * its own handles (here the signal watchers). Everything runs on that one thread, so the room
 * needs no lock.
 *
 * Each participant is one bidirectional stream (chat.Room/Talk). Its first message names it;
 * later ones are lines, sent on to the others.
 *
 * Slow readers. A write is refused with CRPC_EAGAIN while a participant has a window (64 KiB) of
 * lines it has not read yet. The server then has three choices: block (impossible: one slow
 * participant would stall the room), drop the line, or queue it. This server queues, per
 * participant, up to OUTBOX_MAX lines, and sends them in order from on_writable: a burst or a
 * brief stall loses nothing. Beyond that bound it drops the newest lines for that participant
 * only and counts them; once the queue has drained it tells the participant how many it missed.
 * So one participant that stops reading costs the server at most OUTBOX_MAX lines of memory and
 * never slows the others. (Disconnecting such a participant would be the other sound policy.) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "chat.crpc.h"

#define OUTBOX_MAX 256 /* lines queued per participant while its window is full */
#define NAME_MAX_LEN 32
#define TEXT_MAX_LEN 4096

typedef struct queued {
  struct queued *next;
  char *from, *text;
} queued;

typedef struct participant {
  struct participant *prev, *next;
  crpc_server_call *call;
  char name[NAME_MAX_LEN + 1]; /* empty until the first message */
  queued *head, *tail;         /* the outbox */
  int queued, dropped;
} participant;

static participant *room; /* every connected participant */
static uv_loop_t *loop;
static crpc_server *server;
static uv_signal_t sigint_watch, sigterm_watch;

/* ---- Sending, with the per-participant outbox ---------------------------------------------- */

static int send_now(participant *p, const char *from, const char *text)
{
  Chat__Line line = CHAT__LINE__INIT;

  line.from = (char *)from;
  line.text = (char *)text;
  return chat__room__talk__send(p->call, &line); /* encoded now: from/text stay ours */
}

static void enqueue(participant *p, const char *from, const char *text)
{
  queued *q;

  if (p->queued >= OUTBOX_MAX || (q = calloc(1, sizeof(*q))) == NULL) {
    p->dropped++;
    return;
  }
  q->from = strdup(from);
  q->text = strdup(text);
  if (q->from == NULL || q->text == NULL) {
    free(q->from);
    free(q->text);
    free(q);
    p->dropped++;
    return;
  }
  if (p->tail != NULL)
    p->tail->next = q;
  else
    p->head = q;
  p->tail = q;
  p->queued++;
}

/* Sends queued lines until the window refuses one; then the drop notice, if any. */
static void flush(participant *p)
{
  while (p->head != NULL) {
    queued *q = p->head;

    if (send_now(p, q->from, q->text) == CRPC_EAGAIN)
      return; /* on_writable calls again */
    p->head = q->next;
    if (p->head == NULL)
      p->tail = NULL;
    p->queued--;
    free(q->from);
    free(q->text);
    free(q);
  }
  if (p->dropped > 0) {
    char notice[96];

    snprintf(notice, sizeof(notice), "you were too slow: %d line%s dropped", p->dropped,
             p->dropped == 1 ? "" : "s");
    if (send_now(p, "*", notice) != CRPC_EAGAIN)
      p->dropped = 0;
  }
}

static void deliver(participant *p, const char *from, const char *text)
{
  /* Order matters: anything already queued goes first. Other errors (the participant is gone)
   * are ignored here; its on_cancel removes it. */
  if (p->head != NULL || p->dropped > 0 || send_now(p, from, text) == CRPC_EAGAIN)
    enqueue(p, from, text);
}

static void broadcast(const participant *sender, const char *from, const char *text)
{
  for (participant *p = room; p != NULL; p = p->next)
    if (p != sender && p->name[0] != '\0')
      deliver(p, from, text);
}

/* ---- Participants -------------------------------------------------------------------------- */

static void leave(participant *p, crpc_code code, const char *why)
{
  if (p->prev != NULL)
    p->prev->next = p->next;
  else
    room = p->next;
  if (p->next != NULL)
    p->next->prev = p->prev;
  crpc_server_call_end(p->call, code, why);
  if (p->name[0] != '\0') {
    char notice[NAME_MAX_LEN + 16];

    snprintf(notice, sizeof(notice), "%s left", p->name);
    broadcast(p, "*", notice);
  }
  while (p->head != NULL) {
    queued *q = p->head;

    p->head = q->next;
    free(q->from);
    free(q->text);
    free(q);
  }
  free(p);
}

static void welcome(participant *p)
{
  char text[512] = "welcome, ";
  size_t n = strlen(text);

  n += (size_t)snprintf(text + n, sizeof(text) - n, "%s; here:", p->name);
  for (participant *o = room; o != NULL && n < sizeof(text); o = o->next)
    if (o->name[0] != '\0')
      n += (size_t)snprintf(text + n, sizeof(text) - n, " %s", o->name);
  deliver(p, "*", text);
}

static void join(participant *p, const Chat__Line *first)
{
  char notice[NAME_MAX_LEN + 16];
  size_t len = first->from != NULL ? strlen(first->from) : 0;

  if (len == 0 || len > NAME_MAX_LEN || strcmp(first->from, "*") == 0) {
    leave(p, CRPC_STATUS_INVALID_ARGUMENT, "the first message must carry a name (1-32 bytes)");
    return;
  }
  memcpy(p->name, first->from, len + 1);
  welcome(p);
  snprintf(notice, sizeof(notice), "%s joined", p->name);
  broadcast(p, "*", notice);
  printf("%s joined\n", p->name);
  fflush(stdout);
}

static void on_line(crpc_server_call *call, const Chat__Line *msg, void *user_data)
{
  participant *p = user_data;

  (void)call;
  if (msg == NULL) { /* the client closed its side: it has left */
    printf("%s left\n", p->name[0] != '\0' ? p->name : "(unnamed)");
    fflush(stdout);
    leave(p, CRPC_STATUS_OK, NULL);
  } else if (p->name[0] == '\0') {
    join(p, msg);
  } else if (msg->text != NULL && strlen(msg->text) <= TEXT_MAX_LEN) {
    broadcast(p, p->name, msg->text);
  }
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
  participant *p = calloc(1, sizeof(*p));

  (void)user_data;
  if (p == NULL) {
    crpc_server_call_fail(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
    return;
  }
  p->call = call;
  p->next = room;
  if (room != NULL)
    room->prev = p;
  room = p;
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
  crpc_server_close(server, NULL, NULL);
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
      (rc = chat__room__crpc_register(server, &handlers, NULL)) != 0 ||
      (rc = crpc_server_listen(server, endpoint, &port)) != 0) {
    fprintf(stderr, "chat_server: %s: %s\n", endpoint, crpc_strerror(rc));
    return 1;
  }
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
