#include "wire/metadata.h"

#include <string.h>

#include "crpc/error.h"
#include "wire/frame.h"

#define CRPC__MD_ENTRY_OVERHEAD 32

static int key_ok(const char *k, size_t n) {
  if (n == 0 || n > 255) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = k[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

static int is_bin(const char *k, size_t n) { return n >= 4 && memcmp(k + n - 4, "-bin", 4) == 0; }

int crpc_metadata_valid(const char *key, const uint8_t *value, size_t value_len) {
  if (!key || (value_len && !value)) return 0;
  size_t n = strlen(key);
  if (!key_ok(key, n) || (n >= 5 && memcmp(key, "crpc-", 5) == 0)) return 0;
  if (value_len > UINT32_MAX) return 0;
  if (!is_bin(key, n))
    for (size_t i = 0; i < value_len; i++)
      if (value[i] < 0x20 || value[i] > 0x7E) return 0;
  return 1;
}

size_t crpc_metadata_entry_size(const char *key, size_t value_len) {
  return (key ? strlen(key) : 0) + value_len + CRPC__MD_ENTRY_OVERHEAD;
}

const crpc_metadata *crpc_metadata_find(const crpc_metadata *md, size_t count, const char *key) {
  if (!md || !key) return NULL;
  for (size_t i = 0; i < count; i++)
    if (md[i].key && strcmp(md[i].key, key) == 0) return &md[i];
  return NULL;
}

int crpc__md_measure(const crpc_metadata *md, size_t count, size_t *block_len, size_t *counted) {
  size_t len = 0, sum = 0;
  if (count && !md) return CRPC_EINVAL;
  for (size_t i = 0; i < count; i++) {
    if (!crpc_metadata_valid(md[i].key, md[i].value, md[i].value_len)) return CRPC_EINVAL;
    size_t kl = strlen(md[i].key);
    if (md[i].value_len > SIZE_MAX / 4 || len > SIZE_MAX / 4) return CRPC_EINVAL;
    len += crpc__md_entry_size(kl, md[i].value_len);
    sum += kl + md[i].value_len + CRPC__MD_ENTRY_OVERHEAD;
  }
  *block_len = len;
  *counted = sum;
  return 0;
}

uint8_t *crpc__md_write(uint8_t *p, const crpc_metadata *md, size_t count) {
  for (size_t i = 0; i < count; i++)
    p = crpc__md_entry_encode(p, md[i].key, (uint16_t)strlen(md[i].key), md[i].value,
                              (uint32_t)md[i].value_len);
  return p;
}

int crpc__md_decode(const uint8_t *block, uint32_t len, size_t limit,
                    void *(*alloc)(void *ud, size_t n), void *ud, crpc_metadata **out,
                    size_t *count) {
  *out = NULL;
  *count = 0;
  if (len == 0) return 0;
  uint32_t pos = 0;
  crpc__md_entry e;
  size_t n = 0, bytes = 0, counted = 0;
  int r;
  while ((r = crpc__md_next(block, len, &pos, &e)) == 1) {
    n++;
    bytes += (size_t)e.key_len + 1 + e.value_len;
    counted += (size_t)e.key_len + e.value_len + CRPC__MD_ENTRY_OVERHEAD;
  }
  if (r < 0) return CRPC_EINVAL;
  if (counted > limit) return CRPC__MD_TOO_BIG;
  crpc_metadata *arr = alloc(ud, n * sizeof *arr + bytes);
  if (!arr) return CRPC_ENOMEM;
  char *strings = (char *)(arr + n);
  pos = 0;
  for (size_t i = 0; i < n; i++) {
    crpc__md_next(block, len, &pos, &e);
    memcpy(strings, e.key, e.key_len);
    strings[e.key_len] = '\0';
    arr[i].key = strings;
    strings += e.key_len + 1;
    if (e.value_len) memcpy(strings, e.value, e.value_len);
    arr[i].value = (const uint8_t *)strings;
    arr[i].value_len = e.value_len;
    strings += e.value_len;
  }
  *out = arr;
  *count = n;
  return 0;
}
