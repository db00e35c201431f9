/* Key-value server: an in-memory store behind the kvstore.KeyValue service.
 *
 *   kvstore_server [ENDPOINT]        (default tcp://127.0.0.1:50052)
 *
 * Prints "listening on ENDPOINT" (with the bound port when port 0 was asked for) once it
 * serves, and serves until SIGINT or SIGTERM.
 *
 * The store needs no lock: every handler runs on the server's loop thread, one at a time. It is
 * an array of entries kept sorted by key, so Get/Put/Delete find a key by binary search and List
 * returns keys in order without sorting. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <crpc/crpc.h>

#include "kvstore.crpc.h"

#define MAX_KEY 256         /* bytes; see kvstore.proto */
#define MAX_VALUE 65536     /* bytes */

/* ---- The store ------------------------------------------------------------------------------ */

typedef struct entry {
  char *key;
  uint8_t *value;
  size_t len;
} entry;

typedef struct store {
  entry *v;
  size_t n, cap;
} store;

/* Index of key, or of where it would go (*found says which). */
static size_t store_find(const store *s, const char *key, int *found) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(s->v[mid].key, key);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

/* Sets key to a copy of value. Returns 1 when it replaced a value, 0 when new, -1 on ENOMEM. */
static int store_put(store *s, const char *key, const uint8_t *value, size_t len) {
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -1;
  if (len) memcpy(copy, value, len);
  int found;
  size_t i = store_find(s, key, &found);
  if (found) {
    free(s->v[i].value);
    s->v[i].value = copy;
    s->v[i].len = len;
    return 1;
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    entry *v = realloc(s->v, cap * sizeof *v);
    if (!v) goto nomem;
    s->v = v;
    s->cap = cap;
  }
  size_t klen = strlen(key) + 1;
  char *k = malloc(klen); /* strdup() is POSIX, not C11 */
  if (!k) goto nomem;
  memcpy(k, key, klen);
  memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
  s->v[i] = (entry){k, copy, len};
  s->n++;
  return 0;
nomem:
  free(copy);
  return -1;
}

/* Removes key; returns 0, or -1 when it was not there. */
static int store_delete(store *s, const char *key) {
  int found;
  size_t i = store_find(s, key, &found);
  if (!found) return -1;
  free(s->v[i].key);
  free(s->v[i].value);
  memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
  s->n--;
  return 0;
}

static void store_free(store *s) {
  for (size_t i = 0; i < s->n; i++) {
    free(s->v[i].key);
    free(s->v[i].value);
  }
  free(s->v);
}

/* ---- Handlers ------------------------------------------------------------------------------- */

/* Fails the call with INVALID_ARGUMENT and returns 0 when key is empty or too long. */
static int key_ok(crpc_server_call *call, const char *key) {
  size_t len = key ? strlen(key) : 0;
  if (len == 0) {
    crpc_server_call_fail(call, CRPC_STATUS_INVALID_ARGUMENT, "key must not be empty");
    return 0;
  }
  if (len > MAX_KEY) {
    crpc_server_call_fail(call, CRPC_STATUS_INVALID_ARGUMENT, "key longer than 256 bytes");
    return 0;
  }
  return 1;
}

static void do_put(crpc_server_call *call, const Kvstore__PutRequest *req, void *ud) {
  store *s = ud;
  if (!key_ok(call, req->key)) return;
  if (req->value.len > MAX_VALUE) {
    crpc_server_call_fail(call, CRPC_STATUS_INVALID_ARGUMENT, "value larger than 65536 bytes");
    return;
  }
  int rc = store_put(s, req->key, req->value.data, req->value.len);
  if (rc < 0) {
    crpc_server_call_fail(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  Kvstore__PutReply reply = KVSTORE__PUT_REPLY__INIT;
  reply.replaced = rc == 1;
  kvstore__key_value__put__reply(call, &reply);
}

static void do_get(crpc_server_call *call, const Kvstore__GetRequest *req, void *ud) {
  store *s = ud;
  if (!key_ok(call, req->key)) return;
  int found;
  size_t i = store_find(s, req->key, &found);
  if (!found) {
    crpc_server_call_fail(call, CRPC_STATUS_NOT_FOUND, "no such key");
    return;
  }
  Kvstore__GetReply reply = KVSTORE__GET_REPLY__INIT;
  reply.value.data = s->v[i].value; /* borrowed: the reply is encoded before reply() returns */
  reply.value.len = s->v[i].len;
  kvstore__key_value__get__reply(call, &reply);
}

static void do_delete(crpc_server_call *call, const Kvstore__DeleteRequest *req, void *ud) {
  store *s = ud;
  if (!key_ok(call, req->key)) return;
  if (store_delete(s, req->key) != 0) {
    crpc_server_call_fail(call, CRPC_STATUS_NOT_FOUND, "no such key");
    return;
  }
  Kvstore__DeleteReply reply = KVSTORE__DELETE_REPLY__INIT;
  kvstore__key_value__delete__reply(call, &reply);
}

static void do_list(crpc_server_call *call, const Kvstore__ListRequest *req, void *ud) {
  store *s = ud;
  const char *prefix = req->prefix ? req->prefix : "";
  size_t plen = strlen(prefix);
  /* The keys with the prefix are one run of the sorted array, starting where prefix would go. */
  int found;
  size_t first = store_find(s, prefix, &found), last = first;
  while (last < s->n && strncmp(s->v[last].key, prefix, plen) == 0) last++;
  char **keys = malloc((last - first + 1) * sizeof *keys);
  if (!keys) {
    crpc_server_call_fail(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = first; i < last; i++) keys[i - first] = s->v[i].key; /* borrowed */
  Kvstore__ListReply reply = KVSTORE__LIST_REPLY__INIT;
  reply.n_keys = last - first;
  reply.keys = keys;
  kvstore__key_value__list__reply(call, &reply);
  free(keys);
}

static const Kvstore__KeyValue__Handlers handlers = {
    .put = do_put, .get = do_get, .delete = do_delete, .list = do_list};

/* ---- main ----------------------------------------------------------------------------------- */

static crpc_server *server;

static void on_signal(int sig) {
  (void)sig;
  crpc_server_stop(server); /* async-signal-safe */
}

int main(int argc, char **argv) {
  const char *endpoint = argc > 1 ? argv[1] : "tcp://127.0.0.1:50052";
  store db = {0};
  int port = 0, rc;
  if ((rc = crpc_server_new(&server, NULL)) != 0 ||
      (rc = kvstore__key_value__crpc_register(server, &handlers, &db)) != 0 ||
      (rc = crpc_server_listen(server, endpoint, &port)) != 0) {
    fprintf(stderr, "kvstore_server: %s: %s\n", endpoint, crpc_strerror(rc));
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN); /* a client that disconnects must not kill the server */
  if (strncmp(endpoint, "tcp:", 4) == 0) {
    const char *colon = strrchr(endpoint, ':');
    printf("listening on %.*s:%d\n", (int)(colon - endpoint), endpoint, port);
  } else {
    printf("listening on %s\n", endpoint);
  }
  fflush(stdout);
  rc = crpc_server_run(server);
  crpc_server_close(server, NULL, NULL);
  store_free(&db);
  printf("kvstore_server: stopped\n");
  return rc == 0 ? 0 : 1;
}
