/* bench/epilogue_tiling.c: does a GEMM's epilogue gain from running on a block of rows
 * while the GEMM's output is still in cache (issue 4, item 2's cache-blocked epilogue)?
 *
 * usage: bench_epilogue_tiling [BATCH]   (default 1024; 2 threads, like the benchmark)
 *
 * A folded layer of the strided VideoPose3D at training batch BATCH, forward: the even
 * and the odd GEMM (rt_sgemm, as the generated code calls it), then the synthesis of the
 * 1020 features from their outputs, through the runs of the h36m layout at width 1020
 * (codegen/runs.c; the bases below are that layout's). Two layers: the first (81 BATCH
 * rows, 51 deep: memory-bound) and a block's 3-tap convolution (27 BATCH rows, 1680 and
 * 1380 deep: compute-bound). Each is run whole (GEMMs on every row, then the synthesis)
 * and tiled (per block of rows: both GEMMs, then the synthesis of that block), the
 * variants taking turns for ROUNDS rounds; a time is the best of them. The ratio is
 * whole / tiled: above 1, tiling pays. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/rt.h"

enum { F = 1020, FE = 560, FO = 460, ROUNDS = 4, NBLOCKS = 5 };

/* The runs of the synthesis tables at width 1020: features [start, end) read the even
 * output at base_e + i and the odd at base_o + i. */
static const struct {
    int start, end, base_e, base_o;
} runs[] = {{0, 20, 0, 0},         {20, 60, -20, 0},      {60, 240, -20, -40},   {240, 440, -200, -220},
            {440, 480, -220, -220}, {480, 500, -220, -260}, {500, 540, -240, -260}, {540, 560, -240, -300},
            {560, 600, -260, -300}, {600, 620, -260, -340}, {620, 660, -280, -340}, {660, 840, -280, -380},
            {840, 1020, -460, -560}};
enum { NRUNS = sizeof runs / sizeof runs[0] };
static float ce[F], co[F]; /* the coefficients, read at the feature */

typedef struct {
    const float *ye, *yo;
    float *out;
    int64_t row0;
} Synth;

static void synth_rows(void *ctx, int64_t lo, int64_t hi) {
    const Synth *s = ctx;
    for (int64_t r = s->row0 + lo; r < s->row0 + hi; r++) {
        const float *ye = s->ye + r * FE, *yo = s->yo + r * FO;
        float *o = s->out + r * F;
        for (int q = 0; q < NRUNS; q++) {
            const float *pe = ye + runs[q].base_e, *po = yo + runs[q].base_o;
            for (int i = runs[q].start; i < runs[q].end; i++) o[i] = ce[i] * pe[i] + co[i] * po[i];
        }
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *filled(int64_t n, int mod) {
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) {
        fprintf(stderr, "bench_epilogue_tiling: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) p[i] = (float)(i % mod) * 0.01f;
    return p;
}

/* One layer: rows, the even and odd GEMM's depth. */
static void layer(const char *name, int64_t rows, int ke, int ko) {
    float *xe = filled(rows * ke, 97), *xo = filled(rows * ko, 89);
    float *we = filled((int64_t)FE * ke, 13), *wo = filled((int64_t)FO * ko, 7);
    float *ye = filled(rows * FE, 3), *yo = filled(rows * FO, 5), *out = filled(rows * F, 11);
    static const int64_t block[NBLOCKS] = {0, 8192, 4096, 2048, 1024}; /* 0: whole */
    double best[NBLOCKS];
    for (int b = 0; b < NBLOCKS; b++) best[b] = 1e30;
    for (int round = 0; round < ROUNDS; round++)
        for (int b = 0; b < NBLOCKS; b++) {
            int64_t step = block[b] ? block[b] : rows;
            double t0 = now();
            for (int64_t r0 = 0; r0 < rows; r0 += step) {
                int m = (int)(rows - r0 < step ? rows - r0 : step);
                rt_sgemm(0, 1, m, FE, ke, 1, xe + r0 * ke, ke, we, ke, 0, ye + r0 * FE, FE);
                rt_sgemm(0, 1, m, FO, ko, 1, xo + r0 * ko, ko, wo, ko, 0, yo + r0 * FO, FO);
                Synth s = {ye, yo, out, r0};
                rt_parallel_for(synth_rows, &s, m, (int64_t)m * F);
            }
            double t = now() - t0;
            if (t < best[b]) best[b] = t;
        }
    printf("%s: %lld rows, depth %d and %d\n", name, (long long)rows, ke, ko);
    printf("  whole           %8.1f ms\n", best[0] * 1e3);
    for (int b = 1; b < NBLOCKS; b++)
        printf("  blocks of %5lld %8.1f ms  whole / tiled %.3f\n", (long long)block[b], best[b] * 1e3, best[0] / best[b]);
    free(xe), free(xo), free(we), free(wo), free(ye), free(yo), free(out);
}

int main(int argc, char **argv) {
    long batch = argc > 1 ? strtol(argv[1], NULL, 10) : 1024;
    if (batch < 1 || batch > 4096) {
        fprintf(stderr, "bench_epilogue_tiling: BATCH must be 1 to 4096, not '%s'\n", argv[1]);
        return 2;
    }
    for (int i = 0; i < F; i++) ce[i] = co[i] = 0.5f;
    rt_parallel_set_threads(2);
    printf("folded layer forward at batch %ld: even and odd GEMM, then synthesis; %d rounds, best of each\n", batch,
           ROUNDS);
    layer("first layer", 81 * batch, 51, 51);
    layer("block convolution", 27 * batch, 3 * FE, 3 * FO);
    return 0;
}
