/* hardheap: randomness: the process cookie, free-list keys, shuffle seeds.
 *
 * Threat: an attacker who reads a few free blocks (a use-after-free read,
 * or stale links in a block handed out) learns outputs of the generator.
 * If the generator could be run backwards or forwards from its outputs,
 * that would give every other page's keys and every allocation order. So
 * keys and shuffle seeds come from ChaCha20 (RFC 8439, 20 rounds) keyed
 * per heap from getrandom: learning outputs tells nothing about the key or
 * the other outputs. Keys and shuffle seeds are separate streams (nonce 0
 * and 1), so shuffling that leaks its order reveals nothing about keys.
 * The shuffle itself runs a fast generator from one ChaCha output per
 * batch of new blocks (page.c:page_extend): an attacker who inverts it
 * learns that batch only. */
#include "internal.h"

#include <time.h>

uintptr_t hhi_process_cookie;
static bool seed_is_weak;

/* ---- ChaCha20 -----------------------------------------------------------------*/
static inline uint32_t rotl32(uint32_t x, unsigned r) {
  return (x << r) | (x >> (32 - r));
}

#define QUARTER_ROUND(x, a, b, c, d) \
  do {                               \
    x[a] += x[b]; x[d] = rotl32(x[d] ^ x[a], 16); \
    x[c] += x[d]; x[b] = rotl32(x[b] ^ x[c], 12); \
    x[a] += x[b]; x[d] = rotl32(x[d] ^ x[a], 8);  \
    x[c] += x[d]; x[b] = rotl32(x[b] ^ x[c], 7);  \
  } while (0)

/* One 64-byte block of the stream into ctx->output; advances the counter. */
static void chacha_block(hh_chacha_t* ctx) {
  uint32_t x[16];
  memcpy(x, ctx->input, sizeof(x));
  for (int i = 0; i < 10; i++) {
    QUARTER_ROUND(x, 0, 4, 8, 12);
    QUARTER_ROUND(x, 1, 5, 9, 13);
    QUARTER_ROUND(x, 2, 6, 10, 14);
    QUARTER_ROUND(x, 3, 7, 11, 15);
    QUARTER_ROUND(x, 0, 5, 10, 15);
    QUARTER_ROUND(x, 1, 6, 11, 12);
    QUARTER_ROUND(x, 2, 7, 8, 13);
    QUARTER_ROUND(x, 3, 4, 9, 14);
  }
  for (int i = 0; i < 16; i++) ctx->output[i] = x[i] + ctx->input[i];
  if (++ctx->input[12] == 0) ctx->input[13]++;  /* 64-bit block counter (words 12-13) */
  ctx->used = 0;
}

/* key: 8 words; stream: the nonce, one stream per purpose. */
static void chacha_init(hh_chacha_t* ctx, const uint32_t key[8], uint32_t stream) {
  static const uint32_t sigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};  /* "expand 32-byte k" */
  memcpy(ctx->input, sigma, sizeof(sigma));
  memcpy(ctx->input + 4, key, 8 * sizeof(uint32_t));
  ctx->input[12] = 0;
  ctx->input[13] = 0;
  ctx->input[14] = stream;
  ctx->input[15] = 0x68687265;  /* "hhre": fixes the nonce's last word */
  ctx->used = 16;               /* empty: the first draw makes a block */
}

uint64_t hhi_chacha_next(hh_chacha_t* ctx) {
  if (ctx->used + 2 > 16) chacha_block(ctx);
  uint64_t v = (uint64_t)ctx->output[ctx->used] | ((uint64_t)ctx->output[ctx->used + 1] << 32);
  ctx->output[ctx->used] = ctx->output[ctx->used + 1] = 0;  /* drawn words do not linger */
  ctx->used += 2;
  return v;
}

/* ---- seeding ------------------------------------------------------------------*/

/* 32 bytes of key from the kernel; without getrandom (very old kernel,
 * seccomp) a weak key from the clock and addresses, said once in verbose. */
static void random_key(uint32_t key[8]) {
  if (hhi_os_random_bytes(key, 8 * sizeof(uint32_t))) return;
  seed_is_weak = true;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ hhi_thread_id() ^ (uintptr_t)key;
  for (int i = 0; i < 8; i += 2) {
    uint64_t v = hhi_random_next(&state);
    key[i] = (uint32_t)v;
    key[i + 1] = (uint32_t)(v >> 32);
  }
}

/* A key drawn from another stream: independent of it, no system call. */
static void key_from(uint32_t key[8], hh_chacha_t* from) {
  for (int i = 0; i < 8; i += 2) {
    uint64_t v = hhi_chacha_next(from);
    key[i] = (uint32_t)v;
    key[i + 1] = (uint32_t)(v >> 32);
  }
}

void hhi_chacha_derive(hh_chacha_t* ctx, hh_chacha_t* from, uint32_t stream) {
  uint32_t key[8];
  key_from(key, from);
  chacha_init(ctx, key, stream);
  memset(key, 0, sizeof(key));
}

void hhi_random_heap_init(hh_heap_t* heap, hh_heap_t* from) {
  uint32_t key[8];
  if (from != NULL) key_from(key, &from->keys_stream);  /* a first-class heap: from its thread's heap */
  else random_key(key);
  chacha_init(&heap->keys_stream, key, 0);
  chacha_init(&heap->shuffle_stream, key, 1);
  memset(key, 0, sizeof(key));
}

void hhi_random_init(void) {
  hh_chacha_t ctx;
  uint32_t key[8];
  random_key(key);
  chacha_init(&ctx, key, 2);
  hhi_process_cookie = (uintptr_t)hhi_chacha_next(&ctx) | 1;
  memset(&ctx, 0, sizeof(ctx));
  memset(key, 0, sizeof(key));
  if (seed_is_weak) hhi_verbose_message("getrandom failed: keys and cookies are seeded from the clock (weak)");
}

void hhi_page_init_keys(hh_heap_t* heap, hh_page_t* page) {
  if (HH_ENCODE_FREELIST) {
    page->keys[0] = hhi_chacha_next(&heap->keys_stream);
    /* odd: multiplying by it is a bijection (block.h:hhi_link_mask) */
    page->keys[1] = hhi_chacha_next(&heap->keys_stream) | 1;
  } else {
    page->keys[0] = page->keys[1] = 0;
  }
}

/* Random mapping addresses: a window of HH_RANDOM_WINDOW bytes placed at
 * random (1 TiB-aligned) between 1 TiB and 64 TiB, once per process, then
 * every mapping at a random address inside it. The window is far from the
 * kernel's own mmap area and the stack near the top of the 47-bit space, and
 * above the program and its brk heap; keeping the mappings in one window
 * rather than all over 63 TiB keeps the page tables (and those of an
 * AddressSanitizer shadow) compact, which fork has to copy. */
#define HH_RANDOM_WINDOW ((uintptr_t)256 << 30)
static _Atomic(uintptr_t) random_window;

uintptr_t hhi_random_address(hh_chacha_t* stream, size_t alignment) {
  uint64_t r;
  if (stream != NULL) r = hhi_chacha_next(stream);
  else if (!hhi_os_random_bytes(&r, sizeof(r))) return 0;
  uintptr_t window = atomic_load_explicit(&random_window, memory_order_relaxed);
  if (window == 0) {
    uintptr_t pick = ((uintptr_t)1 << 40) * (1 + (uintptr_t)((r >> 32) % 63));
    uintptr_t expected = 0;
    window = atomic_compare_exchange_strong(&random_window, &expected, pick) ? pick : expected;
  }
  uintptr_t a = window + (uintptr_t)(r % (HH_RANDOM_WINDOW - HH_SEGMENT_SIZE * 4));
  return a & ~((uintptr_t)alignment - 1);
}

uint64_t hhi_random_shuffle_seed(hh_heap_t* heap) {
  return hhi_chacha_next(&heap->shuffle_stream);
}
