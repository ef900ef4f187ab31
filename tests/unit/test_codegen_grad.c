/* Tests of the lowered backward (codegen/lower_grad.c): RtModel.backward.
 *
 * (a) Differential: the compiled float32 gradients against the float64
 *     interpreter's (ir_run_grad), relative error < 1e-4, for small versions of
 *     every example, folded and --no-fold, training mode (dropout off) and
 *     inference mode. dL/d(output) comes from the runtime's losses (runtime/loss.c),
 *     as the training loop hands it to backward.
 * (b) Finite differences through the compiled float64 path (CgEmitOptions.f64)
 *     for the networks of tests/nets (every op kind, both layouts, both sharing
 *     modes and activation policies), folded and --no-fold, both modes: five-point
 *     central differences of L = <w, y(theta)> per parameter tensor, relative
 *     error < 1e-6; held-at-zero weights have a zero gradient.
 * (c) Gradient equivariance of the compiled float32 path for every example: the
 *     folded parameters' gradient on (x, y) equals the one on (T_in x, T_out y)
 *     (training mode over the whole batch, dropout off) to float32 round-off.
 * The arena is filled with NaN before every forward, so the backward reading
 * memory that the plan gave to another buffer shows up as a wrong gradient. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cg_harness.h"

/* ---- a compiled model with its buffers, float32 or float64 ------------------------------- */

typedef struct Run {
    const RtModel *rm;
    const CgModel *m;
    const IrProgram *p;
    int batch;
    size_t es; /* element size: 4 or 8 */
    bool dropout; /* training: dropout on (seed 3, step 2) */
    char *params, *state, *prep, *arena, *grads;
    char **in, **out, **dout;
    long *nin, *nout; /* elements per input / output */
} Run;

static void *zalloc(long n, size_t es) { return calloc((size_t)(n > 0 ? n : 1), es); }

static double get(const Run *r, const char *buf, long i) {
    return r->es == 8 ? ((const double *)buf)[i] : (double)((const float *)buf)[i];
}
static void set(const Run *r, char *buf, long i, double v) {
    if (r->es == 8) ((double *)buf)[i] = v;
    else ((float *)buf)[i] = (float)v;
}

static Run run_new(const Built *b, const IrProgram *p, int batch, bool f64) {
    Run r = {.rm = b->rm, .m = b->m, .p = p, .batch = batch, .es = f64 ? 8 : 4};
    const RtModel *rm = b->rm;
    assert_non_null(rm->backward);
    r.params = zalloc(rm->params_size, r.es), r.state = zalloc(rm->state_size, r.es);
    r.prep = zalloc(rm->prep_size, r.es), r.grads = zalloc(rm->params_size, r.es);
    r.arena = zalloc(rm->arena_per_sample * batch + rm->arena_fixed, r.es);
    r.in = calloc((size_t)p->ninputs + 1, sizeof(char *)), r.nin = calloc((size_t)p->ninputs + 1, sizeof(long));
    r.out = calloc((size_t)p->noutputs + 1, sizeof(char *)), r.nout = calloc((size_t)p->noutputs + 1, sizeof(long));
    r.dout = calloc((size_t)p->noutputs + 1, sizeof(char *));
    for (int i = 0; i < p->ninputs; i++) {
        r.nin[i] = (long)batch * (rm->inputs[i].frames ? rm->inputs[i].frames : 1) * rm->inputs[i].features;
        r.in[i] = zalloc(r.nin[i], r.es);
    }
    for (int i = 0; i < p->noutputs; i++) {
        r.nout[i] = (long)batch * (rm->outputs[i].frames ? rm->outputs[i].frames : 1) * rm->outputs[i].features;
        r.out[i] = zalloc(r.nout[i], r.es);
        r.dout[i] = zalloc(r.nout[i], r.es);
    }
    return r;
}

static void run_free(Run *r) {
    for (int i = 0; i < r->p->ninputs; i++) free(r->in[i]);
    for (int i = 0; i < r->p->noutputs; i++) free(r->out[i]), free(r->dout[i]);
    free(r->in), free(r->out), free(r->dout), free(r->nin), free(r->nout);
    free(r->params), free(r->state), free(r->prep), free(r->grads), free(r->arena);
}

/* The interpreter's parameters into the compiled layout (cg_params_from_ir for both widths). */
static void run_params(Run *r, const IrParams *w) {
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *e = &w->entries[i];
        char *dst = r->m->entry_state[i] ? r->state : r->params;
        for (long j = 0; j < (long)e->rows * e->cols; j++) set(r, dst, r->m->entry_offset[i] + j, w->data[e->offset + j]);
    }
}

static RtExec exec_of(Run *r, RtMode mode) {
    return (RtExec){.batch = r->batch, .mode = mode, .params = (const float *)r->params, .state = (float *)r->state,
                    .prep = (float *)r->prep, .inputs = (const float *const *)r->in, .outputs = (float *const *)r->out,
                    .doutputs = (float *const *)r->dout, .grads = (float *)r->grads, .arena = (float *)r->arena,
                    .dropout = r->dropout, .dropout_seed = 3, .step = 2, .bn_momentum = -1};
}

static void run_forward(Run *r, RtMode mode) {
    long asz = r->rm->arena_per_sample * r->batch + r->rm->arena_fixed;
    for (long i = 0; i < asz; i++) set(r, r->arena, i, NAN);
    RtExec x = exec_of(r, mode);
    if (mode == RT_MODE_INFERENCE) r->rm->prepare(r->rm, &x);
    r->rm->forward(r->rm, &x);
}

static void run_backward(Run *r, RtMode mode) {
    long np = r->rm->params_size;
    for (long i = 0; i < np; i++) set(r, r->grads, i, NAN); /* every entry must be written */
    RtExec x = exec_of(r, mode);
    r->rm->backward(r->rm, &x);
}

/* ---- (a) differential against the interpreter, and (c) equivariance ------------------------- */

static RtLossKind loss_kind(IrLoss l) {
    switch (l) {
    case IR_LOSS_MSE: return RT_LOSS_MSE;
    case IR_LOSS_L1: return RT_LOSS_L1;
    case IR_LOSS_MPJPE: return RT_LOSS_MPJPE;
    case IR_LOSS_CROSS_ENTROPY: return RT_LOSS_CROSS_ENTROPY;
    default: fail_msg("no loss");
    }
    return RT_LOSS_MSE;
}

/* The runtime's dL/d(output) of the loss output from the compiled outputs and
 * targets (float, or the class indices as int64). */
static void loss_grad(Run *r, const double *target) {
    const IrProgram *p = r->p;
    for (int i = 0; i < p->noutputs; i++) {
        const IrDecl *d = p->outputs[i];
        if (d != p->train.loss_output) {
            memset(r->dout[i], 0, (size_t)r->nout[i] * r->es);
            continue;
        }
        long rows = r->nout[i] / d->feat;
        void *t;
        if (d->is_class) {
            int64_t *ti = malloc(sizeof(int64_t) * (size_t)rows);
            for (long k = 0; k < rows; k++) ti[k] = (int64_t)target[k];
            t = ti;
        } else {
            float *tf = malloc(sizeof(float) * (size_t)r->nout[i]);
            for (long k = 0; k < r->nout[i]; k++) tf[k] = (float)target[k];
            t = tf;
        }
        rt_loss(loss_kind(p->train.loss), (const float *)r->out[i], t, rows, d->feat, d->ncoords, (float *)r->dout[i]);
        free(t);
    }
}

static double rel_vec(const float *y, const double *ref, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)y[i] - ref[i];
        num += d * d, den += ref[i] * ref[i];
    }
    if (isnan(num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The interpreter's gradient in the compiled layout (trainable entries only). */
static double *ir_grads_compiled(const CgModel *m, const IrParams *w, const double *g, long np) {
    double *out = calloc((size_t)np + 1, sizeof(double));
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *e = &w->entries[i];
        if (m->entry_state[i]) continue;
        memcpy(out + m->entry_offset[i], g + e->offset, sizeof(double) * (size_t)e->rows * (size_t)e->cols);
    }
    return out;
}

/* Names the worst entry, for a failure message. */
static const char *worst_entry(const CgModel *m, const IrParams *w, const float *g, const double *ref) {
    const char *name = "?";
    double worst = -1;
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *e = &w->entries[i];
        if (m->entry_state[i]) continue;
        long n = (long)e->rows * e->cols;
        double err = rel_vec(g + m->entry_offset[i], ref + m->entry_offset[i], n);
        if (err > worst)
            worst = err, name = arena_printf(arena, "%%%d %s %s[%d,%d,%d] (%.3g)", e->node->id, ir_op_info[e->node->op].name,
                                             e->name, e->layer, e->gate, e->tap, err);
    }
    return name;
}

static void differential(IrProgram *p, bool no_fold, int batch, uint64_t seed) {
    Built bl = build_opts(p, no_fold, false);
    IrParams *w = ir_params_new(arena, p);
    ir_params_randomize(w, seed);
    Run r = run_new(&bl, p, batch, false);
    IrRun *ir = ir_run_new(p, w, batch, NULL);
    uint64_t c = 0;
    for (int i = 0; i < p->ninputs; i++) {
        double *x = ir_run_input(ir, i);
        assert_int_equal((long)batch * ir_run_input_time(ir, i) * p->inputs[i]->feat, r.nin[i]);
        for (long k = 0; k < r.nin[i]; k++) set(&r, r.in[i], k, x[k] = ir_rand_normal(seed + 1000, c++));
    }
    int lo = -1;
    for (int i = 0; i < p->noutputs; i++) {
        const IrDecl *d = p->outputs[i];
        double *t = ir_run_target(ir, i);
        long frames = (long)batch * ir_run_target_time(ir, i);
        if (d->is_class)
            for (long k = 0; k < frames; k++) t[k] = floor(ir_rand_uniform(seed + 2000, c++) * d->feat);
        else
            for (long k = 0; k < frames * d->feat; k++) t[k] = ir_rand_normal(seed + 2000, c++);
        if (d == p->train.loss_output) lo = i;
    }
    assert_true(lo >= 0);
    long np = r.rm->params_size;
    float *g[2] = {NULL, NULL};
    for (int mode = 0; mode < 2; mode++) {
        run_params(&r, w);
        IrInterpOpts o = {.mode = mode ? IR_TRAINING : IR_INFERENCE, .dropout = false, .seed = 1};
        const char *why = NULL;
        if (!ir_run_forward(ir, &o, &why)) fail_msg("interpreter: %s", why);
        RtMode md = mode ? RT_MODE_TRAINING : RT_MODE_INFERENCE;
        run_forward(&r, md);
        loss_grad(&r, ir_run_target(ir, lo));
        run_backward(&r, md);
        double *ref = ir_grads_compiled(bl.m, w, ir_run_grad(ir), np);
        double e = rel_vec((const float *)r.grads, ref, np);
        if (!(e < 1e-4))
            fail_msg("%s%s, %s mode: gradient relative error %g, worst entry %s", p->model, no_fold ? " (no-fold)" : "",
                     mode ? "training" : "inference", e, worst_entry(bl.m, w, (const float *)r.grads, ref));
        double gn = 0;
        for (long k = 0; k < np; k++) gn += ref[k] * ref[k];
        assert_true(gn > 0); /* the check says something */
        print_message("%-16s %-4s %-8s %-9s gradient relative error %.2e\n", p->model, cg_backend_name[cg_backend],
                      no_fold ? "no-fold" : "folded", mode ? "training" : "inference", e);
        g[mode] = malloc(sizeof(float) * (size_t)(np + 1));
        memcpy(g[mode], r.grads, sizeof(float) * (size_t)np);
        free(ref);
    }
    /* (c) equivariance: the same in training mode on (T_in x, T_out y) */
    run_params(&r, w);
    for (int i = 0; i < p->ninputs; i++) {
        long fr = (long)batch * ir_run_input_time(ir, i);
        double *mx = malloc(sizeof(double) * (size_t)r.nin[i]);
        ir_decl_apply(p->inputs[i], ir_run_input(ir, i), mx, fr);
        for (long k = 0; k < r.nin[i]; k++) set(&r, r.in[i], k, mx[k]);
        free(mx);
    }
    const IrDecl *d = p->outputs[lo];
    long tn = r.nout[lo] / d->feat * (d->is_class ? 1 : d->feat);
    double *ty = malloc(sizeof(double) * (size_t)tn);
    if (d->is_class) memcpy(ty, ir_run_target(ir, lo), sizeof(double) * (size_t)tn); /* labels: left alone */
    else ir_decl_apply(d, ir_run_target(ir, lo), ty, r.nout[lo] / d->feat);
    run_forward(&r, RT_MODE_TRAINING);
    loss_grad(&r, ty);
    run_backward(&r, RT_MODE_TRAINING);
    double *g0 = malloc(sizeof(double) * (size_t)(np + 1));
    for (long k = 0; k < np; k++) g0[k] = g[1][k];
    double e = rel_vec((const float *)r.grads, g0, np);
    /* folded: T permutes the even/odd components, every sum adds the same numbers;
     * --no-fold: the dense GEMMs add them in another order (float32 round-off) */
    if (!(e < (no_fold ? 1e-4 : 1e-5))) fail_msg("%s%s: compiled gradient equivariance error %g", p->model, no_fold ? " (no-fold)" : "", e);
    print_message("%-16s %-8s gradient equivariance error %.2e\n", p->model, no_fold ? "no-fold" : "folded", e);
    free(g0), free(ty), free(g[0]), free(g[1]);
    ir_run_free(ir);
    run_free(&r);
    dlclose(bl.dl);
}

/* Folded and --no-fold, over every backend this chiralc has (C, and LLVM where built). */
static void both(IrProgram *p) {
    if (!p) skip();
    for (cg_backend = 0; cg_backend < cg_backends(); cg_backend++) {
        differential(p, false, 3, 7);
        differential(p, true, 3, 7);
    }
    cg_backend = CG_BACKEND_C;
}

static void test_videopose3d(void **state) {
    IrOverride ov[] = {{"width", 68, false}, {"blocks", 2, false}};
    both(front_train("examples/videopose3d.net", NULL, ov, 2));
}
/* At 510 channels the LLVM backend loops over the runs of the folded kernels' gathers
 * (codegen/runs.c; test_codegen checks which kernels): the backward's too. */
static void test_videopose3d_runs(void **state) {
    IrOverride ov[] = {{"width", 510, false}, {"blocks", 1, false}};
    both(front_train("examples/videopose3d.net", NULL, ov, 2));
}
static void test_martinez(void **state) {
    IrOverride ov[] = {{"width", 68, false}};
    both(front_train("examples/martinez.net", NULL, ov, 1));
}
static void test_forecast_lstm(void **state) {
    IrOverride ov[] = {{"hidden", 52, false}, {"past", 4, false}, {"future", 3, false}};
    both(front_train("examples/forecast_lstm.net", NULL, ov, 3));
}
static void test_action_stconv(void **state) {
    IrOverride ov[] = {{"width", 34, false}, {"frames", 8, false}};
    both(front_train("examples/action_stconv.net", NULL, ov, 2));
}

/* ---- (b) finite differences through the float64 path ------------------------------------------ */

/* L = <w, y>: the compiled float64 forward of mode md; *scale: sum |w y|, the
 * size of L's round-off. */
static double lin_loss(Run *r, RtMode md, const double *wout, double *scale) {
    run_forward(r, md);
    double s = 0, a = 0;
    long o = 0;
    for (int i = 0; i < r->p->noutputs; i++)
        for (long k = 0; k < r->nout[i]; k++, o++) {
            double v = wout[o] * get(r, r->out[i], k);
            s += v, a += fabs(v);
        }
    if (scale) *scale = a;
    return s;
}

static void fd_net(IrProgram *p, bool no_fold, int batch, double h, int per_entry) {
    Built bl = build_opts(p, no_fold, true);
    IrParams *w = ir_params_new(arena, p);
    ir_params_randomize(w, 11);
    Run r = run_new(&bl, p, batch, true);
    uint64_t c = 0;
    for (int i = 0; i < p->ninputs; i++)
        for (long k = 0; k < r.nin[i]; k++) set(&r, r.in[i], k, ir_rand_normal(99, c++));
    long nw = 0;
    for (int i = 0; i < p->noutputs; i++) nw += r.nout[i];
    double *wout = malloc(sizeof(double) * (size_t)(nw + 1));
    /* only the loss's output: the training graph differentiates nothing else */
    for (int i = 0, o = 0; i < p->noutputs; i++)
        for (long k = 0; k < r.nout[i]; k++, o++)
            wout[o] = p->outputs[i] == p->train.loss_output ? ir_rand_normal(98, (uint64_t)o) : 0.0;
    const CgModel *m = bl.m;
    /* inference, training, training with dropout (the mask is a function of the
     * seed and step only, so the forward stays a function of the parameters) */
    for (int mode = 0; mode < 3; mode++) {
        RtMode md = mode ? RT_MODE_TRAINING : RT_MODE_INFERENCE;
        r.dropout = mode == 2;
        run_params(&r, w);
        double lscale;
        double l0 = lin_loss(&r, md, wout, &lscale);
        assert_true(isfinite(l0));
        for (int i = 0, o = 0; i < p->noutputs; i++)
            for (long k = 0; k < r.nout[i]; k++) set(&r, r.dout[i], k, wout[o++]);
        run_backward(&r, md);
        long np = r.rm->params_size;
        double *g = malloc(sizeof(double) * (size_t)(np + 1));
        for (long k = 0; k < np; k++) g[k] = get(&r, r.grads, k);
        double gnorm = 0;
        for (int i = 0; i < w->nentries; i++) {
            const IrParamEntry *e = &w->entries[i];
            if (m->entry_state[i]) continue;
            long size = (long)e->rows * e->cols, off = m->entry_offset[i];
            if (size == 0) continue;
            long step = size > per_entry ? (size + per_entry - 1) / per_entry : 1;
            double num = 0, den = 0, gn = 0;
            long samples = 0;
            for (long k = (long)(ir_rand_uniform(5, (uint64_t)i) * (double)step); k < size; k += step) {
                double gk = g[off + k];
                if (ir_params_fixed_zero(w, e, (int)(k / e->cols), (int)(k % e->cols))) {
                    if (gk != 0.0) fail_msg("%s: held-at-zero weight %s[%ld] has gradient %g", p->model, e->name, k, gk);
                    continue;
                }
                double keep = get(&r, r.params, off + k), l[4];
                static const double at[4] = {-2, -1, 1, 2};
                for (int j = 0; j < 4; j++) {
                    set(&r, r.params, off + k, keep + at[j] * h);
                    l[j] = lin_loss(&r, md, wout, NULL);
                }
                set(&r, r.params, off + k, keep);
                double fd = (8 * (l[2] - l[1]) - (l[3] - l[0])) / (12 * h);
                samples++;
                num += (fd - gk) * (fd - gk), den += fd * fd, gn += gk * gk;
            }
            gnorm += gn;
            /* as tests/unit/test_grad.c: below the differences' round-off floor the check is absolute */
            double noise = 2 * DBL_EPSILON * (lscale + 1) / h * sqrt((double)samples);
            double err = sqrt(num) / fmax(sqrt(fmax(den, gn)), fmax(1e-5, 1e6 * noise));
            if (!(err < 1e-6))
                fail_msg("%s%s, %s mode: %s[%d,%d,%d] of %%%d (%s): relative error %.3g (|fd| %.3g, |g| %.3g)", p->model,
                         no_fold ? " (no-fold)" : "", mode == 2 ? "training with dropout" : mode ? "training" : "inference", e->name, e->layer, e->gate, e->tap,
                         e->node->id, ir_op_info[e->node->op].name, err, sqrt(den), sqrt(gn));
        }
        assert_true(gnorm > 0);
        free(g);
    }
    free(wout);
    run_free(&r);
    dlclose(bl.dl);
}

static void test_fd_nets(void **state) {
    static const char *const nets[] = {
        "activations_all", "classify_auto_invariant", "classify_invariant", "concat_flatten",
        "conv_stride_dilation", "gru_seq2seq", "lift_joints_paper", "lift_pairs_mixed", "lstm_seq2seq",
        "strided_residual", "crop_strided_uneven", "broken_unshared", "broken_relu_forced",
    };
    for (size_t i = 0; i < sizeof nets / sizeof *nets; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/nets/%s.net", nets[i]);
        IrProgram *p = front_train(rel, NULL, NULL, 0);
        if (!p) skip();
        fd_net(p, false, 3, 1e-6, 4);
        p = front_train(rel, NULL, NULL, 0);
        fd_net(p, true, 3, 1e-6, 4);
    }
}

/* The examples' own ops (crop, meanpool, the class loss's softmax, conv strides) in float64 too. */
static void test_fd_examples(void **state) {
    IrOverride vp[] = {{"width", 34, false}, {"blocks", 1, false}};
    IrProgram *p = front_train("examples/videopose3d.net", NULL, vp, 2);
    if (!p) skip();
    fd_net(p, false, 2, 1e-6, 3);
    IrOverride ac[] = {{"width", 34, false}, {"frames", 8, false}};
    fd_net(front_train("examples/action_stconv.net", NULL, ac, 2), true, 2, 1e-6, 3);
}

static int cleanup(void **state) { return cg_cleanup(state); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_martinez, setup, teardown),
        cmocka_unit_test_setup_teardown(test_videopose3d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_videopose3d_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_stconv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forecast_lstm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_nets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_examples, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
