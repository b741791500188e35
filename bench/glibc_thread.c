/* glibc_thread: the glibc_simple loop in T threads at once.
 *
 * The same batches as glibc_simple (glibc_loop.h, after glibc's
 * bench-malloc-simple: 25 to 1600 blocks of 16 to 128 bytes allocated in a
 * tight loop, then freed in order), run by T threads at the same time, each
 * with blocks of its own -- the situation of glibc's bench-malloc-thread,
 * which runs its loop in several threads to measure per-thread arenas and
 * caches against shared state. There are no cross-thread frees: an
 * allocator that scales runs this twice as fast with 2 threads on 2 cores
 * as with 1. Own code.
 *
 * The total work is fixed: ROUNDS rounds of the grid in all, split over the
 * threads; each thread has its own checksum, combined in thread order, so
 * the checksum depends on T but not on scheduling.
 *
 * Usage: glibc_thread THREADS [ROUNDS]   (default sized for ~1 s with glibc
 *                                         at 2 threads on a 2-core machine)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "glibc_loop.h"

#include <pthread.h>

#define MAX_THREADS 256u
#define DEFAULT_ROUNDS 2000ULL

typedef struct {
    char pad0[128];
    unsigned idx;
    uint64_t rounds;
    uint64_t checksum;
    uint64_t errors;
    unsigned char *ptrs[GLIBC_MAX_N];
    char pad1[128];
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    uint64_t serial = 0;
    for (uint64_t r = 0; r < w->rounds; r++)
        w->errors += glibc_round(w->ptrs, w->idx, &serial, &w->checksum);
    return NULL;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: glibc_thread THREADS [ROUNDS]";
    unsigned nthreads = (unsigned)bench_parse_arg(argc, argv, 1, 0, MAX_THREADS, usage);
    uint64_t rounds = bench_parse_arg(argc, argv, 2, DEFAULT_ROUNDS, 0, usage);
    if (argc > 3) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    worker *w = calloc(nthreads, sizeof *w);
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!w || !th)
        bench_oom("calloc", nthreads * sizeof *w);
    for (unsigned i = 0; i < nthreads; i++) {
        w[i].idx = i;
        w[i].rounds = rounds / nthreads + (i < rounds % nthreads ? 1u : 0u);
        w[i].checksum = BENCH_FNV_OFFSET;
    }

    double t0 = bench_now();
    for (unsigned i = 0; i < nthreads; i++) {
        int rc = pthread_create(&th[i], NULL, worker_main, &w[i]);
        if (rc != 0) {
            fprintf(stderr, "glibc_thread: pthread_create: %s\n", strerror(rc));
            return 2;
        }
    }
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    double t1 = bench_now();

    uint64_t checksum = BENCH_FNV_OFFSET, errors = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        checksum = bench_mix_u64(checksum, w[i].checksum);
        errors += w[i].errors;
    }
    if (errors)
        fprintf(stderr, "glibc_thread: %" PRIu64 " blocks damaged or misaligned\n", errors);
    free(w);
    free(th);
    bench_report_threads("glibc_thread", nthreads, rounds, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
