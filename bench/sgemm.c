/* bench/sgemm.c: OpenBLAS sgemm throughput on a list of GEMM shapes (the machine's
 * practical limit for a network made of those GEMMs).
 *
 * usage: sgemm [--min-time S] [--runtime THREADS] SHAPE...
 *   SHAPE = M,N,K[,TA,TB[,COUNT[,TIMES]]]   TA/TB: N or T (row-major op(A) is M x K);
 *   COUNT: a strided-batched GEMM run as COUNT calls (as the generated code issues it);
 *   TIMES: how often the shape occurs in the network (its time counts TIMES times).
 * Threads: OPENBLAS_NUM_THREADS (the benchmark sets 2).
 * --runtime THREADS: each GEMM is issued as the compiled programs issue it, through the
 *   runtime's rt_sgemm on its pool of THREADS threads (parts of C, each a single-threaded
 *   OpenBLAS call; runtime/parallel.c). Only in a build that defines SGEMM_RUNTIME and
 *   links libchiralrt (bench/run.py builds both).
 *
 * Each shape is timed alone: one untimed call (page faults, thread start), then calls until
 * --min-time seconds have passed (at least 3); its time is the median call. The last line is
 * the network-weighted total: `total FLOPS SECONDS GFLOP/S`, FLOPS = 2*M*N*K*COUNT*TIMES. */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SGEMM_RUNTIME
#include "runtime/rt.h"
#endif
static int use_runtime; /* --runtime: rt_sgemm instead of cblas_sgemm */

typedef struct {
    long m, n, k, count, times;
    int ta, tb;
} Shape;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_shape(const char *s, Shape *sh) {
    char ta = 'N', tb = 'N';
    *sh = (Shape){.count = 1, .times = 1};
    int got = sscanf(s, "%ld,%ld,%ld,%c,%c,%ld,%ld", &sh->m, &sh->n, &sh->k, &ta, &tb, &sh->count, &sh->times);
    if (got != 3 && got != 5 && got != 6 && got != 7) return -1;
    if ((ta != 'N' && ta != 'T') || (tb != 'N' && tb != 'T')) return -1;
    if (sh->m < 1 || sh->n < 1 || sh->k < 1 || sh->count < 1 || sh->times < 1) return -1;
    sh->ta = ta == 'T', sh->tb = tb == 'T';
    return 0;
}

/* Values in [-0.5, 0.5): no denormals, no overflow, the same every run. */
static void fill(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

/* One call of the shape: COUNT GEMMs on consecutive operands, like a strided batch. */
static void run_shape(const Shape *sh, const float *a, const float *b, float *c) {
    const long lda = sh->ta ? sh->m : sh->k, ldb = sh->tb ? sh->k : sh->n, ldc = sh->n;
    const long sa = sh->m * sh->k, sb = sh->k * sh->n, sc = sh->m * sh->n;
    for (long q = 0; q < sh->count; q++) {
#ifdef SGEMM_RUNTIME
        if (use_runtime) {
            rt_sgemm(sh->ta, sh->tb, (int)sh->m, (int)sh->n, (int)sh->k, 1.0f, a + q * sa, (int)lda, b + q * sb,
                     (int)ldb, 0.0f, c + q * sc, (int)ldc);
            continue;
        }
#endif
        cblas_sgemm(CblasRowMajor, sh->ta ? CblasTrans : CblasNoTrans, sh->tb ? CblasTrans : CblasNoTrans, (int)sh->m,
                    (int)sh->n, (int)sh->k, 1.0f, a + q * sa, (int)lda, b + q * sb, (int)ldb, 0.0f, c + q * sc, (int)ldc);
    }
}

int main(int argc, char **argv) {
    double min_time = 0.2;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--min-time") == 0) min_time = atof(argv[2]), first = 3;
    if (first + 1 < argc && strcmp(argv[first], "--runtime") == 0) {
        int threads = atoi(argv[first + 1]);
        if (threads < 1) {
            fprintf(stderr, "sgemm: bad --runtime '%s' (expected a thread count >= 1)\n", argv[first + 1]);
            return 2;
        }
#ifdef SGEMM_RUNTIME
        rt_parallel_set_threads(threads);
        use_runtime = 1, first += 2;
#else
        fprintf(stderr, "sgemm: --runtime needs a build with -DSGEMM_RUNTIME and libchiralrt\n");
        return 2;
#endif
    }
    if (first >= argc) {
        fprintf(stderr, "usage: sgemm [--min-time S] [--runtime THREADS] M,N,K[,TA,TB[,COUNT[,TIMES]]]...\n");
        return 2;
    }
    double total_flops = 0, total_s = 0;
    for (int i = first; i < argc; i++) {
        Shape sh;
        if (parse_shape(argv[i], &sh) != 0) {
            fprintf(stderr, "sgemm: bad shape '%s' (expected M,N,K[,TA,TB[,COUNT[,TIMES]]])\n", argv[i]);
            return 2;
        }
        const size_t na = (size_t)(sh.m * sh.k * sh.count), nb = (size_t)(sh.k * sh.n * sh.count),
                     nc = (size_t)(sh.m * sh.n * sh.count);
        float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
        if (!a || !b || !c) {
            fprintf(stderr, "sgemm: out of memory for shape '%s'\n", argv[i]);
            return 1;
        }
        fill(a, na, 1), fill(b, nb, 2), memset(c, 0, nc * sizeof *c);
        run_shape(&sh, a, b, c);
        int cap = 16, n = 0;
        double *t = malloc((size_t)cap * sizeof *t);
        if (!t) return 1;
        const double start = now();
        while (n < 3 || now() - start < min_time) {
            if (n == cap) {
                double *g = realloc(t, (size_t)(cap *= 2) * sizeof *t);
                if (!g) {
                    fprintf(stderr, "sgemm: out of memory\n");
                    return 1;
                }
                t = g;
            }
            const double t0 = now();
            run_shape(&sh, a, b, c);
            t[n++] = now() - t0;
        }
        qsort(t, (size_t)n, sizeof *t, cmp_double);
        const double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
        const double flops = 2.0 * (double)sh.m * (double)sh.n * (double)sh.k * (double)sh.count;
        printf("shape %ld %ld %ld %c %c x%ld (%ld times)  %10.3f ms  %8.2f GFLOP/s\n", sh.m, sh.n, sh.k,
               sh.ta ? 'T' : 'N', sh.tb ? 'T' : 'N', sh.count, sh.times, 1e3 * med, 1e-9 * flops / med);
        total_flops += flops * (double)sh.times, total_s += med * (double)sh.times;
        free(t), free(a), free(b), free(c);
    }
    printf("total %.0f %.6f %.2f\n", total_flops, total_s, 1e-9 * total_flops / total_s);
    return 0;
}
