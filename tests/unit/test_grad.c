/* Tests of passes/autodiff.c and ir/interp_grad.c: the training graph and
 * the reference gradients.
 *
 * The gradients are checked against central finite differences of the loss
 * (float64) for every folded parameter tensor of small networks that cover
 * every op kind, in both layouts, both activation policies and both sharing
 * modes. Every op under test sits between parameterised layers, so the
 * parameter gradients upstream of it check its input gradient too. Then the
 * law of chirality.md 5 for every example: grad L(x, y) = grad L(T x, T y). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "front.h"

#include "passes/passes.h"

static Arena *arena;
static Diag diag;

static int setup(void **state) {
    arena = arena_new();
    diag_init(&diag, stderr);
    return 0;
}
static int teardown(void **state) {
    arena_free(arena);
    return 0;
}

/* ---- compiling --------------------------------------------------------------------- */

typedef struct Cfg {
    IrLayout layout;
    IrActPolicy acts;
    IrSharing sharing;
} Cfg;
static const Cfg CFGS[8] = {
    {IR_LAYOUT_JOINTS, IR_ACTS_PAPER, IR_SHARING_FULL}, {IR_LAYOUT_JOINTS, IR_ACTS_MIXED, IR_SHARING_FULL},
    {IR_LAYOUT_JOINTS, IR_ACTS_PAPER, IR_SHARING_PAPER}, {IR_LAYOUT_JOINTS, IR_ACTS_MIXED, IR_SHARING_PAPER},
    {IR_LAYOUT_PAIRS, IR_ACTS_PAPER, IR_SHARING_FULL},  {IR_LAYOUT_PAIRS, IR_ACTS_MIXED, IR_SHARING_FULL},
    {IR_LAYOUT_PAIRS, IR_ACTS_PAPER, IR_SHARING_PAPER},  {IR_LAYOUT_PAIRS, IR_ACTS_MIXED, IR_SHARING_PAPER},
};

/* The program of `rel` (or of `text`), configured by c, through the passes. */
static IrProgram *compile_cfg(const char *rel, const char *text, IrOverride *ov, int nov, const Cfg *c,
                              bool training) {
    IrProgram *p = front_elaborate(arena, &diag, rel, text, ov, nov);
    if (!p) return NULL;
    if (c) {
        p->cfg.layout = c->layout;
        p->cfg.activations = c->acts;
        p->cfg.sharing = c->sharing;
    }
    p->training = training;
    return front_passes(p);
}

static IrProgram *compile_src(const char *src, const Cfg *c) { return compile_cfg("test.net", src, NULL, 0, c, true); }

static IrProgram *compile_example(const char *name, IrOverride *ov, int nov, const Cfg *c) {
    return compile_cfg(arena_printf(arena, "examples/%s.net", name), NULL, ov, nov, c, true);
}

static IrParams *params(IrProgram *p, uint64_t seed) {
    IrParams *w = ir_params_new(arena, p);
    ir_params_randomize(w, seed);
    return w;
}

/* Random inputs and targets (class indices for a class output). */
static void fill(IrRun *r, const IrProgram *p, int batch, uint64_t seed) {
    uint64_t c = 0;
    for (int i = 0; i < p->ninputs; i++) {
        long size = (long)batch * ir_run_input_time(r, i) * p->inputs[i]->feat;
        double *x = ir_run_input(r, i);
        for (long k = 0; k < size; k++) x[k] = ir_rand_normal(seed, c++);
    }
    for (int i = 0; i < p->noutputs; i++) {
        const IrDecl *d = p->outputs[i];
        long frames = (long)batch * ir_run_target_time(r, i);
        double *y = ir_run_target(r, i);
        if (d->is_class)
            for (long k = 0; k < frames; k++) y[k] = floor(ir_rand_uniform(seed, c++) * d->feat);
        else
            for (long k = 0; k < frames * d->feat; k++) y[k] = ir_rand_normal(seed, c++);
    }
}

static double run_loss(IrRun *r, const IrInterpOpts *o) {
    const char *why = NULL;
    if (!ir_run_forward(r, o, &why)) fail_msg("run failed: %s", why);
    return ir_run_loss(r);
}

/* ---- finite differences --------------------------------------------------------------- */

/* Central differences (five points) of the loss for (up to `per_entry` elements of) every
 * trainable parameter tensor against the pgrad nodes' gradient; the largest
 * relative error ||g - fd|| / ||fd|| over the tensors. Held-at-zero weights
 * must have a zero gradient and are not differenced (training never moves
 * them). */
static double fd_check(IrProgram *p, IrParams *w, int batch, IrMode mode, bool dropout, double h, int per_entry,
                       const char *what) {
    IrRun *r = ir_run_new(p, w, batch, NULL);
    fill(r, p, batch, 77);
    IrInterpOpts o = {.mode = mode, .dropout = dropout, .seed = 5};
    double l0 = run_loss(r, &o);
    assert_true(isfinite(l0));
    double *g = malloc(sizeof(double) * (size_t)(w->size + 1));
    memcpy(g, ir_run_grad(r), sizeof(double) * (size_t)w->size);
    double worst = 0, gnorm = 0;
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *e = &w->entries[i];
        long size = (long)e->rows * e->cols;
        double *d = ir_params_data(w, e), *ge = g + e->offset;
        if (!e->trainable) {
            for (long k = 0; k < size; k++) assert_true(ge[k] == 0.0);
            continue;
        }
        if (size == 0) continue;
        long step = size > per_entry ? (size + per_entry - 1) / per_entry : 1;
        double num = 0, den = 0, gn = 0;
        long samples = 0;
        for (long k = 0; k < size; k += step) {
            if (ir_params_fixed_zero(w, e, (int)(k / e->cols), (int)(k % e->cols))) {
                if (ge[k] != 0.0) fail_msg("%s: %s of %%%d: held-at-zero weight %ld has gradient %g", what, e->name,
                                           e->node->id, k, ge[k]);
                continue;
            }
            /* the five-point stencil: truncation O(h^4), so h can be large
             * enough that round-off stays far below the tolerance */
            double keep = d[k], l[4];
            static const double at[4] = {-2, -1, 1, 2};
            for (int j = 0; j < 4; j++) {
                d[k] = keep + at[j] * h;
                l[j] = run_loss(r, &o);
            }
            d[k] = keep;
            double fd = (8 * (l[2] - l[1]) - (l[3] - l[0])) / (12 * h);
            samples++;
            num += (fd - ge[k]) * (fd - ge[k]);
            den += fd * fd;
            gn += ge[k] * ge[k];
        }
        gnorm += gn;
        /* An absolute floor: the differences carry round-off of about
         * eps |L| / h per element, so a gradient at that level (zero by
         * construction, like a bias before batchnorm) cannot be checked
         * relatively; below the floor the check is absolute, at 1e-6 x floor. */
        double noise = 2 * DBL_EPSILON * (fabs(l0) + 1) / h * sqrt((double)samples);
        double err = sqrt(num) / fmax(sqrt(fmax(den, gn)), fmax(1e-5, 1e6 * noise));
        if (!(err < 1e-6))
            fail_msg("%s: %s[%d,%d,%d] of %%%d (%s): relative error %.3g (|fd| %.3g, |g| %.3g)", what, e->name,
                     e->layer, e->gate, e->tap, e->node->id, ir_op_info[e->node->op].name, err, sqrt(den), sqrt(gn));
        if (err > worst) worst = err;
    }
    assert_true(gnorm > 0); /* the check says something */
    if (getenv("GRAD_VERBOSE")) printf("%s: worst %.3g\n", what, worst);
    free(g);
    ir_run_free(r);
    return worst;
}

/* ---- networks covering every op -------------------------------------------------------- */

#define SKEL                                                                                           \
    "skeleton legs {\n  joints hip lhip rhip lknee rknee\n  mirror lhip:rhip lknee:rknee\n}\n"

/* linear maps with kernel, dilation, stride and padding; batchnorm; an
 * activation; dropout; add, crop (plain and strided), concat, sub */
static const char NET_CONV[] = "model conv\n" SKEL
                               "input  x : seq(13) legs (x!, y)\n"
                               "output y : seq legs (x!, y, z)\n"
                               "net {\n"
                               "  h = conv1d(x, 10, kernel=3, dilation=2, padding=1)\n" /* 11 frames */
                               "  h = gelu(batchnorm(h))\n"
                               "  h = conv1d(h, 10, kernel=2, stride=2, bias=false)\n" /* 5 */
                               "  r = crop(h, 1)\n"                                     /* 3 */
                               "  q = crop(h, 0, stride=2)\n"                           /* 3: 0, 2, 4 */
                               "  h = softsign(conv1d(h, 10, kernel=3))\n"              /* 3 */
                               "  h = dropout(h, 0.3) + r + q\n"
                               "  h = concat(h, r - sigmoid(linear(r, 10)))\n"
                               "  y = linear(h)\n"
                               "}\n"
                               "train { loss mse(y) }\n";

/* invariance layers, pooling over time, a class output with cross-entropy */
static const char NET_CLASS[] = "model cls\n" SKEL
                                "input  x : seq(6) legs (x!, y)\n"
                                "output a : class(3) invariant\n"
                                "net {\n"
                                "  h = tanh(linear(x, 10))\n"
                                "  v = gelu(batchnorm(invariant(h, 6)))\n"
                                "  u = invariant(last(h), 4)\n"
                                "  a = linear(concat(meanpool(v), u), 3)\n"
                                "}\n"
                                "train { loss cross_entropy(a) }\n";

/* repeat, flatten, sub, mpjpe */
static const char NET_TIME[] = "model time\n" SKEL
                               "input  x : seq(4) legs (x!, y)\n"
                               "output y : seq(3) legs (x!, y, z)\n"
                               "net {\n"
                               "  h = tanh(linear(x, 10))\n"
                               "  s = repeat(last(h), 3) - repeat(meanpool(h), 3)\n"
                               "  f = repeat(linear(flatten(h), 10), 3)\n"
                               "  y = linear(tanh(s + f))\n"
                               "}\n"
                               "train { loss mpjpe(y) }\n";

/* softmax on an invariant output with mse */
static const char NET_SOFTMAX[] = "model sm\n" SKEL
                                  "input  x : legs (x!, y)\n"
                                  "output p : features(4) invariant\n"
                                  "net {\n"
                                  "  h = softsign(linear(x, 10))\n"
                                  "  p = softmax(linear(invariant(h, 6), 4))\n"
                                  "}\n"
                                  "train { loss mse(p) }\n";

/* stacked recurrences with dropout between layers, a decoder started from the
 * encoder's final states (smooth losses here: l1 has its own test) */
static const char NET_GRU[] = "model gru\n" SKEL
                              "input  x : seq(4) legs (x!, y)\n"
                              "output y : seq(3) legs (x!, y)\n"
                              "net {\n"
                              "  e = gru(x, 10, layers=2, dropout=0.3)\n"
                              "  s = repeat(last(x), 3)\n"
                              "  d = gru(tanh(linear(s, 10)), 10, layers=2, dropout=0.3, init=e)\n"
                              "  y = linear(d) + s + linear(repeat(last(e), 3))\n"
                              "}\n"
                              "train { loss mse(y) }\n";

/* h: the stencil's step; smaller where a function of the net has a kink in
 * its second derivative (softsign, elu at 0) */
static void fd_net(const char *src, const char *what, bool bn, bool dropout, double h) {
    for (int k = 0; k < 8; k++) {
        IrProgram *p = compile_src(src, &CFGS[k]);
        IrParams *w = params(p, 11 + (uint64_t)k);
        char name[128];
        snprintf(name, sizeof name, "%s cfg %d training", what, k);
        fd_check(p, w, 3, IR_TRAINING, dropout, h, 16, name);
        if (bn) {
            snprintf(name, sizeof name, "%s cfg %d inference", what, k);
            fd_check(p, w, 3, IR_INFERENCE, false, h, 16, name);
        }
    }
}

static void test_fd_conv(void **state) { fd_net(NET_CONV, "conv", true, true, 2e-4); }
static void test_fd_class(void **state) { fd_net(NET_CLASS, "class", true, false, 1e-3); }
static void test_fd_time(void **state) { fd_net(NET_TIME, "time", false, false, 1e-3); }
static void test_fd_softmax(void **state) { fd_net(NET_SOFTMAX, "softmax", false, false, 2e-4); }
static void test_fd_gru(void **state) { fd_net(NET_GRU, "gru", false, true, 1e-3); }

static void test_fd_lstm(void **state) {
    /* the encoder's sequence is also used directly here, so it gets both a
     * sequence gradient and a final-state gradient */
    static const char src[] = "model rnn\n" SKEL
                              "input  x : seq(4) legs (x!, y)\n"
                              "output y : seq(4) legs (x!, y)\n"
                              "net {\n"
                              "  e = lstm(x, 10, layers=2, dropout=0.3)\n"
                              "  d = lstm(tanh(linear(x, 10)), 10, layers=2, dropout=0.3, init=e)\n"
                              "  y = linear(d) + linear(e)\n"
                              "}\n"
                              "train { loss mse(y) }\n";
    fd_net(src, "lstm", false, true, 1e-3);
}

/* l1 and mpjpe have kinks where the prediction meets the target: a step
 * small enough not to reach one */
static void test_fd_l1(void **state) {
    static const char *const losses[] = {"l1", "mpjpe"};
    for (int k = 0; k < 2; k++) {
        char src[1024];
        snprintf(src, sizeof src,
                 "model l\n" SKEL "input  x : seq(3) legs (x!, y)\n"
                 "output y : seq legs (x!, y, z)\n"
                 "net {\n  y = linear(tanh(batchnorm(conv1d(x, 10, kernel=2))))\n}\n"
                 "train { loss %s(y) }\n",
                 losses[k]);
        for (int c = 0; c < 8; c += 5) {
            IrProgram *p = compile_src(src, &CFGS[c]);
            fd_check(p, params(p, 3), 3, IR_TRAINING, false, 1e-6, 1000, losses[k]);
        }
    }
}

/* Every activation, smooth or not, on s = +1 and s = -1 features (the
 * differences are small enough that no kink is crossed for these seeds). */
static void test_fd_activations(void **state) {
    static const char *const acts[] = {"relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softsign", "hardtanh"};
    for (int a = 0; a < 8; a++)
        for (int k = 0; k < 2; k++) {
            char src[1024];
            snprintf(src, sizeof src,
                     "model act\n" SKEL "input  x : legs (x!, y)\n"
                     "output y : legs (x!, y, z)\n"
                     "net {\n  h = %s(linear(x, 10))\n  y = linear(h)\n}\n"
                     "train { loss mse(y) }\n",
                     acts[a]);
            IrProgram *p = compile_src(src, &CFGS[k]); /* paper, mixed */
            char name[64];
            snprintf(name, sizeof name, "%s %s", acts[a], k ? "mixed" : "paper");
            fd_check(p, params(p, 3), 4, IR_TRAINING, false, 1e-7, 1000, name);
        }
}

/* ---- the training graph's structure ------------------------------------------------------ */

static int count_op(const IrProgram *p, IrOp op) {
    int k = 0;
    ir_foreach(p, n) k += n->op == op;
    return k;
}

static void test_graph_structure(void **state) {
    /* without training the pass does nothing */
    IrProgram *q = compile_cfg("test.net", NET_GRU, NULL, 0, &CFGS[0], false);
    assert_int_equal(count_op(q, IR_GRAD) + count_op(q, IR_PGRAD) + count_op(q, IR_LOSS), 0);

    IrProgram *p = compile_src(NET_GRU, &CFGS[0]);
    assert_int_equal(count_op(p, IR_TARGET), 1);
    assert_int_equal(count_op(p, IR_LOSS), 1);
    /* one pgrad per layer with parameters: 2 gru + 3 linear */
    assert_int_equal(count_op(p, IR_PGRAD), 5);
    bool state_grad = false;
    ir_foreach(p, n) {
        if (n->op != IR_GRAD || n->a.fwd->op != IR_GRU || n->a.wrt != 1) continue;
        /* the encoder's final states: 2 layers of h, width 10 */
        assert_int_equal(n->shape.time, IR_NO_TIME);
        assert_int_equal(n->shape.feat, 20);
        state_grad = true;
    }
    assert_true(state_grad);
    /* the dump names what each gradient is of */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    ir_print(m, p);
    fclose(m);
    assert_non_null(strstr(buf, "fn=mse"));
    assert_non_null(strstr(buf, "wrt=1 of=%"));
    assert_non_null(strstr(buf, "(gru)"));
    free(buf);
}

/* sharing = paper: the held-at-zero block gets a zero gradient, so a step of
 * any optimiser keeps it at zero; and some of it exists to be held. */
static void test_paper_block_masked(void **state) {
    IrProgram *p = compile_src(NET_CONV, &CFGS[2]);
    IrParams *w = params(p, 4);
    IrRun *r = ir_run_new(p, w, 2, NULL);
    fill(r, p, 2, 9);
    IrInterpOpts o = {.mode = IR_TRAINING};
    run_loss(r, &o);
    const double *g = ir_run_grad(r);
    long fixed = 0, moving = 0;
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *e = &w->entries[i];
        for (int row = 0; row < e->rows; row++)
            for (int c = 0; c < e->cols; c++) {
                double v = g[e->offset + (long)row * e->cols + c];
                if (ir_params_fixed_zero(w, e, row, c)) {
                    fixed++;
                    assert_true(v == 0.0);
                } else {
                    moving += v != 0.0;
                }
            }
    }
    assert_true(fixed > 0);
    assert_true(moving > 0);
    ir_run_free(r);
}

/* ---- gradient equivariance of the examples ----------------------------------------------- */

/* max over the run's parameters of |g(x, y) - g(T x, T y)| / |g(x, y)| */
static double grad_equiv(IrProgram *p, int batch) {
    IrParams *w = params(p, 21);
    IrRun *a = ir_run_new(p, w, batch, NULL), *b = ir_run_new(p, w, batch, NULL);
    fill(a, p, batch, 31);
    for (int i = 0; i < p->ninputs; i++)
        ir_decl_apply(p->inputs[i], ir_run_input(a, i), ir_run_input(b, i), (long)batch * ir_run_input_time(a, i));
    for (int i = 0; i < p->noutputs; i++) {
        const IrDecl *d = p->outputs[i];
        long frames = (long)batch * ir_run_target_time(a, i);
        if (d->is_class) memcpy(ir_run_target(b, i), ir_run_target(a, i), sizeof(double) * (size_t)frames);
        else ir_decl_apply(d, ir_run_target(a, i), ir_run_target(b, i), frames);
    }
    IrInterpOpts o = {.mode = IR_TRAINING, .dropout = false};
    double la = run_loss(a, &o), lb = run_loss(b, &o);
    assert_true(fabs(la - lb) <= 1e-12 * fabs(la));
    const double *ga = ir_run_grad(a), *gb = ir_run_grad(b);
    double num = 0, den = 0;
    for (long k = 0; k < w->size; k++) num += (ga[k] - gb[k]) * (ga[k] - gb[k]), den += ga[k] * ga[k];
    assert_true(den > 0);
    /* and the law is not trivially true: the gradient at another label differs */
    ir_run_free(a);
    ir_run_free(b);
    return sqrt(num / den);
}

static void equiv_example(const char *name, IrOverride *ov, int nov) {
    for (int k = 0; k < 8; k += 3) { /* joints/paper/full, joints/mixed/paper, pairs/mixed/full */
        for (int i = 0; i < nov; i++) ov[i].used = false;
        IrProgram *p = compile_example(name, ov, nov, &CFGS[k]);
        if (!p) skip();
        double e = grad_equiv(p, 3);
        if (!(e < 1e-12)) fail_msg("%s cfg %d: gradient equivariance error %.3g", name, k, e);
    }
}

static void test_equiv_videopose3d(void **state) {
    IrOverride ov[] = {{"blocks", 1, false}, {"width", 34, false}};
    equiv_example("videopose3d", ov, 2);
}
static void test_equiv_martinez(void **state) {
    IrOverride ov[] = {{"width", 34, false}};
    equiv_example("martinez", ov, 1);
}
static void test_equiv_forecast(void **state) {
    IrOverride ov[] = {{"hidden", 26, false}, {"past", 4, false}, {"future", 3, false}};
    equiv_example("forecast_lstm", ov, 3);
}
static void test_equiv_action(void **state) {
    IrOverride ov[] = {{"width", 34, false}, {"frames", 8, false}};
    equiv_example("action_stconv", ov, 2);
}

/* One example through finite differences as well: the whole of forecast_lstm
 * (a decoder fed by the encoder's final states only). */
static void test_fd_forecast(void **state) {
    IrOverride ov[] = {{"hidden", 13, false}, {"past", 3, false}, {"future", 2, false}};
    IrProgram *p = compile_example("forecast_lstm", ov, 3, &CFGS[0]);
    if (!p) skip();
    fd_check(p, params(p, 2), 2, IR_TRAINING, true, 1e-3, 12, "forecast_lstm");
}

/* The losses' values, by hand. */
static void test_loss_values(void **state) {
    static const char src[] = "model l\n" SKEL
                              "input  x : legs (x!, y)\n"
                              "output y : legs (x!, y)\n"
                              "net { y = linear(x) }\n"
                              "train { loss %s(y) }\n";
    static const char *const names[] = {"mse", "l1", "mpjpe"};
    for (int k = 0; k < 3; k++) {
        char text[512];
        snprintf(text, sizeof text, src, names[k]);
        IrProgram *p = compile_src(text, &CFGS[0]);
        IrParams *w = params(p, 1);
        memset(w->data, 0, sizeof(double) * (size_t)w->size); /* y = 0 */
        IrRun *r = ir_run_new(p, w, 2, NULL);
        double *t = ir_run_target(r, 0);
        /* batch 2 x 5 joints x 2 coords; every joint's target (3, 4): norm 5 */
        for (int i = 0; i < 20; i++) t[i] = i % 2 ? 4.0 : 3.0;
        IrInterpOpts o = {.mode = IR_TRAINING};
        double l = run_loss(r, &o);
        double want = k == 0 ? 12.5 : k == 1 ? 3.5 : 5.0;
        if (fabs(l - want) > 1e-12) fail_msg("%s: %.17g, want %g", names[k], l, want);
        ir_run_free(r);
    }
    /* cross-entropy of logits (0, 0, ln 2) against class 2: -log(2/4) */
    IrProgram *p = compile_src("model c\n" SKEL "input x : legs (x!, y)\noutput a : class(3) invariant\n"
                               "net { a = linear(x, 3) }\ntrain { loss cross_entropy(a) }\n",
                               &CFGS[0]);
    IrParams *w = params(p, 1);
    memset(w->data, 0, sizeof(double) * (size_t)w->size);
    const IrParamEntry *bias = NULL;
    for (int i = 0; i < w->nentries; i++)
        if (strcmp(w->entries[i].name, "bias") == 0) bias = &w->entries[i];
    assert_non_null(bias);
    assert_int_equal(bias->rows, 3);
    ir_params_data(w, bias)[2] = log(2.0);
    IrRun *r = ir_run_new(p, w, 1, NULL);
    ir_run_target(r, 0)[0] = 2;
    IrInterpOpts o = {.mode = IR_TRAINING};
    assert_true(fabs(run_loss(r, &o) - log(2.0)) < 1e-12);
    ir_run_target(r, 0)[0] = 3; /* not a class index */
    const char *why = NULL;
    assert_false(ir_run_forward(r, &o, &why));
    assert_non_null(strstr(why, "class index"));
    ir_run_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loss_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_structure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paper_block_masked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_activations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_l1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_conv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_softmax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_lstm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_gru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_forecast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equiv_videopose3d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equiv_martinez, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equiv_forecast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equiv_action, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
