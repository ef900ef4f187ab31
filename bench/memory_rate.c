/* bench/memory_rate.c: how fast can a loop kernel stream an activation through memory on
 * this machine? The yardstick for the generated loop kernels (docs/performance.md, "What
 * the loop kernels wait on").
 *
 * usage: bench_memory_rate [ROWS]   (default 82944: the first block's activation of the
 *                                    strided VideoPose3D at training batch 1024, x 1020)
 *
 * On the runtime's pool (2 threads, rt_parallel_for, as the generated kernels run), over
 * ROWS x 1020 floats: a read (a sum over rows), and a read and a write (y = 1.5 x, the
 * shape of a normalising kernel without its arithmetic). Each is run ROUNDS times, taking
 * turns, after one untimed pass that faults the pages in; a time is the best round. Built
 * for the host's vector width (-march=native where the compiler takes it), as the LLVM
 * backend builds the kernels. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/rt.h"

enum { F = 1020, ROUNDS = 5 };

typedef struct {
    const float *x;
    float *y;
    double *sums; /* one per row: no shared accumulator between the threads */
} Pass;

static void read_rows(void *ctx, int64_t lo, int64_t hi) {
    Pass *p = ctx;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = p->x + r * F;
        float acc[16] = {0}; /* sixteen lanes: a single sum would be a chain of dependent adds */
        int c = 0;
        for (; c + 16 <= F; c += 16)
            for (int j = 0; j < 16; j++) acc[j] += x[c + j];
        for (; c < F; c++) acc[0] += x[c];
        double s = 0;
        for (int j = 0; j < 16; j++) s += acc[j];
        p->sums[r] = s;
    }
}

static void scale_rows(void *ctx, int64_t lo, int64_t hi) {
    Pass *p = ctx;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = p->x + r * F;
        float *y = p->y + r * F;
        for (int c = 0; c < F; c++) y[c] = 1.5f * x[c];
    }
}

int main(int argc, char **argv) {
    char *end = NULL;
    long rows = argc > 1 ? strtol(argv[1], &end, 10) : 82944;
    if (argc > 2 || (argc > 1 && (*end || rows < 16 || rows > 1000000))) {
        fprintf(stderr, "usage: bench_memory_rate [ROWS]   (16 to 1000000; default 82944)\n");
        return 2;
    }
    rt_parallel_set_threads(2);
    const size_t n = (size_t)rows * F;
    Pass p = {.x = rt_malloc(n * sizeof(float)), .y = rt_malloc(n * sizeof(float)),
              .sums = rt_malloc((size_t)rows * sizeof(double))};
    float *x = (float *)p.x;
    for (size_t i = 0; i < n; i++) x[i] = (float)(i % 1000) * 1e-3f;
    rt_parallel_for(scale_rows, &p, rows, (int64_t)n); /* the pages of y, untimed */
    double best_r = 1e30, best_rw = 1e30;
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = rt_now();
        rt_parallel_for(read_rows, &p, rows, (int64_t)n);
        double t1 = rt_now();
        rt_parallel_for(scale_rows, &p, rows, (int64_t)n);
        double t2 = rt_now();
        if (t1 - t0 < best_r) best_r = t1 - t0;
        if (t2 - t1 < best_rw) best_rw = t2 - t1;
    }
    double check = 0;
    for (long r = 0; r < rows; r++) check += p.sums[r];
    const double mb = (double)n * sizeof(float) / 1e6;
    printf("%ld x %d floats (%.0f MB), 2 threads, best of %d rounds\n", rows, F, mb, ROUNDS);
    printf("  read           %8.2f ms  %6.1f GB/s\n", 1e3 * best_r, mb / 1e3 / best_r);
    printf("  read + write   %8.2f ms  %6.1f GB/s (both arrays' bytes)\n", 1e3 * best_rw, 2 * mb / 1e3 / best_rw);
    printf("  (checksum %.6g)\n", check);
    rt_free(x);
    rt_free(p.y);
    rt_free(p.sums);
    return 0;
}
