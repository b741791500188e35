/* glibc_simple: tight single-threaded malloc/free loops of small sizes.
 *
 * Follows the allocation shape of glibc's bench-malloc-simple (glibc
 * benchtests): batches of 25 to 1600 blocks of 16 to 128 bytes, allocated
 * in a tight loop and freed in the same order (glibc_loop.h). This measures
 * little but the allocator's fast paths -- size class lookup, the thread
 * cache or free list, and whatever a hardened allocator adds per call --
 * with warm caches and a tiny live set. Own code.
 *
 * One iteration is one round over the whole grid (8500 mallocs and frees);
 * every block is checked before it is freed, and the checksum mixes what
 * was read back, in order.
 *
 * Usage: glibc_simple [rounds]   (default sized for ~1 s with glibc)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "glibc_loop.h"

#define DEFAULT_ROUNDS 1000ULL

int main(int argc, char **argv) {
    uint64_t rounds = bench_parse_iters(argc, argv, DEFAULT_ROUNDS);
    static unsigned char *ptrs[GLIBC_MAX_N];
    uint64_t serial = 0, errors = 0, checksum = BENCH_FNV_OFFSET;

    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++)
        errors += glibc_round(ptrs, 0, &serial, &checksum);
    double t1 = bench_now();

    if (errors)
        fprintf(stderr, "glibc_simple: %" PRIu64 " blocks damaged or misaligned\n", errors);
    bench_report("glibc_simple", rounds, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
