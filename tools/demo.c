#define _POSIX_C_SOURCE 200809L
/* hardheap-demo: a small allocation-heavy workload (a word-frequency table
 * over generated text, with strings, a growing hash table and realloc'd
 * buffers) that prints its result and, with HARDHEAP_SHOW_STATS=1, the
 * allocator's statistics at exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry_s {
  char* word;
  size_t count;
  struct entry_s* next;
} entry_t;

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static size_t hash(const char* s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

int main(int argc, char** argv) {
  size_t words = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
  size_t nbuckets = 64, nentries = 0;
  entry_t** buckets = calloc(nbuckets, sizeof(*buckets));
  char* text = NULL;
  size_t text_len = 0, text_cap = 0;
  if (buckets == NULL) return 1;
  for (size_t i = 0; i < words; i++) {
    char word[32];
    size_t len = 2 + next_random() % 10;
    for (size_t k = 0; k < len; k++) word[k] = (char)('a' + next_random() % 6);
    word[len] = 0;
    /* the text buffer grows by realloc, like a string builder */
    if (text_len + len + 2 > text_cap) {
      text_cap = text_cap ? text_cap * 2 : 256;
      char* t = realloc(text, text_cap);
      if (t == NULL) return 1;
      text = t;
    }
    memcpy(text + text_len, word, len);
    text_len += len;
    text[text_len++] = ' ';
    if (text_len > (1u << 20)) text_len = 0; /* keep a sliding window */

    size_t b = hash(word) % nbuckets;
    entry_t* e = buckets[b];
    while (e != NULL && strcmp(e->word, word) != 0) e = e->next;
    if (e == NULL) {
      e = malloc(sizeof(*e));
      if (e == NULL || (e->word = strdup(word)) == NULL) return 1;
      e->count = 0;
      e->next = buckets[b];
      buckets[b] = e;
      if (++nentries > nbuckets * 2) { /* rehash */
        size_t nb = nbuckets * 4;
        entry_t** nbk = calloc(nb, sizeof(*nbk));
        if (nbk == NULL) return 1;
        for (size_t j = 0; j < nbuckets; j++) {
          for (entry_t *x = buckets[j], *nx; x != NULL; x = nx) {
            nx = x->next;
            size_t h = hash(x->word) % nb;
            x->next = nbk[h];
            nbk[h] = x;
          }
        }
        free(buckets);
        buckets = nbk;
        nbuckets = nb;
      }
    }
    e->count++;
  }
  size_t total = 0, distinct = 0;
  for (size_t j = 0; j < nbuckets; j++) {
    for (entry_t *x = buckets[j], *nx; x != NULL; x = nx) {
      nx = x->next;
      total += x->count;
      distinct++;
      free(x->word);
      free(x);
    }
  }
  free(buckets);
  free(text);
  printf("hardheap-demo: %zu words, %zu distinct\n", total, distinct);
  return total == words ? 0 : 1;
}
