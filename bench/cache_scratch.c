/* cache_scratch: passive false sharing -- small objects allocated by one
 * thread, freed by workers, whose own objects then take their place.
 *
 * Follows the allocation shape of cache-scratch from the Hoard benchmarks
 * (Berger et al., ASPLOS 2000; also in mimalloc-bench): the main thread
 * allocates one CACHE_OBJ_SIZE-byte object per worker, one after the other
 * (so they are likely to share a cache line), and hands object i to worker
 * i. Each worker checks and frees the object it was given and then, like
 * cache_thrash, repeatedly allocates an object, writes and reads every byte
 * of it CACHE_REPS times and frees it (cache_loop.h). An allocator that gives
 * the memory a worker freed straight back to that worker makes the workers
 * write into neighbouring bytes of the main thread's old cache line -- false
 * sharing that no worker asked for. Own code.
 *
 * The total work is fixed: OBJECTS objects in all, split over the workers.
 * Object contents depend on (worker, serial number) only; every object is
 * checked (the handed-over ones too) and the per-worker checksums are
 * combined in worker order, so the checksum depends on T but not on
 * scheduling.
 *
 * Usage: cache_scratch THREADS [OBJECTS]   (default sized for ~1 s with glibc
 *                                           at 2 threads on a 2-core machine)
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
    unsigned char *given; /* allocated by the main thread */
    uint64_t checksum;
    uint64_t errors;
    char pad1[128];
} worker;

static uint64_t given_tag(unsigned idx) {
    return bench_tag(0xABCDEF0000000000ULL ^ idx);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    uint64_t want = given_tag(w->idx), got;
    memcpy(&got, w->given, sizeof got);
    if (got != want) {
        fprintf(stderr, "cache_scratch: worker %u: handed-over object %p overwritten\n", w->idx,
                (void *)w->given);
        w->errors++;
    }
    w->checksum = bench_mix_u64(w->checksum, got);
    free(w->given);
    for (uint64_t i = 0; i < w->objects; i++) {
        unsigned char *p = malloc(CACHE_OBJ_SIZE);
        if (!p)
            bench_oom("malloc", CACHE_OBJ_SIZE);
        if (((uintptr_t)p & 7u) != 0)
            w->errors++;
        if (cache_work(p, bench_tag(((uint64_t)w->idx << 40) ^ i), &w->checksum) != 0) {
            if (w->errors < 10)
                fprintf(stderr, "cache_scratch: worker %u: object %p overwritten\n", w->idx,
                        (void *)p);
            w->errors++;
        }
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: cache_scratch THREADS [OBJECTS]";
    unsigned nthreads = (unsigned)bench_parse_arg(argc, argv, 1, 0, MAX_THREADS, usage);
    uint64_t objects = bench_parse_arg(argc, argv, 2, DEFAULT_OBJECTS, 0, usage);
    if (argc > 3) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    static worker w[MAX_THREADS];
    static pthread_t th[MAX_THREADS];

    double t0 = bench_now();
    for (unsigned i = 0; i < nthreads; i++) {
        w[i].idx = i;
        w[i].objects = objects / nthreads + (i < objects % nthreads ? 1u : 0u);
        w[i].checksum = BENCH_FNV_OFFSET;
        w[i].given = malloc(CACHE_OBJ_SIZE);
        if (!w[i].given)
            bench_oom("malloc", CACHE_OBJ_SIZE);
        uint64_t tag = given_tag(i);
        memcpy(w[i].given, &tag, sizeof tag);
    }
    for (unsigned i = 0; i < nthreads; i++) {
        int rc = pthread_create(&th[i], NULL, worker_main, &w[i]);
        if (rc != 0) {
            fprintf(stderr, "cache_scratch: pthread_create: %s\n", strerror(rc));
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
    bench_report_threads("cache_scratch", nthreads, objects, t1 - t0, checksum, errors);
    return errors ? 1 : 0;
}
