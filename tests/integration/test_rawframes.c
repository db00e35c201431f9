/* Hand-made frames over a raw socket (codec from runtime/src/frame.h): a CALL whose request does
 * not decode is answered INTERNAL and the connection stays usable for the next call; an unknown
 * method is answered UNIMPLEMENTED with the recommended text. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"

/* Connects a blocking socket to a harness endpoint. */
static int raw_connect(const char *ep) {
  int fd;
  if (strncmp(ep, "unix:", 5) == 0) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", ep + 5);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
  }
  int port = atoi(strrchr(ep, ':') + 1);
  if (strstr(ep, "[::1]")) {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    a.sin6_addr = in6addr_loopback;
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  } else {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  }
  return fd;
}

static void write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    assert_true(w > 0);
    p += w;
    n -= (size_t)w;
  }
}

/* Sends a unary CALL (flags END|MESSAGE) of `method` with message bytes msg. */
static void send_call_n(int fd, uint32_t id, const char *method, size_t mlen, const uint8_t *msg,
                        size_t msg_len, uint32_t timeout_ms);
static void send_call_timeout(int fd, uint32_t id, const char *method, const uint8_t *msg,
                              size_t msg_len, uint32_t timeout_ms) {
  send_call_n(fd, id, method, strlen(method), msg, msg_len, timeout_ms);
}
static void send_call(int fd, uint32_t id, const char *method, const uint8_t *msg, size_t msg_len) {
  send_call_timeout(fd, id, method, msg, msg_len, 0);
}

/* The method name is mlen bytes, any bytes. */
static void send_call_n(int fd, uint32_t id, const char *method, size_t mlen, const uint8_t *msg,
                        size_t msg_len, uint32_t timeout_ms) {
  size_t fixed = crpc__call_fixed_size(mlen, 0);
  size_t total = CRPC__HDR_LEN + fixed + msg_len;
  uint8_t *buf = malloc(total);
  assert_non_null(buf);
  crpc__hdr_encode(buf, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, id, (uint32_t)(fixed + msg_len));
  uint8_t *p = crpc__call_fixed_encode(buf + CRPC__HDR_LEN, method, (uint16_t)mlen, timeout_ms, NULL, 0);
  memcpy(p, msg, msg_len);
  write_all(fd, buf, total);
  free(buf);
}

/* What the server answered for one call. */
typedef struct answer {
  int got;
  uint32_t id;
  uint32_t code;
  char text[256];
  uint32_t text_len;
  Itest__EchoReply *reply;
  int goaway;
  uint32_t goaway_code;
} answer;

static int on_frame(void *ud, const crpc__frame *f) {
  answer *a = ud;
  if (f->type == CRPC__F_GOAWAY) {
    crpc__goaway g;
    assert_int_equal(crpc__goaway_decode(f, &g), 0);
    a->goaway = 1;
    a->goaway_code = g.code;
    return 0;
  }
  if (f->type != CRPC__F_STATUS) return 0;
  crpc__status_hdr st;
  assert_int_equal(crpc__status_decode(f, &st), 0);
  a->got = 1;
  a->id = f->call_id;
  a->code = st.code;
  snprintf(a->text, sizeof a->text, "%.*s", (int)st.text_len, st.text);
  a->text_len = st.text_len;
  if (st.message) a->reply = itest__echo_reply__unpack(NULL, st.message_len, st.message);
  return CRPC__DEC_PAUSE; /* one answer at a time */
}

/* Reads until one STATUS arrived (bounded: 10 s). */
static void read_answer(int fd, crpc__decoder *dec, answer *a) {
  memset(a, 0, sizeof *a);
  int rc = crpc__decoder_feed(dec, NULL, 0, on_frame, a); /* frames kept from a pause */
  assert_true(rc >= 0);
  uint64_t until = itest_now_ms() + 10000;
  while (!a->got) {
    struct pollfd p = {fd, POLLIN, 0};
    int64_t left = (int64_t)(until - itest_now_ms());
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) fail_msg("no answer within 10 s");
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) fail_msg("connection closed by the server (goaway %d)", a->goaway);
    rc = crpc__decoder_feed(dec, buf, (size_t)n, on_frame, a);
    assert_true(rc >= 0);
  }
}

static void good_request(uint8_t *out, size_t *len, uint32_t seq) {
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, seq, buf, sizeof buf);
  *len = itest__echo_request__pack(&req, out);
}

static void garbage_request_then_good_call(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  int fd = raw_connect(itest_server_endpoint(srv));
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  write_all(fd, preface, sizeof preface);
  crpc__decoder dec;
  crpc__decoder_init(&dec, 1u << 20, 1);

  const struct {
    const uint8_t *bytes;
    size_t len;
  } garbage[] = {
      {(const uint8_t *)"\x0a\x7f\x01", 3},                        /* length past the end */
      {(const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11}, /* endless varint */
      {(const uint8_t *)"\x0d\x01\x02\x03\x04", 5},                 /* bytes field as fixed32 */
  };
  uint32_t id = 1;
  answer a;
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
    send_call(fd, id, "itest.Echo/Echo", garbage[i].bytes, garbage[i].len);
    read_answer(fd, &dec, &a);
    assert_int_equal(a.id, id);
    assert_int_equal(a.code, CRPC_STATUS_INTERNAL);
    assert_null(a.reply);
    id += 2;

    uint8_t msg[64];
    size_t len;
    good_request(msg, &len, (uint32_t)(100 + i));
    send_call(fd, id, "itest.Echo/Echo", msg, len);
    read_answer(fd, &dec, &a);
    assert_int_equal(a.id, id);
    assert_int_equal(a.code, CRPC_STATUS_OK);
    assert_non_null(a.reply);
    assert_int_equal(a.reply->seq, 100 + i);
    itest__echo_reply__free_unpacked(a.reply, NULL);
    id += 2;
  }

  /* Unknown method: UNIMPLEMENTED, "unknown method <name>" (PROTOCOL.md §6.1). */
  uint8_t msg[64];
  size_t len;
  good_request(msg, &len, 7);
  send_call(fd, id, "itest.Echo/Nope", msg, len);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, id);
  assert_int_equal(a.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_string_equal(a.text, "unknown method itest.Echo/Nope");
  assert_null(a.reply);
  assert_false(a.goaway);

  crpc__decoder_free(&dec);
  close(fd);
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.received, 3); /* only the good calls reached the handler */
}

/* Status texts are UTF-8 (PROTOCOL.md §6.4): a method name the server echoes has its bytes
 * outside printable ASCII (a NUL, ill-formed UTF-8) and backslashes escaped as \xHH, and a
 * handler's text that is not UTF-8 has each ill-formed sequence replaced with U+FFFD. */
static void status_texts_are_utf8(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  int fd = raw_connect(itest_server_endpoint(srv));
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  write_all(fd, preface, sizeof preface);
  crpc__decoder dec;
  crpc__decoder_init(&dec, 1u << 20, 1);
  uint8_t msg[128];
  size_t len;
  good_request(msg, &len, 1);
  answer a;

  /* A served method's name, then a NUL and more: not the served method. */
  static const char nul_name[] = "itest.Echo/Echo\0junk";
  send_call_n(fd, 1, nul_name, sizeof nul_name - 1, msg, len, 0);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 1);
  assert_int_equal(a.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_string_equal(a.text, "unknown method itest.Echo/Echo\\x00junk");
  assert_int_equal(a.text_len, strlen(a.text)); /* no NUL inside */

  static const char bad_name[] = "itest.Echo/\xff\xc3(\\\xe2\x82\xac";
  send_call_n(fd, 3, bad_name, sizeof bad_name - 1, msg, len, 0);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 3);
  assert_int_equal(a.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_string_equal(a.text, "unknown method itest.Echo/\\xff\\xc3(\\x5c\\xe2\\x82\\xac");

  /* A handler's text: ill-formed sequences become U+FFFD, well-formed ones stay. */
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 5, buf, sizeof buf);
  req.fail_code = CRPC_STATUS_INVALID_ARGUMENT;
  req.fail_message = "caf\xc3\xa9 \xff|\xe2\x82 \xc0\xaf.";
  len = itest__echo_request__pack(&req, msg);
  send_call(fd, 5, "itest.Echo/Echo", msg, len);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 5);
  assert_int_equal(a.code, CRPC_STATUS_INVALID_ARGUMENT);
  assert_string_equal(a.text, "caf\xc3\xa9 \xef\xbf\xbd|\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd.");
  assert_false(a.goaway);

  crpc__decoder_free(&dec);
  close(fd);
  itest_server_stop(srv);
}

/* A raw server peer for a blocking unary call made from a helper thread (tcp4 only: the client
 * side's checks do not depend on the transport). */
typedef struct unary_job {
  char target[64];
  crpc_code code;
  char message[256];
  int has_response;
} unary_job;

static void unary_job_run(void *arg) {
  unary_job *j = arg;
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, j->target), 0);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 20000};
  itest__echo__echo__call(ch, &req, &resp, &st, &opts);
  j->code = st.code;
  snprintf(j->message, sizeof j->message, "%s", st.message ? st.message : "");
  j->has_response = resp != NULL;
  if (resp) itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
  crpc_channel_close(ch, NULL, NULL);
}

/* Runs one unary call against a peer that answers with `answer` (after its preface). */
static void unary_against(const uint8_t *answer, size_t answer_len, unary_job *j) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(lfd >= 0);
  assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(lfd, 4), 0);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
  memset(j, 0, sizeof *j);
  j->code = (crpc_code)-1;
  snprintf(j->target, sizeof j->target, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, unary_job_run, j), 0);
  struct pollfd p = {lfd, POLLIN, 0};
  assert_int_equal(poll(&p, 1, 20000), 1);
  int fd = accept(lfd, NULL, NULL);
  assert_true(fd >= 0);
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  write_all(fd, preface, sizeof preface);
  write_all(fd, answer, answer_len); /* the call is id 1 */
  uv_thread_join(&t);                /* bounded by the call's 20 s timeout */
  close(fd);
  close(lfd);
}

/* A unary call has exactly one response (PROTOCOL.md §6.1): OK without it, or a MESSAGE frame
 * before the STATUS, end the call INTERNAL at the client. */
static void unary_needs_exactly_one_response(void **state) {
  (void)state;
  uint8_t buf[256];
  size_t fixed = crpc__status_fixed_size(0, 0, 0);
  crpc__hdr_encode(buf, CRPC__F_STATUS, 0, 1, (uint32_t)fixed);
  crpc__status_fixed_encode(buf + CRPC__HDR_LEN, CRPC_STATUS_OK, NULL, 0, NULL, 0, NULL, 0);
  unary_job j;
  unary_against(buf, CRPC__HDR_LEN + fixed, &j);
  assert_int_equal(j.code, CRPC_STATUS_INTERNAL);
  assert_non_null(strstr(j.message, "without a response"));
  assert_false(j.has_response);

  Itest__EchoReply reply = ITEST__ECHO_REPLY__INIT;
  reply.seq = 1;
  size_t n = itest__echo_reply__get_packed_size(&reply), len = 0;
  crpc__hdr_encode(buf, CRPC__F_MESSAGE, 0, 1, (uint32_t)n);
  itest__echo_reply__pack(&reply, buf + CRPC__HDR_LEN);
  len = CRPC__HDR_LEN + n;
  crpc__hdr_encode(buf + len, CRPC__F_STATUS, CRPC__FL_MESSAGE, 1, (uint32_t)(fixed + n));
  crpc__status_fixed_encode(buf + len + CRPC__HDR_LEN, CRPC_STATUS_OK, NULL, 0, NULL, 0, NULL, 0);
  itest__echo_reply__pack(&reply, buf + len + CRPC__HDR_LEN + fixed);
  len += CRPC__HDR_LEN + fixed + n;
  unary_against(buf, len, &j);
  assert_int_equal(j.code, CRPC_STATUS_INTERNAL);
  assert_false(j.has_response);
}

/* Reads until the server closes the connection (bounded); returns what came before. */
static void read_to_eof(int fd, crpc__decoder *dec, answer *a) {
  memset(a, 0, sizeof *a);
  uint64_t until = itest_now_ms() + 20000;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int64_t left = (int64_t)(until - itest_now_ms());
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) fail_msg("connection not closed within 20 s");
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return;
    if (dec && crpc__decoder_feed(dec, buf, (size_t)n, on_frame, a) < 0) dec = NULL;
  }
}

/* The server keeps the client's deadline: a held call is answered DEADLINE_EXCEEDED by the
 * server itself, and the handler sees the call cancelled. */
static void server_enforces_deadline(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  int fd = raw_connect(itest_server_endpoint(srv));
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  write_all(fd, preface, sizeof preface);
  crpc__decoder dec;
  crpc__decoder_init(&dec, 1u << 20, 1);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.hold = 1;
  uint8_t msg[64];
  size_t len = itest__echo_request__pack(&req, msg);
  uint64_t t0 = itest_now_ms();
  send_call_timeout(fd, 1, "itest.Echo/Echo", msg, len, 100);
  answer a;
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 1);
  assert_int_equal(a.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(itest_now_ms() - t0 >= 95);
  uv_loop_t loop;
  uv_loop_init(&loop);
  uint64_t until = itest_now_ms() + 20000;
  while (atomic_load(&itest_server_stats(srv)->cancel_seen) < 1 && itest_now_ms() < until)
    itest_run_for(&loop, 5);
  itest_loop_finish(&loop);
  assert_int_equal(atomic_load(&itest_server_stats(srv)->cancel_seen), 1);
  crpc__decoder_free(&dec);
  close(fd);
  itest_server_stop(srv);
}

/* A CALL with the accepting side's parity is a protocol error: GOAWAY PROTOCOL_ERROR, close. */
static void wrong_call_id_parity_is_protocol_error(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  int fd = raw_connect(itest_server_endpoint(srv));
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  write_all(fd, preface, sizeof preface);
  crpc__decoder dec;
  crpc__decoder_init(&dec, 1u << 20, 1);
  uint8_t msg[64];
  size_t len;
  good_request(msg, &len, 1);
  send_call(fd, 2, "itest.Echo/Echo", msg, len);
  answer a;
  read_to_eof(fd, &dec, &a);
  assert_true(a.goaway);
  assert_int_equal(a.goaway_code, CRPC__GOAWAY_PROTOCOL_ERROR);
  assert_false(a.got);
  crpc__decoder_free(&dec);
  close(fd);
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.received, 0);
}

/* Not a crpc peer (an HTTP request): closed at once, nothing served. */
static void http_request_is_refused(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  int fd = raw_connect(itest_server_endpoint(srv));
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  write_all(fd, (const uint8_t *)http, strlen(http));
  answer a;
  read_to_eof(fd, NULL, &a);
  close(fd);
  /* and the server still serves real clients */
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(srv)), 0);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 3, buf, sizeof buf);
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 20000};
  assert_int_equal(itest__echo__echo__call(ch, &req, &resp, &st, &opts), 0);
  assert_int_equal(st.code, CRPC_STATUS_OK);
  assert_int_equal(resp->seq, 3);
  itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
  crpc_channel_close(ch, NULL, NULL);
  itest_server_stop(srv);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* the raw socket may be written after the server closed it */
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(garbage_request_then_good_call),
      ITEST_PER_TRANSPORT(server_enforces_deadline),
      ITEST_PER_TRANSPORT(wrong_call_id_parity_is_protocol_error),
      ITEST_PER_TRANSPORT(http_request_is_refused),
      ITEST_PER_TRANSPORT(status_texts_are_utf8),
      cmocka_unit_test(unary_needs_exactly_one_response),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
