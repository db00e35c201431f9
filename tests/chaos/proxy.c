/* The resetting TCP relay; see proxy.h. */
#include "proxy.h"

#include <stdlib.h>

typedef struct pair {
  struct pair *prev, *next;
  chaos_proxy *px;
  uv_tcp_t down, up; /* down: the client's connection; up: ours to the server */
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  int handles;       /* open handles, freed at 0 */
  int closing;
} pair;

struct chaos_proxy {
  uv_loop_t *loop;
  uv_tcp_t listener;
  struct sockaddr_in upstream;
  pair pairs;        /* list head */
  size_t accepted;
  int closing, handles;
  void (*close_cb)(void *);
  void *close_ud;
};

typedef struct write_req {
  uv_write_t req;
  char *base;
} write_req;

static void proxy_maybe_done(chaos_proxy *px) {
  if (px->closing && px->handles == 0 && px->pairs.next == &px->pairs) {
    void (*cb)(void *) = px->close_cb;
    void *ud = px->close_ud;
    free(px);
    if (cb) cb(ud);
  }
}

static void pair_closed(uv_handle_t *h) {
  pair *p = h->data;
  if (--p->handles > 0) return;
  chaos_proxy *px = p->px;
  p->prev->next = p->next;
  p->next->prev = p->prev;
  free(p);
  proxy_maybe_done(px);
}

static void close_one(uv_tcp_t *t, int reset) {
  if (uv_is_closing((uv_handle_t *)t)) return;
  if (!reset || uv_tcp_close_reset(t, pair_closed) != 0) uv_close((uv_handle_t *)t, pair_closed);
}

static void pair_kill(pair *p, int reset) { /* idempotent */
  p->closing = 1;
  close_one(&p->down, reset);
  close_one(&p->up, reset);
}

static uv_tcp_t *other_side(pair *p, uv_stream_t *s) {
  return s == (uv_stream_t *)&p->down ? &p->up : &p->down;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  char *b = malloc(65536);
  *buf = uv_buf_init(b, b ? 65536 : 0);
}

static void on_written(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  pair *p = req->data;
  free(w->base);
  free(w);
  if (status < 0) pair_kill(p, 1);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  pair_kill(req->data, 0);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  pair *p = s->data;
  if (n <= 0) free(buf->base);
  if (n == 0) return;
  if (n == UV_EOF) { /* pass the orderly close on once what is queued has been written */
    uv_read_stop(s);
    p->shutdown.data = p;
    if (uv_shutdown(&p->shutdown, (uv_stream_t *)other_side(p, s), on_shutdown) != 0) pair_kill(p, 0);
    return;
  }
  if (n < 0) {
    pair_kill(p, 1);
    return;
  }
  write_req *w = malloc(sizeof *w);
  if (!w) {
    free(buf->base);
    pair_kill(p, 1);
    return;
  }
  w->base = buf->base;
  w->req.data = p;
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)other_side(p, s), &out, 1, on_written) != 0) {
    free(w->base);
    free(w);
    pair_kill(p, 1);
  }
}

static void on_upstream(uv_connect_t *req, int status) {
  pair *p = req->data;
  if (p->closing) return;
  if (status < 0) {
    pair_kill(p, 1);
    return;
  }
  uv_read_start((uv_stream_t *)&p->down, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&p->up, on_alloc, on_read);
}

static void on_connection(uv_stream_t *l, int status) {
  chaos_proxy *px = l->data;
  if (status < 0) return;
  pair *p = calloc(1, sizeof *p);
  if (!p) return;
  p->px = px;
  uv_tcp_init(px->loop, &p->down);
  uv_tcp_init(px->loop, &p->up);
  p->down.data = p->up.data = p->connect.data = p;
  p->handles = 2;
  p->next = px->pairs.next;
  p->prev = &px->pairs;
  p->next->prev = p;
  px->pairs.next = p;
  if (uv_accept(l, (uv_stream_t *)&p->down) != 0) {
    pair_kill(p, 0);
    return;
  }
  px->accepted++;
  uv_tcp_nodelay(&p->down, 1);
  uv_tcp_nodelay(&p->up, 1);
  if (uv_tcp_connect(&p->connect, &p->up, (const struct sockaddr *)&px->upstream, on_upstream) != 0)
    pair_kill(p, 1);
}

int chaos_proxy_start(chaos_proxy **out, uv_loop_t *loop, int upstream_port, int *port_out) {
  chaos_proxy *px = calloc(1, sizeof *px);
  if (!px) return UV_ENOMEM;
  px->loop = loop;
  px->pairs.next = px->pairs.prev = &px->pairs;
  uv_ip4_addr("127.0.0.1", upstream_port, &px->upstream);
  struct sockaddr_in any;
  uv_ip4_addr("127.0.0.1", 0, &any);
  uv_tcp_init(loop, &px->listener);
  px->listener.data = px;
  px->handles = 1;
  int rc = uv_tcp_bind(&px->listener, (const struct sockaddr *)&any, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&px->listener, 512, on_connection);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (rc == 0) rc = uv_tcp_getsockname(&px->listener, (struct sockaddr *)&ss, &len);
  if (rc != 0) {
    chaos_proxy_close(px, NULL, NULL);
    return rc;
  }
  *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  *out = px;
  return 0;
}

size_t chaos_proxy_reset_all(chaos_proxy *px) {
  size_t n = 0;
  for (pair *p = px->pairs.next; p != &px->pairs; p = p->next)
    if (!p->closing) {
      pair_kill(p, 1);
      n++;
    }
  return n;
}

size_t chaos_proxy_accepted(const chaos_proxy *px) { return px->accepted; }

static void listener_closed(uv_handle_t *h) {
  chaos_proxy *px = h->data;
  px->handles--;
  proxy_maybe_done(px);
}

void chaos_proxy_close(chaos_proxy *px, void (*cb)(void *ud), void *ud) {
  px->closing = 1;
  px->close_cb = cb;
  px->close_ud = ud;
  chaos_proxy_reset_all(px);
  uv_close((uv_handle_t *)&px->listener, listener_closed);
}
