#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE 16384u

struct arena_block {
  arena_block *next;
  size_t used;
  size_t cap;
  alignas(max_align_t) unsigned char data[];
};

static size_t round_up(size_t n)
{
  size_t a = alignof(max_align_t);
  return (n + a - 1) / a * a;
}

static arena_block *new_block(arena *a, size_t need)
{
  size_t cap = need > BLOCK_SIZE ? need : BLOCK_SIZE;
  arena_block *b;

  if (cap > SIZE_MAX - sizeof(*b))
    return NULL;
  b = calloc(1, sizeof(*b) + cap);
  if (b == NULL)
    return NULL;
  b->cap = cap;
  b->next = a->head;
  a->head = b;
  return b;
}

void *arena_alloc(arena *a, size_t n)
{
  arena_block *b = a->head;
  void *p;

  if (n == 0 || n > SIZE_MAX / 2)
    return NULL;
  n = round_up(n);
  if (b == NULL || b->cap - b->used < n) {
    b = new_block(a, n);
    if (b == NULL)
      return NULL;
  }
  p = b->data + b->used;
  b->used += n;
  return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
  char *p = arena_alloc(a, n + 1);

  if (p != NULL)
    memcpy(p, s, n);
  return p;
}

char *arena_strdup(arena *a, const char *s)
{
  return arena_strndup(a, s, strlen(s));
}

void arena_free(arena *a)
{
  while (a->head != NULL) {
    arena_block *next = a->head->next;
    free(a->head);
    a->head = next;
  }
}
