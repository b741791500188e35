/* hardheap: tracking hooks for memory checkers.
 *
 * Called at the moments of a block's life (block.h) and where the allocator
 * itself reads or writes memory it has handed out or holds free, so that a
 * checker (AddressSanitizer, Valgrind memcheck) can be told in one place
 * each. With no tracking mode built in they compile to nothing. */
#ifndef HH_TRACK_H
#define HH_TRACK_H

#include <stdbool.h>
#include <stddef.h>

/* p (inside block) was handed out for a request of size bytes, of which
 * usable may be used; zero: its contents are zero. */
static inline void hhi_track_malloc(const void* p, size_t size, size_t usable, bool zero) {
  (void)p; (void)size; (void)usable; (void)zero;
}
/* p, handed out inside block (block_size bytes), was freed. */
static inline void hhi_track_free(const void* p, const void* block, size_t block_size) {
  (void)p; (void)block; (void)block_size;
}
/* The block at p changed size in place (realloc). */
static inline void hhi_track_resize(const void* p, size_t old_size, size_t new_size) {
  (void)p; (void)old_size; (void)new_size;
}

#endif /* HH_TRACK_H */
