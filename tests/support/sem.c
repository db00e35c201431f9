/* The one-loop fixture: see sem.h. */
#include "sem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- Waits ----------------------------------------------------------------------------------- */

int sem_run_until(sem_env *e, sem_pred pred, void *arg, uint64_t timeout_ms) {
  return ts_run_until(&e->loop, &e->tick, pred, arg, timeout_ms);
}

void sem_run_for(sem_env *e, uint64_t ms) { ts_run_for(&e->loop, &e->tick, ms); }

void sem_wait_count(sem_env *e, const int *value, int target, uint64_t timeout_ms,
                    const char *what) {
  ts_wait_count(&e->loop, &e->tick, value, target, timeout_ms, what);
}

/* ---- Handlers -------------------------------------------------------------------------------- */

static void held_cancelled(crpc_server_call *call, void *ud) {
  sem_held *h = ud;
  assert_ptr_equal(call, h->call);
  h->cancels++;
  h->cancel_ms = ts_now_ms();
  h->time_left_cancel = crpc_server_call_time_left_ms(call);
  if (h->env->finish_on_cancel) {
    crpc_server_call_fail(call, CRPC_STATUS_CANCELLED, "cancelled");
    h->call = NULL;
    h->env->finished++;
  }
}

sem_held *sem_hold(sem_env *e, crpc_server_call *call) {
  assert_true(e->nheld < SEM_MAX_HELD);
  sem_held *h = &e->held[e->nheld++];
  memset(h, 0, sizeof *h);
  h->env = e;
  h->call = call;
  h->time_left0 = crpc_server_call_time_left_ms(call);
  h->arrived_ms = ts_now_ms();
  crpc_server_call_on_cancel(call, held_cancelled, h);
  return h;
}

int sem_held_reply(sem_held *h) {
  assert_non_null(h->call);
  Itest__EchoReply reply = ITEST__ECHO_REPLY__INIT;
  int rc = itest__test__echo__reply(h->call, &reply);
  h->call = NULL;
  h->env->finished++;
  return rc;
}

void sem_finish_held(sem_env *e) {
  for (int i = 0; i < e->nheld; i++) {
    if (!e->held[i].call) continue;
    crpc_server_call_fail(e->held[i].call, CRPC_STATUS_CANCELLED, "test over");
    e->held[i].call = NULL;
    e->finished++;
  }
}

typedef struct delayed {
  uv_timer_t timer;
  sem_env *env;
  crpc_server_call *call;
} delayed;

static void delayed_closed(uv_handle_t *h) { free(h->data); }

static void reply_echo(sem_env *e, crpc_server_call *call, const Itest__EchoRequest *req) {
  if (req->fail_code) {
    crpc_server_call_fail(call, (crpc_code)req->fail_code, req->fail_message);
  } else {
    Itest__EchoReply reply = ITEST__ECHO_REPLY__INIT;
    uint8_t *big = NULL;
    if (req->reply_size) {
      big = malloc(req->reply_size);
      assert_non_null(big);
      memset(big, 'r', req->reply_size);
      reply.payload.data = big;
      reply.payload.len = req->reply_size;
    } else {
      reply.payload = req->payload;
    }
    assert_int_equal(itest__test__echo__reply(call, &reply), 0);
    free(big);
  }
  e->finished++;
}

static void delayed_due(uv_timer_t *t) {
  delayed *d = t->data;
  Itest__EchoReply reply = ITEST__ECHO_REPLY__INIT;
  assert_int_equal(itest__test__echo__reply(d->call, &reply), 0);
  d->env->finished++;
  d->env->delayed_pending--;
  uv_close((uv_handle_t *)t, delayed_closed);
}

static void echo_handler(crpc_server_call *call, const Itest__EchoRequest *req, void *ud) {
  sem_env *e = ud;
  e->echo_calls++;
  e->last_time_left = crpc_server_call_time_left_ms(call);
  if (e->hook) {
    e->hook(e, call, req);
  } else if (req->hold) {
    sem_hold(e, call);
  } else if (req->delay_ms) {
    delayed *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->env = e;
    d->call = call;
    uv_timer_init(&e->loop, &d->timer);
    d->timer.data = d;
    e->delayed_pending++;
    uv_timer_start(&d->timer, delayed_due, req->delay_ms, 0);
  } else {
    reply_echo(e, call, req);
  }
}

static void nest_handler(crpc_server_call *call, const Itest__Node *req, void *ud) {
  sem_env *e = ud;
  e->nest_calls++;
  assert_int_equal(itest__test__nest__reply(call, e->nest_reply ? e->nest_reply : req), 0);
  e->finished++;
}

static const Itest__Test__Handlers handlers = {.echo = echo_handler, .nest = nest_handler};

/* ---- Server ---------------------------------------------------------------------------------- */

void sem_env_init(sem_env *e) {
  memset(e, 0, sizeof *e);
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
}

void sem_server_start(sem_env *e, const sem_opt *opts, size_t n) {
  assert_int_equal(crpc_server_new(&e->srv, &e->loop), 0);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(crpc_server_set_option(e->srv, opts[i].opt, opts[i].value), 0);
  assert_int_equal(itest__test__crpc_register(e->srv, &handlers, e), 0);
  assert_int_equal(crpc_server_listen(e->srv, "tcp://127.0.0.1:0", &e->port), 0);
  assert_true(e->port > 0);
  snprintf(e->endpoint, sizeof e->endpoint, "tcp://127.0.0.1:%d", e->port);
}

static void server_closed(void *ud) {
  sem_env *e = ud;
  e->server_closes++;
}

void sem_server_close(sem_env *e) {
  if (!e->srv) return;
  sem_finish_held(e);
  /* Delayed replies are due soon; let them finish before the close. */
  uint64_t end = ts_now_ms() + 5000;
  while (e->delayed_pending && ts_now_ms() < end) sem_run_for(e, 5);
  assert_int_equal(e->delayed_pending, 0);
  int before = e->server_closes;
  crpc_server_close(e->srv, server_closed, e);
  e->srv = NULL;
  sem_wait_count(e, &e->server_closes, before + 1, 5000, "server close callback");
}

static void walk_report(uv_handle_t *h, void *arg) {
  (void)arg;
  fprintf(stderr, "left on the loop: handle type %s%s\n", uv_handle_type_name(h->type),
          uv_is_closing(h) ? " (closing)" : "");
}

void sem_env_finish(sem_env *e) {
  for (size_t i = 0; i < sizeof e->channels / sizeof e->channels[0]; i++)
    if (e->channels[i]) sem_channel_close(e, e->channels[i]);
  sem_server_close(e);
  uv_close((uv_handle_t *)&e->tick, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&e->loop);
  if (rc != 0) uv_walk(&e->loop, walk_report, NULL);
  assert_int_equal(rc, 0);
}

/* ---- Channels and calls ---------------------------------------------------------------------- */

crpc_channel *sem_channel(sem_env *e, const char *target, const sem_opt *opts, size_t n) {
  crpc_channel *ch = NULL;
  assert_int_equal(crpc_channel_new(&ch, &e->loop, target ? target : e->endpoint), 0);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(crpc_channel_set_option(ch, opts[i].opt, opts[i].value), 0);
  for (size_t i = 0; i < sizeof e->channels / sizeof e->channels[0]; i++) {
    if (!e->channels[i]) {
      e->channels[i] = ch;
      return ch;
    }
  }
  fail_msg("too many channels");
  return NULL;
}

void sem_channel_forget(sem_env *e, crpc_channel *ch) {
  for (size_t i = 0; i < sizeof e->channels / sizeof e->channels[0]; i++)
    if (e->channels[i] == ch) e->channels[i] = NULL;
}

static void channel_closed(void *ud) { (*(int *)ud)++; }

void sem_channel_close(sem_env *e, crpc_channel *ch) {
  int closed = 0;
  sem_channel_forget(e, ch);
  crpc_channel_close(ch, channel_closed, &closed);
  sem_wait_count(e, &closed, 1, 5000, "channel close callback");
  sem_run_for(e, 5);
  assert_int_equal(closed, 1);
}

void sem_rec_status(sem_rec *r, const crpc_status *st) {
  r->code = st->code;
  r->has_message = st->message != NULL;
  if (st->message) snprintf(r->message, sizeof r->message, "%s", st->message);
  r->has_details = st->details != NULL;
  r->details_len = st->details_len;
  if (st->details_len) {
    assert_non_null(st->details);
    assert_true(st->details_len <= sizeof r->details);
    memcpy(r->details, st->details, st->details_len);
  }
  r->trailers_count = st->trailers_count;
  assert_true(st->trailers_count <= SEM_MAX_TRAILERS);
  if (st->trailers_count) assert_non_null(st->trailers);
  for (size_t i = 0; i < st->trailers_count; i++) {
    const crpc_metadata *m = &st->trailers[i];
    assert_true(strlen(m->key) < sizeof r->trailers[i].key);
    assert_true(m->value_len <= sizeof r->trailers[i].value);
    strcpy(r->trailers[i].key, m->key);
    if (m->value_len) memcpy(r->trailers[i].value, m->value, m->value_len);
    r->trailers[i].value_len = m->value_len;
  }
}

void sem_rec_echo(const crpc_status *st, const Itest__EchoReply *resp, void *ud) {
  sem_rec *r = ud;
  r->completions++;
  r->done_ms = ts_now_ms();
  sem_rec_status(r, st);
  r->has_response = resp != NULL;
  if (resp) r->payload_len = resp->payload.len;
  assert_true((st->code == CRPC_STATUS_OK) == (resp != NULL));
}

void sem_rec_nest(const crpc_status *st, const Itest__Node *resp, void *ud) {
  sem_rec *r = ud;
  r->completions++;
  r->done_ms = ts_now_ms();
  sem_rec_status(r, st);
  r->has_response = resp != NULL;
  r->depth = resp ? sem_chain_depth(resp) : 0;
  assert_true((st->code == CRPC_STATUS_OK) == (resp != NULL));
}

crpc_call *sem_start(crpc_channel *ch, const Itest__EchoRequest *req, const crpc_call_opts *o,
                     sem_rec *r) {
  crpc_call *call = NULL;
  assert_int_equal(itest__test__echo__start(ch, req, o, sem_rec_echo, r, &call), 0);
  assert_non_null(call);
  assert_int_equal(r->completions, 0); /* never before the start function returned */
  return call;
}

static int rec_done(void *arg) { return ((sem_rec *)arg)->completions > 0; }

void sem_wait_rec(sem_env *e, sem_rec *r, uint64_t timeout_ms) {
  if (!sem_run_until(e, rec_done, r, timeout_ms))
    fail_msg("call did not complete within %llu ms", (unsigned long long)timeout_ms);
}

Itest__Node *sem_chain(unsigned n) {
  Itest__Node *top = NULL;
  for (unsigned i = 0; i < n; i++) {
    Itest__Node *node = malloc(sizeof *node);
    assert_non_null(node);
    itest__node__init(node);
    node->child = top;
    top = node;
  }
  return top;
}

void sem_chain_free(Itest__Node *top) {
  while (top) {
    Itest__Node *next = top->child;
    free(top);
    top = next;
  }
}

unsigned sem_chain_depth(const Itest__Node *top) {
  unsigned n = 0;
  for (; top; top = top->child) n++;
  return n;
}

void sem_in_thread(sem_env *e, void (*fn)(void *), void *arg, uint64_t timeout_ms) {
  ts_in_thread(&e->loop, &e->tick, fn, arg, timeout_ms);
}

int sem_setup(void **state) {
  sem_env *e = calloc(1, sizeof *e);
  if (!e) return -1;
  sem_env_init(e);
  *state = e;
  return 0;
}

int sem_teardown(void **state) {
  sem_env *e = *state;
  sem_env_finish(e);
  free(e);
  return 0;
}
