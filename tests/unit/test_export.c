/* Tests of the dense export (codegen/export.c, runtime/export.c).
 *
 * Each network is compiled (the harness of test_codegen.c), its densify run on the
 * interpreter's random folded parameters, and every dense tensor compared with a
 * construction that does not go through the kernel IR: ir_params_dense for the
 * weights (W = S_out blockdiag(A, B) Q_in per tap), ir_basis_synthesise for the
 * even vectors, the orbits for gamma and the running variance (float round-off).
 * Then the exported weights themselves must be equivariant: T_out W = W T_in per
 * tap and gate, T b = b for the biases and batchnorm's vectors, written with the
 * types of the graph (not the bases the export used). Finally the file written by
 * rt_export_dense reads back with its tensors, num_batches_tracked and the graph. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cg_harness.h"

typedef struct Ctx {
    IrProgram *p;
    Built bl;
    IrParams *w;
    float *dense;
    const float *params, *state;
    long checked;        /* dense floats compared */
} Ctx;

static const RtModelDense *find_dense(const RtModel *rm, const char *name) {
    for (int i = 0; i < rm->ndense; i++)
        if (strcmp(rm->dense[i].name, name) == 0) return &rm->dense[i];
    fail_msg("no dense tensor %s", name);
    return NULL;
}

static void close_to(Ctx *c, const char *what, long idx, float got, double want) {
    double tol = 1e-5 * (1 + fabs(want));
    if (!(fabs((double)got - want) <= tol)) fail_msg("%s: %s[%ld] = %.9g, expected %.9g", c->p->model, what, idx, got, want);
}

static const IrParamEntry *entry(Ctx *c, const IrNode *n, const char *name, int layer, int gate, int tap) {
    const IrParamEntry *e = ir_params_find(c->w, n, name, layer, gate, tap);
    assert_non_null(e);
    return e;
}

/* dense[off + o * ldo + i * ldi] against ir_params_dense of (A, B). */
static void check_map(Ctx *c, const char *what, const IrParamEntry *A, const IrParamEntry *B, const float *d,
                      long ldo, long ldi) {
    int fo = A->basis_out->n, fi = A->basis_in->n;
    double *W = malloc(sizeof(double) * (size_t)fo * fi + 1);
    ir_params_dense(c->w, A, B, W);
    for (int o = 0; o < fo; o++)
        for (int i = 0; i < fi; i++) close_to(c, what, o * ldo + i * ldi, d[o * ldo + i * ldi], W[(long)o * fi + i]);
    c->checked += (long)fo * fi;
    free(W);
}

/* An even vector (bias, beta, running mean) synthesised with a zero odd part. */
static void check_even(Ctx *c, const char *what, const IrParamEntry *e, const float *d) {
    const IrBasis *b = e->basis_out;
    double *odd = calloc((size_t)b->d_odd + 1, sizeof(double)), *x = calloc((size_t)b->n + 1, sizeof(double));
    ir_basis_synthesise(b, ir_params_data(c->w, e), odd, x);
    for (int f = 0; f < b->n; f++) close_to(c, what, f, d[f], x[f]);
    c->checked += b->n;
    free(odd), free(x);
}

/* Equivariance of a dense map W [fo][fi] (at ldo, ldi): s_o W[p(o)][i] = s_i W[o][p(i)]. */
static void check_equi_map(Ctx *c, const char *what, const IrChi *out, const IrChi *in, const float *d, long ldo,
                           long ldi) {
    for (int o = 0; o < out->n; o++)
        for (int i = 0; i < in->n; i++) {
            int po = out->partner ? out->partner[o] : o, pi = in->partner ? in->partner[i] : i;
            double so = out->partner ? out->sign[o] : 1, si = in->partner ? in->sign[i] : 1;
            double l = so * d[po * ldo + i * ldi], r = si * d[o * ldo + pi * ldi];
            if (!(fabs(l - r) <= 1e-5 * (1 + fabs(l))))
                fail_msg("%s: %s is not equivariant at [%d][%d]: %g vs %g", c->p->model, what, o, i, l, r);
        }
}
/* T v = v: s_f v[p(f)] = v[f] (an even vector, or an orbit-constant one with signs ignored). */
static void check_equi_vec(Ctx *c, const char *what, const IrChi *t, const float *d, bool signed_) {
    if (!t->partner) return;
    for (int f = 0; f < t->n; f++) {
        double l = (signed_ ? t->sign[f] : 1) * d[t->partner[f]];
        if (!(fabs(l - d[f]) <= 1e-6 * (1 + fabs(l))))
            fail_msg("%s: %s is not invariant under T at %d: %g vs %g", c->p->model, what, f, l, (double)d[f]);
    }
}

static void check_node(Ctx *c, const IrNode *n) {
    const RtModel *rm = c->bl.rm;
    char nm[128];
    bool equi = !n->a.unconstrained;
    switch (n->op) {
    case IR_LINEAR:
    case IR_INVARIANT:
    case IR_CONV1D: {
        int taps = n->op == IR_CONV1D ? n->a.kernel : 1, fo = n->shape.feat, fi = n->in[0]->shape.feat;
        snprintf(nm, sizeof nm, "n%d.weight", n->id);
        const RtModelDense *d = find_dense(rm, nm);
        assert_int_equal(d->ndim, n->op == IR_CONV1D ? 3 : 2);
        assert_int_equal(d->shape[0], fo);
        assert_int_equal(d->shape[1], fi);
        if (n->op == IR_CONV1D) assert_int_equal(d->shape[2], taps);
        for (int t = 0; t < taps; t++) {
            const float *W = c->dense + d->offset + t;
            check_map(c, nm, entry(c, n, "A", 0, 0, t), entry(c, n, "B", 0, 0, t), W, (long)fi * taps, taps);
            if (equi) check_equi_map(c, nm, &n->chi, &n->in[0]->chi, W, (long)fi * taps, taps);
        }
        if (n->a.bias) {
            snprintf(nm, sizeof nm, "n%d.bias", n->id);
            d = find_dense(rm, nm);
            assert_int_equal(d->count, fo);
            check_even(c, nm, entry(c, n, "bias", 0, 0, 0), c->dense + d->offset);
            if (equi) check_equi_vec(c, nm, &n->chi, c->dense + d->offset, true);
        }
        return;
    }
    case IR_BATCHNORM: {
        int F = n->shape.feat;
        int *orb = malloc(sizeof(int) * (size_t)F + 1);
        ir_chi_orbits(&n->chi, n->a.unconstrained || !n->chi.partner, orb);
        static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
        static const char *const src[4] = {"gamma", "beta", "mean", "var"};
        for (int i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "n%d.%s", n->id, names[i]);
            const RtModelDense *d = find_dense(rm, nm);
            assert_int_equal(d->ndim, 1);
            assert_int_equal(d->shape[0], F);
            const IrParamEntry *e = entry(c, n, src[i], 0, 0, 0);
            const float *v = c->dense + d->offset;
            if (i == 0 || i == 3) {
                for (int f = 0; f < F; f++) close_to(c, nm, f, v[f], ir_params_data(c->w, e)[orb[f]]);
                c->checked += F;
            } else {
                check_even(c, nm, e, v);
            }
            if (equi) check_equi_vec(c, nm, &n->chi, v, i == 1 || i == 2);
        }
        free(orb);
        return;
    }
    case IR_LSTM:
    case IR_GRU: {
        bool lstm = n->op == IR_LSTM;
        int G = lstm ? 4 : 3, H = n->shape.feat, L = n->a.layers > 0 ? n->a.layers : 1;
        IrChi pos = ir_chi_all_positive(arena, &n->chi);
        for (int ly = 0; ly < L; ly++) {
            int fi = ly == 0 ? n->in[0]->shape.feat : H;
            const IrChi *tin = ly == 0 ? &n->in[0]->chi : &n->chi;
            char wih[64], whh[64], bih[64], bhh[64];
            snprintf(wih, sizeof wih, "n%d.weight_ih_l%d", n->id, ly);
            snprintf(whh, sizeof whh, "n%d.weight_hh_l%d", n->id, ly);
            snprintf(bih, sizeof bih, "n%d.bias_ih_l%d", n->id, ly);
            snprintf(bhh, sizeof bhh, "n%d.bias_hh_l%d", n->id, ly);
            const RtModelDense *dih = find_dense(rm, wih), *dhh = find_dense(rm, whh);
            const RtModelDense *dbi = find_dense(rm, bih), *dbh = find_dense(rm, bhh);
            assert_int_equal(dih->shape[0], G * H);
            assert_int_equal(dih->shape[1], fi);
            assert_int_equal(dhh->shape[1], H);
            assert_int_equal(dbi->count, G * H);
            assert_int_equal(dbh->count, G * H);
            for (int g = 0; g < G; g++) {
                const IrChi *tg = g == 2 ? &n->chi : &pos; /* lstm's g, gru's n: the hidden type */
                const float *Wi = c->dense + dih->offset + (long)g * H * fi, *Wh = c->dense + dhh->offset + (long)g * H * H;
                check_map(c, wih, entry(c, n, "Wx.A", ly, g, 0), entry(c, n, "Wx.B", ly, g, 0), Wi, fi, 1);
                check_map(c, whh, entry(c, n, "Wh.A", ly, g, 0), entry(c, n, "Wh.B", ly, g, 0), Wh, H, 1);
                const float *bi = c->dense + dbi->offset + (long)g * H, *bh = c->dense + dbh->offset + (long)g * H;
                check_even(c, bih, entry(c, n, "bias", ly, g, 0), bi);
                if (!lstm && g == 2) {
                    check_even(c, bhh, entry(c, n, "bias_h", ly, g, 0), bh);
                } else {
                    for (int f = 0; f < H; f++) close_to(c, bhh, f, bh[f], 0.0);
                    c->checked += H;
                }
                if (equi) {
                    check_equi_map(c, wih, tg, tin, Wi, fi, 1);
                    check_equi_map(c, whh, tg, &n->chi, Wh, H, 1);
                    check_equi_vec(c, bih, tg, bi, true);
                    check_equi_vec(c, bhh, tg, bh, true);
                }
            }
        }
        return;
    }
    default:
        return;
    }
}

/* The graph's JSON parses and lists the forward nodes with the attributes PyTorch needs. */
static void check_json(Ctx *c) {
    const RtModel *rm = c->bl.rm;
    json_error_t err;
    json_t *g = json_loads(rm->graph_json, 0, &err);
    if (!g) fail_msg("%s: graph_json does not parse: %s (line %d)", c->p->model, err.text, err.line);
    assert_string_equal(json_string_value(json_object_get(g, "model")), c->p->model);
    json_t *nodes = json_object_get(g, "nodes");
    assert_true(json_is_array(nodes));
    size_t k = 0;
    ir_foreach(c->p, n) {
        if (ir_op_has(n->op, OPF_TRAIN)) break; /* the training graph follows the forward nodes */
        json_t *j = json_array_get(nodes, k++);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "id")), n->id);
        assert_string_equal(json_string_value(json_object_get(j, "op")), ir_op_info[n->op].name);
        assert_int_equal(json_array_size(json_object_get(j, "inputs")), n->nin);
        if (n->op == IR_CONV1D) {
            assert_int_equal(json_integer_value(json_object_get(j, "kernel")), n->a.kernel);
            assert_int_equal(json_integer_value(json_object_get(j, "padding")), n->a.padding);
        }
        if (n->op == IR_LSTM || n->op == IR_GRU)
            assert_int_equal(json_integer_value(json_object_get(j, "layers")), n->a.layers > 0 ? n->a.layers : 1);
    }
    assert_int_equal(json_array_size(nodes), k);
    json_t *ins = json_object_get(g, "inputs");
    assert_int_equal(json_array_size(ins), c->p->ninputs);
    for (int i = 0; i < c->p->ninputs; i++) {
        const IrDecl *d = c->p->inputs[i];
        json_t *part = json_object_get(json_array_get(ins, (size_t)i), "partner");
        if (!d->chi.partner || d->invariant) {
            assert_true(json_is_null(part));
            continue;
        }
        assert_int_equal(json_array_size(part), d->feat);
        for (int f = 0; f < d->feat; f++) assert_int_equal(json_integer_value(json_array_get(part, (size_t)f)), d->chi.partner[f]);
    }
    json_decref(g);
}

/* rt_export_dense's file: every dense tensor, a num_batches_tracked per batchnorm, the graph. */
static void check_file(Ctx *c) {
    const RtModel *rm = c->bl.rm;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.dense.safetensors", workdir, c->p->model);
    RtError e;
    if (!rt_export_dense(rm, c->params, c->state, path, &e)) fail_msg("rt_export_dense: %s", e.msg);
    RtSafetensors st;
    if (!rt_safetensors_read(path, &st, &e)) fail_msg("read back: %s", e.msg);
    int nbn = 0;
    ir_foreach(c->p, n) nbn += n->op == IR_BATCHNORM && !ir_op_has(n->op, OPF_TRAIN);
    assert_int_equal(st.n, rm->ndense + nbn);
    assert_string_equal(rt_safetensors_meta(&st, "graph"), rm->graph_json);
    assert_string_equal(rt_safetensors_meta(&st, "fingerprint"), rm->fingerprint);
    int seen = 0, nbt = 0;
    for (int i = 0; i < st.n; i++) {
        const RtArray *a = &st.tensors[i];
        if (strstr(a->name, ".num_batches_tracked")) {
            assert_int_equal(a->dtype, RT_I64);
            assert_int_equal(a->ndim, 0);
            assert_int_equal(*(const int64_t *)a->data, 0);
            nbt++;
            continue;
        }
        const RtModelDense *d = find_dense(rm, a->name);
        assert_int_equal(a->dtype, RT_F32);
        assert_int_equal(a->ndim, d->ndim);
        for (int k = 0; k < d->ndim; k++) assert_int_equal(a->shape[k], d->shape[k]);
        assert_memory_equal(a->data, c->dense + d->offset, sizeof(float) * (size_t)d->count);
        seen++;
    }
    assert_int_equal(seen, rm->ndense);
    assert_int_equal(nbt, nbn);
    rt_safetensors_free(&st);
    unlink(path);
}

static void run_export(IrProgram *p, bool no_fold) {
    if (!p) skip();
    Ctx c = {.p = p};
    c.bl = build(p, no_fold);
    const RtModel *rm = c.bl.rm;
    assert_non_null(rm->densify);
    c.w = ir_params_new(arena, p);
    ir_params_randomize(c.w, 11);
    float *params = calloc((size_t)rm->params_size + 1, sizeof(float));
    float *state = calloc((size_t)rm->state_size + 1, sizeof(float));
    cg_params_from_ir(c.bl.m, c.w, params, state);
    /* the reference reads the float values the compiled code reads */
    for (int i = 0; i < c.w->nentries; i++) {
        const IrParamEntry *e = &c.w->entries[i];
        const float *s = (c.bl.m->entry_state[i] ? state : params) + c.bl.m->entry_offset[i];
        for (long k = 0; k < (long)e->rows * e->cols; k++) c.w->data[e->offset + k] = s[k];
    }
    c.params = params, c.state = state;
    c.dense = malloc(sizeof(float) * (size_t)rm->dense_size + 1);
    for (long i = 0; i < rm->dense_size; i++) c.dense[i] = NAN; /* every element must be written */
    rm->densify(rm, params, state, c.dense);
    long total = 0;
    for (int i = 0; i < rm->ndense; i++) {
        assert_int_equal(rm->dense[i].offset, total);
        total += rm->dense[i].count;
    }
    assert_int_equal(total, rm->dense_size);
    ir_foreach(p, n) if (!ir_op_has(n->op, OPF_TRAIN)) check_node(&c, n);
    assert_int_equal(c.checked, rm->dense_size);
    for (long i = 0; i < rm->dense_size; i++) assert_false(isnan(c.dense[i]));
    check_json(&c);
    check_file(&c);
    print_message("%-24s %d dense tensors, %ld floats: match and equivariant\n", p->model, rm->ndense, rm->dense_size);
    free(params), free(state), free(c.dense);
    dlclose(c.bl.dl);
}

static void test_videopose3d(void **state) {
    IrOverride ov[] = {{"width", 68, false}, {"blocks", 2, false}};
    run_export(front_file("examples/videopose3d.net", ov, 2, false), false);
}
static void test_videopose3d_baseline_nofold(void **state) {
    IrOverride ov[] = {{"width", 32, false}, {"blocks", 1, false}};
    run_export(front_file("examples/videopose3d.net", ov, 2, true), true);
}
static void test_martinez(void **state) {
    IrOverride ov[] = {{"width", 68, false}};
    run_export(front_file("examples/martinez.net", ov, 1, false), false);
}
static void test_forecast_lstm(void **state) {
    IrOverride ov[] = {{"hidden", 52, false}, {"past", 4, false}, {"future", 3, false}};
    run_export(front_file("examples/forecast_lstm.net", ov, 3, false), false);
}
static void test_nets(void **state) {
    static const char *const nets[] = {"gru_seq2seq", "lift_pairs_mixed", "classify_invariant",
                                       "conv_stride_dilation", "strided_residual", "broken_unshared"};
    for (size_t i = 0; i < sizeof nets / sizeof *nets; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/nets/%s.net", nets[i]);
        run_export(front_file(rel, NULL, 0, false), false);
    }
}

/* A hand-derived case: joints c, l, r with one coordinate that the mirror keeps, so
 * the pair (l, r) has sign +1: even E = x_l + x_r, odd O = x_l - x_r, and the centre
 * x_c is even. A (2x2, over E and x_c) = [[a, b], [c, d]] for the pair's and the
 * centre's rows, B (1x1, over O) = [e]; synthesis y_l = (E' + O')/2, y_r = (E' - O')/2:
 *   y_l = ((a + e) x_l + (a - e) x_r + b x_c) / 2
 *   y_r = ((a - e) x_l + (a + e) x_r + b x_c) / 2
 *   y_c = c x_l + c x_r + d x_c. */
static void test_hand(void **state) {
    static const char src[] = "model hand\n"
                              "skeleton s {\n  joints c l r\n  mirror l:r\n}\n"
                              "input  x : s (y)\n"
                              "output y : s (y)\n"
                              "net {\n  y = linear(x, 3, bias=false)\n}\n";
    IrProgram *p = front_text("hand.net", src, NULL, 0, false);
    Built bl = build(p, false);
    const RtModel *rm = bl.rm;
    assert_int_equal(rm->ndense, 1);
    assert_int_equal(rm->params_size, 5);
    const IrParams *w = bl.m->layout;
    const IrParamEntry *A = NULL, *B = NULL;
    for (int i = 0; i < w->nentries; i++) {
        if (!strcmp(w->entries[i].name, "A")) A = &w->entries[i];
        if (!strcmp(w->entries[i].name, "B")) B = &w->entries[i];
    }
    assert_non_null(A), assert_non_null(B);
    assert_int_equal(A->rows, 2), assert_int_equal(A->cols, 2), assert_int_equal(B->rows, 1);
    const float a = 1, b = 2, c = 3, d = 5, e = 7;
    /* which even component is the pair's and which the centre's */
    const IrBasis *bs = A->basis_in;
    int pair = bs->eg[0] >= 0 ? 0 : 1, centre = 1 - pair;
    int fl = bs->ef[pair], fr = bs->eg[pair], fc = bs->ef[centre];
    assert_int_equal(fc, 0);
    float params[5], Am[2][2];
    Am[pair][pair] = a, Am[pair][centre] = b, Am[centre][pair] = c, Am[centre][centre] = d;
    memcpy(params + bl.m->entry_offset[A - w->entries], Am, sizeof Am);
    params[bl.m->entry_offset[B - w->entries]] = e;
    float W[3][3];
    rm->densify(rm, params, params, &W[0][0]);
    assert_float_equal(W[fl][fl], (a + e) / 2, 1e-6);
    assert_float_equal(W[fl][fr], (a - e) / 2, 1e-6);
    assert_float_equal(W[fl][fc], b / 2, 1e-6);
    assert_float_equal(W[fr][fl], (a - e) / 2, 1e-6);
    assert_float_equal(W[fr][fr], (a + e) / 2, 1e-6);
    assert_float_equal(W[fr][fc], b / 2, 1e-6);
    assert_float_equal(W[fc][fl], c, 1e-6);
    assert_float_equal(W[fc][fr], c, 1e-6);
    assert_float_equal(W[fc][fc], d, 1e-6);
    dlclose(bl.dl);
}

static int cleanup(void **state) {
    if (workdir[0]) rmdir(workdir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_martinez, setup, teardown),
        cmocka_unit_test_setup_teardown(test_videopose3d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_videopose3d_baseline_nofold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forecast_lstm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
