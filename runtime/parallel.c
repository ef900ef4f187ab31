/* runtime/parallel.c: the generated loop kernels and GEMMs on every core.
 *
 * Generated code (both CPU backends) outlines every loop kernel whose outer iterations
 * are independent (kir_loop_parallel) into fn(ctx, lo, hi) and calls rt_parallel_for:
 * the job's i0 are cut into chunks that the caller and a small persistent pool of
 * threads - 1 workers claim one at a time. Loop kernels give the same results at every
 * thread count and every claim order: every point is computed by exactly one thread, in
 * the same arithmetic.
 *
 * GEMMs run on the same threads (rt_sgemm): each thread calls a single-threaded
 * OpenBLAS sgemm on blocks of C's rows (or columns, when C has few rows; or slices of
 * k, summed afterwards, for a weight gradient's deep k). With
 * OpenBLAS's own threads, which spin for a long while after every GEMM, the two pools
 * took turns on the same cores and the scheduler's switching between them cost a
 * tenth of a training step; now the pool is every thread the program has.
 *
 * Workers wait for the next job spinning for a short while (the steps of a batch come
 * back to back), yielding the core now and then so that another process is not
 * starved, then sleep on a condition variable. */
#ifndef _POSIX_C_SOURCE /* the build defines it; the tests compile this file alone with -std=c11 */
#define _POSIX_C_SOURCE 200809L
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "runtime/rt.h"

enum {
    MAX_THREADS = 64,
    SPIN_NS = 200000,     /* a worker's wait before it sleeps: covers the gap between two kernels */
};
/* Below this many points (times the reduction's length) a kernel runs on the caller
 * alone: waking a worker costs a few microseconds. */
#define RT_PARALLEL_MIN_WORK 16384
/* A job is cut into this many chunks a thread (fewer when it has fewer iterations), which
 * the threads claim one at a time: a thread that the host slows down, or that wakes late,
 * takes fewer. */
#define RT_CHUNKS_PER_THREAD 16

static struct {
    int threads;              /* --threads: the caller and threads - 1 workers */
    int nworkers;             /* started */
    pthread_t th[MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;          /* the job's number; workers wait for it to change */
    atomic_int done;          /* workers finished with the current job */
    atomic_bool busy;         /* a job is running (a second caller runs serially) */
    bool quit;
    int sleepers;
    unsigned start_gen;       /* gen when the workers were started: their first job is the next */
    /* the current job */
    RtParallelFn fn;
    void *ctx;
    int64_t n;
    int64_t chunks;
    atomic_llong next;        /* the next chunk a thread claims */
} pool = {.threads = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e9 * (double)t.tv_sec + (double)t.tv_nsec;
}

/* The job's chunks, claimed one at a time until none is left: chunk c is [n c / chunks,
 * n (c + 1) / chunks), contiguous, sizes differing by at most one. */
static void run_chunks(void) {
    for (int64_t c; (c = atomic_fetch_add_explicit(&pool.next, 1, memory_order_relaxed)) < pool.chunks;) {
        int64_t lo = pool.n * c / pool.chunks, hi = pool.n * (c + 1) / pool.chunks;
        if (lo < hi) pool.fn(pool.ctx, lo, hi);
    }
}

static void *worker(void *arg) {
    (void)arg;
    unsigned seen = pool.start_gen; /* not gen now: the first job may already have been posted */
    for (;;) {
        double t0 = now_ns();
        for (int i = 0; atomic_load_explicit(&pool.gen, memory_order_acquire) == seen; i++) {
            if ((i & 63) == 63) {
                if (now_ns() - t0 > SPIN_NS) break;
                sched_yield();
            }
        }
        pthread_mutex_lock(&pool.mu);
        pool.sleepers++;
        while (atomic_load_explicit(&pool.gen, memory_order_acquire) == seen && !pool.quit)
            pthread_cond_wait(&pool.cv, &pool.mu);
        pool.sleepers--;
        bool quit = pool.quit;
        pthread_mutex_unlock(&pool.mu);
        if (quit) return NULL;
        seen = atomic_load_explicit(&pool.gen, memory_order_acquire);
        run_chunks();
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_acq_rel);
    }
}

static void stop_workers(void) {
    if (pool.nworkers == 0) return;
    pthread_mutex_lock(&pool.mu);
    pool.quit = true;
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.nworkers; i++) pthread_join(pool.th[i], NULL);
    pool.nworkers = 0;
    pool.quit = false;
}

/* The pool's threads are joined when the code that owns them goes: at exit, and at
 * dlclose of a shared object that holds this file (the tests load one model after
 * another), whose unmapped condition variable a waiting worker would otherwise touch. */
static void free_gemm_scratch(void);
__attribute__((destructor)) static void pool_fini(void) {
    stop_workers();
    free_gemm_scratch();
}

void rt_parallel_set_threads(int n) {
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    openblas_set_num_threads(1); /* the pool is every thread (rt_sgemm) */
    if (n == pool.threads) return;
    stop_workers();
    pool.threads = n;
}

int rt_parallel_threads(void) { return pool.threads; }

/* rt_parallel_for with per_thread chunks a thread. */
static void parallel_run(RtParallelFn fn, void *ctx, int64_t n, int64_t work, int per_thread) {
    bool idle = false;
    if (pool.threads < 2 || n < 2 || work < RT_PARALLEL_MIN_WORK ||
        !atomic_compare_exchange_strong(&pool.busy, &idle, true)) {
        if (n > 0) fn(ctx, 0, n);
        return;
    }
    if (pool.nworkers == 0) { /* started on first use, so a program that never needs them has none */
        pool.start_gen = atomic_load(&pool.gen);
        for (int i = 1; i < pool.threads; i++) {
            if (pthread_create(&pool.th[pool.nworkers], NULL, worker, NULL) != 0) break;
            pool.nworkers++;
        }
        if (pool.nworkers == 0) { /* no threads to be had: run alone */
            atomic_store(&pool.busy, false);
            fn(ctx, 0, n);
            return;
        }
    }
    int64_t chunks = (int64_t)per_thread * (pool.nworkers + 1);
    pool.fn = fn, pool.ctx = ctx, pool.n = n, pool.chunks = chunks < n ? chunks : n;
    atomic_store_explicit(&pool.next, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_acq_rel);
    if (pool.sleepers) pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    run_chunks();
    for (int i = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < pool.nworkers; i++)
        if ((i & 63) == 63) sched_yield();
    atomic_store(&pool.busy, false);
}

void rt_parallel_for(RtParallelFn fn, void *ctx, int64_t n, int64_t work) {
    parallel_run(fn, ctx, n, work, RT_CHUNKS_PER_THREAD);
}

/* ---- GEMMs on the pool ---------------------------------------------------------------- */

/* A GEMM is cut into parts that depend on its shape alone, never on the thread count:
 * single-threaded OpenBLAS computes a part the same way whichever thread runs it, so
 * results are the same at every --threads (a resumed run at --threads 1 matches an
 * unbroken one at 2, bit for bit). Eight parts keep up to eight cores busy, where the
 * GEMM has rows enough for them (amortised_parts). Each thread takes one contiguous block
 * of the parts (one chunk a thread): claimed one part at a time, with up to 32 parts, the
 * inference pass at batch 1 took 8 to 10 % longer (interleaved runs), though the training
 * GEMMs gained a little.
 *
 * Most GEMMs are cut into blocks of C's rows (or columns, when C has few rows); each
 * part packs the operand it shares with the others (B when cut by rows) once more, a
 * copy of n k floats against the part's (m / parts) n k multiply-adds. A weight
 * gradient (dW = x^T dy: small m and n, k the batch's rows) is the case where that copy
 * is as large as the part's own operand, and it ran at four fifths of OpenBLAS's own
 * threads' rate: such a GEMM is cut along k instead. Part p computes its slice of the
 * sum into a scratch C of its own (part 0 into C itself, with beta), and a second pass
 * adds the slices to C in the order p = 1, 2, ...: every element's additions are the
 * same whichever thread made which slice. */
enum {
    GEMM_PARTS = 8,
    GEMM_BLOCK = 16,       /* row and column parts start at multiples of OpenBLAS's register tile */
    GEMM_KSLICE = 2048,    /* a k part is about this deep at least; parts start at multiples of 256 */
    GEMM_PART_ROWS = 512,  /* a row or column part is about this long at least (amortised_parts) */
};
/* Scratch for the k parts, in floats: (parts - 1) m n stays below this. */
#define GEMM_SCRATCH_MAX ((int64_t)1 << 24)

typedef enum GemmCut { CUT_ROWS, CUT_COLS, CUT_K } GemmCut;

typedef struct Gemm {
    int ta, tb, m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    GemmCut cut;
    int parts;
    float *scratch; /* CUT_K: parts - 1 slices of m n floats, row stride n */
} Gemm;

/* The pool's scratch for k parts: grown when a GEMM needs more, freed at unload. */
static struct {
    float *p;
    int64_t len;
    atomic_bool busy;
} gemm_scratch;

static int part_start(const Gemm *g, int64_t p) {
    int64_t len = g->cut == CUT_ROWS ? g->m : g->cut == CUT_COLS ? g->n : g->k;
    int64_t unit = g->cut == CUT_K ? GEMM_KSLICE / 8 : GEMM_BLOCK;
    if (p >= g->parts) return (int)len;
    int64_t blocks = (len + unit - 1) / unit;
    return (int)(blocks * p / g->parts * unit);
}

static void gemm_parts(void *ctx, int64_t lo, int64_t hi) {
    const Gemm *g = ctx;
    for (int64_t p = lo; p < hi; p++) {
        int from = part_start(g, p), len = part_start(g, p + 1) - from;
        if (len <= 0) continue;
        const float *a = g->a, *b = g->b;
        float *c = g->c;
        int m = g->m, n = g->n, k = g->k, ldc = g->ldc;
        float beta = g->beta;
        if (g->cut == CUT_ROWS) { /* rows of op(A) and of C */
            a += g->ta ? from : (long)from * g->lda;
            c += (long)from * g->ldc;
            m = len;
        } else if (g->cut == CUT_COLS) { /* columns of op(B) and of C */
            b += g->tb ? (long)from * g->ldb : from;
            c += from;
            n = len;
        } else { /* columns of op(A), rows of op(B); parts after the first into scratch */
            a += g->ta ? (long)from * g->lda : from;
            b += g->tb ? from : (long)from * g->ldb;
            k = len;
            if (p > 0) c = g->scratch + (p - 1) * (long)m * n, ldc = n, beta = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, m, n, k,
                    g->alpha, a, g->lda, b, g->ldb, beta, c, ldc);
    }
}

static void free_gemm_scratch(void) {
    rt_free(gemm_scratch.p);
    gemm_scratch.p = NULL, gemm_scratch.len = 0;
}

/* C's rows [lo, hi) += the k parts' slices, in part order. */
static void gemm_sum_slices(void *ctx, int64_t lo, int64_t hi) {
    const Gemm *g = ctx;
    for (int64_t i = lo; i < hi; i++) {
        float *c = g->c + i * g->ldc;
        for (int p = 1; p < g->parts; p++) {
            const float *s = g->scratch + (p - 1) * (long)g->m * g->n + i * g->n;
            for (int j = 0; j < g->n; j++) c[j] += s[j];
        }
    }
}

/* Parts of C's rows (or columns) each pack the shared operand (n k floats) once more, so
 * a part of few rows spends much of its time copying: at batch 1 the inference pass's
 * GEMMs have 1000-1240 rows, and in eight parts of about 150 rows OpenBLAS's packing was
 * a tenth of the pass's samples (perf, AVX-512 kernels); in two parts those GEMMs took
 * 0.92 of the time (0.98 with the AVX2 kernels), and the training's, of 9216 rows and
 * more, kept their eight. So at most one part per GEMM_PART_ROWS rows, and a power of
 * two, so that 2, 4 or 8 threads take equal shares of the contiguous blocks; two at
 * least, wherever the work rule wanted more. */
static int amortised_parts(int parts, int64_t len) {
    if (parts <= 2) return parts;
    int64_t most = len / GEMM_PART_ROWS;
    int p = 2;
    while (p * 2 <= parts && p * 2 <= most) p *= 2;
    return p;
}

/* How many k parts (1: cut C instead): when k is deep against C's sides, so that a row
 * or column part would repack the whole of the other operand. */
static int k_parts(int m, int n, int k) {
    if (k < 2 * GEMM_KSLICE || k < 2 * (m > n ? m : n)) return 1;
    int64_t parts = k / GEMM_KSLICE, mn = (int64_t)m * n;
    if (parts > GEMM_PARTS) parts = GEMM_PARTS;
    while (parts > 1 && (parts - 1) * mn > GEMM_SCRATCH_MAX) parts--;
    return (int)parts;
}

static void sgemm_parts(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                        int ldb, float beta, float *c, int ldc) {
    int64_t work = (int64_t)m * n * (k > 0 ? k : 1);
    Gemm g = {ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c, CUT_K, k_parts(m, n, k), NULL};
    if (g.parts > 1) {
        /* the pool's scratch, or, for a second caller meanwhile, one of its own: the cut
         * (and so the result) must not depend on who else is multiplying */
        int64_t need = (int64_t)(g.parts - 1) * m * n;
        bool idle = false, shared = atomic_compare_exchange_strong(&gemm_scratch.busy, &idle, true);
        if (shared && gemm_scratch.len < need) {
            rt_free(gemm_scratch.p);
            gemm_scratch.p = rt_malloc((size_t)need * sizeof(float));
            gemm_scratch.len = need;
        }
        g.scratch = shared ? gemm_scratch.p : rt_malloc((size_t)need * sizeof(float));
        parallel_run(gemm_parts, &g, g.parts, work, 1);
        rt_parallel_for(gemm_sum_slices, &g, m, (int64_t)m * n * (g.parts - 1));
        if (shared) atomic_store(&gemm_scratch.busy, false);
        else rt_free(g.scratch);
        return;
    }
    g.cut = m >= n || m >= 4 * GEMM_BLOCK ? CUT_ROWS : CUT_COLS;
    int64_t len = g.cut == CUT_ROWS ? m : n, blocks = (len + GEMM_BLOCK - 1) / GEMM_BLOCK;
    /* worth cutting: at least 2^20 multiply-adds a part */
    int64_t by_work = work >> 20;
    g.parts = (int)(blocks < GEMM_PARTS ? blocks : GEMM_PARTS);
    if (by_work < g.parts) g.parts = by_work > 1 ? (int)by_work : 1;
    g.parts = amortised_parts(g.parts, len);
    parallel_run(gemm_parts, &g, g.parts, work, 1);
}

/* Wall seconds inside rt_sgemm, summed over calls: `MODEL bench` splits a step into its
 * GEMMs and the rest (the loop kernels, loss, optimiser), the split that says whether a
 * network waits on OpenBLAS or on memory. Two clock reads a call, a hundred calls a step. */
static _Atomic double gemm_seconds;

void rt_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
              float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    double t0 = now_ns();
    sgemm_parts(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    double dt = 1e-9 * (now_ns() - t0), old = atomic_load(&gemm_seconds);
    while (!atomic_compare_exchange_weak(&gemm_seconds, &old, old + dt)) {}
}

double rt_sgemm_seconds(void) { return atomic_load(&gemm_seconds); }
