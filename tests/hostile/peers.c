/* Raw peers of the hostile test: see peers.h. */
#include "peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

int hp_connect(int port, int rcvbuf) {
  char ep[64];
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
  int fd = ts_connect_fd(ep, rcvbuf);
  if (fd < 0) fail_msg("connect %s: %s", ep, strerror(-fd));
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) fail_msg("O_NONBLOCK: %s", strerror(errno));
  return fd;
}

ssize_t hp_send(int fd, const void *data, size_t len) {
  for (;;) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  }
}

int hp_drain(int fd, hp_inbox *box) {
  uint8_t scratch[4096];
  for (;;) {
    size_t room = HP_IN_CAP - box->len;
    uint8_t *dst = room ? box->data + box->len : scratch;
    size_t want = room ? room : sizeof scratch;
    ssize_t n = recv(fd, dst, want, 0);
    if (n == 0) return 1;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    }
    if (room)
      box->len += (size_t)n;
    else
      box->dropped += (size_t)n;
  }
}

size_t hp_preface(uint8_t *out) {
  crpc__preface_encode(out);
  return CRPC__PREFACE_LEN;
}

size_t hp_call(uint8_t *out, size_t cap, uint32_t id, const char *method, const uint8_t *msg,
               size_t msg_len) {
  size_t ml = strlen(method);
  size_t fixed = crpc__call_fixed_size(ml, 0);
  size_t n = CRPC__HDR_LEN + fixed + msg_len;
  if (n > cap) return 0;
  crpc__hdr_encode(out, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, id,
                   (uint32_t)(fixed + msg_len));
  uint8_t *p = crpc__call_fixed_encode(out + CRPC__HDR_LEN, method, (uint16_t)ml, 0, NULL, 0);
  if (msg_len) memcpy(p, msg, msg_len);
  return n;
}

size_t hp_ping(uint8_t *out, uint64_t opaque) {
  crpc__hdr_encode(out, CRPC__F_PING, 0, 0, CRPC__PING_LEN);
  for (int i = 0; i < CRPC__PING_LEN; i++) out[CRPC__HDR_LEN + i] = (uint8_t)(opaque >> (8 * i));
  return CRPC__HDR_LEN + CRPC__PING_LEN;
}

static void scan_frame(const crpc__frame *f, hp_seen *seen) {
  seen->frames++;
  if (f->type == CRPC__F_STATUS) seen->statuses++;
  if (f->type == CRPC__F_PING && (f->flags & CRPC__FL_ACK)) seen->ping_acks++;
  if (f->type == CRPC__F_GOAWAY) {
    crpc__goaway g;
    assert_int_equal(crpc__goaway_decode(f, &g), 0);
    seen->goaways++;
    seen->goaway_code = g.code;
  }
}

void hp_scan(const hp_inbox *box, hp_seen *seen) {
  memset(seen, 0, sizeof *seen);
  if (box->len < CRPC__PREFACE_LEN) {
    seen->truncated = box->len > 0;
    return;
  }
  uint8_t minor;
  seen->preface_ok = crpc__preface_decode(box->data, &minor) == 0;
  size_t pos = CRPC__PREFACE_LEN;
  while (box->len - pos >= CRPC__HDR_LEN) {
    crpc__frame f;
    assert_int_equal(crpc__hdr_decode(box->data + pos, &f), 0);
    if (box->len - pos - CRPC__HDR_LEN < f.length) break;
    f.payload = box->data + pos + CRPC__HDR_LEN;
    scan_frame(&f, seen);
    pos += CRPC__HDR_LEN + f.length;
  }
  seen->truncated = pos != box->len;
}
