/* Key-value client: asynchronous calls on a libuv loop that the program owns.
 *
 *   kvstore_client [ENDPOINT]        (default tcp://127.0.0.1:50052)
 *
 * Shows how to keep many calls in flight on one channel: it starts 200 Puts at once, then, when
 * every Put has answered, 200 Gets at once (checking every value), then a Delete, a Get of the
 * deleted key (which must be NOT_FOUND), a Put with an empty key (INVALID_ARGUMENT) and a List by
 * prefix (sorted keys). It prints a summary and exits 0 only if every check held.
 *
 * The shape of an async crpc program:
 *   - create the channel on your loop: crpc_channel_new(&ch, &loop, endpoint);
 *   - start calls with the generated ..._start() functions; each one's callback runs exactly
 *     once, on the loop, with the response or with a status saying why there is none;
 *   - run the loop; start the next calls from the callbacks;
 *   - close the channel (from a callback is fine) and let the loop run until it is released. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "kvstore.crpc.h"

#define N_KEYS 200
#define LIST_PREFIX "user:1" /* matches user:100 .. user:199 */

/* Everything the program knows; every callback gets to it through its user_data. */
typedef struct app {
  uv_loop_t loop;
  crpc_channel *ch;
  crpc_call_opts opts;  /* a deadline for every call: never wait forever */
  int in_flight;        /* calls of the current phase not answered yet */
  int puts_ok, gets_ok;
  int failures;         /* checks that did not hold */
  int finished;         /* the last phase ran */
} app;

/* Per-call context for the Puts and Gets: which key the answer is for. */
typedef struct op {
  app *a;
  int index;
} op;
static op ops[N_KEYS];

static void make_key(char *buf, size_t len, int i) { snprintf(buf, len, "user:%03d", i); }
static void make_value(char *buf, size_t len, int i) {
  snprintf(buf, len, "value #%d, some bytes to store: %0*d", i, 20 + i % 50, i);
}

/* Reports a failed check. */
static void fail(app *a, const char *what, const crpc_status *st) {
  a->failures++;
  if (st)
    fprintf(stderr, "kvstore_client: %s: %s: %s\n", what, crpc_code_name(st->code),
            st->message ? st->message : "");
  else
    fprintf(stderr, "kvstore_client: %s\n", what);
}

static void start_gets(app *a);
static void start_checks(app *a);

/* ---- Phase 1: 200 Puts in flight -------------------------------------------------------------*/

static void put_done(const crpc_status *st, const Kvstore__PutReply *reply, void *ud) {
  op *o = ud;
  app *a = o->a;
  if (st->code == CRPC_STATUS_OK && reply)
    a->puts_ok++;
  else
    fail(a, "Put", st);
  if (--a->in_flight == 0) start_gets(a); /* every Put answered: next phase */
}

static void start_puts(app *a) {
  for (int i = 0; i < N_KEYS; i++) {
    char key[32], value[128];
    make_key(key, sizeof key, i);
    make_value(value, sizeof value, i);
    Kvstore__PutRequest req = KVSTORE__PUT_REQUEST__INIT;
    req.key = key;
    req.value.data = (uint8_t *)value;
    req.value.len = strlen(value);
    ops[i] = (op){a, i};
    /* The request is encoded before _start() returns: key and value may go out of scope. */
    int rc = kvstore__key_value__put__start(a->ch, &req, &a->opts, put_done, &ops[i], NULL);
    if (rc != 0) {
      fprintf(stderr, "kvstore_client: Put not started: %s\n", crpc_strerror(rc));
      a->failures++;
      continue;
    }
    a->in_flight++;
  }
  if (a->in_flight == 0) start_gets(a);
}

/* ---- Phase 2: 200 Gets in flight, each value checked -----------------------------------------*/

static void get_done(const crpc_status *st, const Kvstore__GetReply *reply, void *ud) {
  op *o = ud;
  app *a = o->a;
  char want[128];
  make_value(want, sizeof want, o->index);
  if (st->code != CRPC_STATUS_OK)
    fail(a, "Get", st);
  else if (reply->value.len != strlen(want) || memcmp(reply->value.data, want, strlen(want)) != 0)
    fail(a, "Get returned another value than was Put", NULL);
  else
    a->gets_ok++;
  if (--a->in_flight == 0) start_checks(a);
}

static void start_gets(app *a) {
  for (int i = 0; i < N_KEYS; i++) {
    char key[32];
    make_key(key, sizeof key, i);
    Kvstore__GetRequest req = KVSTORE__GET_REQUEST__INIT;
    req.key = key;
    if (kvstore__key_value__get__start(a->ch, &req, &a->opts, get_done, &ops[i], NULL) == 0)
      a->in_flight++;
    else
      a->failures++;
  }
  if (a->in_flight == 0) start_checks(a);
}

/* ---- Phase 3: one call after another, each started from the previous one's callback ----------*/

static void list_done(const crpc_status *st, const Kvstore__ListReply *reply, void *ud) {
  app *a = ud;
  if (st->code != CRPC_STATUS_OK) {
    fail(a, "List", st);
  } else {
    int sorted = 1;
    for (size_t i = 1; i < reply->n_keys; i++)
      if (strcmp(reply->keys[i - 1], reply->keys[i]) >= 0) sorted = 0;
    if (reply->n_keys != 100 || !sorted || strcmp(reply->keys[0], "user:100") != 0)
      fail(a, "List returned the wrong keys", NULL);
    else
      printf("List(\"%s\"): %zu keys, sorted, %s .. %s\n", LIST_PREFIX, reply->n_keys,
             reply->keys[0], reply->keys[reply->n_keys - 1]);
  }
  a->finished = 1;
  crpc_channel_close(a->ch, NULL, NULL); /* legal inside a callback; calls are all done */
}

static void bad_put_done(const crpc_status *st, const Kvstore__PutReply *reply, void *ud) {
  app *a = ud;
  (void)reply;
  if (st->code != CRPC_STATUS_INVALID_ARGUMENT)
    fail(a, "Put with an empty key should be INVALID_ARGUMENT", st);
  else
    printf("Put(\"\"): INVALID_ARGUMENT (%s), as expected\n", st->message);
  Kvstore__ListRequest req = KVSTORE__LIST_REQUEST__INIT;
  req.prefix = LIST_PREFIX;
  if (kvstore__key_value__list__start(a->ch, &req, &a->opts, list_done, a, NULL) != 0)
    fail(a, "List not started", NULL);
}

static void get_deleted_done(const crpc_status *st, const Kvstore__GetReply *reply, void *ud) {
  app *a = ud;
  (void)reply;
  if (st->code != CRPC_STATUS_NOT_FOUND)
    fail(a, "Get of a deleted key should be NOT_FOUND", st);
  else
    printf("Get(\"user:000\") after Delete: NOT_FOUND, as expected\n");
  Kvstore__PutRequest req = KVSTORE__PUT_REQUEST__INIT;
  req.key = "";
  if (kvstore__key_value__put__start(a->ch, &req, &a->opts, bad_put_done, a, NULL) != 0)
    fail(a, "Put not started", NULL);
}

static void delete_done(const crpc_status *st, const Kvstore__DeleteReply *reply, void *ud) {
  app *a = ud;
  (void)reply;
  if (st->code != CRPC_STATUS_OK) fail(a, "Delete", st);
  Kvstore__GetRequest req = KVSTORE__GET_REQUEST__INIT;
  req.key = "user:000";
  if (kvstore__key_value__get__start(a->ch, &req, &a->opts, get_deleted_done, a, NULL) != 0)
    fail(a, "Get not started", NULL);
}

static void start_checks(app *a) {
  printf("%d of %d Puts ok, %d of %d Gets returned the value Put\n", a->puts_ok, N_KEYS,
         a->gets_ok, N_KEYS);
  Kvstore__DeleteRequest req = KVSTORE__DELETE_REQUEST__INIT;
  req.key = "user:000";
  if (kvstore__key_value__delete__start(a->ch, &req, &a->opts, delete_done, a, NULL) != 0)
    fail(a, "Delete not started", NULL);
}

/* ---- main ------------------------------------------------------------------------------------*/

int main(int argc, char **argv) {
  const char *endpoint = argc > 1 ? argv[1] : "tcp://127.0.0.1:50052";
  app a = {.opts = {.timeout_ms = 10000}};
  uv_loop_init(&a.loop);
  int rc = crpc_channel_new(&a.ch, &a.loop, endpoint);
  if (rc != 0) {
    fprintf(stderr, "kvstore_client: %s: %s\n", endpoint, crpc_strerror(rc));
    return 1;
  }
  start_puts(&a);
  uv_run(&a.loop, UV_RUN_DEFAULT); /* returns once the channel is closed and released */
  if (uv_loop_close(&a.loop) != 0) fail(&a, "handles left on the loop", NULL);
  int ok = a.finished && a.failures == 0 && a.puts_ok == N_KEYS && a.gets_ok == N_KEYS;
  printf("kvstore_client: %s\n", ok ? "all checks passed" : "FAILED");
  return ok ? 0 : 1;
}
