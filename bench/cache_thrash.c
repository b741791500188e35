/* cache_thrash: active false sharing -- threads that each allocate, write
 * and free small objects of their own.
 *
 * Follows the allocation shape of cache-thrash from the Hoard benchmarks
 * (Berger et al., ASPLOS 2000; also in mimalloc-bench): T threads, each
 * repeatedly allocating one CACHE_OBJ_SIZE-byte object, writing and reading
 * every byte of it CACHE_REPS times, and freeing it (cache_loop.h). Nothing
 * is shared between the threads; an allocator that hands two threads
 * objects on the same cache line makes each write fight for that line, and
 * the run gets many times slower. Own code (cache_loop.h has the loop).
 *
 * The total work is fixed: OBJECTS objects in all, split over the threads.
 * Each object's contents depend on (thread, serial number) only; a thread
 * checks its object after the last pass (bytes written by anybody else show
 * up as errors), and the per-thread checksums of the final contents are
 * combined in thread order, so the checksum depends on T but not on
 * scheduling.
 *
 * Usage: cache_thrash THREADS [OBJECTS]   (default sized for ~1 s with glibc
 *                                          at 2 threads on a 2-core machine)
 * Output: one RESULT line, see bench_common.h. Exit 1 if any check failed.
 */
#include "cache_loop.h"

#include <pthread.h>

#define MAX_THREADS 256u
#define DEFAULT_OBJECTS 200000ULL

typedef struct {
    char pad0[128];
    unsigned idx;
    uint64_t objects;
    uint64_t checksum;
    uint64_t errors;
    char pad1[128];
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    for (uint64_t i = 0; i < w->objects; i++) {
        unsigned char *p = malloc(CACHE_OBJ_SIZE);
        if (!p)
            bench_oom("malloc", CACHE_OBJ_SIZE);
        if (((uintptr_t)p & 7u) != 0)
            w->errors++;
        if (cache_work(p, bench_tag(((uint64_t)w->idx << 40) ^ i), &w->checksum) != 0) {
            if (w->errors < 10)
                fprintf(stderr, "cache_thrash: thread %u: object %p overwritten\n", w->idx,
                        (void *)p);
            w->errors++;
        }
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: cache_thrash THREADS [OBJECTS]";
    unsigned nthreads = (unsigned)bench_parse_arg(argc, argv, 1, 0, MAX_THREADS, usage);
    uint64_t objects = bench_parse_arg(argc, argv, 2, DEFAULT_OBJECTS, 0, usage);
    if (argc > 3) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    static worker w[MAX_THREADS];
    static pthread_t th[MAX_THREADS];
    for (unsigned i = 0; i < nthreads; i++) {
        w[i].idx = i;
        w[i].objects = objects / nthreads + (i < objects % nthreads ? 1u : 0u);
        w[i].checksum = BENCH_FNV_OFFSET;
    }

    double t0 = bench_now();
    for (unsigned i = 0; i < nthreads; i++) {
        int rc = pthread_create(&th[i], NULL, worker_main, &w[i]);
        if (rc != 0) {
            fprintf(stderr, "cache_thrash: pthread_create: %s\n", strerror(rc));
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
    bench_report_threads("cache_thrash", nthreads, objects, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
