/* Tests of ir/params.c and ir/interp.c: the folded parameters and the float64
 * reference interpreter. Most networks are built by hand (node by node, with
 * hand-written chirality types) so that each test exercises one op; the last
 * tests run the examples through the whole front half. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "front.h"

#include "passes/passes.h"

/* ---- hand-built programs -------------------------------------------------------- */

/* X: 8 features: a negated pair (0,3), a kept pair (1,2), a kept centre 4, a
 * negated centre 5, a kept pair (6,7). Partners deliberately not adjacent. */
static const int X_P[8] = {3, 2, 1, 0, 4, 5, 7, 6};
static const signed char X_S[8] = {-1, 1, 1, -1, 1, -1, 1, 1};
/* Y: 12 features, joint-like: left half 0..4 mirrors right half 5..9, two of
 * five negated; centres 10 (kept) and 11 (negated). */
static const int Y_P[12] = {5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 10, 11};
static const signed char Y_S[12] = {-1, -1, 1, 1, 1, -1, -1, 1, 1, 1, 1, -1};

static Arena *arena;
static Diag diag;

static IrChi chi_of(int n, const int *p, const signed char *s) {
    IrChi c = {.n = n, .desc = "test"};
    c.partner = arena_new_array(arena, int, n);
    c.sign = arena_new_array(arena, signed char, n);
    memcpy(c.partner, p, sizeof(int) * (size_t)n);
    memcpy(c.sign, s, (size_t)n);
    return c;
}
static IrChi X(void) { return chi_of(8, X_P, X_S); }
static IrChi Y(void) { return chi_of(12, Y_P, Y_S); }

static IrProgram *new_prog(void) {
    IrProgram *p = ir_program_new(arena, &diag);
    p->inputs = arena_new_array(arena, IrDecl *, 8);
    p->outputs = arena_new_array(arena, IrDecl *, 8);
    p->model = "test";
    return p;
}

static IrNode *mk(IrProgram *p, IrOp op, IrNode *x, IrChi chi, int time) {
    IrNode *n = ir_node_new(p, op, (SrcLoc){0});
    if (x) ir_add_input(n, x);
    n->shape = (IrShape){time, chi.n, chi.n};
    n->chi = chi;
    n->a.bias = true;
    n->a.kernel = n->a.dilation = n->a.stride = n->a.layers = 1;
    n->a.eps = 1e-5;
    n->a.momentum = 0.1;
    n->a.slope = 0.01;
    n->a.act = n->a.act_neg = n->a.act_written = IR_ACT_TANH;
    return n;
}

static IrNode *mk_input(IrProgram *p, IrChi chi, int time) {
    IrDecl *d = arena_alloc(arena, sizeof *d);
    d->name = arena_printf(arena, "in%d", p->ninputs);
    d->seq = time != IR_NO_TIME;
    d->frames = time > 0 ? time : 0;
    d->feat = chi.n;
    d->chi = chi;
    IrNode *n = mk(p, IR_INPUT, NULL, chi, time);
    n->a.io = p->ninputs;
    d->node = n;
    p->inputs[p->ninputs++] = d;
    return n;
}

static IrNode *mk_output(IrProgram *p, IrNode *x, bool invariant) {
    IrDecl *d = arena_alloc(arena, sizeof *d);
    d->name = arena_printf(arena, "out%d", p->noutputs);
    d->seq = x->shape.time != IR_NO_TIME;
    d->feat = x->shape.feat;
    d->chi = x->chi;
    d->invariant = invariant;
    IrNode *n = mk(p, IR_OUTPUT, x, x->chi, x->shape.time);
    n->a.io = p->noutputs;
    d->node = n;
    p->outputs[p->noutputs++] = d;
    return n;
}

static IrParams *params(IrProgram *p, uint64_t seed) {
    ir_renumber(p);
    IrParams *w = ir_params_new(arena, p);
    ir_params_randomize(w, seed);
    return w;
}

static void fill_random(IrRun *r, const IrProgram *p, int batch, uint64_t seed) {
    uint64_t c = 0;
    for (int i = 0; i < p->ninputs; i++) {
        long size = (long)batch * ir_run_input_time(r, i) * p->inputs[i]->feat;
        double *x = ir_run_input(r, i);
        for (long k = 0; k < size; k++) x[k] = ir_rand_normal(seed, c++);
    }
}

static void forward(IrRun *r, IrMode mode) {
    IrInterpOpts o = {.mode = mode, .keep_all = true};
    const char *why = NULL;
    bool ok = ir_run_forward(r, &o, &why);
    if (!ok) fail_msg("forward failed: %s", why);
}

/* max over outputs of |T_out F(x) - F(T_in x)| / |F(x)| */
static double equiv_err(IrProgram *p, IrParams *w, IrMode mode, int batch) {
    IrRun *a = ir_run_new(p, w, batch, NULL), *b = ir_run_new(p, w, batch, NULL);
    fill_random(a, p, batch, 99);
    for (int i = 0; i < p->ninputs; i++)
        ir_decl_apply(p->inputs[i], ir_run_input(a, i), ir_run_input(b, i),
                      (long)batch * ir_run_input_time(a, i));
    forward(a, mode);
    forward(b, mode);
    double worst = 0;
    for (int i = 0; i < p->noutputs; i++) {
        long size = ir_run_output_size(a, i);
        double *ty = malloc(sizeof(double) * (size_t)size);
        ir_decl_apply(p->outputs[i], ir_run_output(a, i), ty, size / p->outputs[i]->feat);
        const double *yb = ir_run_output(b, i), *ya = ir_run_output(a, i);
        double num = 0, den = 0;
        for (long k = 0; k < size; k++) num += (ty[k] - yb[k]) * (ty[k] - yb[k]), den += ya[k] * ya[k];
        assert_true(den > 0);
        double e = sqrt(num / den);
        worst = e > worst || isnan(e) ? e : worst;
        free(ty);
    }
    ir_run_free(a);
    ir_run_free(b);
    return worst;
}

static void assert_equivariant(IrProgram *p, IrParams *w) {
    double ei = equiv_err(p, w, IR_INFERENCE, 3), et = equiv_err(p, w, IR_TRAINING, 3);
    if (!(ei < 1e-13) || !(et < 1e-13)) fail_msg("equivariance error inference %g training %g", ei, et);
}

static int setup(void **state) {
    arena = arena_new();
    diag_init(&diag, stderr);
    return 0;
}
static int teardown(void **state) {
    arena_free(arena);
    return 0;
}

/* ---- random numbers and the parameter table --------------------------------------- */

static void test_rng(void **state) {
    assert_true(ir_rand_u64(1, 5) == ir_rand_u64(1, 5));
    assert_true(ir_rand_u64(1, 5) != ir_rand_u64(2, 5));
    assert_true(ir_rand_u64(1, 5) != ir_rand_u64(1, 6));
    double s = 0, s2 = 0;
    int n = 20000;
    for (int i = 0; i < n; i++) {
        double u = ir_rand_uniform(7, (uint64_t)i);
        assert_true(u >= 0 && u < 1);
        double z = ir_rand_normal(7, (uint64_t)i);
        s += z, s2 += z * z;
    }
    assert_true(fabs(s / n) < 0.05);
    assert_true(fabs(s2 / n - 1) < 0.05);
}

static void test_param_table(void **state) {
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, X(), 9);
    IrNode *c = mk(p, IR_CONV1D, x, Y(), 7);
    c->a.kernel = 3;
    IrNode *b = mk(p, IR_BATCHNORM, c, Y(), 7);
    IrNode *l = mk(p, IR_LSTM, b, Y(), 7);
    l->a.layers = 2;
    IrNode *g = mk(p, IR_GRU, l, Y(), 7);
    mk_output(p, g, false);
    IrParams *w = params(p, 1);
    /* X: pairs 3, centre_p 1, centre_n 1 -> d_even 4, d_odd 4.
     * Y: pairs 5, centre_p 1, centre_n 1 -> d_even 6, d_odd 6. */
    for (int t = 0; t < 3; t++) {
        const IrParamEntry *A = ir_params_find(w, c, "A", 0, 0, t), *B = ir_params_find(w, c, "B", 0, 0, t);
        assert_non_null(A);
        assert_non_null(B);
        assert_int_equal(A->rows, 6), assert_int_equal(A->cols, 4);
        assert_int_equal(B->rows, 6), assert_int_equal(B->cols, 4);
    }
    assert_null(ir_params_find(w, c, "A", 0, 0, 3));
    assert_int_equal(ir_params_find(w, c, "bias", 0, 0, 0)->rows, 6);
    /* batchnorm: 7 orbits, beta and mean even (6) */
    assert_int_equal(ir_params_find(w, b, "gamma", 0, 0, 0)->rows, 7);
    assert_int_equal(ir_params_find(w, b, "var", 0, 0, 0)->rows, 7);
    assert_int_equal(ir_params_find(w, b, "beta", 0, 0, 0)->rows, 6);
    assert_false(ir_params_find(w, b, "mean", 0, 0, 0)->trainable);
    const double *var = ir_params_data(w, ir_params_find(w, b, "var", 0, 0, 0));
    for (int k = 0; k < 7; k++) assert_true(var[k] > 0);
    /* lstm gates i, f, o: all-positive Y: 5 pairs + 2 centres -> even 7, odd 5;
     * gate g: Y itself, even 6, odd 6 */
    const IrParamEntry *e = ir_params_find(w, l, "Wx.A", 1, 0, 0);
    assert_int_equal(e->rows, 7), assert_int_equal(e->cols, 6);
    assert_int_equal(ir_params_find(w, l, "Wh.B", 1, 3, 0)->rows, 5);
    assert_int_equal(ir_params_find(w, l, "bias", 0, 2, 0)->rows, 6);
    assert_null(ir_params_find(w, l, "bias", 0, 4, 0));
    assert_null(ir_params_find(w, l, "bias_h", 0, 2, 0));
    assert_non_null(ir_params_find(w, g, "bias_h", 0, 2, 0));
    assert_null(ir_params_find(w, g, "bias", 0, 3, 0));
    /* entries tile the buffer without overlap */
    long end = 0;
    for (int i = 0; i < w->nentries; i++) {
        assert_int_equal(w->entries[i].offset, end);
        end += (long)w->entries[i].rows * w->entries[i].cols;
    }
    assert_int_equal(end, w->size);
}

/* ---- linear maps ------------------------------------------------------------------------ */

static void test_linear_equivariant(void **state) {
    for (int time = -1; time <= 5; time += 6) {
        IrProgram *p = new_prog();
        IrNode *x = mk_input(p, X(), time);
        IrNode *l = mk(p, IR_LINEAR, x, Y(), time);
        mk_output(p, mk(p, IR_LINEAR, l, X(), time), false);
        assert_equivariant(p, params(p, 3));
    }
}

/* The dense matrix built from chirality.md 2's formulas:
 * Q (analysis): e = x_f + s x_g, o = x_f - s x_g; centre: e or o = x_f.
 * S (synthesis): x_f = (e + o)/2, x_g = s (e - o)/2; centre: x_f = e or o. */
static void dense_explicit(const IrParamEntry *ea, const IrParamEntry *eb, const double *A,
                           const double *B, double *W) {
    const IrBasis *bi = ea->basis_in, *bo = ea->basis_out;
    int fi = bi->n, fo = bo->n, di = bi->d_even + bi->d_odd, dout = bo->d_even + bo->d_odd;
    double *Q = calloc((size_t)di * fi, sizeof(double)), *S = calloc((size_t)fo * dout, sizeof(double));
    double *M = calloc((size_t)dout * di, sizeof(double)), *MQ = calloc((size_t)dout * fi, sizeof(double));
    for (int k = 0; k < bi->d_even; k++) {
        Q[k * fi + bi->ef[k]] += 1;
        if (bi->eg[k] >= 0) Q[k * fi + bi->eg[k]] += bi->es[k];
    }
    for (int k = 0; k < bi->d_odd; k++) {
        int r = bi->d_even + k;
        Q[r * fi + bi->of[k]] += 1;
        if (bi->og[k] >= 0) Q[r * fi + bi->og[k]] -= bi->os[k];
    }
    for (int k = 0; k < bo->d_even; k++) {
        if (bo->eg[k] < 0) {
            S[bo->ef[k] * dout + k] = 1;
        } else {
            S[bo->ef[k] * dout + k] = 0.5;
            S[bo->eg[k] * dout + k] = 0.5 * bo->es[k];
        }
    }
    for (int k = 0; k < bo->d_odd; k++) {
        int c = bo->d_even + k;
        if (bo->og[k] < 0) {
            S[bo->of[k] * dout + c] = 1;
        } else {
            S[bo->of[k] * dout + c] = 0.5;
            S[bo->og[k] * dout + c] = -0.5 * bo->os[k];
        }
    }
    for (int r = 0; r < bo->d_even; r++)
        for (int c = 0; c < bi->d_even; c++) M[r * di + c] = A[r * bi->d_even + c];
    for (int r = 0; r < bo->d_odd; r++)
        for (int c = 0; c < bi->d_odd; c++) M[(bo->d_even + r) * di + bi->d_even + c] = B[r * bi->d_odd + c];
    for (int r = 0; r < dout; r++)
        for (int c = 0; c < fi; c++) {
            double s = 0;
            for (int k = 0; k < di; k++) s += M[r * di + k] * Q[k * fi + c];
            MQ[r * fi + c] = s;
        }
    for (int r = 0; r < fo; r++)
        for (int c = 0; c < fi; c++) {
            double s = 0;
            for (int k = 0; k < dout; k++) s += S[r * dout + k] * MQ[k * fi + c];
            W[r * fi + c] = s;
        }
    free(Q), free(S), free(M), free(MQ);
}

/* The full bias vector: the even bias synthesised with zero odd part, by S. */
static void bias_full(const IrBasis *bo, const double *be, double *b) {
    for (int k = 0; k < bo->d_even; k++) {
        if (bo->eg[k] < 0) {
            b[bo->ef[k]] = be[k];
        } else {
            b[bo->ef[k]] = 0.5 * be[k];
            b[bo->eg[k]] = 0.5 * bo->es[k] * be[k];
        }
    }
    for (int k = 0; k < bo->d_odd; k++)
        if (bo->og[k] < 0) b[bo->of[k]] = 0;
}

static void test_linear_dense(void **state) {
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, X(), IR_NO_TIME);
    IrNode *l = mk(p, IR_LINEAR, x, Y(), IR_NO_TIME);
    mk_output(p, l, false);
    IrParams *w = params(p, 11);
    const IrParamEntry *ea = ir_params_find(w, l, "A", 0, 0, 0), *eb = ir_params_find(w, l, "B", 0, 0, 0);
    double W[12 * 8], W2[12 * 8], bias[12];
    dense_explicit(ea, eb, ir_params_data(w, ea), ir_params_data(w, eb), W);
    ir_params_dense(w, ea, eb, W2);
    for (int i = 0; i < 96; i++) assert_true(fabs(W[i] - W2[i]) < 1e-14);
    /* equivariance of the dense matrix itself: W T_in = T_out W */
    for (int r = 0; r < 12; r++)
        for (int c = 0; c < 8; c++) {
            /* (T_out W)[r][c] = s_r W[p_r][c];  (W T_in)[r][c] = W[r][p_c] s_c */
            double lhs = Y_S[r] * W[Y_P[r] * 8 + c], rhs = W[r * 8 + X_P[c]] * X_S[c];
            assert_true(fabs(lhs - rhs) < 1e-14);
        }
    bias_full(ea->basis_out, ir_params_data(w, ir_params_find(w, l, "bias", 0, 0, 0)), bias);
    IrRun *r = ir_run_new(p, w, 2, NULL);
    fill_random(r, p, 2, 5);
    forward(r, IR_INFERENCE);
    const double *xv = ir_run_input(r, 0), *yv = ir_run_output(r, 0);
    for (int b = 0; b < 2; b++)
        for (int o = 0; o < 12; o++) {
            double s = bias[o];
            for (int i = 0; i < 8; i++) s += W[o * 8 + i] * xv[b * 8 + i];
            assert_true(fabs(s - yv[b * 12 + o]) < 1e-13);
        }
    ir_run_free(r);
}

static void test_conv1d(void **state) {
    int T = 11, k = 3, d = 2, s = 2, pad = 1, N = 2;
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, X(), T);
    IrNode *c = mk(p, IR_CONV1D, x, Y(), 5);
    c->a.kernel = k, c->a.dilation = d, c->a.stride = s, c->a.padding = pad;
    mk_output(p, c, false);
    IrParams *w = params(p, 12);
    IrRun *r = ir_run_new(p, w, N, NULL);
    fill_random(r, p, N, 6);
    forward(r, IR_INFERENCE);
    int To = (T + 2 * pad - d * (k - 1) - 1) / s + 1;
    assert_int_equal(To, 5);
    assert_int_equal(ir_run_time(r, c), To);
    double W[3][12 * 8], bias[12];
    for (int t = 0; t < k; t++) {
        const IrParamEntry *ea = ir_params_find(w, c, "A", 0, 0, t), *eb = ir_params_find(w, c, "B", 0, 0, t);
        dense_explicit(ea, eb, ir_params_data(w, ea), ir_params_data(w, eb), W[t]);
    }
    const IrParamEntry *eb = ir_params_find(w, c, "bias", 0, 0, 0);
    bias_full(eb->basis_out, ir_params_data(w, eb), bias);
    const double *xv = ir_run_input(r, 0), *yv = ir_run_output(r, 0);
    for (int b = 0; b < N; b++)
        for (int t = 0; t < To; t++)
            for (int o = 0; o < 12; o++) {
                double acc = bias[o];
                for (int tap = 0; tap < k; tap++) {
                    int src = t * s - pad + tap * d;
                    if (src < 0 || src >= T) continue;
                    for (int i = 0; i < 8; i++) acc += W[tap][o * 8 + i] * xv[(b * T + src) * 8 + i];
                }
                assert_true(fabs(acc - yv[(b * To + t) * 12 + o]) < 1e-13);
            }
    ir_run_free(r);
    assert_equivariant(p, w);
}

static void test_conv1d_lengths(void **state) {
    /* (T + 2p - d(k-1) - 1)/s + 1 for a few settings, and an empty result is an error */
    struct { int T, k, d, s, p, out; } cases[] = {
        {243, 3, 1, 1, 0, 241}, {235, 3, 3, 1, 0, 229}, {10, 3, 1, 2, 1, 5}, {8, 1, 1, 3, 0, 3}, {4, 3, 2, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        IrProgram *p = new_prog();
        IrNode *x = mk_input(p, X(), cases[i].T);
        IrNode *c = mk(p, IR_CONV1D, x, X(), cases[i].out);
        c->a.kernel = cases[i].k, c->a.dilation = cases[i].d, c->a.stride = cases[i].s, c->a.padding = cases[i].p;
        mk_output(p, c, false);
        IrRun *r = ir_run_new(p, params(p, 1), 1, NULL);
        IrInterpOpts o = {.mode = IR_INFERENCE, .keep_all = true};
        const char *why = NULL;
        bool ok = ir_run_forward(r, &o, &why);
        if (cases[i].out == 0) {
            assert_false(ok);
            assert_non_null(why);
        } else {
            assert_true(ok);
            assert_int_equal(ir_run_time(r, c), cases[i].out);
        }
        ir_run_free(r);
    }
}

static void test_invariant(void **state) {
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, Y(), 4);
    IrNode *v = mk(p, IR_INVARIANT, x, ir_chi_trivial(5), 4);
    IrNode *l = mk(p, IR_LINEAR, mk(p, IR_ACT, v, ir_chi_trivial(5), 4), ir_chi_trivial(3), 4);
    l->prev->a.act = l->prev->a.act_neg = IR_ACT_RELU; /* allowed after the invariance layer */
    IrNode *s = mk(p, IR_SOFTMAX, l, ir_chi_trivial(3), 4);
    mk_output(p, s, true);
    IrParams *w = params(p, 4);
    const IrParamEntry *eb = ir_params_find(w, v, "B", 0, 0, 0);
    assert_int_equal(eb->rows, 0); /* y = A x_even + b: no odd part */
    assert_int_equal(ir_params_find(w, v, "A", 0, 0, 0)->rows, 5);
    assert_equivariant(p, w);
    /* softmax: every frame sums to one */
    IrRun *r = ir_run_new(p, w, 2, NULL);
    fill_random(r, p, 2, 8);
    forward(r, IR_INFERENCE);
    const double *y = ir_run_output(r, 0);
    for (int f = 0; f < 8; f++) assert_true(fabs(y[f * 3] + y[f * 3 + 1] + y[f * 3 + 2] - 1) < 1e-15);
    ir_run_free(r);
}

static void test_unconstrained_breaks(void **state) {
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, X(), IR_NO_TIME);
    IrNode *l = mk(p, IR_LINEAR, x, Y(), IR_NO_TIME);
    l->a.unconstrained = true;
    mk_output(p, l, false);
    IrParams *w = params(p, 2);
    const IrParamEntry *ea = ir_params_find(w, l, "A", 0, 0, 0);
    assert_int_equal(ea->rows, 12), assert_int_equal(ea->cols, 8);
    assert_int_equal(ir_params_find(w, l, "B", 0, 0, 0)->rows, 0);
    double e = equiv_err(p, w, IR_INFERENCE, 3);
    assert_true(e > 1e-3);
}

static void test_paper_sharing(void **state) {
    IrProgram *p = new_prog();
    p->cfg.sharing = IR_SHARING_PAPER;
    IrNode *x = mk_input(p, Y(), 3);
    IrNode *c = mk(p, IR_CONV1D, x, Y(), 1);
    c->a.kernel = 3;
    mk_output(p, c, false);
    IrParams *w = params(p, 9);
    int fixed = 0;
    for (int t = 0; t < 3; t++) {
        const IrParamEntry *e = ir_params_find(w, c, "A", 0, 0, t);
        const double *A = ir_params_data(w, e);
        for (int r = 0; r < e->rows; r++)
            for (int col = 0; col < e->cols; col++)
                if (ir_params_fixed_zero(w, e, r, col)) {
                    fixed++;
                    assert_true(A[r * e->cols + col] == 0.0);
                }
    }
    /* one kept centre output x two negated pairs, per tap */
    assert_int_equal(fixed, 3 * 1 * 2);
    assert_equivariant(p, w);
}

/* ---- batchnorm -------------------------------------------------------------------------- */

static void test_batchnorm_augmented(void **state) {
    int N = 3, T = 4, F = 12;
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, Y(), T);
    IrNode *b = mk(p, IR_BATCHNORM, x, Y(), T);
    mk_output(p, b, false);
    IrParams *w = params(p, 21);
    assert_equivariant(p, w);
    /* gamma 1, beta 0: the augmented batch {x, T x} comes out with mean 0 and
     * variance var/(var + eps) on every feature. */
    double *gamma = ir_params_data(w, ir_params_find(w, b, "gamma", 0, 0, 0));
    double *beta = ir_params_data(w, ir_params_find(w, b, "beta", 0, 0, 0));
    for (int k = 0; k < 7; k++) gamma[k] = 1;
    for (int k = 0; k < 6; k++) beta[k] = 0;
    IrRun *r1 = ir_run_new(p, w, N, NULL), *r2 = ir_run_new(p, w, N, NULL);
    fill_random(r1, p, N, 4);
    double *x1 = ir_run_input(r1, 0);
    for (int i = 0; i < N * T; i++) x1[i * F + 11] += 2.0; /* odd centre feature with mean about 2 */
    ir_decl_apply(p->inputs[0], x1, ir_run_input(r2, 0), N * T);
    forward(r1, IR_TRAINING);
    forward(r2, IR_TRAINING);
    const double *y1 = ir_run_output(r1, 0), *y2 = ir_run_output(r2, 0);
    for (int f = 0; f < F; f++) {
        double m = 0, q = 0, xm = 0, xq = 0;
        for (int i = 0; i < N * T; i++) {
            m += y1[i * F + f] + y2[i * F + f];
            q += y1[i * F + f] * y1[i * F + f] + y2[i * F + f] * y2[i * F + f];
            xm += x1[i * F + f] + x1[i * F + Y_P[f]] * Y_S[f];
            xq += x1[i * F + f] * x1[i * F + f] + x1[i * F + Y_P[f]] * x1[i * F + Y_P[f]];
        }
        m /= 2 * N * T, q /= 2 * N * T, xm /= 2 * N * T, xq /= 2 * N * T;
        double var = xq - xm * xm;
        assert_true(fabs(m) < 1e-13);
        assert_true(fabs(q - var / (var + 1e-5)) < 1e-12);
    }
    /* the odd centre feature: mu = 0, so a single run keeps its mean:
     * mean(y) = mean(x) / sqrt(E[x^2] + eps) */
    double m = 0, q = 0, ym = 0;
    for (int i = 0; i < N * T; i++) m += x1[i * F + 11], q += x1[i * F + 11] * x1[i * F + 11], ym += y1[i * F + 11];
    m /= N * T, q /= N * T, ym /= N * T;
    assert_true(fabs(ym - m / sqrt(q + 1e-5)) < 1e-12);
    assert_true(ym > 0.5);
    ir_run_free(r1);
    ir_run_free(r2);
}

static void test_batchnorm_inference(void **state) {
    /* running statistics: y_f = gamma (x_f - mean_f)/sqrt(var + eps) + beta_f with
     * mean and beta synthesised from their even parts */
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, X(), IR_NO_TIME);
    IrNode *b = mk(p, IR_BATCHNORM, x, X(), IR_NO_TIME);
    mk_output(p, b, false);
    IrParams *w = params(p, 2);
    const IrParamEntry *em = ir_params_find(w, b, "mean", 0, 0, 0), *eb = ir_params_find(w, b, "beta", 0, 0, 0);
    double mean[8], beta[8];
    bias_full(em->basis_out, ir_params_data(w, em), mean);
    bias_full(eb->basis_out, ir_params_data(w, eb), beta);
    const double *gamma = ir_params_data(w, ir_params_find(w, b, "gamma", 0, 0, 0));
    const double *var = ir_params_data(w, ir_params_find(w, b, "var", 0, 0, 0));
    /* orbits of X by first feature: {0,3} {1,2} {4} {5} {6,7} */
    static const int orbit[8] = {0, 1, 1, 0, 2, 3, 4, 4};
    IrRun *r = ir_run_new(p, w, 2, NULL);
    fill_random(r, p, 2, 3);
    forward(r, IR_INFERENCE);
    const double *xv = ir_run_input(r, 0), *yv = ir_run_output(r, 0);
    for (int i = 0; i < 16; i++) {
        int f = i % 8, o = orbit[f];
        double want = gamma[o] * (xv[i] - mean[f]) / sqrt(var[o] + 1e-5) + beta[f];
        assert_true(fabs(want - yv[i]) < 1e-13);
    }
    assert_true(mean[5] == 0 && beta[5] == 0); /* nothing even on an odd centre feature */
    ir_run_free(r);
}

static void test_batchnorm_running_update(void **state) {
    /* momentum 0.5: running = (old + batch statistic)/2; the statistic of the
     * augmented batch, the variance unbiased over the batch's n = N*T rows */
    int N = 4, F = 8;
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, X(), IR_NO_TIME);
    IrNode *b = mk(p, IR_BATCHNORM, x, X(), IR_NO_TIME);
    b->a.momentum = 0.5;
    mk_output(p, b, false);
    IrParams *w = params(p, 3);
    double *rm = ir_params_data(w, ir_params_find(w, b, "mean", 0, 0, 0));
    double *rv = ir_params_data(w, ir_params_find(w, b, "var", 0, 0, 0));
    double old_m[4], old_v[5];
    memcpy(old_m, rm, sizeof old_m);
    memcpy(old_v, rv, sizeof old_v);
    IrRun *r = ir_run_new(p, w, N, NULL);
    fill_random(r, p, N, 12);
    IrInterpOpts o = {.mode = IR_TRAINING, .update_running = true};
    assert_true(ir_run_forward(r, &o, NULL));
    const double *xv = ir_run_input(r, 0);
    double m[8] = {0}, q[8] = {0};
    for (int i = 0; i < N; i++)
        for (int f = 0; f < F; f++) m[f] += xv[i * F + f] / N, q[f] += xv[i * F + f] * xv[i * F + f] / N;
    /* X's even components in basis order: pair (0,3,-1), pair (1,2,+1), centre 4,
     * pair (6,7,+1); orbits {0,3} {1,2} {4} {5} {6,7} */
    double even[4] = {m[0] - m[3], m[1] + m[2], m[4], m[6] + m[7]};
    for (int k = 0; k < 4; k++) assert_true(fabs(rm[k] - 0.5 * (old_m[k] + even[k])) < 1e-14);
    double mu0 = 0.5 * (m[0] - m[3]), mu1 = 0.5 * (m[1] + m[2]), mu6 = 0.5 * (m[6] + m[7]);
    double var[5] = {0.5 * (q[0] + q[3]) - mu0 * mu0, 0.5 * (q[1] + q[2]) - mu1 * mu1, q[4] - m[4] * m[4], q[5],
                     0.5 * (q[6] + q[7]) - mu6 * mu6};
    for (int k = 0; k < 5; k++)
        assert_true(fabs(rv[k] - 0.5 * (old_v[k] + var[k] * N / (N - 1))) < 1e-13);
    ir_run_free(r);
}

/* ---- recurrences -------------------------------------------------------------------------- */

static double sig(double v) { return 1 / (1 + exp(-v)); }

static void test_lstm_one_step(void **state) {
    /* input: one invariant feature; hidden: a negated pair (0, 1).
     * Gates i, f, o have the pair with sign +1: even e = h0 + h1, odd h0 - h1;
     * the candidate g keeps sign -1. The input has one even component and no
     * odd one, so each gate's pre-activation is even: e = a x + b, giving
     * features (e/2, e/2) for i f o and (e/2, -e/2) for g. */
    static const int hp[2] = {1, 0};
    static const signed char hs[2] = {-1, -1};
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, ir_chi_trivial(1), 2);
    IrNode *l = mk(p, IR_LSTM, x, chi_of(2, hp, hs), 2);
    mk_output(p, l, false);
    IrParams *w = params(p, 1);
    double a[4] = {0.7, -0.4, 1.3, 0.9}, bb[4] = {0.1, 0.5, -0.2, 0.3};
    double whA[4] = {0.25, -0.5, 0.8, 0.6}, whB[4] = {-0.3, 0.2, 0.45, -0.7};
    for (int g = 0; g < 4; g++) {
        const IrParamEntry *e = ir_params_find(w, l, "Wx.A", 0, g, 0);
        assert_int_equal(e->rows, 1), assert_int_equal(e->cols, 1);
        assert_int_equal(ir_params_find(w, l, "Wx.B", 0, g, 0)->rows * ir_params_find(w, l, "Wx.B", 0, g, 0)->cols, 0);
        ir_params_data(w, e)[0] = a[g];
        ir_params_data(w, ir_params_find(w, l, "bias", 0, g, 0))[0] = bb[g];
        ir_params_data(w, ir_params_find(w, l, "Wh.A", 0, g, 0))[0] = whA[g];
        ir_params_data(w, ir_params_find(w, l, "Wh.B", 0, g, 0))[0] = whB[g];
    }
    IrRun *r = ir_run_new(p, w, 1, NULL);
    double *xv = ir_run_input(r, 0);
    xv[0] = 0.5, xv[1] = -1.5;
    forward(r, IR_INFERENCE);
    const double *y = ir_run_output(r, 0);
    /* step 1 from zero state */
    double e[4];
    for (int g = 0; g < 4; g++) e[g] = a[g] * 0.5 + bb[g];
    double i0 = sig(e[0] / 2), f0 = sig(e[1] / 2), g0 = tanh(e[2] / 2), o0 = sig(e[3] / 2);
    double c0 = i0 * g0, c1 = i0 * -g0; /* g's second feature is -e/2: tanh odd */
    double h0 = o0 * tanh(c0), h1 = o0 * tanh(c1);
    (void)f0;
    assert_true(fabs(y[0] - h0) < 1e-14);
    assert_true(fabs(y[1] - h1) < 1e-14);
    assert_true(fabs(h1 + h0) < 1e-14); /* an odd input-free state: h1 = -h0 */
    /* step 2: the hidden state (h0, -h0) has, in the hidden type's basis
     * (sign -1), even h0 - h1 = 2 h0 and odd h0 + h1 = 0: Wh.A maps it to
     * every gate's even part, Wh.B gets nothing. */
    double ge[4], go[4];
    for (int g = 0; g < 4; g++) {
        double he = 2 * h0, ho = 0;
        ge[g] = a[g] * -1.5 + bb[g] + whA[g] * he;
        go[g] = whB[g] * ho;
    }
    double pre[4][2];
    for (int g = 0; g < 4; g++) {
        double s = g == 2 ? -1 : 1;
        pre[g][0] = 0.5 * (ge[g] + go[g]);
        pre[g][1] = s * 0.5 * (ge[g] - go[g]);
    }
    double cc[2] = {c0, c1};
    for (int k = 0; k < 2; k++) {
        double c = sig(pre[1][k]) * cc[k] + sig(pre[0][k]) * tanh(pre[2][k]);
        double h = sig(pre[3][k]) * tanh(c);
        assert_true(fabs(y[2 + k] - h) < 1e-14);
    }
    ir_run_free(r);
}

static void build_seq2seq(IrProgram *p, IrOp op, int layers) {
    IrNode *x = mk_input(p, X(), 6);
    IrNode *enc = mk(p, op, x, Y(), 6);
    enc->a.layers = layers, enc->a.p = 0.3;
    IrNode *seed = mk(p, IR_REPEAT, mk(p, IR_LAST, x, X(), IR_NO_TIME), X(), 4);
    seed->a.frames = 4;
    IrNode *dec = mk(p, op, seed, Y(), 4);
    dec->a.layers = layers, dec->a.p = 0.3;
    ir_add_input(dec, enc);
    IrNode *y = mk(p, IR_LINEAR, dec, X(), 4);
    IrNode *sum = mk(p, IR_ADD, y, X(), 4);
    ir_add_input(sum, seed);
    mk_output(p, sum, false);
}

static void test_recurrent_equivariant(void **state) {
    for (int op = 0; op < 2; op++) {
        IrProgram *p = new_prog();
        build_seq2seq(p, op ? IR_GRU : IR_LSTM, 2);
        IrParams *w = params(p, 17);
        assert_equivariant(p, w);
    }
}

static void test_recurrent_init(void **state) {
    /* the decoder depends on the encoder's final state: changing the encoder's
     * input's first frame changes the decoder's output */
    for (int op = 0; op < 2; op++) {
        IrProgram *p = new_prog();
        build_seq2seq(p, op ? IR_GRU : IR_LSTM, 2);
        IrParams *w = params(p, 17);
        IrRun *r = ir_run_new(p, w, 1, NULL);
        fill_random(r, p, 1, 2);
        forward(r, IR_INFERENCE);
        double first = ir_run_output(r, 0)[0];
        ir_run_input(r, 0)[0] += 1.0;
        forward(r, IR_INFERENCE);
        assert_true(fabs(ir_run_output(r, 0)[0] - first) > 1e-9);
        ir_run_free(r);
    }
}

/* ---- activations and the other ops ------------------------------------------------------- */

static void test_activation_values(void **state) {
    static const double xs[4] = {-2.0, -0.5, 0.5, 3.0};
    struct { IrAct a; double y[4]; } want[] = {
        {IR_ACT_RELU, {0, 0, 0.5, 3}},
        {IR_ACT_LEAKY_RELU, {-0.2, -0.05, 0.5, 3}},
        {IR_ACT_ELU, {exp(-2.0) - 1, exp(-0.5) - 1, 0.5, 3}},
        {IR_ACT_GELU, {-0.04550026389635842, -0.15426876936299344, 0.34573123063700656, 2.99595030590511}},
        {IR_ACT_SIGMOID, {1 / (1 + exp(2.0)), 1 / (1 + exp(0.5)), 1 / (1 + exp(-0.5)), 1 / (1 + exp(-3.0))}},
        {IR_ACT_TANH, {tanh(-2.0), tanh(-0.5), tanh(0.5), tanh(3.0)}},
        {IR_ACT_SOFTSIGN, {-2.0 / 3, -1.0 / 3, 1.0 / 3, 0.75}},
        {IR_ACT_HARDTANH, {-1, -0.5, 0.5, 1}},
    };
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        IrProgram *p = new_prog();
        IrNode *x = mk_input(p, ir_chi_trivial(4), IR_NO_TIME);
        IrNode *a = mk(p, IR_ACT, x, ir_chi_trivial(4), IR_NO_TIME);
        a->a.act = want[k].a, a->a.act_neg = IR_ACT_TANH, a->a.slope = 0.1;
        mk_output(p, a, false);
        IrRun *r = ir_run_new(p, params(p, 1), 1, NULL);
        memcpy(ir_run_input(r, 0), xs, sizeof xs);
        forward(r, IR_INFERENCE);
        for (int i = 0; i < 4; i++)
            if (fabs(ir_run_output(r, 0)[i] - want[k].y[i]) > 1e-12)
                fail_msg("%s(%g) = %.17g, want %.17g", ir_act_name[want[k].a], xs[i], ir_run_output(r, 0)[i],
                         want[k].y[i]);
        ir_run_free(r);
    }
}

static IrProgram *act_net(IrAct kept, IrAct neg) {
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, X(), 3);
    IrNode *l = mk(p, IR_LINEAR, x, Y(), 3);
    IrNode *a = mk(p, IR_ACT, l, Y(), 3);
    a->a.act = kept, a->a.act_neg = neg;
    mk_output(p, mk(p, IR_LINEAR, a, X(), 3), false);
    return p;
}

static void test_activation_equivariant(void **state) {
    for (int k = 0; k < IR_NUM_ACTS; k++) {
        IrProgram *p = act_net((IrAct)k, IR_ACT_TANH); /* mixed policy */
        assert_equivariant(p, params(p, 5));
        if (ir_act_odd[k]) {
            p = act_net((IrAct)k, (IrAct)k); /* the odd function on every feature */
            assert_equivariant(p, params(p, 5));
        }
    }
}

static void test_forced_relu_breaks(void **state) {
    IrProgram *p = act_net(IR_ACT_RELU, IR_ACT_RELU);
    double e = equiv_err(p, params(p, 5), IR_INFERENCE, 3);
    assert_true(e > 1e-3);
}

static void test_time_ops(void **state) {
    int N = 2, T = 7, F = 8;
    IrProgram *p = new_prog();
    IrNode *x = mk_input(p, X(), T);
    IrNode *c = mk(p, IR_CROP, x, X(), 3);
    c->a.crop = 2;
    IrChi parts[2] = {X(), Y()};
    IrNode *y = mk(p, IR_LINEAR, c, Y(), 3);
    IrNode *cat = mk(p, IR_CONCAT, c, ir_chi_concat(arena, parts, 2), 3);
    ir_add_input(cat, y);
    IrNode *mp = mk(p, IR_MEANPOOL, x, X(), IR_NO_TIME);
    IrNode *last = mk(p, IR_LAST, x, X(), IR_NO_TIME);
    IrNode *rep = mk(p, IR_REPEAT, last, X(), 3);
    rep->a.frames = 3;
    IrNode *sub = mk(p, IR_SUB, c, X(), 3);
    ir_add_input(sub, rep);
    IrNode *fl = mk(p, IR_FLATTEN, sub, ir_chi_tile(arena, &sub->chi, 3), IR_NO_TIME);
    IrNode *dr = mk(p, IR_DROPOUT, fl, fl->chi, IR_NO_TIME);
    dr->a.p = 0.5;
    mk_output(p, cat, false);
    mk_output(p, mp, false);
    mk_output(p, dr, false);
    IrParams *w = params(p, 8);
    assert_equivariant(p, w);
    IrRun *r = ir_run_new(p, w, N, NULL);
    fill_random(r, p, N, 1);
    forward(r, IR_INFERENCE);
    const double *xv = ir_run_input(r, 0);
    const double *cv = ir_run_value(r, c), *catv = ir_run_output(r, 0), *mpv = ir_run_output(r, 1);
    const double *lv = ir_run_value(r, last), *rv = ir_run_value(r, rep), *fv = ir_run_output(r, 2);
    assert_int_equal(ir_run_time(r, c), 3);
    assert_int_equal(ir_run_time(r, rep), 3);
    for (int b = 0; b < N; b++)
        for (int f = 0; f < F; f++) {
            double m = 0;
            for (int t = 0; t < T; t++) m += xv[(b * T + t) * F + f];
            assert_true(fabs(mpv[b * F + f] - m / T) < 1e-15);
            assert_true(lv[b * F + f] == xv[(b * T + T - 1) * F + f]);
            for (int t = 0; t < 3; t++) {
                double xc = xv[(b * T + t + 2) * F + f];
                assert_true(cv[(b * 3 + t) * F + f] == xc);
                assert_true(catv[(b * 3 + t) * 20 + f] == xc);
                assert_true(rv[(b * 3 + t) * F + f] == lv[b * F + f]);
                /* flatten is frame-major: [T*F]; dropout is the identity at inference */
                assert_true(fv[b * 24 + t * F + f] == xc - lv[b * F + f]);
            }
        }
    /* dropout in training: zero or scaled by 1/(1-p); the same mask for the same seed */
    IrInterpOpts o = {.mode = IR_TRAINING, .dropout = true, .seed = 3, .keep_all = true};
    const char *why;
    assert_true(ir_run_forward(r, &o, &why));
    const double *sv = ir_run_value(r, fl), *dv = ir_run_output(r, 2);
    int zeros = 0;
    for (int i = 0; i < N * 24; i++) {
        if (dv[i] == 0) zeros++;
        else assert_true(fabs(dv[i] - 2 * sv[i]) < 1e-15);
    }
    assert_true(zeros > 5 && zeros < N * 24 - 5);
    double keep[48];
    memcpy(keep, dv, sizeof keep);
    assert_true(ir_run_forward(r, &o, &why));
    assert_memory_equal(keep, ir_run_output(r, 2), sizeof keep);
    ir_run_free(r);
}

static void test_free_after_last_use(void **state) {
    /* without keep_all the interpreter frees values nobody reads any more,
     * and the outputs stay */
    IrProgram *p = act_net(IR_ACT_TANH, IR_ACT_TANH);
    IrParams *w = params(p, 1);
    IrRun *r = ir_run_new(p, w, 2, NULL);
    fill_random(r, p, 2, 1);
    IrInterpOpts o = {.mode = IR_INFERENCE};
    assert_true(ir_run_forward(r, &o, NULL));
    assert_null(ir_run_value(r, p->first->next)); /* the first linear */
    assert_non_null(ir_run_output(r, 0));
    ir_run_free(r);
}

/* ---- the examples, through the whole front half -------------------------------------------- */

static IrProgram *compile_with(const char *name, IrOverride *ov, int nov, IrSharing sharing) {
    IrProgram *p = front_elaborate(arena, &diag, arena_printf(arena, "examples/%s.net", name), NULL, ov, nov);
    if (!p) return NULL;
    p->cfg.sharing = sharing;
    return front_passes(p);
}

static IrProgram *compile(const char *name, IrOverride *ov, int nov) {
    return compile_with(name, ov, nov, IR_SHARING_FULL);
}

static void check_example(const char *name, IrOverride *ov, int nov) {
    IrProgram *p = compile(name, ov, nov);
    if (!p) skip();
    assert_equivariant(p, params(p, 42));
}

static void test_example_martinez(void **state) {
    IrOverride ov[] = {{"width", 68, false}};
    check_example("martinez", ov, 1);
}
static void test_example_videopose3d(void **state) {
    IrOverride ov[] = {{"width", 68, false}, {"blocks", 2, false}};
    check_example("videopose3d", ov, 2);
}
static void test_example_forecast(void **state) {
    IrOverride ov[] = {{"hidden", 52, false}, {"past", 5, false}, {"future", 3, false}};
    check_example("forecast_lstm", ov, 3);
}
static void test_example_action(void **state) {
    IrOverride ov[] = {{"width", 68, false}, {"frames", 8, false}};
    check_example("action_stconv", ov, 2);
}

/* The parameter layout and pass_count are written independently: the folded
 * and the paper's counts must agree with the buffer, for every example. */
static void test_counts_agree(void **state) {
    static const char *const names[] = {"martinez", "videopose3d", "forecast_lstm", "action_stconv"};
    for (int k = 0; k < 4; k++)
        for (int sh = 0; sh < 2; sh++) {
            IrProgram *p = compile_with(names[k], NULL, 0, sh ? IR_SHARING_PAPER : IR_SHARING_FULL);
            if (!p) skip();
            IrParams *w = params(p, 1);
            long long trainable = 0, fixed = 0;
            for (int i = 0; i < w->nentries; i++) {
                const IrParamEntry *e = &w->entries[i];
                if (!e->trainable) continue;
                trainable += (long long)e->rows * e->cols;
                for (int r = 0; r < e->rows; r++)
                    for (int c = 0; c < e->cols; c++) fixed += ir_params_fixed_zero(w, e, r, c);
            }
            PassTotals t = pass_totals(p);
            if (trainable != t.total[IR_FOLDED].params || (sh && trainable - fixed != t.total[IR_PAPER].params))
                fail_msg("%s sharing %d: buffer %lld (%lld held at zero), count folded %lld paper %lld",
                         names[k], sh, trainable, fixed, t.total[IR_FOLDED].params, t.total[IR_PAPER].params);
            if (sh == 0) assert_int_equal(fixed, 0);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rng, setup, teardown),
        cmocka_unit_test_setup_teardown(test_param_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linear_equivariant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linear_dense, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conv1d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conv1d_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invariant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unconstrained_breaks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paper_sharing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batchnorm_augmented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batchnorm_inference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batchnorm_running_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lstm_one_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recurrent_equivariant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recurrent_init, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_equivariant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced_relu_breaks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_after_last_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_martinez, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_videopose3d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_forecast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts_agree, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
