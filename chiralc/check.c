/* chiralc/check.c: `chiralc check`: is the compiled network equivariant?
 *
 * Random folded weights and random inputs x; the float64 interpreter computes
 * F(x) and F(T_in x), and per output the relative error
 * |T_out F(x) - F(T_in x)| / |F(x)| is printed (chirality.md 5), in inference
 * mode and in training mode (batchnorm with augmented-batch statistics, which
 * is equivariant for the batch as a whole; dropout off, since its mask is not
 * mirrored). An invariant output has T_out = I. */
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

int cmd_check(IrProgram *p, const CheckOpts *o) {
    const char *file = p->file ? base_name(p->file->name) : p->model;
    int batch = o->batch > 0 ? o->batch : 4;
    IrParams *w = ir_params_new(p->arena, p);
    ir_params_randomize(w, o->seed);
    IrRun *plain = ir_run_new(p, w, batch, NULL), *mirrored = ir_run_new(p, w, batch, NULL);
    /* inputs from a stream of their own, so that weights and inputs never share numbers */
    uint64_t in_seed = ir_rand_u64(o->seed, 0x696e707574ULL), counter = 0;
    for (int i = 0; i < p->ninputs; i++) {
        const IrDecl *d = p->inputs[i];
        long frames = (long)batch * ir_run_input_time(plain, i), size = frames * d->feat;
        double *x = ir_run_input(plain, i);
        for (long k = 0; k < size; k++) x[k] = ir_rand_normal(in_seed, counter++);
        ir_decl_apply(d, x, ir_run_input(mirrored, i), frames);
    }
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
    if (status == 0) {
        int width = (int)strlen("overall");
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
        printf("  %-*s  %.1e  (tolerance %g): %s\n", width, "overall", overall, o->tolerance,
               bad ? "FAILED" : "ok");
        if (any_zero) printf("  note: an output is exactly zero; its error says nothing\n");
        status = bad ? 1 : 0;
    }
    sup_free(err);
    ir_run_free(plain);
    ir_run_free(mirrored);
    return status;
}
