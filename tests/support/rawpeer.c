/* The raw peer: see rawpeer.h. */
#include "rawpeer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>


static void grow(uint8_t **buf, size_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : 4096;
  while (c < need) c *= 2;
  *buf = realloc(*buf, c);
  assert_non_null(*buf);
  *cap = c;
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  assert_true(fl >= 0);
  assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

void ts_raw_from_fd(ts_raw *r, int fd) {
  memset(r, 0, sizeof *r);
  r->fd = fd;
  r->reading = 1;
  set_nonblock(fd);
}

void ts_raw_connect(ts_raw *r, int port, int rcvbuf) {
  char ep[64];
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
  int rc = ts_raw_connect_endpoint(r, ep, rcvbuf);
  if (rc != 0) fail_msg("connect %s: %s", ep, strerror(-rc));
}

int ts_connect_fd(const char *endpoint, int rcvbuf) {
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  if (strncmp(endpoint, "unix:", 5) == 0) {
    struct sockaddr_un *u = (struct sockaddr_un *)&ss;
    const char *path = endpoint + 5;
    size_t n = strlen(path);
    assert_true(n > 0 && n < sizeof u->sun_path);
    u->sun_family = AF_UNIX;
    memcpy(u->sun_path, path, n);
    if (path[0] == '@') u->sun_path[0] = '\0'; /* abstract: the name without a terminator */
    sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
  } else {
    assert_true(strncmp(endpoint, "tcp://", 6) == 0);
    const char *host = endpoint + 6, *colon;
    char h[64];
    if (host[0] == '[') {
      const char *close_br = strchr(host, ']');
      assert_non_null(close_br);
      assert_true((size_t)(close_br - host - 1) < sizeof h);
      memcpy(h, host + 1, (size_t)(close_br - host - 1));
      h[close_br - host - 1] = '\0';
      colon = close_br + 1;
    } else {
      colon = strrchr(host, ':');
      assert_non_null(colon);
      assert_true((size_t)(colon - host) < sizeof h);
      memcpy(h, host, (size_t)(colon - host));
      h[colon - host] = '\0';
    }
    assert_true(*colon == ':');
    int port = atoi(colon + 1);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
      a4->sin_family = AF_INET;
      a4->sin_port = htons((uint16_t)port);
      sl = sizeof *a4;
    } else {
      assert_int_equal(inet_pton(AF_INET6, h, &a6->sin6_addr), 1);
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons((uint16_t)port);
      sl = sizeof *a6;
    }
  }
  int fd = socket(ss.ss_family, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  if (rcvbuf > 0) assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  if (ss.ss_family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

int ts_raw_connect_endpoint(ts_raw *r, const char *endpoint, int rcvbuf) {
  memset(r, 0, sizeof *r);
  r->fd = -1;
  int fd = ts_connect_fd(endpoint, rcvbuf);
  if (fd < 0) return fd;
  ts_raw_from_fd(r, fd);
  return 0;
}

void ts_send_all(int fd, const void *data, size_t n) {
  const uint8_t *p = data;
  while (n) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) fail_msg("send: %s", k < 0 ? strerror(errno) : "nothing sent");
    p += k;
    n -= (size_t)k;
  }
}

int ts_listen_fd(int rcvbuf, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Set before the handshake, so accepted sockets inherit it. */
  if (rcvbuf > 0) assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0);
  socklen_t sl = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
  *port = ntohs(a.sin_port);
  set_nonblock(fd);
  return fd;
}

void ts_raw_send(ts_raw *r, const void *data, size_t len) {
  grow(&r->out, &r->out_cap, r->out_len + len);
  memcpy(r->out + r->out_len, data, len);
  r->out_len += len;
  ts_raw_pump(r);
}

void ts_raw_pump(ts_raw *r) {
  if (r->fd < 0) return;
  while (r->out_len && !r->eof) {
    ssize_t n = send(r->fd, r->out, r->out_len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      r->eof = 1; /* reset by the peer */
      break;
    }
    memmove(r->out, r->out + n, r->out_len - (size_t)n);
    r->out_len -= (size_t)n;
  }
  while (r->reading && !r->eof) {
    grow(&r->in, &r->in_cap, r->in_len + 65536);
    ssize_t n = recv(r->fd, r->in + r->in_len, 65536, 0);
    if (n > 0) {
      r->in_len += (size_t)n;
    } else if (n == 0) {
      r->eof = 1;
    } else {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) r->eof = 1;
      break;
    }
  }
}

void ts_raw_close(ts_raw *r) {
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  free(r->in);
  free(r->out);
  r->in = r->out = NULL;
  r->in_len = r->in_cap = r->out_len = r->out_cap = 0;
}

int ts_pred_raw_eof(void *p) {
  ts_raw *r = p;
  ts_raw_pump(r);
  return r->eof;
}

void ts_raw_send_preface(ts_raw *r) {
  uint8_t p[CRPC__PREFACE_LEN];
  crpc__preface_encode(p);
  ts_raw_send(r, p, sizeof p);
}

void ts_raw_send_frame(ts_raw *r, uint8_t type, uint8_t flags, uint32_t id, const void *payload,
                        size_t len) {
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, type, flags, id, (uint32_t)len);
  grow(&r->out, &r->out_cap, r->out_len + sizeof h + len);
  memcpy(r->out + r->out_len, h, sizeof h);
  if (len) memcpy(r->out + r->out_len + sizeof h, payload, len);
  r->out_len += sizeof h + len;
  ts_raw_pump(r);
}

void ts_raw_send_call(ts_raw *r, uint32_t id, const char *method, uint32_t timeout_ms,
                       const void *msg, size_t msg_len) {
  size_t ml = strlen(method);
  size_t fixed = crpc__call_fixed_size(ml, 0);
  uint8_t *p = malloc(fixed + msg_len + 1);
  assert_non_null(p);
  uint8_t *end = crpc__call_fixed_encode(p, method, (uint16_t)ml, timeout_ms, NULL, 0);
  assert_int_equal((size_t)(end - p), fixed);
  if (msg_len) memcpy(end, msg, msg_len);
  ts_raw_send_frame(r, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, id, p, fixed + msg_len);
  free(p);
}

void ts_raw_send_status(ts_raw *r, uint32_t id, uint32_t code, const char *text,
                         const void *msg, size_t msg_len) {
  size_t tl = text ? strlen(text) : 0;
  size_t fixed = crpc__status_fixed_size(tl, 0, 0);
  uint8_t *p = malloc(fixed + msg_len + 1);
  assert_non_null(p);
  uint8_t *end = crpc__status_fixed_encode(p, code, text, (uint32_t)tl, NULL, 0, NULL, 0);
  assert_int_equal((size_t)(end - p), fixed);
  if (msg_len) memcpy(end, msg, msg_len);
  ts_raw_send_frame(r, CRPC__F_STATUS, msg ? CRPC__FL_MESSAGE : 0, id, p, fixed + msg_len);
  free(p);
}

void ts_raw_send_goaway(ts_raw *r, uint32_t last_id, uint32_t code, const char *text) {
  size_t tl = strlen(text);
  size_t n = crpc__goaway_size(tl);
  uint8_t *p = malloc(n);
  assert_non_null(p);
  crpc__goaway_encode(p, last_id, code, text, (uint32_t)tl);
  ts_raw_send_frame(r, CRPC__F_GOAWAY, 0, 0, p, n);
  free(p);
}

int ts_raw_next(ts_raw *r, size_t *pos, crpc__frame *f) {
  if (*pos == 0) {
    if (r->in_len < CRPC__PREFACE_LEN) return 0;
    uint8_t minor;
    assert_int_equal(crpc__preface_decode(r->in, &minor), 0);
    *pos = CRPC__PREFACE_LEN;
  }
  if (r->in_len - *pos < CRPC__HDR_LEN) return 0;
  assert_int_equal(crpc__hdr_decode(r->in + *pos, f), 0);
  if (r->in_len - *pos - CRPC__HDR_LEN < f->length) return 0;
  f->payload = r->in + *pos + CRPC__HDR_LEN;
  *pos += CRPC__HDR_LEN + f->length;
  return 1;
}

int ts_raw_find_status(ts_raw *r, uint32_t id, uint32_t *code) {
  ts_raw_pump(r);
  size_t pos = 0;
  crpc__frame f;
  while (ts_raw_next(r, &pos, &f)) {
    if (f.type != CRPC__F_STATUS || f.call_id != id) continue;
    crpc__status_hdr sh;
    assert_int_equal(crpc__status_decode(&f, &sh), 0);
    *code = sh.code;
    return 1;
  }
  return 0;
}

void ts_fake_open(ts_fake *f) {
  memset(f, 0, sizeof *f);
  f->fd = ts_listen_fd(0, &f->port);
}

void ts_fake_pump(ts_fake *f) {
  for (;;) {
    int fd = accept(f->fd, NULL, NULL);
    if (fd < 0) break;
    assert_true(f->naccepted < TS_FAKE_MAX_CONNS);
    ts_raw_from_fd(&f->conns[f->naccepted++], fd);
  }
  for (int i = 0; i < f->naccepted; i++) ts_raw_pump(&f->conns[i]);
}

void ts_fake_close(ts_fake *f) {
  for (int i = 0; i < f->naccepted; i++) ts_raw_close(&f->conns[i]);
  close(f->fd);
  f->fd = -1;
}
