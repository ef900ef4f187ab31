/* tests/unit/test_train.c: the runtime's training machinery: optimisers and schedules,
 * losses (gradients against finite differences), metrics, batching and the mirror
 * augmentation, the CSV log, GEMMs on the runtime's threads. Expected values are derived by hand in the comments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/rt.h"

#define assert_near(a, b, tol)                                                                               \
    do {                                                                                                     \
        double a_ = (a), b_ = (b);                                                                           \
        if (!(fabs(a_ - b_) <= (tol))) fail_msg("%s = %.9g, expected %.9g (tol %g)", #a, a_, b_, (double)(tol)); \
    } while (0)

/* A small deterministic generator for test data (not the code under test). */
static uint64_t lcg_state = 12345;
static double lcg(void) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}
/* A value on a grid of 1/64 in (-2, 2): y +- 2^-12 is then exact in float. */
static float grid(void) { return (float)(floor(lcg() * 256.0 - 128.0) / 64.0); }

/* ---- GEMMs on the thread pool (runtime/parallel.c) ------------------------------------- */

/* rt_parallel_for at 2 threads: every index exactly once, over jobs longer and shorter than
 * the chunks a thread claims, and the chunks' bounds the same in every run (the threads
 * claim them in whatever order). */
static atomic_int par_seen[5000];
static atomic_llong par_bounds;
static void par_mark(void *ctx, int64_t lo, int64_t hi) {
    (void)ctx;
    for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&par_seen[i], 1);
    atomic_fetch_add(&par_bounds, lo * 7919 + hi);
}
static void test_parallel_for_chunks(void **st) {
    (void)st;
    rt_parallel_set_threads(2);
    static const int64_t lens[] = {5000, 33, 2};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        long long first = 0;
        for (int rep = 0; rep < 4; rep++) {
            for (int i = 0; i < 5000; i++) atomic_store(&par_seen[i], 0);
            atomic_store(&par_bounds, 0);
            rt_parallel_for(par_mark, NULL, lens[li], 1 << 20);
            for (int64_t i = 0; i < lens[li]; i++) assert_int_equal(atomic_load(&par_seen[i]), 1);
            for (int64_t i = lens[li]; i < 5000; i++) assert_int_equal(atomic_load(&par_seen[i]), 0);
            if (rep == 0) first = atomic_load(&par_bounds);
            else assert_int_equal(atomic_load(&par_bounds), first);
        }
    }
    rt_parallel_set_threads(1);
}

/* rt_sgemm against a double reference, and bit for bit the same at 1 and 2 threads, for
 * each way it cuts a GEMM: rows, columns, and along k (a weight gradient's shape:
 * small m and n, deep k), every transpose, alpha and beta not 1 and 0. */
static void test_sgemm_parts(void **st) {
    (void)st;
    static const int shapes[][3] = {
        {300, 200, 64},  /* rows */
        {1000, 96, 300}, /* rows: 2 parts, the least (under two parts of 512 rows) */
        {4200, 40, 64},  /* rows: 8 parts */
        {1600, 80, 100}, /* rows: 2 parts (3 allowed; a power of two) */
        {8, 700, 300},   /* columns: fewer rows than a part's block */
        {37, 45, 9000},  /* k: four slices of 2304, 2304, 2304, 2088 */
        {3, 5, 4100},    /* k: two slices */
    };
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
                const int lda = ta ? m : k, ldb = tb ? k : n, ldc = n + 3; /* C a block of a wider matrix */
                float *a = rt_malloc(sizeof(float) * (size_t)m * k), *b = rt_malloc(sizeof(float) * (size_t)k * n);
                float *c0 = rt_malloc(sizeof(float) * (size_t)m * ldc), *c1 = rt_malloc(sizeof(float) * (size_t)m * ldc);
                float *c2 = rt_malloc(sizeof(float) * (size_t)m * ldc);
                for (long i = 0; i < (long)m * k; i++) a[i] = grid();
                for (long i = 0; i < (long)k * n; i++) b[i] = grid();
                for (long i = 0; i < (long)m * ldc; i++) c0[i] = c1[i] = c2[i] = grid();
                const float alpha = 0.75f, beta = -0.5f;
                rt_parallel_set_threads(1);
                rt_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
                rt_parallel_set_threads(2);
                for (int rep = 0; rep < 3; rep++) { /* which thread takes which block varies */
                    memcpy(c2, c0, sizeof(float) * (size_t)m * ldc);
                    rt_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
                    assert_memory_equal(c1, c2, sizeof(float) * (size_t)m * ldc);
                }
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double ref = beta * (double)c0[(long)i * ldc + j];
                        for (int q = 0; q < k; q++)
                            ref += alpha * (double)(ta ? a[(long)q * lda + i] : a[(long)i * lda + q]) *
                                   (double)(tb ? b[(long)j * ldb + q] : b[(long)q * ldb + j]);
                        assert_near(c1[(long)i * ldc + j], ref, 1e-5 * k);
                    }
                    for (int j = n; j < ldc; j++) assert_true(c1[(long)i * ldc + j] == c0[(long)i * ldc + j]);
                }
                rt_free(a), rt_free(b), rt_free(c0), rt_free(c1), rt_free(c2);
            }
}

/* ---- optimisers ------------------------------------------------------------------ */

static void test_sgd_momentum_two_steps(void **st) {
    (void)st;
    /* lr 0.1, momentum 0.9, weight decay 0.01, p = [1, -2, 0.5], g = [1, 0, -1] twice.
     * step 1: d = g + 0.01 p = [1.01, -0.02, -0.995]; v = d;
     *         p = p - 0.1 v = [0.899, -1.998, 0.5995]
     * step 2: d = g + 0.01 p = [1.00899, -0.01998, -0.994005];
     *         v = 0.9 v + d = [0.909 + 1.00899, -0.018 - 0.01998, -0.8955 - 0.994005]
     *           = [1.91799, -0.03798, -1.889505];
     *         p = p - 0.1 v = [0.707201, -1.994202, 0.7884505] */
    RtOptimCfg cfg = {.kind = RT_OPTIM_SGD, .momentum = 0.9, .weight_decay = 0.01};
    RtOptim o;
    rt_optim_init(&o, &cfg, 3);
    assert_int_equal(rt_optim_state_len(&cfg, 3), 3);
    float p[3] = {1, -2, 0.5f};
    const float g[3] = {1, 0, -1};
    rt_optim_step(&o, p, g, 0.1);
    assert_near(p[0], 0.899, 1e-6);
    assert_near(p[1], -1.998, 1e-6);
    assert_near(p[2], 0.5995, 1e-6);
    rt_optim_step(&o, p, g, 0.1);
    assert_near(p[0], 0.707201, 1e-6);
    assert_near(p[1], -1.994202, 1e-6);
    assert_near(p[2], 0.7884505, 1e-6);
    assert_near(o.state[0], 1.91799, 1e-6);   /* the momentum buffer is the saved state */
    assert_near(o.state[2], -1.889505, 1e-6);
    rt_optim_free(&o);
}

static void test_adam_two_steps(void **st) {
    (void)st;
    /* lr 0.1, betas (0.9, 0.999), eps 1e-8, p = [1, -2, 0.5].
     * step 1, g = [0.5, -1, 0]: m = 0.1 g, v = 0.001 g^2; bias corrections 0.1 and
     *   0.001 give m^ = g, v^ = g^2: p -= 0.1 g / (|g| + 1e-8), i.e. 0.1 sign(g)
     *   (to 2e-9): p = [0.9, -1.9, 0.5] (g = 0: m = 0, no move).
     * step 2, g = [0.5, 1, 2]; bc1 = 1 - 0.81 = 0.19, bc2 = 1 - 0.998001 = 0.001999.
     *   p0: m = 0.045 + 0.05 = 0.095, v = 0.999 * 0.00025 + 0.00025 = 0.00049975;
     *       m^ = 0.5, v^ = 0.25: p0 = 0.9 - 0.1 * 0.5 / 0.5 = 0.8.
     *   p1: m = -0.09 + 0.1 = 0.01, v = 0.999 * 0.001 + 0.001 = 0.001999;
     *       m^ = 0.01 / 0.19 = 0.0526316, v^ = 1: p1 = -1.9 - 0.00526316 = -1.9052632.
     *   p2: m = 0.2, v = 0.004; m^ = 1.0526316, v^ = 2.0010005, sqrt = 1.4145672;
     *       p2 = 0.5 - 0.1 * 1.0526316 / 1.4145672 = 0.5 - 0.0744137 = 0.4255863. */
    RtOptimCfg cfg = {.kind = RT_OPTIM_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    RtOptim o;
    rt_optim_init(&o, &cfg, 3);
    assert_int_equal(rt_optim_state_len(&cfg, 3), 6);
    float p[3] = {1, -2, 0.5f};
    const float g1[3] = {0.5f, -1, 0}, g2[3] = {0.5f, 1, 2};
    rt_optim_step(&o, p, g1, 0.1);
    assert_near(p[0], 0.9, 1e-6);
    assert_near(p[1], -1.9, 1e-6);
    assert_near(p[2], 0.5, 0);
    rt_optim_step(&o, p, g2, 0.1);
    assert_near(p[0], 0.8, 1e-6);
    assert_near(p[1], -1.9052632, 1e-6);
    assert_near(p[2], 0.4255863, 1e-6);
    assert_int_equal(o.step, 2);
    rt_optim_free(&o);
}

static void test_adam_weight_decay_is_l2(void **st) {
    (void)st;
    /* PyTorch's Adam adds wd p to the gradient: with g = 0, wd = 0.5 and p = [2, -4, 0]
     * the effective gradient is [1, -2, 0], so the first step moves by -0.1 sign. */
    RtOptimCfg cfg = {.kind = RT_OPTIM_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.5};
    RtOptim o;
    rt_optim_init(&o, &cfg, 3);
    float p[3] = {2, -4, 0};
    const float g[3] = {0, 0, 0};
    rt_optim_step(&o, p, g, 0.1);
    assert_near(p[0], 1.9, 1e-6);
    assert_near(p[1], -3.9, 1e-6);
    assert_near(p[2], 0, 0);
    rt_optim_free(&o);
}

static void test_schedules_and_clipping(void **st) {
    (void)st;
    assert_near(rt_lr_at_epoch(0.001, 0.95, 0), 0.001, 1e-15);
    assert_near(rt_lr_at_epoch(0.001, 0.95, 2), 0.0009025, 1e-15); /* 0.001 * 0.9025 */
    /* BN momentum, 4 epochs: 0.1 * 0.01^(e/4): 0.1, 0.1 * 10^-0.5, 0.01, 0.1 * 10^-1.5 */
    assert_near(rt_bn_momentum_at_epoch(0.1, 0.001, 0, 4), 0.1, 1e-15);
    assert_near(rt_bn_momentum_at_epoch(0.1, 0.001, 1, 4), 0.031622776601683794, 1e-15);
    assert_near(rt_bn_momentum_at_epoch(0.1, 0.001, 2, 4), 0.01, 1e-15);
    assert_near(rt_bn_momentum_at_epoch(0.1, 0.001, 3, 4), 0.0031622776601683794, 1e-15);
    /* g = [3, 4, 0]: norm 5; clipped to 1 by the factor 1 / (5 + 1e-6). */
    float g[3] = {3, 4, 0};
    assert_near(rt_clip_grad_norm(g, 3, 10), 5, 1e-12);
    assert_near(g[0], 3, 0); /* under the limit: unchanged */
    assert_near(rt_clip_grad_norm(g, 3, 1), 5, 1e-12);
    assert_near(g[0], 0.6, 1e-6);
    assert_near(g[1], 0.8, 1e-6);
    assert_near(rt_clip_grad_norm(g, 3, 0), 1, 1e-6); /* 0: measure only */
}

/* ---- losses ---------------------------------------------------------------------- */

/* Central differences (h = 2^-12 on a 1/64 grid: y +- h exact in float), against the
 * analytic gradient. */
static void check_fd(RtLossKind k, const float *y0, const void *t, int64_t rows, int64_t nfeat, int ncoords) {
    const int64_t n = rows * nfeat;
    float *y = malloc((size_t)n * sizeof *y), *g = malloc((size_t)n * sizeof *g);
    memcpy(y, y0, (size_t)n * sizeof *y);
    rt_loss(k, y, t, rows, nfeat, ncoords, g);
    const double h = 1.0 / 4096;
    for (int64_t i = 0; i < n; i++) {
        float keep = y[i];
        y[i] = (float)(keep + h);
        double lp = rt_loss(k, y, t, rows, nfeat, ncoords, NULL);
        y[i] = (float)(keep - h);
        double lm = rt_loss(k, y, t, rows, nfeat, ncoords, NULL);
        y[i] = keep;
        double fd = (lp - lm) / (2 * h);
        if (!(fabs(fd - g[i]) <= 1e-4 * fabs(fd) + 1e-7))
            fail_msg("%s: d/dy[%lld]: analytic %.9g, finite difference %.9g", rt_loss_name(k), (long long)i, g[i], fd);
    }
    free(y);
    free(g);
}

static void test_loss_gradients(void **st) {
    (void)st;
    enum { ROWS = 6, J = 5, C = 3, F = J * C };
    float y[ROWS * F], t[ROWS * F];
    for (int i = 0; i < ROWS * F; i++) {
        y[i] = grid();
        t[i] = grid();
        /* keep l1 away from its kink and mpjpe away from zero distance */
        if (fabs(y[i] - t[i]) < 0.25) t[i] = y[i] + 0.5f;
    }
    check_fd(RT_LOSS_MSE, y, t, ROWS, F, 0);
    check_fd(RT_LOSS_L1, y, t, ROWS, F, 0);
    check_fd(RT_LOSS_MPJPE, y, t, ROWS, F, C);
    int64_t lab[ROWS];
    for (int r = 0; r < ROWS; r++) lab[r] = (r * 7) % F;
    check_fd(RT_LOSS_CROSS_ENTROPY, y, lab, ROWS, F, 0);
}

static void test_loss_values(void **st) {
    (void)st;
    /* two rows, 2 joints of 2 coords: differences (3, 4), (0, 0) | (0, 1), (-6, 8)
     * mse = (9 + 16 + 0 + 0 + 0 + 1 + 36 + 64) / 8 = 126 / 8; l1 = (3+4+1+6+8)/8 = 22/8;
     * mpjpe = (5 + 0 + 1 + 10) / 4 = 4. */
    const float t[8] = {0};
    const float y[8] = {3, 4, 0, 0, 0, 1, -6, 8};
    assert_near(rt_loss_mse(y, t, 2, 4, NULL), 126.0 / 8, 1e-12);
    assert_near(rt_loss_l1(y, t, 2, 4, NULL), 22.0 / 8, 1e-12);
    float g[8];
    assert_near(rt_loss_mpjpe(y, t, 2, 2, 2, g), 4, 1e-12);
    assert_near(g[2], 0, 0); /* zero distance: zero gradient, no NaN */
    assert_near(g[0], 0.25 * 3 / 5, 1e-7);
    /* cross entropy of logits (0, ln 3) with label 0: softmax = (1/4, 3/4): ln 4.
     * A large logit must not overflow: (1000, 1000) label 1: ln 2. */
    const float lg[4] = {0, (float)log(3.0), 1000, 1000};
    const int64_t lab[2] = {0, 1};
    assert_near(rt_loss_cross_entropy(lg, lab, 1, 2, NULL), log(4.0), 1e-6);
    assert_near(rt_loss_cross_entropy(lg + 2, lab + 1, 1, 2, NULL), log(2.0), 1e-9);
    RtError e;
    assert_true(rt_check_labels(lab, 2, 2, "x.npz: array 'labels'", &e));
    const int64_t bad[3] = {0, 5, 1};
    assert_false(rt_check_labels(bad, 3, 4, "x.npz: array 'labels'", &e));
    assert_string_equal(e.msg, "x.npz: array 'labels': label 5 at index 1 is outside [0, 4)");
}

/* ---- metrics --------------------------------------------------------------------- */

static void rot(double ax, double ay, double az, double r[9]) {
    double cx = cos(ax), sx = sin(ax), cy = cos(ay), sy = sin(ay), cz = cos(az), sz = sin(az);
    /* Rz * Ry * Rx: a proper rotation */
    double rx[9] = {1, 0, 0, 0, cx, -sx, 0, sx, cx}, ry[9] = {cy, 0, sy, 0, 1, 0, -sy, 0, cy},
           rz[9] = {cz, -sz, 0, sz, cz, 0, 0, 0, 1}, t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            t[i * 3 + j] = 0;
            for (int k = 0; k < 3; k++) t[i * 3 + j] += ry[i * 3 + k] * rx[k * 3 + j];
        }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            r[i * 3 + j] = 0;
            for (int k = 0; k < 3; k++) r[i * 3 + j] += rz[i * 3 + k] * t[k * 3 + j];
        }
}

static void test_p_mpjpe(void **st) {
    (void)st;
    enum { J = 17 };
    float tgt[2 * J * 3], pred[2 * J * 3], mirr[J * 3];
    for (int i = 0; i < 2 * J * 3; i++) tgt[i] = (float)(lcg() - 0.5);
    double r[9];
    rot(0.3, -1.1, 2.0, r);
    const double s = 1.7, tr[3] = {0.5, -2, 3};
    for (int q = 0; q < 2 * J; q++)
        for (int a = 0; a < 3; a++) {
            double v = tr[a];
            for (int b = 0; b < 3; b++) v += s * r[a * 3 + b] * tgt[q * 3 + b];
            pred[q * 3 + a] = (float)v;
        }
    /* A similarity copy aligns exactly, while its plain MPJPE is large. */
    assert_near(rt_metric_p_mpjpe(pred, tgt, 2, J, 3), 0, 2e-6);
    assert_true(rt_metric_mpjpe(pred, tgt, 2, J, 3) > 0.5);
    /* A mirror image (x negated) is not a rotation: P-MPJPE must stay well above 0. */
    for (int q = 0; q < J; q++)
        for (int a = 0; a < 3; a++) mirr[q * 3 + a] = a == 0 ? -tgt[q * 3 + a] : tgt[q * 3 + a];
    assert_true(rt_metric_p_mpjpe(mirr, tgt, 1, J, 3) > 0.05);
    /* Hand case: target (1,0,0), (-1,0,0), (0,1,0), (0,-1,0); prediction (1,0,0),
     * (-1,0,0), 0, 0. Aligning points on the x axis at +-a along a unit direction u
     * leaves a squared error 4 + 2a^2 - 4a u_x, least at u = e_x, a = 1: the prediction
     * itself. Distances 0, 0, 1, 1: P-MPJPE 0.5. */
    const float ht[12] = {1, 0, 0, -1, 0, 0, 0, 1, 0, 0, -1, 0};
    const float hp[12] = {1, 0, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_near(rt_metric_p_mpjpe(hp, ht, 1, 4, 3), 0.5, 1e-6);
    /* Degenerate: all predicted joints at one point: aligned to the target's centroid
     * (0): distances 1 each, no NaN. */
    const float z[12] = {0};
    assert_near(rt_metric_p_mpjpe(z, ht, 1, 4, 3), 1, 1e-9);
}

static void test_pck_topk(void **st) {
    (void)st;
    /* 2D target (0,0), (10,0), (0,5): bounding box 10 x 5, longest side 10.
     * Prediction errors: (0.375, 0.5) -> 0.625; (0, 0.75) -> 0.75; 0.
     * BBOX thr 0.0625: limit 0.625 (inclusive): 2 of 3. ABS 0.8: 3 of 3; ABS 0.5: 1 of 3. */
    const float t[6] = {0, 0, 10, 0, 0, 5};
    const float y[6] = {0.375f, 0.5f, 10, 0.75f, 0, 5};
    assert_near(rt_metric_pck(y, t, 1, 3, 2, 0.0625, RT_PCK_BBOX), 2.0 / 3, 1e-12);
    assert_near(rt_metric_pck(y, t, 1, 3, 2, 0.8, RT_PCK_ABS), 1, 1e-12);
    assert_near(rt_metric_pck(y, t, 1, 3, 2, 0.5, RT_PCK_ABS), 1.0 / 3, 1e-12);
    /* Row 0, label 3: only class 1 (2.0) scores higher: rank 1 (top-2 and top-5, not
     * top-1). Row 1, label 0: the maximum. Row 2, all tied, label 5: ties go to lower
     * indices, rank 5: in no top-5. Row 3, classes 0 and 1 tied, label 0: rank 0.
     * top-1 2/4, top-2 3/4, top-5 3/4, top-6 1. */
    const float lg[24] = {0.1f, 2.0f, 0.5f, 1.5f, -1, 0.7f, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 5, 5, 0, 0, 0, 0};
    const int64_t lab[4] = {3, 0, 5, 0};
    assert_near(rt_metric_topk(lg, lab, 4, 6, 1), 2.0 / 4, 1e-12);
    assert_near(rt_metric_topk(lg, lab, 4, 6, 2), 3.0 / 4, 1e-12);
    assert_near(rt_metric_topk(lg, lab, 4, 6, 5), 3.0 / 4, 1e-12);
    assert_near(rt_metric_topk(lg, lab, 4, 6, 6), 1, 1e-12);
}

/* ---- batching -------------------------------------------------------------------- */

static void test_sequence_windows(void **st) {
    (void)st;
    /* Clips [10, 20, 30] and [40, 50]; targets -1..-5. rf 3 (pad 1 each side), t_out 1:
     * inputs [10,10,20], [10,20,30], [20,30,30], [40,40,50], [40,50,50]. */
    const float x[5] = {10, 20, 30, 40, 50}, y[5] = {-1, -2, -3, -4, -5};
    const int64_t cs[3] = {0, 3, 5};
    RtDataset d;
    RtError e;
    assert_true(rt_dataset_sequences(&d, x, 1, y, NULL, 1, 5, cs, 2, 1, 3, "a.npz: array 'clip_start'", &e));
    assert_int_equal(d.nsamples, 5);
    assert_int_equal(d.x_frames, 3);
    const float ex[5][3] = {{10, 10, 20}, {10, 20, 30}, {20, 30, 30}, {40, 40, 50}, {40, 50, 50}};
    for (int i = 0; i < 5; i++) {
        float xs[3], ys[1];
        rt_dataset_sample(&d, i, xs, ys, NULL);
        for (int k = 0; k < 3; k++) assert_near(xs[k], ex[i][k], 0);
        assert_near(ys[0], -(i + 1), 0);
    }
    rt_dataset_free(&d);
    /* t_out 2, rf 3: clip 0 (3 frames) gives 2 windows from frame 0 (offset (4-3)/2 = 0):
     * outputs frames 0-1 and 2-3 (3 replicates 2): targets [-1,-2], [-3,-3]; inputs
     * frames -1..2 and 1..4: [10,10,20,30], [20,30,30,30]. Clip 1: [-4,-5], [40,40,50,50]. */
    assert_true(rt_dataset_sequences(&d, x, 1, y, NULL, 1, 5, cs, 2, 2, 3, "a", &e));
    assert_int_equal(d.nsamples, 3);
    const float ex2[3][4] = {{10, 10, 20, 30}, {20, 30, 30, 30}, {40, 40, 50, 50}};
    const float ey2[3][2] = {{-1, -2}, {-3, -3}, {-4, -5}};
    for (int i = 0; i < 3; i++) {
        float xs[4], ys[2];
        rt_dataset_sample(&d, i, xs, ys, NULL);
        for (int k = 0; k < 4; k++) assert_near(xs[k], ex2[i][k], 0);
        for (int k = 0; k < 2; k++) assert_near(ys[k], ey2[i][k], 0);
    }
    rt_dataset_free(&d);
    /* t_out 3, rf 1 on a 4-frame clip: 2 windows, centred: offset (6-4)/2 = 1, so
     * outputs frames -1..1 and 2..4: [f0, f0, f1], [f2, f3, f3]. */
    const int64_t cs4[2] = {0, 4};
    assert_true(rt_dataset_sequences(&d, x, 1, y, NULL, 1, 4, cs4, 1, 3, 1, "a", &e));
    assert_int_equal(d.nsamples, 2);
    float xs[3];
    rt_dataset_sample(&d, 0, xs, NULL, NULL);
    assert_true(xs[0] == 10 && xs[1] == 10 && xs[2] == 20);
    rt_dataset_sample(&d, 1, xs, NULL, NULL);
    assert_true(xs[0] == 30 && xs[1] == 40 && xs[2] == 40);
    rt_dataset_free(&d);
    /* Bad clip starts name the array. */
    const int64_t bad[3] = {0, 4, 3};
    assert_false(rt_dataset_sequences(&d, x, 1, y, NULL, 1, 3, bad, 2, 1, 1, "a.npz: array 'clip_start'", &e));
    assert_non_null(strstr(e.msg, "a.npz: array 'clip_start'"));
    const int64_t short_cs[2] = {0, 4};
    assert_false(rt_dataset_sequences(&d, x, 1, y, NULL, 1, 5, short_cs, 1, 1, 1, "a.npz: array 'clip_start'", &e));
}

/* 2 joints x 2 coords, a left/right pair, x negated: T swaps the joints and negates x. */
static const int32_t partner4[4] = {2, 3, 0, 1};
static const float sign4[4] = {-1, 1, -1, 1};

static void test_mirror_involution(void **st) {
    (void)st;
    RtMirror m = {partner4, sign4, 4};
    RtError e;
    assert_true(rt_mirror_check(&m, "m", &e));
    float a[12], b[12], c[12];
    for (int i = 0; i < 12; i++) a[i] = (float)(lcg() - 0.5);
    rt_mirror_frames(&m, a, b, 3);
    /* frame 0: (T a)_0 = -a_2, (T a)_1 = a_3 */
    assert_near(b[0], -a[2], 0);
    assert_near(b[1], a[3], 0);
    rt_mirror_frames(&m, b, c, 3);
    for (int i = 0; i < 12; i++) assert_near(c[i], a[i], 0);
    const int32_t notinv[4] = {1, 2, 0, 3};
    RtMirror bad = {notinv, sign4, 4};
    assert_false(rt_mirror_check(&bad, "m", &e));
}

static void test_mirror_augmentation(void **st) {
    (void)st;
    enum { N = 4000 };
    float *x = malloc(N * 2 * 4 * sizeof *x), *y = malloc(N * 4 * sizeof *y);
    int64_t *cls = malloc(N * sizeof *cls);
    for (int i = 0; i < N * 8; i++) x[i] = (float)i;
    for (int i = 0; i < N * 4; i++) y[i] = (float)(-i);
    for (int i = 0; i < N; i++) cls[i] = i % 7;
    RtDataset d;
    /* windows: x [N, 2 frames, 4], y [N, 1 frame, 4] */
    rt_dataset_windows(&d, x, N, 2, 4, y, NULL, 1, 4);
    RtAugment aug = {.mirror_p = 0.5, .in = {partner4, sign4, 4}, .out = {partner4, sign4, 4}};
    int64_t *order = malloc(N * sizeof *order);
    rt_batch_order(7, 0, true, order, N);
    float *bx = malloc(N * 8 * sizeof *bx), *by = malloc(N * 4 * sizeof *by);
    bool *mir = malloc(N * sizeof *mir), *mir2 = malloc(N * sizeof *mir2);
    rt_batch_fill(&d, order, N, &aug, 7, 0, bx, by, NULL, mir);
    int count = 0;
    for (int k = 0; k < N; k++) {
        int64_t i = order[k];
        count += mir[k];
        float ex[8], ey[4];
        if (mir[k]) {
            rt_mirror_frames(&aug.in, x + i * 8, ex, 2);
            rt_mirror_frames(&aug.out, y + i * 4, ey, 1);
        } else {
            memcpy(ex, x + i * 8, sizeof ex);
            memcpy(ey, y + i * 4, sizeof ey);
        }
        assert_memory_equal(bx + k * 8, ex, sizeof ex);
        assert_memory_equal(by + k * 4, ey, sizeof ey);
        assert_int_equal(mir[k], rt_mirror_drawn(0.5, 7, 0, i)); /* by sample, not position */
    }
    /* Binomial(4000, 0.5): standard deviation 31.6; 5 of them is 158. */
    assert_true(abs(count - N / 2) < 158);
    /* p = 0.2: mean 800, sd 25.3. */
    int c2 = 0;
    for (int i = 0; i < N; i++) c2 += rt_mirror_drawn(0.2, 7, 3, i);
    assert_true(abs(c2 - N / 5) < 127);
    /* Another epoch draws differently; the same one again identically. */
    rt_batch_fill(&d, order, N, &aug, 7, 1, bx, by, NULL, mir2);
    assert_true(memcmp(mir, mir2, N * sizeof *mir) != 0);
    rt_batch_fill(&d, order, N, &aug, 7, 0, bx, by, NULL, mir2);
    assert_memory_equal(mir, mir2, N * sizeof *mir);
    rt_dataset_free(&d);
    /* Class targets are unchanged by the mirror. */
    rt_dataset_windows(&d, x, N, 2, 4, NULL, cls, 1, 1);
    int64_t *bc = malloc(N * sizeof *bc);
    rt_batch_fill(&d, order, N, &aug, 7, 0, bx, NULL, bc, mir);
    for (int k = 0; k < N; k++) assert_int_equal(bc[k], cls[order[k]]);
    rt_dataset_free(&d);
    free(x), free(y), free(cls), free(order), free(bx), free(by), free(mir), free(mir2), free(bc);
}

static void test_shuffle(void **st) {
    (void)st;
    enum { N = 1000 };
    int64_t a[N], b[N], c[N];
    rt_batch_order(42, 3, true, a, N);
    rt_batch_order(42, 3, true, b, N);
    assert_memory_equal(a, b, sizeof a);
    char seen[N] = {0};
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 0 && a[i] < N);
        assert_int_equal(seen[a[i]], 0);
        seen[a[i]] = 1;
        fixed += a[i] == i;
    }
    assert_true(fixed < 20); /* shuffled: a random permutation fixes ~1 point */
    rt_batch_order(43, 3, true, c, N);
    assert_true(memcmp(a, c, sizeof a) != 0);
    rt_batch_order(42, 4, true, c, N);
    assert_true(memcmp(a, c, sizeof a) != 0);
    rt_batch_order(42, 4, false, c, N);
    for (int i = 0; i < N; i++) assert_int_equal(c[i], i);
    assert_int_equal(rt_batch_count(10, 4), 3);
    assert_int_equal(rt_batch_count(8, 4), 2);
}

/* ---- progress and the CSV log ----------------------------------------------------- */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_csv_log(void **st) {
    (void)st;
    char dir[] = "/tmp/test_train.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    const char *names[2] = {"mpjpe", "p_mpjpe"};
    RtCsvLog l;
    RtError e;
    assert_true(rt_csv_open(&l, path, names, 2, 0, &e));
    assert_string_equal(slurp(path), "epoch,lr,train_loss,val_loss,mpjpe,p_mpjpe,seconds\n");
    const double m1[2] = {50, 40}, m2[2] = {45.5, NAN};
    assert_true(rt_csv_row(&l, 1, 0.001, 0.25, 0.5, m1, 1.5, &e));
    assert_true(rt_csv_row(&l, 2, 0.00095, 0.125, NAN, m2, 2, &e));
    assert_true(rt_csv_row(&l, 3, 0.0009025, 0.0625, 0.25, m1, 3, &e));
    const char *want = "epoch,lr,train_loss,val_loss,mpjpe,p_mpjpe,seconds\n"
                       "1,0.001,0.25,0.5,50,40,1.500\n"
                       "2,0.00095,0.125,,45.5,,2.000\n"
                       "3,0.0009025,0.0625,0.25,50,40,3.000\n";
    assert_string_equal(slurp(path), want);
    rt_csv_close(&l);
    /* A run resumed after epoch 2 keeps rows 1-2 (a killed run's row 3 goes). */
    assert_true(rt_csv_open(&l, path, names, 2, 2, &e));
    assert_string_equal(slurp(path), "epoch,lr,train_loss,val_loss,mpjpe,p_mpjpe,seconds\n"
                                     "1,0.001,0.25,0.5,50,40,1.500\n"
                                     "2,0.00095,0.125,,45.5,,2.000\n");
    rt_csv_close(&l);
    /* Other metrics: another run's log is not kept. */
    assert_true(rt_csv_open(&l, path, names, 1, 2, &e));
    assert_string_equal(slurp(path), "epoch,lr,train_loss,val_loss,mpjpe,seconds\n");
    rt_csv_close(&l);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/log.csv", dir);
    assert_false(rt_csv_open(&l, bad, names, 1, 0, &e));
    assert_non_null(strstr(e.msg, bad));
    unlink(path);
    rmdir(dir);
}

static void test_progress(void **st) {
    (void)st;
    char buf[1024];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    RtProgress p;
    rt_progress_begin(&p, f, 0, 1, 5, 10);
    for (int i = 1; i <= 10; i++) rt_progress_update(&p, i, 0.5);
    rt_progress_end(&p, "epoch %d: loss %.2f", 1, 0.5);
    fclose(f);
    assert_string_equal(buf, "epoch 1: loss 0.50\n"); /* not a TTY: one plain line */
    f = fmemopen(buf, sizeof buf, "w");
    rt_progress_begin(&p, f, 1, 1, 5, 10);
    rt_progress_update(&p, 10, 0.5); /* the last batch always draws */
    rt_progress_end(&p, "done");
    fclose(f);
    assert_non_null(strstr(buf, "\repoch 1/5 [########################] 10/10"));
    assert_non_null(strstr(buf, "\rdone\n"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_for_chunks),
        cmocka_unit_test(test_sgemm_parts),
        cmocka_unit_test(test_sgd_momentum_two_steps),
        cmocka_unit_test(test_adam_two_steps),
        cmocka_unit_test(test_adam_weight_decay_is_l2),
        cmocka_unit_test(test_schedules_and_clipping),
        cmocka_unit_test(test_loss_gradients),
        cmocka_unit_test(test_loss_values),
        cmocka_unit_test(test_p_mpjpe),
        cmocka_unit_test(test_pck_topk),
        cmocka_unit_test(test_sequence_windows),
        cmocka_unit_test(test_mirror_involution),
        cmocka_unit_test(test_mirror_augmentation),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_csv_log),
        cmocka_unit_test(test_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
