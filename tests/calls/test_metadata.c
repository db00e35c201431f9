/* Metadata, trailers and error details: the client's crpc_call_opts.metadata reaches the handler
 * (crpc_server_call_metadata) byte for byte, in order, repeats kept; trailers added with
 * crpc_server_call_add_trailer and details given to crpc_server_call_fail_details reach the
 * client's status, async and blocking; invalid entries are refused by the call function; each
 * side's MAX_METADATA_SIZE holds, to the byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sem.h"

static const uint8_t bin_value[] = {0x00, 0x01, 0xff, 0x00, 'z', 0x00};
static const crpc_metadata sent[] = {
    {"x-user", (const uint8_t *)"alice", 5},
    {"trace-bin", bin_value, sizeof bin_value},
    {"x-user", (const uint8_t *)"bob", 3},
    {"x.empty_ok", (const uint8_t *)"", 0},
};
#define NSENT (sizeof sent / sizeof sent[0])
static const uint8_t details[] = {0x08, 0x00, 0x12, 0x03, 0x00, 'd', 0x00};

/* What the handler saw, and the results of its add_trailer calls. */
static struct {
  size_t count;
  int matched;
  int add_rc[8];
  int nadd;
  int finish_rc;
} seen;

static int md_equal(const crpc_metadata *a, size_t n) {
  if (n != NSENT || !a) return 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(a[i].key, sent[i].key) != 0 || a[i].value_len != sent[i].value_len) return 0;
    if (a[i].value_len && memcmp(a[i].value, sent[i].value, a[i].value_len) != 0) return 0;
  }
  return 1;
}

static void assert_rec_trailers(const sem_rec *r) {
  assert_int_equal(r->trailers_count, NSENT);
  for (size_t i = 0; i < NSENT; i++) {
    assert_string_equal(r->trailers[i].key, sent[i].key);
    assert_int_equal(r->trailers[i].value_len, sent[i].value_len);
    if (sent[i].value_len)
      assert_memory_equal(r->trailers[i].value, sent[i].value, sent[i].value_len);
  }
}

/* Echoes the request metadata back as trailers, then fails with details (fail_code set) or
 * replies OK. */
static void echo_md_hook(sem_env *e, crpc_server_call *call, const Itest__EchoRequest *req) {
  size_t n = 99;
  const crpc_metadata *md = crpc_server_call_metadata(call, &n);
  seen.count = n;
  seen.matched = md_equal(md, n);
  for (size_t i = 0; i < n; i++)
    seen.add_rc[seen.nadd++ % 8] =
        crpc_server_call_add_trailer(call, md[i].key, md[i].value, md[i].value_len);
  if (req->fail_code)
    seen.finish_rc = crpc_server_call_fail_details(call, (crpc_code)req->fail_code,
                                                   req->fail_message, details, sizeof details);
  else
    seen.finish_rc = itest__test__echo__reply(call, &(Itest__EchoReply)ITEST__ECHO_REPLY__INIT);
  e->finished++;
}

static int setup(void **state) {
  memset(&seen, 0, sizeof seen);
  return sem_setup(state);
}

/* ---- Async: metadata in, trailers and details out ------------------------------------------- */

static void async_round_trip(sem_env *e, uint32_t fail_code) {
  sem_server_start(e, NULL, 0);
  e->hook = echo_md_hook;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.fail_code = fail_code;
  req.fail_message = "precondition not met";
  crpc_call_opts o = {.timeout_ms = 10000, .metadata = sent, .metadata_count = NSENT};
  sem_rec r = {0};
  sem_start(ch, &req, &o, &r);
  sem_wait_rec(e, &r, 10000);
  assert_int_equal(seen.count, NSENT);
  assert_true(seen.matched);
  for (size_t i = 0; i < NSENT; i++) assert_int_equal(seen.add_rc[i], 0);
  assert_int_equal(seen.finish_rc, 0);
  if (fail_code) {
    assert_int_equal(r.code, fail_code);
    assert_string_equal(r.message, "precondition not met");
    assert_true(r.has_details);
    assert_int_equal(r.details_len, sizeof details);
    assert_memory_equal(r.details, details, sizeof details);
  } else {
    assert_int_equal(r.code, CRPC_STATUS_OK);
    assert_true(r.has_response);
    assert_int_equal(r.details_len, 0);
  }
  assert_rec_trailers(&r);
  sem_run_for(e, 20);
  assert_int_equal(r.completions, 1);
  sem_channel_close(e, ch);
}

static void test_async_fail_details(void **state) {
  async_round_trip(*state, CRPC_STATUS_FAILED_PRECONDITION);
}

static void test_async_ok_trailers(void **state) { async_round_trip(*state, 0); }

/* ---- Blocking: the status belongs to the caller ----------------------------------------------- */

typedef struct blocking_job {
  const char *endpoint;
  const Itest__EchoRequest *req;
  crpc_call_opts opts;
  sem_opt chopt[4];
  size_t nchopt;
  int new_rc, rc;
  Itest__EchoReply *resp;
  crpc_status st;
} blocking_job;

static void blocking_call(void *p) {
  blocking_job *j = p;
  crpc_channel *ch = NULL;
  j->new_rc = crpc_channel_new(&ch, NULL, j->endpoint);
  if (j->new_rc != 0) return;
  for (size_t i = 0; i < j->nchopt; i++)
    if (crpc_channel_set_option(ch, j->chopt[i].opt, j->chopt[i].value) != 0) j->new_rc = -1;
  j->rc = itest__test__echo__call(ch, j->req, &j->resp, &j->st, &j->opts);
  crpc_channel_close(ch, NULL, NULL);
}

static void test_blocking_fail_details(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  e->hook = echo_md_hook;
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.fail_code = CRPC_STATUS_ABORTED;
  req.fail_message = "aborted here";
  blocking_job j = {.endpoint = e->endpoint, .req = &req,
                    .opts = {.timeout_ms = 10000, .metadata = sent, .metadata_count = NSENT}};
  sem_in_thread(e, blocking_call, &j, 20000);
  assert_int_equal(j.new_rc, 0);
  assert_int_equal(j.rc, 0);
  assert_null(j.resp);
  assert_true(seen.matched);
  assert_int_equal(j.st.code, CRPC_STATUS_ABORTED);
  assert_non_null(j.st.message);
  assert_string_equal(j.st.message, "aborted here");
  assert_int_equal(j.st.details_len, sizeof details);
  assert_non_null(j.st.details);
  assert_memory_equal(j.st.details, details, sizeof details);
  assert_int_equal(j.st.trailers_count, NSENT);
  assert_true(md_equal(j.st.trailers, j.st.trailers_count));
  /* crpc_metadata_find: the first of a repeated key. */
  const crpc_metadata *m = crpc_metadata_find(j.st.trailers, j.st.trailers_count, "x-user");
  assert_non_null(m);
  assert_int_equal(m->value_len, 5);
  assert_memory_equal(m->value, "alice", 5);
  m = crpc_metadata_find(j.st.trailers, j.st.trailers_count, "trace-bin");
  assert_non_null(m);
  assert_int_equal(m->value_len, sizeof bin_value);
  assert_memory_equal(m->value, bin_value, sizeof bin_value);
  assert_null(crpc_metadata_find(j.st.trailers, j.st.trailers_count, "absent"));
  /* The caller releases everything (LSan checks), and a second reset is harmless. */
  crpc_status_reset(&j.st);
  assert_int_equal(j.st.code, CRPC_STATUS_OK);
  assert_null(j.st.message);
  assert_null(j.st.details);
  assert_int_equal(j.st.details_len, 0);
  assert_null(j.st.trailers);
  assert_int_equal(j.st.trailers_count, 0);
  crpc_status_reset(&j.st);
}

static void test_blocking_ok_trailers(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  e->hook = echo_md_hook;
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  blocking_job j = {.endpoint = e->endpoint, .req = &req,
                    .opts = {.timeout_ms = 10000, .metadata = sent, .metadata_count = NSENT}};
  sem_in_thread(e, blocking_call, &j, 20000);
  assert_int_equal(j.rc, 0);
  assert_int_equal(j.st.code, CRPC_STATUS_OK);
  assert_non_null(j.resp);
  assert_true(md_equal(j.st.trailers, j.st.trailers_count));
  itest__echo_reply__free_unpacked(j.resp, NULL);
  crpc_status_reset(&j.st);
}

/* ---- Invalid entries: the call function refuses them --------------------------------------- */

static char long_key[257];

static void test_invalid_entries(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  memset(long_key, 'k', 256);
  long_key[256] = 0;
  const crpc_metadata bad[] = {
      {"X-User", (const uint8_t *)"a", 1},    /* upper case */
      {"crpc-x", (const uint8_t *)"a", 1},    /* reserved prefix */
      {"x-ctl", (const uint8_t *)"a\x01z", 3}, /* non-printable in a text value */
      {"x-nl", (const uint8_t *)"a\nz", 3},
      {"x-del", (const uint8_t *)"\x7f", 1},
      {"x-nul", (const uint8_t *)"a\0z", 3},   /* NUL only for -bin keys */
      {"", (const uint8_t *)"a", 1},           /* empty key */
      {long_key, (const uint8_t *)"a", 1},     /* 256 bytes */
      {"sp ace", (const uint8_t *)"a", 1},
  };
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(crpc_metadata_valid(bad[i].key, bad[i].value, bad[i].value_len), 0);
    /* Alone, and after a valid entry. */
    crpc_metadata two[2] = {sent[0], bad[i]};
    for (int k = 0; k < 2; k++) {
      crpc_call_opts o = {.metadata = k ? two : &bad[i], .metadata_count = k ? 2 : 1};
      sem_rec r = {0};
      crpc_call *call = NULL;
      int rc = itest__test__echo__start(ch, &req, &o, sem_rec_echo, &r, &call);
      if (rc != CRPC_EINVAL) fail_msg("entry %zu (key \"%.20s\"): start returned %d, want CRPC_EINVAL", i, bad[i].key, rc);
      assert_int_equal(r.completions, 0);
    }
  }
  /* The limits of the rules are accepted: a 255-byte key, any bytes under -bin. */
  long_key[255] = 0;
  assert_int_equal(crpc_metadata_valid(long_key, (const uint8_t *)"v", 1), 1);
  assert_int_equal(crpc_metadata_valid("a-bin", (const uint8_t *)"\0\n\x7f", 3), 1);
  assert_int_equal(crpc_metadata_valid("a.b_c-9", (const uint8_t *)" ~", 2), 1);
  sem_run_for(e, 50);
  assert_int_equal(e->echo_calls, 0);
  /* The channel still works, and the edge entries go through. */
  const crpc_metadata edge[] = {{long_key, (const uint8_t *)"v", 1},
                                {"a-bin", (const uint8_t *)"\0\n\x7f", 3}};
  crpc_call_opts o = {.timeout_ms = 10000, .metadata = edge, .metadata_count = 2};
  sem_rec r = {0};
  sem_start(ch, &req, &o, &r);
  sem_wait_rec(e, &r, 10000);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(e->echo_calls, 1);
  sem_channel_close(e, ch);
}

static void test_invalid_blocking(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  const crpc_metadata bad = {"Upper", (const uint8_t *)"a", 1};
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  blocking_job j = {.endpoint = e->endpoint, .req = &req,
                    .opts = {.timeout_ms = 10000, .metadata = &bad, .metadata_count = 1}};
  sem_in_thread(e, blocking_call, &j, 20000);
  assert_int_equal(j.rc, CRPC_EINVAL);
  assert_null(j.resp);
  assert_int_equal(j.st.code, CRPC_STATUS_INTERNAL);
  assert_non_null(j.st.message);
  crpc_status_reset(&j.st);
  assert_int_equal(e->echo_calls, 0);
}

/* ---- Size limits --------------------------------------------------------------------------- */

/* One entry "k" with n value bytes counts 1 + n + 32. */
static void call_with_value(sem_env *e, crpc_channel *ch, size_t n, sem_rec *r) {
  uint8_t *v = malloc(n + 1);
  assert_non_null(v);
  memset(v, 'v', n);
  const crpc_metadata md = {"k", v, n};
  crpc_call_opts o = {.timeout_ms = 10000, .metadata = &md, .metadata_count = 1};
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  memset(r, 0, sizeof *r);
  sem_start(ch, &req, &o, r);
  free(v); /* copied by the call function */
  sem_wait_rec(e, r, 10000);
  sem_run_for(e, 10);
  assert_int_equal(r->completions, 1);
}

static void test_over_server_limit(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MAX_METADATA_SIZE, 256}};
  sem_server_start(e, so, 1);
  const sem_opt co[] = {{CRPC_OPT_MAX_METADATA_SIZE, 65536}};
  crpc_channel *ch = sem_channel(e, NULL, co, 1);
  sem_rec r;
  call_with_value(e, ch, 256 - 33, &r); /* exactly the limit */
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(e->echo_calls, 1);
  call_with_value(e, ch, 256 - 32, &r); /* one byte over */
  assert_int_equal(r.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(e->echo_calls, 1); /* refused before the handler */
  call_with_value(e, ch, 5000, &r);
  assert_int_equal(r.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(e->echo_calls, 1);
  call_with_value(e, ch, 10, &r); /* the connection is fine */
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(e->echo_calls, 2);
  sem_channel_close(e, ch);
}

static void test_over_client_limit(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  const sem_opt co[] = {{CRPC_OPT_MAX_METADATA_SIZE, 128}};
  crpc_channel *ch = sem_channel(e, NULL, co, 1);
  sem_rec r;
  call_with_value(e, ch, 128 - 32, &r); /* one over the client's own limit */
  assert_int_equal(r.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_true(r.has_message);
  call_with_value(e, ch, 200, &r);
  assert_int_equal(r.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  sem_run_for(e, 50);
  assert_int_equal(e->echo_calls, 0); /* failed locally: nothing reached the server */
  call_with_value(e, ch, 128 - 33, &r); /* exactly the limit */
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(e->echo_calls, 1);
  sem_channel_close(e, ch);
}

/* Trailers within the server's limit but over the client's: the client refuses the STATUS. */
static size_t big_trailer_len;

static void big_trailer_hook(sem_env *e, crpc_server_call *call, const Itest__EchoRequest *req) {
  (void)req;
  uint8_t *v = malloc(big_trailer_len + 1);
  assert_non_null(v);
  memset(v, 't', big_trailer_len);
  seen.add_rc[0] = crpc_server_call_add_trailer(call, "big", v, big_trailer_len);
  free(v);
  seen.finish_rc = itest__test__echo__reply(call, &(Itest__EchoReply)ITEST__ECHO_REPLY__INIT);
  e->finished++;
}

static void test_trailers_over_client_limit(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  e->hook = big_trailer_hook;
  const sem_opt co[] = {{CRPC_OPT_MAX_METADATA_SIZE, 128}};
  crpc_channel *ch = sem_channel(e, NULL, co, 1);
  sem_rec r;
  big_trailer_len = 128 - 35; /* "big" + n + 32 == 128: accepted */
  call_with_value(e, ch, 0, &r);
  assert_int_equal(seen.add_rc[0], 0);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.trailers_count, 1);
  assert_int_equal(r.trailers[0].value_len, big_trailer_len);
  big_trailer_len = 500;
  call_with_value(e, ch, 0, &r);
  assert_int_equal(seen.add_rc[0], 0);
  assert_int_equal(r.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_false(r.has_response);
  big_trailer_len = 1; /* the connection survived */
  call_with_value(e, ch, 0, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  sem_channel_close(e, ch);
}

/* crpc_server_call_add_trailer past the server's limit: CRPC_ELIMIT, nothing added. */
static void add_limit_hook(sem_env *e, crpc_server_call *call, const Itest__EchoRequest *req) {
  (void)req;
  uint8_t v[200];
  memset(v, 'x', sizeof v);
  int i = 0;
  seen.add_rc[i++] = crpc_server_call_add_trailer(call, "k", v, 100);  /* 133 */
  seen.add_rc[i++] = crpc_server_call_add_trailer(call, "k", v, 100);  /* 266 > 256 */
  seen.add_rc[i++] = crpc_server_call_add_trailer(call, "Bad", v, 1);  /* invalid */
  seen.add_rc[i++] = crpc_server_call_add_trailer(call, "crpc-status", v, 1);
  seen.add_rc[i++] = crpc_server_call_add_trailer(call, "t", (const uint8_t *)"\x01", 1);
  seen.add_rc[i++] = crpc_server_call_add_trailer(call, "j", v, 256 - 133 - 33); /* to 256 */
  seen.add_rc[i++] = crpc_server_call_add_trailer(call, "z", v, 0);   /* 33 more: over */
  seen.nadd = i;
  seen.finish_rc = crpc_server_call_fail_details(call, CRPC_STATUS_NOT_FOUND, "nope", NULL, 0);
  e->finished++;
}

static void test_add_trailer_limit(void **state) {
  sem_env *e = *state;
  const sem_opt so[] = {{CRPC_OPT_MAX_METADATA_SIZE, 256}};
  sem_server_start(e, so, 1);
  e->hook = add_limit_hook;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  sem_rec r;
  call_with_value(e, ch, 0, &r);
  const int want[] = {0, CRPC_ELIMIT, CRPC_EINVAL, CRPC_EINVAL, CRPC_EINVAL, 0, CRPC_ELIMIT};
  assert_int_equal(seen.nadd, 7);
  for (int i = 0; i < 7; i++)
    if (seen.add_rc[i] != want[i]) fail_msg("add_trailer #%d returned %d, want %d", i, seen.add_rc[i], want[i]);
  assert_int_equal(seen.finish_rc, 0);
  assert_int_equal(r.code, CRPC_STATUS_NOT_FOUND);
  assert_string_equal(r.message, "nope");
  assert_int_equal(r.details_len, 0);
  assert_int_equal(r.trailers_count, 2);
  assert_string_equal(r.trailers[0].key, "k");
  assert_int_equal(r.trailers[0].value_len, 100);
  assert_string_equal(r.trailers[1].key, "j");
  assert_int_equal(r.trailers[1].value_len, 256 - 133 - 33);
  sem_channel_close(e, ch);
}

/* fail_details with a length but no bytes: CRPC_EINVAL, and the call ends INTERNAL. */
static void bad_details_hook(sem_env *e, crpc_server_call *call, const Itest__EchoRequest *req) {
  (void)req;
  seen.finish_rc = crpc_server_call_fail_details(call, CRPC_STATUS_ABORTED, "x", NULL, 3);
  e->finished++;
}

static void test_fail_details_misuse(void **state) {
  sem_env *e = *state;
  sem_server_start(e, NULL, 0);
  e->hook = bad_details_hook;
  crpc_channel *ch = sem_channel(e, NULL, NULL, 0);
  sem_rec r;
  call_with_value(e, ch, 0, &r);
  assert_int_equal(seen.finish_rc, CRPC_EINVAL);
  assert_int_equal(r.code, CRPC_STATUS_INTERNAL);
  sem_channel_close(e, ch);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_async_fail_details, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_async_ok_trailers, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_blocking_fail_details, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_blocking_ok_trailers, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_invalid_entries, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_invalid_blocking, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_over_server_limit, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_over_client_limit, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_trailers_over_client_limit, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_add_trailer_limit, setup, sem_teardown),
      cmocka_unit_test_setup_teardown(test_fail_details_misuse, setup, sem_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
