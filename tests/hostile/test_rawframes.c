/* Hand-made frames over a raw socket (codec from runtime/src/wire/frame.h): a CALL whose request does
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

#include "wire/frame.h"
#include "itest.h"
#include "rawpeer.h"
#include "stream.h"

/* Connects a blocking socket to a server's endpoint. */
static int raw_connect(const char *ep) {
  int fd = ts_connect_fd(ep, 0);
  if (fd < 0) fail_msg("connect %s: %s", ep, strerror(-fd));
  return fd;
}

/* Connects to ep as a raw client: the preface sent, dec ready for the server's frames. */
static int raw_open(const char *ep, crpc__decoder *dec) {
  int fd = raw_connect(ep);
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  ts_send_all(fd, preface, sizeof preface);
  crpc__decoder_init(dec, 1u << 20, 1);
  return fd;
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
  ts_send_all(fd, buf, total);
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
  uint32_t goaway_last; /* last_call_id of the last GOAWAY */
  int ping_acks;
  int messages;         /* MESSAGE frames (a stream's responses) */
} answer;

static int on_frame(void *ud, const crpc__frame *f) {
  answer *a = ud;
  if (f->type == CRPC__F_GOAWAY) {
    crpc__goaway g;
    assert_int_equal(crpc__goaway_decode(f, &g), 0);
    a->goaway = 1;
    a->goaway_code = g.code;
    a->goaway_last = g.last_call_id;
    return 0;
  }
  if (f->type == CRPC__F_PING && (f->flags & CRPC__FL_ACK)) {
    a->ping_acks++;
    return CRPC__DEC_PAUSE;
  }
  if (f->type == CRPC__F_MESSAGE) a->messages++;
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

/* Reads until one STATUS arrived, or with pings set a PING ACK (bounded: 10 s). */
static void read_until(int fd, crpc__decoder *dec, answer *a, int pings) {
  memset(a, 0, sizeof *a);
  int rc = crpc__decoder_feed(dec, NULL, 0, on_frame, a); /* frames kept from a pause */
  assert_true(rc >= 0);
  uint64_t until = ts_now_ms() + 10000;
  while (!a->got && !(pings && a->ping_acks)) {
    struct pollfd p = {fd, POLLIN, 0};
    int64_t left = (int64_t)(until - ts_now_ms());
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) fail_msg("no answer within 10 s");
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) fail_msg("connection closed by the server (goaway %d)", a->goaway);
    rc = crpc__decoder_feed(dec, buf, (size_t)n, on_frame, a);
    assert_true(rc >= 0);
  }
}

static void read_answer(int fd, crpc__decoder *dec, answer *a) {
  read_until(fd, dec, a, 0);
  if (!a->got) fail_msg("a PING ACK came where a STATUS was expected");
}

static void good_request(uint8_t *out, size_t *len, uint32_t seq) {
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, seq, buf, sizeof buf);
  *len = itest__echo_request__pack(&req, out);
}

static void garbage_request_then_good_call(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  crpc__decoder dec;
  int fd = raw_open(itest_server_endpoint(srv), &dec);

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
    send_call(fd, id, "itest.Test/Echo", garbage[i].bytes, garbage[i].len);
    read_answer(fd, &dec, &a);
    assert_int_equal(a.id, id);
    assert_int_equal(a.code, CRPC_STATUS_INTERNAL);
    assert_null(a.reply);
    id += 2;

    uint8_t msg[64];
    size_t len;
    good_request(msg, &len, (uint32_t)(100 + i));
    send_call(fd, id, "itest.Test/Echo", msg, len);
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
  send_call(fd, id, "itest.Test/Nope", msg, len);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, id);
  assert_int_equal(a.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_string_equal(a.text, "unknown method itest.Test/Nope");
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
  crpc__decoder dec;
  int fd = raw_open(itest_server_endpoint(srv), &dec);
  uint8_t msg[128];
  size_t len;
  good_request(msg, &len, 1);
  answer a;

  /* A served method's name, then a NUL and more: not the served method. */
  static const char nul_name[] = "itest.Test/Echo\0junk";
  send_call_n(fd, 1, nul_name, sizeof nul_name - 1, msg, len, 0);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 1);
  assert_int_equal(a.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_string_equal(a.text, "unknown method itest.Test/Echo\\x00junk");
  assert_int_equal(a.text_len, strlen(a.text)); /* no NUL inside */

  static const char bad_name[] = "itest.Test/\xff\xc3(\\\xe2\x82\xac";
  send_call_n(fd, 3, bad_name, sizeof bad_name - 1, msg, len, 0);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 3);
  assert_int_equal(a.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_string_equal(a.text, "unknown method itest.Test/\\xff\\xc3(\\x5c\\xe2\\x82\\xac");

  /* A handler's text: ill-formed sequences become U+FFFD, well-formed ones stay. */
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 5, buf, sizeof buf);
  req.fail_code = CRPC_STATUS_INVALID_ARGUMENT;
  req.fail_message = "caf\xc3\xa9 \xff|\xe2\x82 \xc0\xaf.";
  len = itest__echo_request__pack(&req, msg);
  send_call(fd, 5, "itest.Test/Echo", msg, len);
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
  itest__test__echo__call(ch, &req, &resp, &st, &opts);
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
  ts_send_all(fd, preface, sizeof preface);
  ts_send_all(fd, answer, answer_len); /* the call is id 1 */
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
  uint64_t until = ts_now_ms() + 20000;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int64_t left = (int64_t)(until - ts_now_ms());
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
  crpc__decoder dec;
  int fd = raw_open(itest_server_endpoint(srv), &dec);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.hold = 1;
  uint8_t msg[64];
  size_t len = itest__echo_request__pack(&req, msg);
  uint64_t t0 = ts_now_ms();
  send_call_timeout(fd, 1, "itest.Test/Echo", msg, len, 100);
  answer a;
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 1);
  assert_int_equal(a.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(ts_now_ms() - t0 >= 95);
  uv_loop_t loop;
  uv_loop_init(&loop);
  uint64_t until = ts_now_ms() + 20000;
  while (atomic_load(&itest_server_stats(srv)->cancel_seen) < 1 && ts_now_ms() < until)
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
  crpc__decoder dec;
  int fd = raw_open(itest_server_endpoint(srv), &dec);
  uint8_t msg[64];
  size_t len;
  good_request(msg, &len, 1);
  send_call(fd, 2, "itest.Test/Echo", msg, len);
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
  ts_send_all(fd, (const uint8_t *)http, strlen(http));
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
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, &opts), 0);
  assert_int_equal(st.code, CRPC_STATUS_OK);
  assert_int_equal(resp->seq, 3);
  itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
  crpc_channel_close(ch, NULL, NULL);
  itest_server_stop(srv);
}

static int raw_start(const itest_transport *t, itest_server **srv, crpc__decoder *dec) {
  *srv = itest_server_start(t, NULL);
  return raw_open(itest_server_endpoint(*srv), dec);
}

static void send_goaway(int fd, uint32_t last_id, uint32_t code) {
  uint8_t buf[CRPC__HDR_LEN + 64];
  size_t n = crpc__goaway_size(4);
  crpc__hdr_encode(buf, CRPC__F_GOAWAY, 0, 0, (uint32_t)n);
  crpc__goaway_encode(buf + CRPC__HDR_LEN, last_id, code, "done", 4);
  ts_send_all(fd, buf, CRPC__HDR_LEN + n);
}

static void echo_ok(int fd, crpc__decoder *dec, uint32_t id, uint32_t seq) {
  uint8_t msg[64];
  size_t len;
  good_request(msg, &len, seq);
  send_call(fd, id, "itest.Test/Echo", msg, len);
  answer a;
  read_answer(fd, dec, &a);
  assert_int_equal(a.id, id);
  assert_int_equal(a.code, CRPC_STATUS_OK);
  assert_non_null(a.reply);
  itest__echo_reply__free_unpacked(a.reply, NULL);
}

/* A client's GOAWAY NO_ERROR (PROTOCOL.md §6.7): its call in flight is still served, a CALL it
 * sends after its GOAWAY is refused UNAVAILABLE without running, and the server closes the
 * connection once no call is left. With no call in progress it closes at once. */
static void client_goaway_closes_when_calls_end(void **state) {
  itest_server *srv;
  crpc__decoder dec;
  int fd = raw_start(ITEST_TRANSPORT(state), &srv, &dec);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  req.delay_ms = 300; /* still in progress when the GOAWAY and the next CALL arrive */
  uint8_t msg[64];
  size_t len = itest__echo_request__pack(&req, msg);
  send_call(fd, 1, "itest.Test/Echo", msg, len);
  send_goaway(fd, 0, CRPC__GOAWAY_NO_ERROR);
  size_t len3;
  good_request(msg, &len3, 3);
  send_call(fd, 3, "itest.Test/Echo", msg, len3);
  answer a;
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 3);
  assert_int_equal(a.code, CRPC_STATUS_UNAVAILABLE);
  assert_null(a.reply);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 1);
  assert_int_equal(a.code, CRPC_STATUS_OK);
  assert_non_null(a.reply);
  assert_int_equal(a.reply->seq, 1);
  itest__echo_reply__free_unpacked(a.reply, NULL);
  read_to_eof(fd, &dec, &a); /* fails the test unless the server closes */
  assert_false(a.got);
  crpc__decoder_free(&dec);
  close(fd);

  /* Nothing in progress: the GOAWAY closes the connection at once. */
  fd = raw_open(itest_server_endpoint(srv), &dec);
  echo_ok(fd, &dec, 1, 5);
  send_goaway(fd, 0, CRPC__GOAWAY_NO_ERROR);
  read_to_eof(fd, &dec, &a);
  assert_false(a.got);
  assert_false(a.goaway);
  crpc__decoder_free(&dec);
  close(fd);
  itest_final fin;
  itest_server_stop_get(srv, &fin);
  assert_int_equal(fin.received, 2); /* call 1 of each connection; never the refused call 3 */
}

/* A malformed CALL is not processed (PROTOCOL.md §6.7, §10): the GOAWAY PROTOCOL_ERROR names the
 * last well-formed CALL, whether the CALL's payload or its frame header is malformed. */
static void malformed_call_is_not_processed(void **state) {
  for (int shape = 0; shape < 2; shape++) {
    itest_server *srv;
    crpc__decoder dec;
    int fd = raw_start(ITEST_TRANSPORT(state), &srv, &dec);
    echo_ok(fd, &dec, 1, 1);
    uint8_t msg[64];
    size_t len;
    good_request(msg, &len, 3);
    const char *method = "itest.Test/Echo";
    size_t mlen = strlen(method);
    size_t fixed = crpc__call_fixed_size(mlen, 0);
    uint8_t frame[256];
    crpc__hdr_encode(frame, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, 3,
                     (uint32_t)(fixed + len));
    uint8_t *p = crpc__call_fixed_encode(frame + CRPC__HDR_LEN, method, (uint16_t)mlen, 0, NULL, 0);
    memcpy(p, msg, len);
    if (shape == 0)
      crpc__be32_put(frame + CRPC__HDR_LEN + 2 + mlen + 4, 1000); /* metadata_len overruns */
    else
      frame[6] = 1; /* reserved header byte */
    ts_send_all(fd, frame, CRPC__HDR_LEN + fixed + len);
    answer a;
    read_to_eof(fd, &dec, &a);
    assert_true(a.goaway);
    assert_int_equal(a.goaway_code, CRPC__GOAWAY_PROTOCOL_ERROR);
    assert_false(a.got);
    if (a.goaway_last != 1) fail_msg("shape %d: last_call_id %u, want 1", shape, a.goaway_last);
    crpc__decoder_free(&dec);
    close(fd);
    itest_final fin;
    itest_server_stop_get(srv, &fin);
    assert_int_equal(fin.received, 1);
  }
}

/* ---- Streams: a server of itest.Test on its own thread --------------------------------------- */

typedef struct st_server {
  crpc_server *srv;
  uv_thread_t thread;
  int port;
  char endpoint[64];
  st_counters counters;
} st_server;

static void st_server_thread(void *arg) { assert_int_equal(crpc_server_run(arg), 0); }

static st_server *st_server_start(void) {
  st_server *s = calloc(1, sizeof *s);
  assert_non_null(s);
  assert_int_equal(crpc_server_new(&s->srv, NULL), 0);
  assert_int_equal(crpc_server_listen(s->srv, "tcp://127.0.0.1:0", &s->port), 0);
  assert_int_equal(itest__test__crpc_register(s->srv, &st_service_handlers, &s->counters), 0);
  snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:%d", s->port);
  assert_int_equal(uv_thread_create(&s->thread, st_server_thread, s->srv), 0);
  return s;
}

static void st_server_stop(st_server *s) {
  crpc_server_stop(s->srv);
  assert_int_equal(uv_thread_join(&s->thread), 0);
  crpc_server_close(s->srv, NULL, NULL);
  free(s);
}

static void send_frame(int fd, uint8_t type, uint8_t flags, uint32_t id, const void *payload,
                       size_t len) {
  uint8_t *buf = malloc(CRPC__HDR_LEN + len + 1);
  assert_non_null(buf);
  crpc__hdr_encode(buf, type, flags, id, (uint32_t)len);
  if (len) memcpy(buf + CRPC__HDR_LEN, payload, len);
  ts_send_all(fd, buf, CRPC__HDR_LEN + len);
  free(buf);
}

/* A stream's CALL: no message, no END (flags 0), no metadata, no timeout. */
static void send_stream_call(int fd, uint32_t id, const char *method) {
  uint8_t p[256];
  size_t mlen = strlen(method);
  size_t n = crpc__call_fixed_size(mlen, 0);
  crpc__call_fixed_encode(p, method, (uint16_t)mlen, 0, NULL, 0);
  send_frame(fd, CRPC__F_CALL, 0, id, p, n);
}

static void send_window(int fd, uint32_t id, uint32_t inc) {
  uint8_t p[4];
  crpc__be32_put(p, inc);
  send_frame(fd, CRPC__F_WINDOW, 0, id, p, 4);
}

static void send_ping(int fd) {
  uint8_t p[CRPC__PING_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
  send_frame(fd, CRPC__F_PING, 0, 0, p, sizeof p);
}

static int st_connect(st_server *s, crpc__decoder *dec) {
  return raw_open(s->endpoint, dec);
}

/* A flood request: count responses of size bytes (the server stops at its window), and a
 * payload of payload_len bytes. Returns the packed length. */
static size_t flood_request(uint8_t **out, int count, int size, size_t payload_len) {
  Itest__OutputRequest req = ITEST__OUTPUT_REQUEST__INIT;
  Itest__Blob blob = ITEST__BLOB__INIT;
  req.flood_count = count;
  req.flood_size = size;
  uint8_t *data = NULL;
  if (payload_len) {
    data = calloc(1, payload_len);
    assert_non_null(data);
    blob.data.data = data;
    blob.data.len = payload_len;
    req.payload = &blob;
  }
  size_t n = itest__output_request__get_packed_size(&req);
  *out = malloc(n + 1);
  assert_non_null(*out);
  itest__output_request__pack(&req, *out);
  free(data);
  return n;
}

/* PROTOCOL.md §6.8: a window is at most 2^31-1. A client's WINDOW that takes the server's send
 * window exactly to the maximum is accepted; one more byte of credit is a flow-control error of
 * that call alone (STATUS INTERNAL, the connection goes on). The server's window is known
 * exactly on a Sink call (client streaming: the server sends no message), and on a server
 * stream blocked on its window a single maximal WINDOW overflows it. */
static void window_past_maximum_ends_the_call(void **state) {
  (void)state;
  st_server *s = st_server_start();
  crpc__decoder dec;
  int fd = st_connect(s, &dec);
  answer a;

  send_stream_call(fd, 1, "itest.Test/Sink"); /* the handler holds it */
  send_window(fd, 1, UINT32_C(2147483647) - 65536);     /* to exactly 2^31-1 */
  send_ping(fd);
  read_until(fd, &dec, &a, 1);
  assert_int_equal(a.ping_acks, 1);
  assert_false(a.got); /* no STATUS: the call is alive */
  send_window(fd, 1, 1);                                 /* one byte past the maximum */
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 1);
  assert_int_equal(a.code, CRPC_STATUS_INTERNAL);
  assert_non_null(strstr(a.text, "2^31-1"));

  /* A server stream writing as fast as its window allows, then one maximal WINDOW. */
  uint8_t *req;
  size_t len = flood_request(&req, 100000, 10, 0);
  send_stream_call(fd, 3, "itest.Test/StreamingOutput");
  send_frame(fd, CRPC__F_MESSAGE, CRPC__FL_END, 3, req, len);
  free(req);
  send_ping(fd); /* answered once the request was read: the flood is under way */
  read_until(fd, &dec, &a, 1);
  assert_false(a.got);
  send_window(fd, 3, UINT32_MAX);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 3);
  assert_int_equal(a.code, CRPC_STATUS_INTERNAL);
  assert_false(a.goaway);

  /* The connection goes on. */
  send_ping(fd);
  read_until(fd, &dec, &a, 1);
  assert_int_equal(a.ping_acks, 1);
  crpc__decoder_free(&dec);
  close(fd);
  st_server_stop(s);
}

/* PROTOCOL.md §6.2: a second request on a server-streaming call is answered INTERNAL whatever
 * the window, also when it was sent without window (here the client's first request, 70,000
 * bytes, took its own window below zero and it sent the second before any credit came back):
 * the second-request check comes first, so the answer does not depend on when the callee
 * returned credit. */
static void second_request_without_window_is_internal(void **state) {
  (void)state;
  st_server *s = st_server_start();
  crpc__decoder dec;
  int fd = st_connect(s, &dec);
  answer a;
  uint8_t *req;
  size_t len = flood_request(&req, 100000, 10, 70000);
  assert_true(len + 12 > 65536); /* the first request alone overdraws the initial window */
  send_stream_call(fd, 1, "itest.Test/StreamingOutput");
  send_frame(fd, CRPC__F_MESSAGE, 0, 1, req, len);
  send_frame(fd, CRPC__F_MESSAGE, 0, 1, NULL, 0); /* the second request, without window */
  free(req);
  read_answer(fd, &dec, &a);
  assert_int_equal(a.id, 1);
  assert_int_equal(a.code, CRPC_STATUS_INTERNAL);
  assert_non_null(strstr(a.text, "more than one request"));
  assert_false(a.goaway);
  crpc__decoder_free(&dec);
  close(fd);
  st_server_stop(s);
}

/* A fake server on its own thread for the caller's side of a stream: it answers the client's
 * CALL with a WINDOW of UINT32_MAX (past the 2^31-1 maximum, PROTOCOL.md §6.8), then reads until
 * the client's CANCEL for that call (or EOF, bounded). */
typedef struct fake_srv {
  int lfd, port;
  uv_thread_t thread;
  uint32_t call_id;
  int cancelled;
} fake_srv;

static int fake_frame(void *ud, const crpc__frame *f) {
  fake_srv *fs = ud;
  if (f->type == CRPC__F_CALL && !fs->call_id) fs->call_id = f->call_id;
  if (f->type == CRPC__F_CANCEL && fs->call_id && f->call_id == fs->call_id) fs->cancelled = 1;
  return 0;
}

static void fake_thread(void *arg) {
  fake_srv *fs = arg;
  int fd = accept(fs->lfd, NULL, NULL);
  if (fd < 0) return;
  uint8_t preface[CRPC__PREFACE_LEN];
  crpc__preface_encode(preface);
  ts_send_all(fd, preface, sizeof preface);
  crpc__decoder dec;
  crpc__decoder_init(&dec, 1u << 20, 1);
  int sent_window = 0;
  uint64_t until = ts_now_ms() + 10000;
  while (!fs->cancelled && ts_now_ms() < until) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    if (crpc__decoder_feed(&dec, buf, (size_t)n, fake_frame, fs) < 0) break;
    if (fs->call_id && !sent_window) {
      uint8_t w[CRPC__HDR_LEN + 4];
      crpc__hdr_encode(w, CRPC__F_WINDOW, 0, fs->call_id, 4);
      crpc__be32_put(w + CRPC__HDR_LEN, UINT32_MAX);
      ts_send_all(fd, w, sizeof w);
      sent_window = 1;
    }
  }
  crpc__decoder_free(&dec);
  close(fd);
}

/* The caller's side of §6.8: a callee's WINDOW that would take the client's send window above
 * 2^31-1 ends the call with INTERNAL, and the client sends CANCEL. */
static void client_window_past_maximum_cancels(void **state) {
  (void)state;
  fake_srv fs = {0};
  fs.lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fs.lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fs.lfd, 4), 0);
  socklen_t al = sizeof a;
  assert_int_equal(getsockname(fs.lfd, (struct sockaddr *)&a, &al), 0);
  fs.port = ntohs(a.sin_port);
  assert_int_equal(uv_thread_create(&fs.thread, fake_thread, &fs), 0);

  char ep[64];
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", fs.port);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, ep), 0);
  crpc_call_opts opts = {.timeout_ms = 5000};
  crpc_stream *st;
  assert_int_equal(crpc_channel_stream_open(ch, ITEST__TEST__SINK__METHOD, &opts, &st), 0);
  crpc_status status = {0};
  assert_int_equal(crpc_stream_finish_wait(st, &status), 0);
  if (status.code != CRPC_STATUS_INTERNAL)
    fail_msg("status %d (%s), want INTERNAL", (int)status.code,
             status.message ? status.message : "");
  assert_non_null(strstr(status.message, "2^31-1"));
  crpc_status_reset(&status);
  assert_int_equal(uv_thread_join(&fs.thread), 0);
  assert_true(fs.cancelled);
  crpc_channel_close(ch, NULL, NULL);
  close(fs.lfd);
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
      ITEST_PER_TRANSPORT(client_goaway_closes_when_calls_end),
      ITEST_PER_TRANSPORT(malformed_call_is_not_processed),
      cmocka_unit_test(window_past_maximum_ends_the_call),
      cmocka_unit_test(second_request_without_window_is_internal),
      cmocka_unit_test(client_window_past_maximum_cancels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
