/* Tests of codegen/: the kernel IR, lowering, the memory plan and the C backend.
 *
 * Differential: each network is lowered, printed as C, compiled with the system
 * C compiler into a shared object, loaded, and run in float32 on the
 * interpreter's random folded parameters and random inputs; the float64
 * interpreter (ir/interp.c) is the reference (relative error < 1e-4), in
 * inference and training mode (dropout off), folded and --no-fold. Training
 * mode also compares the batchnorm running statistics after the update. The
 * arena is filled with NaN before every run, so a read of memory that the plan
 * gave to another buffer (or that nothing wrote) shows up as a wrong output. */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "codegen/codegen.h"
#include "ir/interp_run.h"
#include "runtime/rt.h"

#include "cg_harness.h"

/* ---- the memory plan: no two temporaries live at once share memory ------------------------ */

static void check_plan(const KirProgram *k) {
    for (int a = 0; a < k->nbufs; a++) {
        const KirBuf *x = &k->bufs[a];
        if (x->kind != KIR_BUF_TEMP || x->func < 0) continue;
        long xs = x->per_sample ? x->per_sample : x->fixed;
        assert_true(x->offset >= 0);
        assert_true(x->offset + xs <= (x->per_sample ? k->arena_per_sample : k->arena_fixed));
        for (int b = a + 1; b < k->nbufs; b++) {
            const KirBuf *y = &k->bufs[b];
            if (y->kind != KIR_BUF_TEMP || y->func != x->func || !y->per_sample != !x->per_sample) continue;
            long ys = y->per_sample ? y->per_sample : y->fixed;
            bool live = x->first <= y->last && y->first <= x->last;
            bool overlap = x->offset < y->offset + ys && y->offset < x->offset + xs;
            if (live && overlap && xs > 0 && ys > 0)
                fail_msg("plan: %s and %s are live together and overlap", x->name, y->name);
        }
    }
}

/* ---- running both ---------------------------------------------------------------------------- */

static double rel_err(const float *y, const double *ref, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)y[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (isnan(num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

typedef struct Bufs {
    float *params, *state, *prep, *arena;
    float **in, **out;
} Bufs;

static void run_compiled(const RtModel *rm, Bufs *b, int batch, RtMode mode) {
    long asz = rm->arena_per_sample * batch + rm->arena_fixed;
    for (long i = 0; i < asz; i++) b->arena[i] = NAN; /* reads of unwritten memory show */
    RtExec x = {.batch = batch, .mode = mode, .params = b->params, .state = b->state, .prep = b->prep,
                .inputs = (const float *const *)b->in, .outputs = b->out, .arena = b->arena,
                .dropout = false, .bn_momentum = -1};
    if (mode == RT_MODE_INFERENCE) rm->prepare(rm, &x);
    rm->forward(rm, &x);
}

/* Lowers, compiles and compares p with the interpreter; returns the worst relative error. */
static double differential(IrProgram *p, bool no_fold, int batch, uint64_t seed) {
    Built bl = build(p, no_fold);
    const RtModel *rm = bl.rm;
    check_plan(bl.m->k);
    IrParams *w = ir_params_new(arena, p);
    ir_params_randomize(w, seed);
    assert_int_equal(rm->params_size, bl.m->params_size);
    Bufs b;
    b.params = calloc((size_t)rm->params_size + 1, sizeof(float));
    b.state = calloc((size_t)rm->state_size + 1, sizeof(float));
    b.prep = calloc((size_t)rm->prep_size + 1, sizeof(float));
    b.arena = calloc((size_t)(rm->arena_per_sample * batch + rm->arena_fixed + 1), sizeof(float));
    b.in = calloc((size_t)p->ninputs + 1, sizeof(float *));
    b.out = calloc((size_t)p->noutputs + 1, sizeof(float *));
    cg_params_from_ir(bl.m, w, b.params, b.state);
    IrRun *r = ir_run_new(p, w, batch, NULL);
    uint64_t c = 0;
    for (int i = 0; i < p->ninputs; i++) {
        long n = (long)batch * ir_run_input_time(r, i) * p->inputs[i]->feat;
        int fr = rm->inputs[i].frames ? rm->inputs[i].frames : 1;
        assert_int_equal(n, (long)batch * fr * rm->inputs[i].features);
        double *x = ir_run_input(r, i);
        b.in[i] = calloc((size_t)n + 1, sizeof(float));
        for (long k = 0; k < n; k++) {
            x[k] = ir_rand_normal(seed + 1000, c++);
            b.in[i][k] = (float)x[k];
        }
    }
    for (int i = 0; i < p->noutputs; i++) {
        int fr = rm->outputs[i].frames ? rm->outputs[i].frames : 1;
        b.out[i] = calloc((size_t)batch * fr * rm->outputs[i].features + 1, sizeof(float));
    }
    double worst = 0;
    for (int mode = 0; mode < 2; mode++) {
        IrInterpOpts o = {.mode = mode ? IR_TRAINING : IR_INFERENCE, .dropout = false, .seed = 1,
                          .update_running = mode == 1};
        const char *why = NULL;
        if (!ir_run_forward(r, &o, &why)) fail_msg("interpreter: %s", why);
        run_compiled(rm, &b, batch, mode ? RT_MODE_TRAINING : RT_MODE_INFERENCE);
        for (int i = 0; i < p->noutputs; i++) {
            long n = ir_run_output_size(r, i);
            double e = rel_err(b.out[i], ir_run_output(r, i), n);
            if (!(e < 1e-4))
                fail_msg("%s%s: output %s, %s mode: relative error %g", p->model, no_fold ? " (no-fold)" : "",
                         p->outputs[i]->name, mode ? "training" : "inference", e);
            if (e > worst) worst = e;
        }
    }
    /* the running statistics after one training step */
    for (int i = 0; i < w->nentries; i++) {
        if (!bl.m->entry_state[i]) continue;
        const IrParamEntry *e = &w->entries[i];
        double err = rel_err(b.state + bl.m->entry_offset[i], w->data + e->offset, (long)e->rows * e->cols);
        if (!(err < 1e-4)) fail_msg("%s: running statistic %s: relative error %g", p->model, e->name, err);
    }
    /* equivariance of the compiled float32 forward (chirality.md 5): T_out F(x) = F(T_in x) */
    float **y0 = calloc((size_t)p->noutputs + 1, sizeof(float *));
    for (int mode = 0; mode < 2; mode++) {
        RtMode md = mode ? RT_MODE_TRAINING : RT_MODE_INFERENCE;
        for (int i = 0; i < p->ninputs; i++) {
            long fr = (long)batch * ir_run_input_time(r, i), n = fr * p->inputs[i]->feat;
            double *mx = malloc(sizeof(double) * (size_t)n);
            ir_decl_apply(p->inputs[i], ir_run_input(r, i), mx, fr);
            for (long k = 0; k < n; k++) b.in[i][k] = (float)ir_run_input(r, i)[k];
            free(mx);
        }
        run_compiled(rm, &b, batch, md);
        for (int i = 0; i < p->noutputs; i++) {
            long n = ir_run_output_size(r, i);
            y0[i] = realloc(y0[i], sizeof(float) * (size_t)n);
            memcpy(y0[i], b.out[i], sizeof(float) * (size_t)n);
        }
        for (int i = 0; i < p->ninputs; i++) {
            long fr = (long)batch * ir_run_input_time(r, i), n = fr * p->inputs[i]->feat;
            double *mx = malloc(sizeof(double) * (size_t)n);
            ir_decl_apply(p->inputs[i], ir_run_input(r, i), mx, fr);
            for (long k = 0; k < n; k++) b.in[i][k] = (float)mx[k];
            free(mx);
        }
        run_compiled(rm, &b, batch, md);
        for (int i = 0; i < p->noutputs; i++) {
            long n = ir_run_output_size(r, i), fr = n / p->outputs[i]->feat;
            double *y = malloc(sizeof(double) * (size_t)n), *ty = malloc(sizeof(double) * (size_t)n);
            for (long k = 0; k < n; k++) y[k] = y0[i][k];
            ir_decl_apply(p->outputs[i], y, ty, fr);
            double e = rel_err(b.out[i], ty, n);
            /* the written network and the deliberately broken ones are not equivariant */
            bool broken = strncmp(p->model, "broken_", 7) == 0 || p->cfg.baseline;
            if (!broken && !(e < 1e-5))
                fail_msg("%s: output %s, %s mode: compiled equivariance error %g", p->model,
                         p->outputs[i]->name, mode ? "training" : "inference", e);
            if (broken && !(e > 1e-3)) fail_msg("%s: a broken network came out equivariant (%g)", p->model, e);
            free(y), free(ty);
        }
    }
    for (int i = 0; i < p->noutputs; i++) free(y0[i]);
    free(y0);
    ir_run_free(r);
    for (int i = 0; i < p->ninputs; i++) free(b.in[i]);
    for (int i = 0; i < p->noutputs; i++) free(b.out[i]);
    free(b.in), free(b.out), free(b.params), free(b.state), free(b.prep), free(b.arena);
    dlclose(bl.dl);
    return worst;
}

/* Folded and --no-fold, over every backend this chiralc has (C, and LLVM where built). */
static void both(IrProgram *p) {
    if (!p) skip();
    for (cg_backend = 0; cg_backend < cg_backends(); cg_backend++) {
        double a = differential(p, false, 3, 7), b = differential(p, true, 3, 7);
        print_message("%-24s %-4s worst relative error: folded %.2e, no-fold %.2e\n", p->model,
                      cg_backend_name[cg_backend], a, b);
    }
    cg_backend = CG_BACKEND_C;
}

/* The steps of forward_train that a backend's text sums over row blocks: the C printer's
 * block loop in the step's outlined body (forward_train_sI) or under its comment in
 * forward_train, LLVM's body forward_train_sI_rows. */
static bool has_block_loop(const char *from, const char *to) {
    const char *q = strstr(from, "for (int64_t q = 0; q < 8; q++) {");
    return q && q < to;
}
static void row_block_steps(const CgModel *m, bool llvm, bool *steps, int n) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    if (llvm) assert_true(cg_emit_llvm(f, m, NULL));
    else cg_emit_c(f, m);
    fclose(f);
    memset(steps, 0, sizeof(bool) * (size_t)n);
    const char *body = llvm ? "@forward_train_s" : "static void forward_train_s";
    for (const char *c = text; (c = strstr(c, body)) != NULL; c++) {
        const char *d = c + strlen(body);
        int i = atoi(d);
        while (*d >= '0' && *d <= '9') d++;
        if (i < 0 || i >= n) continue;
        if (llvm) steps[i] |= strncmp(d, "_rows(", 6) == 0;
        else if (*d == '(') steps[i] |= has_block_loop(d, strstr(d, "\n}\n"));
    }
    const char *fn = llvm ? NULL : strstr(text, "static void forward_train(");
    const char *end = fn ? strstr(fn, "\n}\n") : NULL;
    for (const char *c = fn; c && (c = strstr(c, "\n    /* s")) != NULL && c < end; c++) {
        int i = atoi(c + 10);
        const char *next = strstr(c + 10, "\n    /* s");
        if (i >= 0 && i < n && has_block_loop(c, next && next < end ? next : end)) steps[i] = true;
    }
    free(text);
}

/* Both CPU backends compute the same numbers, bit for bit (docs/kernel-ir.md), the batch
 * statistics summed over row blocks included (kir_loop_row_blocks): each backend's text
 * groups the same kernels' sums into blocks; a training forward at a batch whose rows do
 * not split evenly into the blocks gives the same outputs and running statistics, compared
 * as bytes (the blocks' double sums rarely differ from a running sum after the rounding to
 * float, so the text is the sharper check). */
static void test_backends_bitwise(void **state) {
    if (cg_backends() < 2) skip();
    IrOverride ov[] = {{"width", 68, false}, {"blocks", 1, false}};
    IrProgram *p = front_file("examples/videopose3d.net", ov, 2, false);
    if (!p) skip();
    const int batch = 5;
    float *out[2] = {0}, *st[2] = {0};
    long nout = 0, nst = 0;
    int blocked = 0;
    for (int be = 0; be < 2; be++) {
        cg_backend = be;
        Built bl = build(p, false);
        const RtModel *rm = bl.rm;
        const KirFunc *fn = &bl.m->k->fn[KIR_FN_TRAIN];
        for (int i = 0; be == 0 && i < fn->nsteps; i++)
            blocked += fn->steps[i].kind == KIR_STEP_LOOP && kir_loop_row_blocks(&fn->steps[i].l);
        if (be == 0) {
            bool *cs = calloc((size_t)fn->nsteps, sizeof(bool)), *ls = calloc((size_t)fn->nsteps, sizeof(bool));
            row_block_steps(bl.m, false, cs, fn->nsteps);
            row_block_steps(bl.m, true, ls, fn->nsteps);
            for (int i = 0; i < fn->nsteps; i++) {
                bool want = fn->steps[i].kind == KIR_STEP_LOOP && kir_loop_row_blocks(&fn->steps[i].l);
                if (cs[i] != want || ls[i] != want)
                    fail_msg("forward_train s%d: row blocks %d, C printer %d, LLVM %d", i, want, cs[i], ls[i]);
            }
            free(cs), free(ls);
        }
        IrParams *w = ir_params_new(arena, p);
        ir_params_randomize(w, 11);
        Bufs b;
        b.params = calloc((size_t)rm->params_size + 1, sizeof(float));
        b.state = calloc((size_t)rm->state_size + 1, sizeof(float));
        b.prep = calloc((size_t)rm->prep_size + 1, sizeof(float));
        b.arena = calloc((size_t)(rm->arena_per_sample * batch + rm->arena_fixed + 1), sizeof(float));
        b.in = calloc(2, sizeof(float *));
        b.out = calloc(2, sizeof(float *));
        cg_params_from_ir(bl.m, w, b.params, b.state);
        long nin = (long)batch * (rm->inputs[0].frames ? rm->inputs[0].frames : 1) * rm->inputs[0].features;
        b.in[0] = calloc((size_t)nin, sizeof(float));
        for (long k = 0; k < nin; k++) b.in[0][k] = (float)ir_rand_normal(21, (uint64_t)k);
        nout = (long)batch * (rm->outputs[0].frames ? rm->outputs[0].frames : 1) * rm->outputs[0].features;
        b.out[0] = calloc((size_t)nout, sizeof(float));
        run_compiled(rm, &b, batch, RT_MODE_TRAINING);
        out[be] = b.out[0], st[be] = b.state, nst = rm->state_size;
        free(b.in[0]), free(b.in), free(b.out), free(b.params), free(b.prep), free(b.arena);
        dlclose(bl.dl);
    }
    cg_backend = CG_BACKEND_C;
    assert_true(blocked >= 2); /* the batchnorm's mean and centred second moment */
    assert_memory_equal(out[0], out[1], sizeof(float) * (size_t)nout);
    assert_memory_equal(st[0], st[1], sizeof(float) * (size_t)nst);
    for (int be = 0; be < 2; be++) free(out[be]), free(st[be]);
}

/* ---- examples, small ------------------------------------------------------------------------- */

static void test_videopose3d(void **state) {
    IrOverride ov[] = {{"width", 68, false}, {"blocks", 2, false}};
    both(front_file("examples/videopose3d.net", ov, 2, false));
}
/* The same differential test with the fusion pass off (CgOptions.no_fuse) and the
 * loop kernels on one thread: the unfused, serial programs are the reference the
 * benchmarks compare against. */
static void test_videopose3d_unfused(void **state) {
    IrOverride ov[] = {{"width", 34, false}, {"blocks", 1, false}};
    cg_no_fuse = true, cg_threads = 1;
    both(front_file("examples/videopose3d.net", ov, 2, false));
    cg_no_fuse = false, cg_threads = 2;
}

/* Runs (codegen/runs.c): at 510 channels (10 to a joint's coordinate run) the folded
 * kernels' gathers split into runs, which the LLVM backend loops over; the
 * differential test then covers that path, on both backends. The runs themselves:
 * only index tables cut them, each of those is base + i inside a run, and every run
 * is as long as it can be (the next element would break one of the tables). */
static void check_runs(const KirProgram *k, const KirLoop *l, const KirRuns *r) {
    long ext = l->ext[r->var].n;
    assert_int_equal(r->start[0], 0);
    assert_int_equal(r->start[r->n], ext);
    for (int j = 0; j < r->ntab; j++) assert_false(k->tabs[r->tab[j]].is_float);
    for (int q = 0; q < r->n; q++) {
        assert_true(r->start[q] < r->start[q + 1]);
        for (long i = r->start[q]; i < r->start[q + 1]; i++)
            for (int j = 0; j < r->ntab; j++) assert_int_equal(k->tabs[r->tab[j]].i[i], r->base[q * r->ntab + j] + i);
        if (q == 0) continue;
        bool breaks = false; /* run q could not have gone on from run q - 1 */
        long i = r->start[q];
        for (int j = 0; j < r->ntab; j++) breaks = breaks || k->tabs[r->tab[j]].i[i] != k->tabs[r->tab[j]].i[i - 1] + 1;
        assert_true(breaks);
    }
}
static void test_videopose3d_runs(void **state) {
    IrOverride ov[] = {{"width", 510, false}, {"blocks", 1, false}};
    IrProgram *p = front_file("examples/videopose3d.net", ov, 2, false);
    assert_non_null(p);
    CgModel *m = cg_lower(p, &(CgOptions){0});
    assert_non_null(m);
    int with_runs = 0, loops = 0;
    for (int f = 0; f < KIR_NUM_FNS; f++)
        for (int i = 0; i < m->k->fn[f].nsteps; i++) {
            const KirStep *s = &m->k->fn[f].steps[i];
            if (s->kind != KIR_STEP_LOOP) continue;
            loops++;
            KirRuns r;
            if (!kir_loop_runs(m->k, &s->l, 8, &r)) continue;
            with_runs++;
            check_runs(m->k, &s->l, &r);
        }
    print_message("videopose3d width 510: %d of %d loop kernels loop over runs\n", with_runs, loops);
    assert_true(with_runs >= 8);
    both(p);
}

/* The steps of fn whose label has `has`, and also `also` where that is not NULL. */
static int labelled(const KirFunc *fn, const char *has, const char *also) {
    int n = 0;
    for (int i = 0; i < fn->nsteps; i++) {
        const char *l = fn->steps[i].label;
        n += l && strstr(l, has) && (!also || strstr(l, also));
    }
    return n;
}

/* A producer moves down to its consumer past steps that do not conflict: in the strided
 * VideoPose3D's backward, dx = Q^T (even, odd) of each block's first convolution goes
 * past the weight gradients and the residual crop's dx into the add of the two
 * gradients (one pass over the activation, not a stored dx). Without the move down it
 * stays a kernel of its own. */
static void test_fusion_moves_down(void **state) {
    (void)state;
    IrOverride ov[] = {{"width", 34, false}, {"blocks", 1, false}};
    IrProgram *p = front_train("bench/videopose3d_strided.net", NULL, ov, 2);
    assert_non_null(p);
    CgModel *m = cg_lower(p, &(CgOptions){0});
    assert_non_null(m);
    const KirFunc *fn = &m->k->fn[KIR_FN_BWD_TRAIN];
    /* the block's two convolutions and the first */
    assert_int_equal(labelled(fn, "dx = Q^T (even, odd)", NULL), 3);
    assert_int_equal(labelled(fn, "dx = Q^T (even, odd)", "add + "), 1);
}

/* --no-fold: a convolution whose stride is its kernel (the strided VideoPose3D's, 243 ->
 * 81 -> 27 frames) reads x itself, its im2col rows being x's frames k at a time; one with
 * padding (conv_stride_dilation's) keeps its im2col kernel. both() on strided_residual in
 * test_nets checks the values. */
static void test_nofold_stride_as_cols(void **state) {
    (void)state;
    IrOverride ov[] = {{"width", 34, false}, {"blocks", 1, false}};
    IrProgram *p = front_train("bench/videopose3d_strided.net", NULL, ov, 2);
    assert_non_null(p);
    CgModel *m = cg_lower(p, &(CgOptions){.no_fold = true});
    assert_non_null(m);
    assert_int_equal(labelled(&m->k->fn[KIR_FN_TRAIN], "im2col", NULL), 0);
    assert_int_equal(labelled(&m->k->fn[KIR_FN_TRAIN], "dense GEMM (3 taps)", NULL), 2);
    p = front_train("tests/nets/conv_stride_dilation.net", NULL, NULL, 0);
    assert_non_null(p);
    m = cg_lower(p, &(CgOptions){.no_fold = true});
    assert_non_null(m);
    assert_true(labelled(&m->k->fn[KIR_FN_TRAIN], "im2col (dense)", NULL) > 0);
}

/* The strided VideoPose3D's residual crop (fuse.c): the adjoint is one kernel (dy on the
 * kept frame of every stride, 0 elsewhere) over [N, frames / 3, 3, features] ([N, 3,
 * features] for one kept frame), and fusion takes it into the add of the two gradients:
 * no zeroing kernel, no buffer for the crop's dx. The forward's crop stays a kernel of
 * its own: moved down to the block's add it would keep the block's whole input alive
 * through the block (reads_more). Unfused, every crop is a kernel and a buffer. */
static void test_fusion_crop(void **state) {
    (void)state;
    IrOverride ov[] = {{"width", 34, false}, {"blocks", 2, false}};
    for (int fuse = 1; fuse >= 0; fuse--) {
        IrProgram *p = front_train("bench/videopose3d_strided.net", NULL, ov, 2);
        assert_non_null(p);
        CgModel *m = cg_lower(p, &(CgOptions){.no_fuse = !fuse});
        assert_non_null(m);
        int alone = 0, with_add = 0, zero = 0, strided = 0;
        static const KirFn fns[] = {KIR_FN_INFER, KIR_FN_TRAIN, KIR_FN_BWD_INFER, KIR_FN_BWD_TRAIN};
        for (int f = 0; f < 4; f++) {
            const KirFunc *fn = &m->k->fn[fns[f]];
            for (int i = 0; i < fn->nsteps; i++) {
                const char *l = fn->steps[i].label;
                if (!l || !strstr(l, "crop r")) continue;
                zero += strstr(l, "dx = 0") != NULL;
                if (strstr(l, "add")) with_add++;
                else alone++;
                const KirLoop *lp = &fn->steps[i].l;
                if (strstr(l, "in the kept frames, else 0") && lp->ndims >= 3 && lp->ext[lp->ndims - 2].n == 3) strided++;
            }
        }
        /* two blocks: in each function two crops (forward) or two adjoints (backward) */
        assert_int_equal(zero, 0);
        assert_int_equal(with_add, fuse ? 4 : 0);
        assert_int_equal(alone, fuse ? 4 : 8);
        assert_int_equal(strided, 4); /* the adjoints, a frame's place in its stride a variable */
        int grads = 0;
        for (int x = 0; x < m->k->nbufs; x++) {
            const KirBuf *b = &m->k->bufs[x];
            if (b->kind != KIR_BUF_TEMP || !strstr(b->name, "crop")) continue;
            bool grad = strstr(b->name, "grad of") != NULL;
            grads += grad;
            if (fuse && grad) assert_true(b->func < 0);
            else assert_true(b->func >= 0);
        }
        assert_int_equal(grads, 4);
    }
}

/* The dilated VideoPose3D over a long sequence: each block's residual crop keeps nearly
 * every frame of the block's input (192 of 198 and 174 of 192 at 200 frames), so fusion
 * moves it down into the block's add (reads_more allows reading an eighth more than it
 * writes): no crop kernel is left, the crop's buffer has no place in the arena, and the
 * programs agree with the interpreter. Over the training window (27 frames: 25 read for
 * 19, then 19 for 1) the crops stay kernels of their own. */
static void test_fusion_crop_dilated(void **state) {
    (void)state;
    static const int frames[] = {200, 27};
    for (int w = 0; w < 2; w++) {
        bool long_seq = w == 0;
        IrOverride ov[] = {{"width", 34, false}, {"blocks", 2, false}, {"frames", frames[w], false}};
        IrProgram *p = front_file("examples/videopose3d.net", ov, 3, false);
        assert_non_null(p);
        CgModel *m = cg_lower(p, &(CgOptions){0});
        assert_non_null(m);
        const KirFunc *fn = &m->k->fn[KIR_FN_INFER];
        int with_add = labelled(fn, "crop r", "add"), alone = labelled(fn, "crop r", NULL) - with_add;
        assert_int_equal(alone, long_seq ? 0 : 2);
        assert_int_equal(with_add, long_seq ? 2 : 0);
        int crops = 0;
        for (int x = 0; x < m->k->nbufs; x++) {
            const KirBuf *b = &m->k->bufs[x];
            if (b->kind != KIR_BUF_TEMP || !strstr(b->name, "crop") || strstr(b->name, "grad of")) continue;
            crops++;
            if (long_seq) assert_true(b->func < 0);
            else assert_true(b->func >= 0);
        }
        assert_int_equal(crops, 4); /* two blocks, in the inference and the training forward */
        if (long_seq) both(p);
    }
}

/* The batchnorm's dx, gathered by the convolution's S^T dy (one kernel for the even and
 * the odd part) before it, is computed there (fuse.c, gathered producers): no dx kernel
 * is left in the folded backward, and the dx buffer has no place in the arena.
 * Unfolded, the dx GEMM reads dx, so it stays. */
static void test_fusion_gathered(void **state) {
    (void)state;
    IrOverride ov[] = {{"width", 34, false}, {"blocks", 1, false}};
    for (int fold = 1; fold >= 0; fold--) {
        IrProgram *p = front_train("bench/videopose3d_strided.net", NULL, ov, 2);
        assert_non_null(p);
        CgModel *m = cg_lower(p, &(CgOptions){.no_fold = !fold});
        assert_non_null(m);
        const KirFunc *fn = &m->k->fn[KIR_FN_BWD_TRAIN];
        /* a batchnorm's dx kernel of its own, and S^T dy computing it where it gathers it */
        int dx = labelled(fn, "batchnorm: dx", NULL) - labelled(fn, "batchnorm: dx", ", at ");
        int at = labelled(fn, "S^T dy (even, odd), at ", NULL);
        /* the strided VideoPose3D of one block: three batchnorms */
        assert_int_equal(dx, fold ? 0 : 3);
        assert_int_equal(at, fold ? 3 : 0);
        for (int x = 0; fold && x < m->k->nbufs; x++)
            if (m->k->bufs[x].kind == KIR_BUF_TEMP && strstr(m->k->bufs[x].name, "grad of") &&
                strstr(m->k->bufs[x].name, "batchnorm"))
                assert_true(m->k->bufs[x].func < 0);
    }
}

/* What fusion does to VideoPose3D: fewer steps, intermediates as lets that leave the
 * memory plan. (The arena need not shrink: the training forward, which keeps what its
 * backward reads, sets its size.) */
static void test_fusion(void **state) {
    IrOverride ov[] = {{"width", 34, false}, {"blocks", 1, false}};
    IrProgram *p = front_file("examples/videopose3d.net", ov, 2, false);
    assert_non_null(p);
    CgOptions off = {.no_fuse = true}, on = {0};
    CgModel *a = cg_lower(p, &off), *b = cg_lower(p, &on);
    assert_non_null(a), assert_non_null(b);
    for (int f = KIR_FN_INFER; f <= KIR_FN_TRAIN; f++)
        assert_true(b->k->fn[f].nsteps < a->k->fn[f].nsteps);
    int lets = 0, vals = 0;
    const KirFunc *fn = &b->k->fn[KIR_FN_INFER];
    for (int i = 0; i < fn->nsteps; i++) {
        const KirStep *s = &fn->steps[i];
        if (s->kind != KIR_STEP_LOOP) continue;
        for (int j = 0; j < s->l.nst; j++) {
            if (s->l.st[j].idx.buf < 0) lets++;
            /* an activation of a value: relu (max) or tanh, by the width's chirality */
            const KirExpr *e = s->l.st[j].e;
            if ((e->op == KIR_E_MAX || e->op == KIR_E_TANH) && e->a[0]->op == KIR_E_VAL) vals++;
        }
    }
    assert_true(lets > 0);
    assert_true(vals > 0);
    /* a let's buffer has no place in the arena */
    for (int x = 0; x < b->k->nbufs; x++)
        if (b->k->bufs[x].kind == KIR_BUF_TEMP && b->k->bufs[x].func < 0) lets--;
    assert_true(lets <= 0);
}

/* Whether a one-store kernel dst = src over ext is parallel (kir_loop_parallel). */
static bool copy_parallel(KirProgram *k, const char *name, int nd, KirDim *ext, KirIndex dst, KirIndex src) {
    KirStep *s = kir_loop(k, KIR_FN_INFER, name, nd, ext);
    kir_store(k, s, dst, kir_load(k, src));
    return kir_loop_parallel(k, &s->l);
}

/* kir_loop_parallel: independent outer iterations only. */
static void test_loop_parallel(void **state) {
    KirProgram *k = kir_program_new(arena);
    int a = kir_buf(k, "a", KIR_BUF_INPUT, 6, 0), b = kir_buf(k, "b", KIR_BUF_TEMP, 6, 0);
    KirDim ext[2] = {{2, true}, {3, false}};
    KirIndex src = kir_ix(a, 0);
    kir_ix_var(&src, 0, 3), kir_ix_var(&src, 1, 1);
    KirIndex dst = src;
    dst.buf = b;
    assert_true(copy_parallel(k, "rows", 2, ext, dst, src));
    /* a later store reading b of the next row: i0 + 1 depends on i0 */
    KirIndex next = dst;
    next.off = 3;
    assert_false(copy_parallel(k, "shifted", 2, ext, dst, next));
    /* every i0 writes the same three elements */
    KirIndex same = kir_ix(b, 0);
    kir_ix_var(&same, 1, 1);
    assert_false(copy_parallel(k, "overlap", 2, ext, same, src));
    /* a batchnorm's second moment: c[4 + i0] from c[i0], a part of c no i0 writes */
    int c = kir_buf(k, "c", KIR_BUF_TEMP, 0, 12);
    KirDim one[1] = {{4, false}}, rows[1] = {{4, true}};
    KirIndex lo = kir_ix(c, 0), hi = kir_ix(c, 4), near = kir_ix(c, 3);
    kir_ix_var(&lo, 0, 1), kir_ix_var(&hi, 0, 1), kir_ix_var(&near, 0, 1);
    assert_true(copy_parallel(k, "apart", 1, one, hi, lo));
    /* c[3 + i0] from c[i0]: i0 = 3 reads what i0 = 0 writes */
    assert_false(copy_parallel(k, "meets", 1, one, near, lo));
    /* over a batch-scaled i0 the stores' extent is unbounded: not apart */
    assert_false(copy_parallel(k, "unbounded", 1, rows, hi, lo));
}

static void test_videopose3d_baseline(void **state) {
    IrOverride ov[] = {{"width", 32, false}, {"blocks", 1, false}};
    both(front_file("examples/videopose3d.net", ov, 2, true));
}
static void test_martinez(void **state) {
    IrOverride ov[] = {{"width", 68, false}};
    both(front_file("examples/martinez.net", ov, 1, false));
}
static void test_forecast_lstm(void **state) {
    IrOverride ov[] = {{"hidden", 52, false}, {"past", 4, false}, {"future", 3, false}};
    both(front_file("examples/forecast_lstm.net", ov, 3, false));
}
static void test_action_stconv(void **state) {
    IrOverride ov[] = {{"width", 34, false}, {"frames", 8, false}};
    both(front_file("examples/action_stconv.net", ov, 2, false));
}

/* ---- the test networks: every op kind, layout, sharing and activation policy ------------------ */

static void test_nets(void **state) {
    static const char *const nets[] = {
        "activations_all", "classify_auto_invariant", "classify_invariant", "concat_flatten",
        "conv_stride_dilation", "gru_seq2seq", "lift_joints_paper", "lift_pairs_mixed", "lstm_seq2seq",
        "strided_residual", "crop_strided_uneven", "broken_unshared", "broken_relu_forced",
    };
    for (size_t i = 0; i < sizeof nets / sizeof *nets; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/nets/%s.net", nets[i]);
        both(front_file(rel, NULL, 0, false));
    }
}

/* ---- the kernel IR by hand -------------------------------------------------------------------- */

static const char tiny_src[] =
    "model tiny\n"
    "skeleton s {\n  joints c l r\n  mirror l:r\n}\n"
    "input  x : s (x!, y)\n"
    "output y : s (x!, y)\n"
    "net {\n  h = tanh(batchnorm(linear(x, 6)))\n  y = linear(h)\n}\n";

/* The text form of a small network's kernel IR, against tests/golden/kir/tiny.kir. */
static void test_golden_kir(void **state) {
    const char *dir = src_dir();
    if (!dir) skip();
    IrProgram *p = front_text("tiny.net", tiny_src, NULL, 0, false);
    CgOptions o = {0};
    CgModel *m = cg_lower(p, &o);
    assert_non_null(m);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    kir_print(f, m->k);
    fclose(f);
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/kir/tiny.kir", dir);
    if (getenv("UPDATE_GOLDEN")) {
        FILE *g = fopen(path, "w");
        assert_non_null(g);
        fputs(text, g);
        fclose(g);
    }
    SrcFile *golden = diag_read_file(arena, &diag, path);
    assert_non_null(golden);
    if (golden->len != len || memcmp(golden->text, text, len) != 0) {
        fprintf(stderr, "%s", text);
        fail_msg("kernel IR differs from %s (UPDATE_GOLDEN=1 to accept)", path);
    }
    free(text);
}

/* The fingerprint follows the graph, not the train block. */
static void test_fingerprint(void **state) {
    IrProgram *a = front_text("tiny.net", tiny_src, NULL, 0, false);
    IrProgram *b = front_text("tiny.net", tiny_src, NULL, 0, false);
    char *other = arena_strdup(arena, tiny_src);
    memcpy(strstr(other, "linear(x, 6)"), "linear(x, 9)", 12);
    IrProgram *c = front_text("tiny.net", other, NULL, 0, false);
    const char *fa = cg_fingerprint(arena, a), *fb = cg_fingerprint(arena, b), *fc = cg_fingerprint(arena, c);
    assert_string_equal(fa, fb);
    assert_string_not_equal(fa, fc);
    b->train.lr = 0.5; /* the train block does not change what a checkpoint holds */
    assert_string_equal(fa, cg_fingerprint(arena, b));
}

/* The verifier catches an index past a buffer's end and a table read past its end. */
static void test_verifier(void **state) {
    KirProgram *k = kir_program_new(arena);
    int a = kir_buf(k, "a", KIR_BUF_INPUT, 6, 0), b = kir_buf(k, "b", KIR_BUF_TEMP, 6, 0);
    KirDim ext[2] = {{2, true}, {3, false}};
    KirStep *s = kir_loop(k, KIR_FN_INFER, "copy", 2, ext);
    KirIndex src = kir_ix(a, 0);
    kir_ix_var(&src, 0, 3), kir_ix_var(&src, 1, 1);
    KirIndex dst = src;
    dst.buf = b;
    kir_store(k, s, dst, kir_load(k, src));
    const char *why = NULL;
    assert_true(kir_verify(k, &why));
    /* one past the end: row stride 4 with 2 * 3 per sample */
    KirStep *s2 = kir_loop(k, KIR_FN_INFER, "bad", 2, ext);
    KirIndex bad = src;
    bad.coef[0] = 4;
    kir_store(k, s2, dst, kir_load(k, bad));
    assert_false(kir_verify(k, &why));
    assert_non_null(strstr(why, "leaves buffer"));
    /* a table of 2 entries indexed by an extent of 3 */
    k->fn[KIR_FN_INFER].nsteps = 1;
    int tab[2] = {0, 1};
    int t = kir_tab_int(k, tab, 2);
    KirIndex g = kir_ix(a, 0);
    kir_ix_var(&g, 0, 3), kir_ix_tab(&g, t, 1, 1);
    KirStep *s3 = kir_loop(k, KIR_FN_INFER, "gather", 2, ext);
    kir_store(k, s3, dst, kir_load(k, g));
    assert_false(kir_verify(k, &why));
    assert_non_null(strstr(why, "table"));
    /* a guarded load that stays inside only under its guard */
    k->fn[KIR_FN_INFER].nsteps = 1;
    KirIndex gl = src;
    gl.off = -1; /* column c - 1, valid for c >= 1 */
    gl.guard = true, gl.goff = -1, gl.gcoef[1] = 1, gl.glimit = 3;
    KirStep *s4 = kir_loop(k, KIR_FN_INFER, "shift", 2, ext);
    kir_store(k, s4, dst, kir_load(k, gl));
    assert_true(kir_verify(k, &why));
    /* the plan: a and b are not temporaries except b; it lives s0..s1 */
    cg_plan(k);
    assert_int_equal(k->bufs[b].first, 0);
    assert_int_equal(k->bufs[b].last, 1);
    assert_int_equal(k->arena_per_sample, 6);
}

/* Liveness lets buffers share memory: a chain of three elementwise steps needs two buffers. */
static void test_plan_reuse(void **state) {
    KirProgram *k = kir_program_new(arena);
    int in = kir_buf(k, "in", KIR_BUF_INPUT, 10, 0), out = kir_buf(k, "out", KIR_BUF_OUTPUT, 10, 0);
    int t[4];
    for (int i = 0; i < 4; i++) t[i] = kir_buf(k, "t", KIR_BUF_TEMP, 10, 0);
    KirDim ext[1] = {{10, true}};
    int prev = in;
    for (int i = 0; i <= 4; i++) {
        int dst = i < 4 ? t[i] : out;
        KirStep *s = kir_loop(k, KIR_FN_INFER, "step", 1, ext);
        KirIndex x = kir_ix(prev, 0), y = kir_ix(dst, 0);
        kir_ix_var(&x, 0, 1), kir_ix_var(&y, 0, 1);
        kir_store(k, s, y, kir_un(k, KIR_E_TANH, kir_load(k, x)));
        prev = dst;
    }
    cg_plan(k);
    check_plan(k);
    /* t0 s0..s1, t1 s1..s2, t2 s2..s3, t3 s3..s4: two slots suffice */
    assert_int_equal(k->arena_per_sample, 20);
    assert_int_equal(cg_plan_address(k, t[0], 5), k->bufs[t[0]].offset * 5);
}

/* The mask of one compiled training forward against its definition. */
static void dropout_mask(IrProgram *p, const IrNode *dn) {
    Built bl = build(p, false);
    const RtModel *rm = bl.rm;
    int batch = 2;
    float x[80], y[80], ar[1];
    for (int i = 0; i < 80; i++) x[i] = (float)(i + 1);
    float *in[1] = {x}, *out[1] = {y};
    float *arena_f = calloc((size_t)(rm->arena_per_sample * batch + rm->arena_fixed + 1), sizeof(float));
    RtExec ex = {.batch = batch, .mode = RT_MODE_TRAINING, .params = ar, .state = ar, .prep = ar,
                 .inputs = (const float *const *)in, .outputs = out, .arena = arena_f, .dropout = true,
                 .dropout_seed = 99, .step = 5, .bn_momentum = -1};
    rm->forward(rm, &ex);
    int dropped = 0;
    /* the contract of docs/kernel-ir.md, spelt out with the bare block function: word
     * k & 3 of the block at counter k >> 2 of stream (step << 32) | (id << 8), kept when
     * it is >= ceil(0.3 * 2^32) */
    const uint64_t stream = (5ULL << 32) | ((uint64_t)dn->id << 8);
    const uint32_t key[2] = {99, 0};
    const uint32_t thr = (uint32_t)ceil(0.3 * 4294967296.0);
    for (int k = 0; k < 80; k++) {
        uint32_t ctr[4] = {(uint32_t)(k >> 2), 0, (uint32_t)stream, (uint32_t)(stream >> 32)}, w[4];
        rt_philox4x32(ctr, key, w);
        float want = w[k & 3] >= thr ? x[k] * (float)(1.0 / 0.7) : 0.0f;
        assert_true(fabsf(y[k] - want) <= 1e-6f * fabsf(want));
        dropped += want == 0;
    }
    assert_true(dropped > 5 && dropped < 45);
    /* the interpreter draws the same mask at step 0 */
    ex.step = 0;
    rm->forward(rm, &ex);
    double xd[80];
    for (int k = 0; k < 80; k++) xd[k] = x[k];
    ir_interp_dropout(xd, 80, 0.3, 99, dn->id, 0);
    for (int k = 0; k < 80; k++) assert_true(fabs(y[k] - xd[k]) <= 1e-6 * fabs(xd[k]));
    /* off: the identity; inference: the identity */
    ex.dropout = false;
    rm->forward(rm, &ex);
    for (int k = 0; k < 80; k++) assert_true(y[k] == x[k]);
    free(arena_f);
    dlclose(bl.dl);
}

/* Dropout in a compiled training forward (every backend): the mask is the counter-based
 * RNG, recomputed here from its definition in RtExec. */
static void test_dropout_mask(void **state) {
    const char *dir = src_dir();
    if (!dir) skip();
    static const char src[] = "model drop\n"
                              "input  x : features(40)\n"
                              "output y : features(40)\n"
                              "net {\n  y = dropout(x, 0.3)\n}\n";
    IrProgram *p = front_text("drop.net", src, NULL, 0, false);
    const IrNode *dn = NULL;
    ir_foreach(p, n) if (n->op == IR_DROPOUT) dn = n;
    assert_non_null(dn);
    for (cg_backend = 0; cg_backend < cg_backends(); cg_backend++) dropout_mask(p, dn);
    cg_backend = CG_BACKEND_C;
}

/* tanh as the CPU backends compute it (codegen/fastmath.c, a rational function in
 * place of libm's call): within 1e-6 of tanh, relative, over [-12, 12] and at tiny and
 * huge arguments; exactly odd, bit for bit; never beyond +-1; NaN stays NaN. */
static void tanh_values(IrProgram *p) {
    Built bl = build(p, false);
    const RtModel *rm = bl.rm;
    enum { W = 64, B = 4096, H = W * B / 2 };
    float *x = malloc(sizeof(float) * W * B), *y = malloc(sizeof(float) * W * B), ar[1];
    for (int i = 0; i < H; i++) { /* x and -x in the two halves */
        x[i] = -12.0f + 24.0f * (float)i / (float)(H - 4);
        if (i >= H - 4) x[i] = (float[]){1e-30f, 3e-8f, 1e30f, INFINITY}[i - (H - 4)];
        x[H + i] = -x[i];
    }
    x[H - 5] = NAN;
    x[2 * H - 5] = NAN;
    float *in[1] = {x}, *out[1] = {y};
    float *arena_f = calloc((size_t)(rm->arena_per_sample * B + rm->arena_fixed + 1), sizeof(float));
    RtExec ex = {.batch = B, .mode = RT_MODE_INFERENCE, .params = ar, .state = ar, .prep = ar,
                 .inputs = (const float *const *)in, .outputs = out, .arena = arena_f, .bn_momentum = -1};
    rm->forward(rm, &ex);
    for (int i = 0; i < H; i++) {
        if (isnan(x[i])) {
            assert_true(isnan(y[i]) && isnan(y[H + i]));
            continue;
        }
        double want = tanh((double)x[i]), err = fabs(y[i] - want) / fmax(fabs(want), 1e-38);
        if (!(err <= 1e-6)) fail_msg("%s: tanh(%.9g) = %.9g, want %.9g", cg_backend_name[cg_backend], x[i], y[i], want);
        if (!(fabsf(y[i]) <= 1.0f)) fail_msg("tanh(%.9g) = %.9g", x[i], y[i]);
        uint32_t a, b;
        float neg = -y[H + i];
        memcpy(&a, &y[i], 4), memcpy(&b, &neg, 4);
        if (a != b) fail_msg("%s: tanh(-x) = %.9g is not -tanh(x) = %.9g", cg_backend_name[cg_backend], y[H + i], -y[i]);
    }
    free(x), free(y), free(arena_f);
    dlclose(bl.dl);
}

static void test_tanh(void **state) {
    static const char src[] = "model th\n"
                              "input  x : features(64)\n"
                              "output y : features(64)\n"
                              "net {\n  y = tanh(x)\n}\n";
    IrProgram *p = front_text("th.net", src, NULL, 0, false);
    for (cg_backend = 0; cg_backend < cg_backends(); cg_backend++) tanh_values(p);
    cg_backend = CG_BACKEND_C;
}

/* init: deterministic in the seed, fan-in scaled blocks, gamma and running variance 1,
 * and the paper's held-at-zero weights zero (lift_pairs_mixed has sharing = paper). */
static void test_init(void **state) {
    IrProgram *p = front_file("tests/nets/lift_pairs_mixed.net", NULL, 0, false);
    if (!p) skip();
    Built bl = build(p, false);
    const RtModel *rm = bl.rm;
    const CgModel *m = bl.m;
    size_t np = (size_t)rm->params_size + 1, ns = (size_t)rm->state_size + 1;
    float *p1 = calloc(np, 4), *p2 = calloc(np, 4), *p3 = calloc(np, 4), *s1 = calloc(ns, 4), *s2 = calloc(ns, 4);
    rm->init(rm, p1, s1, 1);
    rm->init(rm, p2, s2, 1);
    rm->init(rm, p3, s2, 2);
    assert_memory_equal(p1, p2, sizeof(float) * (size_t)rm->params_size);
    assert_true(memcmp(p1, p3, sizeof(float) * (size_t)rm->params_size) != 0);
    const IrParams *w = m->layout;
    long zeros = 0;
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *e = &w->entries[i];
        const float *d = (m->entry_state[i] ? s1 : p1) + m->entry_offset[i];
        long n = (long)e->rows * e->cols;
        if (!strcmp(e->name, "gamma") || !strcmp(e->name, "var"))
            for (long k = 0; k < n; k++) assert_true(d[k] == 1.0f);
        if (!strcmp(e->name, "beta") || !strcmp(e->name, "mean"))
            for (long k = 0; k < n; k++) assert_true(d[k] == 0.0f);
        if (e->name[0] == 'A' && n > 100) {
            /* sample variance of the free weights near 1 / fan_in */
            double s2v = 0;
            long cnt = 0;
            for (int r = 0; r < e->rows; r++)
                for (int c = 0; c < e->cols; c++) {
                    if (ir_params_fixed_zero(w, e, r, c)) {
                        assert_true(d[(long)r * e->cols + c] == 0.0f);
                        zeros++;
                        continue;
                    }
                    s2v += (double)d[(long)r * e->cols + c] * d[(long)r * e->cols + c], cnt++;
                }
            double want = 1.0 / e->node->in[0]->shape.feat;
            if (!(fabs(s2v / cnt / want - 1) < 0.3)) fail_msg("init variance %g, want %g", s2v / cnt, want);
        }
    }
    assert_true(zeros > 0);
    free(p1), free(p2), free(p3), free(s1), free(s2);
    dlclose(bl.dl);
}

/* ---- the LLVM backend against the C backend ----------------------------------------------------- */

static void same_str(const char *what, const char *a, const char *b) {
    if (!a || !b) {
        if (a != b) fail_msg("%s: %s against %s", what, a ? a : "NULL", b ? b : "NULL");
        return;
    }
    if (strcmp(a, b) != 0) fail_msg("%s: '%.60s' against '%.60s'", what, a, b);
}
static void same_io(const RtModelIo *a, const RtModelIo *b) {
    same_str("io name", a->name, b->name);
    assert_int_equal(a->frames, b->frames);
    assert_int_equal(a->features, b->features);
    assert_int_equal(a->is_class, b->is_class);
    assert_int_equal(a->invariant, b->invariant);
    assert_int_equal(a->joints, b->joints);
    assert_int_equal(a->coords, b->coords);
    assert_int_equal(!a->partner, !b->partner);
    assert_int_equal(!a->sign, !b->sign);
    if (a->partner) assert_memory_equal(a->partner, b->partner, sizeof(int32_t) * (size_t)a->features);
    if (a->sign) assert_memory_equal(a->sign, b->sign, sizeof(float) * (size_t)a->features);
}
static void same_params(const RtModelParam *a, const RtModelParam *b, int n) {
    for (int i = 0; i < n; i++) {
        same_str("parameter name", a[i].name, b[i].name);
        assert_int_equal(a[i].offset, b[i].offset);
        assert_int_equal(a[i].count, b[i].count);
        assert_int_equal(a[i].ndim, b[i].ndim);
        assert_int_equal(a[i].shape[0], b[i].shape[0]);
        assert_int_equal(a[i].shape[1], b[i].shape[1]);
    }
}

/* The LLVM backend's descriptor is the C backend's, field by field (the C file is
 * the reference: its tables are printed from the same lowering); init draws the
 * same numbers, and densify computes the same dense weights. A training model with
 * the paper's held-at-zero weights, and one with time axes. */
static void test_llvm_descriptor(void **state) {
    if (!cg_llvm_available()) skip();
    static const char *const nets[] = {"tests/nets/lift_pairs_mixed.net", "tests/nets/conv_stride_dilation.net"};
    for (size_t t = 0; t < sizeof nets / sizeof *nets; t++) {
        IrProgram *p = front_train(nets[t], NULL, NULL, 0);
        if (!p) skip();
        cg_backend = CG_BACKEND_C;
        Built bc = build(p, false);
        cg_backend = CG_BACKEND_LLVM;
        Built bl = build(p, false);
        cg_backend = CG_BACKEND_C;
        const RtModel *c = bc.rm, *l = bl.rm;
        same_str("name", c->name, l->name);
        same_str("fingerprint", c->fingerprint, l->fingerprint);
        same_str("options", c->options, l->options);
        assert_int_equal(c->ninputs, l->ninputs);
        assert_int_equal(c->noutputs, l->noutputs);
        for (int i = 0; i < c->ninputs; i++) same_io(&c->inputs[i], &l->inputs[i]);
        for (int i = 0; i < c->noutputs; i++) same_io(&c->outputs[i], &l->outputs[i]);
        assert_int_equal(c->nparams, l->nparams);
        assert_int_equal(c->nstate, l->nstate);
        assert_true(c->nparams > 0);
        same_params(c->params, l->params, c->nparams);
        same_params(c->state, l->state, c->nstate);
        assert_int_equal(c->params_size, l->params_size);
        assert_int_equal(c->state_size, l->state_size);
        assert_int_equal(c->prep_size, l->prep_size);
        assert_int_equal(c->arena_per_sample, l->arena_per_sample);
        assert_int_equal(c->arena_fixed, l->arena_fixed);
        same_str("loss", c->train.loss, l->train.loss);
        same_str("optimizer", c->train.optimizer, l->train.optimizer);
        assert_int_equal(c->train.loss_output, l->train.loss_output);
        assert_true(c->train.lr == l->train.lr && c->train.beta1 == l->train.beta1 && c->train.beta2 == l->train.beta2);
        assert_true(c->train.momentum == l->train.momentum && c->train.decay == l->train.decay);
        assert_true(c->train.weight_decay == l->train.weight_decay && c->train.clip == l->train.clip);
        assert_true(c->train.mirror == l->train.mirror);
        assert_int_equal(c->train.batch, l->train.batch);
        assert_int_equal(c->train.epochs, l->train.epochs);
        assert_non_null(l->backward);
        assert_int_equal(c->ndense, l->ndense);
        assert_int_equal(c->dense_size, l->dense_size);
        assert_true(c->ndense > 0);
        for (int i = 0; i < c->ndense; i++) {
            same_str("dense name", c->dense[i].name, l->dense[i].name);
            assert_int_equal(c->dense[i].ndim, l->dense[i].ndim);
            assert_memory_equal(c->dense[i].shape, l->dense[i].shape, sizeof c->dense[i].shape);
            assert_int_equal(c->dense[i].offset, l->dense[i].offset);
            assert_int_equal(c->dense[i].count, l->dense[i].count);
        }
        same_str("graph_json", c->graph_json, l->graph_json);
        /* init: the same draws, bit for bit (one float multiply of the same numbers) */
        size_t np = (size_t)c->params_size + 1, ns = (size_t)c->state_size + 1;
        float *pc = calloc(np, 4), *pl = calloc(np, 4), *sc = calloc(ns, 4), *sl = calloc(ns, 4);
        c->init(c, pc, sc, 11);
        l->init(l, pl, sl, 11);
        assert_memory_equal(pc, pl, sizeof(float) * (size_t)c->params_size);
        assert_memory_equal(sc, sl, sizeof(float) * (size_t)c->state_size);
        /* densify: the same weights (the same float operations in the same order) */
        float *dc = calloc((size_t)c->dense_size + 1, 4), *dl = calloc((size_t)c->dense_size + 1, 4);
        c->densify(c, pc, sc, dc);
        l->densify(l, pc, sc, dl);
        for (long i = 0; i < c->dense_size; i++)
            if (!(fabsf(dc[i] - dl[i]) <= 1e-6f * (1 + fabsf(dc[i])))) fail_msg("densify element %ld: %g against %g", i, dc[i], dl[i]);
        free(pc), free(pl), free(sc), free(sl), free(dc), free(dl);
        dlclose(bc.dl);
        dlclose(bl.dl);
    }
}

/* `chiralc emit llvm`'s file is LLVM assembly that llvm-as accepts (and so verifies)
 * on its own, and it defines the model's one external symbol. */
static void test_llvm_ir_text(void **state) {
    if (!cg_llvm_available()) skip();
    IrProgram *p = front_file("tests/nets/conv_stride_dilation.net", NULL, 0, false);
    if (!p) skip();
    CgOptions o = {0};
    CgModel *m = cg_lower(p, &o);
    assert_non_null(m);
    if (!workdir[0]) {
        snprintf(workdir, sizeof workdir, "/tmp/chiralc_test_codegen.XXXXXX");
        assert_non_null(mkdtemp(workdir));
    }
    const char *path = NULL;
    assert_true(cg_write_llvm_ir(m, workdir, NULL, &path));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    bool get = false;
    while (fgets(line, sizeof line, f)) get = get || strstr(line, "define ptr @rt_model_get()") ||
                                                strstr(line, "define i8* @rt_model_get()");
    fclose(f);
    assert_true(get);
    /* a file the tools take (skipped where llvm-as is not installed) */
    if (system("command -v llvm-as-14 > /dev/null 2>&1") == 0) {
        char *cmd = arena_printf(arena, "llvm-as-14 %s -o /dev/null", path);
        if (system(cmd) != 0) fail_msg("llvm-as rejects %s", path);
    }
    unlink(path);
}

static int cleanup(void **state) { return cg_cleanup(state); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verifier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_golden_kir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropout_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tanh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init, setup, teardown),
        cmocka_unit_test_setup_teardown(test_martinez, setup, teardown),
        cmocka_unit_test_setup_teardown(test_videopose3d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_videopose3d_baseline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_videopose3d_unfused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_videopose3d_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fusion_moves_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nofold_stride_as_cols, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fusion_gathered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fusion_crop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fusion_crop_dilated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fusion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backends_bitwise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_stconv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forecast_lstm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_llvm_descriptor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_llvm_ir_text, setup, teardown),
    };
    if (getenv("CG_TEST_FILTER")) cmocka_set_test_filter(getenv("CG_TEST_FILTER")); /* e.g. "test_llvm*" */
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
