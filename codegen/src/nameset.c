#include "nameset.h"

#include <stdint.h>
#include <string.h>

static size_t hash(const char *s)
{
  uint64_t h = 1469598103934665603u; /* FNV-1a */

  for (; *s != '\0'; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211u;
  }
  return (size_t)h;
}

static const char **find_slot(const char **slots, size_t cap, const char *name)
{
  size_t i = hash(name) & (cap - 1);

  while (slots[i] != NULL && strcmp(slots[i], name) != 0)
    i = (i + 1) & (cap - 1);
  return &slots[i];
}

int nameset_init(nameset *s, arena *a)
{
  s->arena = a;
  s->cap = 64;
  s->count = 0;
  s->slots = arena_alloc(a, s->cap * sizeof(*s->slots));
  return s->slots != NULL ? 0 : -1;
}

/* The old table stays in the arena until the arena is freed: the plugin's sets are small. */
static int grow(nameset *s)
{
  size_t cap = s->cap * 2;
  const char **slots = arena_alloc(s->arena, cap * sizeof(*slots));

  if (slots == NULL)
    return -1;
  for (size_t i = 0; i < s->cap; i++)
    if (s->slots[i] != NULL)
      *find_slot(slots, cap, s->slots[i]) = s->slots[i];
  s->slots = slots;
  s->cap = cap;
  return 0;
}

int nameset_add(nameset *s, const char *name)
{
  const char **slot;

  if ((s->count + 1) * 2 > s->cap && grow(s) != 0)
    return -1;
  slot = find_slot(s->slots, s->cap, name);
  if (*slot != NULL)
    return 0;
  *slot = arena_strdup(s->arena, name);
  if (*slot == NULL)
    return -1;
  s->count++;
  return 1;
}

int nameset_has(const nameset *s, const char *name)
{
  return *find_slot(s->slots, s->cap, name) != NULL;
}

const char *nameset_claim(nameset *s, const char *base)
{
  size_t n = strlen(base);
  char *name = arena_alloc(s->arena, n + 1);

  if (name == NULL)
    return NULL;
  memcpy(name, base, n);
  while (nameset_has(s, name)) {
    char *longer = arena_alloc(s->arena, ++n + 1);

    if (longer == NULL)
      return NULL;
    memcpy(longer, name, n - 1);
    longer[n - 1] = '_';
    name = longer;
  }
  if (nameset_add(s, name) < 0)
    return NULL;
  return *find_slot(s->slots, s->cap, name);
}
