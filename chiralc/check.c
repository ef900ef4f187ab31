/* chiralc/check.c: `chiralc check`: is the compiled network equivariant?
 *
 * Random folded weights and random inputs x; the float64 interpreter computes
 * F(x) and F(T_in x), and per output the relative error
 * |T_out F(x) - F(T_in x)| / |F(x)| is printed (chirality.md 5), in inference
 * mode and in training mode (batchnorm with augmented-batch statistics, which
 * is equivariant for the batch as a whole; dropout off, since its mask is not
 * mirrored). An invariant output has T_out = I. With a loss, the gradient of
 * the folded parameters is compared too (gradient_error below). */
#include <math.h>
#include <string.h>

#include "chiralc/cmd.h"

enum { NMODES = 2 };
static const char *const mode_name[NMODES] = {"inference", "training"};

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* |T_out y - y_mirrored| / |y|, with 0/0 = 0 (a zero output that stays zero). */
static double rel_error(const IrDecl *d, const double *y, const double *ym, long size, long frames,
                        bool *zero) {
    double *ty = sup_malloc(sizeof(double) * (size_t)(size > 0 ? size : 1));
    ir_decl_apply(d, y, ty, frames);
    double num = 0, den = 0;
    for (long i = 0; i < size; i++) {
        double e = ty[i] - ym[i];
        num += e * e;
        den += y[i] * y[i];
    }
    sup_free(ty);
    *zero = den == 0;
    if (den == 0) return num == 0 ? 0.0 : INFINITY;
    return sqrt(num / den);
}

/* Random inputs x into `plain` and T_in x into `mirrored`, from a stream of their own,
 * so that weights and inputs never share numbers. */
static void random_inputs(const IrProgram *p, IrRun *plain, IrRun *mirrored, int batch, uint64_t seed) {
    uint64_t in_seed = ir_rand_u64(seed, 0x696e707574ULL), counter = 0;
    for (int i = 0; i < p->ninputs; i++) {
        const IrDecl *d = p->inputs[i];
        long frames = (long)batch * ir_run_input_time(plain, i), size = frames * d->feat;
        double *x = ir_run_input(plain, i);
        for (long k = 0; k < size; k++) x[k] = ir_rand_normal(in_seed, counter++);
        ir_decl_apply(d, x, ir_run_input(mirrored, i), frames);
    }
}

/* ---- the gradient (training graph, docs/design.md "Training graph") ---------------------
 * grad_theta L(x, y) = grad_theta L(T_in x, T_out y) for the folded parameters
 * theta (chirality.md 5): the relative difference of the two gradients, in
 * training mode (batchnorm's augmented statistics over the whole batch), dropout
 * off. Targets are drawn like the inputs; a class label is a class index,
 * which the mirror leaves alone. */
static bool gradient_error(IrProgram *p, const CheckOpts *o, int batch, double *err, bool *zero,
                           const char **why) {
    if (!p->training) {
        p->training = true;
        if (!pass_autodiff(p)) return *why = "cannot build the training graph", false;
        ir_renumber(p);
        ir_verify(p, IR_STAGE_TYPED, "autodiff");
    }
    IrParams *w = ir_params_new(p->arena, p);
    ir_params_randomize(w, o->seed);
    IrRun *plain = ir_run_new(p, w, batch, NULL), *mirrored = ir_run_new(p, w, batch, NULL);
    random_inputs(p, plain, mirrored, batch, o->seed);
    uint64_t t_seed = ir_rand_u64(o->seed, 0x746172676574ULL), counter = 0;
    for (int i = 0; i < p->noutputs; i++) {
        const IrDecl *d = p->outputs[i];
        long frames = (long)batch * ir_run_target_time(plain, i);
        double *y = ir_run_target(plain, i), *ym = ir_run_target(mirrored, i);
        if (d->is_class) {
            for (long k = 0; k < frames; k++) y[k] = floor(ir_rand_uniform(t_seed, counter++) * d->feat);
            memcpy(ym, y, sizeof(double) * (size_t)frames);
        } else {
            for (long k = 0; k < frames * d->feat; k++) y[k] = ir_rand_normal(t_seed, counter++);
            ir_decl_apply(d, y, ym, frames);
        }
    }
    IrInterpOpts opts = {.mode = IR_TRAINING, .dropout = false, .seed = o->seed};
    bool ok = ir_run_forward(plain, &opts, why) && ir_run_forward(mirrored, &opts, why);
    if (ok) {
        const double *g = ir_run_grad(plain), *gm = ir_run_grad(mirrored);
        double num = 0, den = 0;
        for (long k = 0; k < w->size; k++) num += (g[k] - gm[k]) * (g[k] - gm[k]), den += g[k] * g[k];
        *err = den == 0 ? (num == 0 ? 0.0 : INFINITY) : sqrt(num / den);
        *zero = den == 0;
    }
    ir_run_free(plain);
    ir_run_free(mirrored);
    return ok;
}

int cmd_check(IrProgram *p, const CheckOpts *o) {
    const char *file = p->file ? base_name(p->file->name) : p->model;
    int batch = o->batch > 0 ? o->batch : 4;
    IrParams *w = ir_params_new(p->arena, p);
    ir_params_randomize(w, o->seed);
    IrRun *plain = ir_run_new(p, w, batch, NULL), *mirrored = ir_run_new(p, w, batch, NULL);
    random_inputs(p, plain, mirrored, batch, o->seed);
    int nout = p->noutputs;
    double *err = sup_malloc(sizeof(double) * (size_t)(NMODES * nout + 1));
    bool any_zero = false;
    int status = 0;
    for (int m = 0; m < NMODES && status == 0; m++) {
        IrInterpOpts opts = {.mode = m == 0 ? IR_INFERENCE : IR_TRAINING, .dropout = false,
                             .seed = o->seed};
        const char *why = NULL;
        if (!ir_run_forward(plain, &opts, &why) || !ir_run_forward(mirrored, &opts, &why)) {
            fprintf(stderr, "%s: error: cannot run the network (%s mode): %s\n", file, mode_name[m], why);
            status = 1;
            break;
        }
        for (int i = 0; i < nout; i++) {
            long size = ir_run_output_size(plain, i);
            long frames = size / (p->outputs[i]->feat > 0 ? p->outputs[i]->feat : 1);
            bool zero;
            err[m * nout + i] = rel_error(p->outputs[i], ir_run_output(plain, i),
                                          ir_run_output(mirrored, i), size, frames, &zero);
            any_zero |= zero;
        }
    }
    /* the gradient, for a model with a loss */
    bool has_grad = status == 0 && p->train.loss != IR_LOSS_NONE && p->train.loss_output;
    double gerr = 0;
    bool gzero = false;
    if (has_grad) {
        const char *why = NULL;
        if (!gradient_error(p, o, batch, &gerr, &gzero, &why)) {
            fprintf(stderr, "%s: error: cannot run the training graph: %s\n", file, why);
            status = 1;
        }
    }
    if (status == 0) {
        int width = (int)strlen(has_grad ? "gradient" : "overall");
        for (int i = 0; i < nout; i++) {
            int l = (int)strlen(p->outputs[i]->name);
            width = l > width ? l : width;
        }
        printf("%s: equivariance error (float64, batch %d, seed %llu)\n", file, batch,
               (unsigned long long)o->seed);
        double overall = 0;
        bool bad = false;
        for (int i = 0; i < nout; i++) {
            printf("  %-*s", width, p->outputs[i]->name);
            for (int m = 0; m < NMODES; m++) {
                double e = err[m * nout + i];
                printf("  %s %.1e", mode_name[m], e);
                if (!(e <= o->tolerance)) bad = true; /* NaN fails too */
                if (e > overall || isnan(e)) overall = e;
            }
            printf("%s\n", p->outputs[i]->invariant ? "  (invariant)" : "");
        }
        if (has_grad) {
            printf("  %-*s  %.1e\n", width, "gradient", gerr);
            if (!(gerr <= o->tolerance)) bad = true;
            if (gerr > overall || isnan(gerr)) overall = gerr;
        }
        printf("  %-*s  %.1e  (tolerance %g): %s\n", width, "overall", overall, o->tolerance,
               bad ? "FAILED" : "ok");
        if (any_zero) printf("  note: an output is exactly zero; its error says nothing\n");
        if (gzero) printf("  note: the gradient is exactly zero; its error says nothing\n");
        status = bad ? 1 : 0;
    }
    sup_free(err);
    ir_run_free(plain);
    ir_run_free(mirrored);
    return status;
}
