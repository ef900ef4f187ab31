/* runtime/bench.c: `MODEL bench`: forward and training-step timings on random data.
 *
 * Weights from the model's initialiser and inputs from the counter-based RNG, so two
 * runs do the same arithmetic; a few untimed warm-up batches first (page faults,
 * OpenBLAS's thread start). Times are wall-clock medians over --steps batches. Every
 * buffer lives in the backend's memory (a CUDA program: the GPU's, timed up to the
 * device's completion of each batch). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

/* OpenBLAS's kernels (its DYNAMIC_ARCH choice, or OPENBLAS_CORETYPE's): printed with the
 * timings, since they set the GEMMs' speed. */
char *openblas_get_corename(void);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The GEMMs' part of a timing (medians of each, so the parts need not add up exactly):
 * what the rest, the loop kernels with the loss and the optimiser, costs. */
static void gemm_split(const char *what, double gemm, double all) {
    printf("    its GEMMs        %9.3f ms/batch  (%.0f %%; the rest of the %s: %.3f ms)\n", 1e3 * gemm,
           all > 0 ? 100 * gemm / all : 0.0, what, 1e3 * (all - gemm));
}

int rt_cmd_bench(const RtModel *m, const RtOpts *o) {
    const int64_t batch = o->batch > 0 ? o->batch : (m->train.batch > 0 ? m->train.batch : 64);
    const uint64_t seed = o->seed_given ? o->seed : 1;
    const int steps = o->steps, warm = 2;
    const RtBackend *be = rt_backend();
    const size_t pb = ((size_t)m->params_size + 1) * sizeof(float), sb = ((size_t)m->state_size + 1) * sizeof(float);
    float *hparams = rt_calloc((size_t)m->params_size + 1, sizeof(float));
    float *hstate = rt_calloc((size_t)m->state_size + 1, sizeof(float));
    float *params = rt_dev_like(hparams, pb), *state = rt_dev_like(hstate, sb);
    float *grads = be->alloc(pb);
    float *prep = be->alloc(((size_t)m->prep_size + 1) * sizeof(float));
    float *arena = be->alloc(((size_t)(m->arena_per_sample * batch + m->arena_fixed) + 1) * sizeof(float));
    const float **ins = rt_calloc((size_t)m->ninputs + 1, sizeof *ins);
    float **outs = rt_calloc((size_t)m->noutputs + 1, sizeof *outs);
    float **douts = rt_calloc((size_t)m->noutputs + 1, sizeof *douts);
    const void **tgs = rt_calloc((size_t)m->noutputs + 1, sizeof *tgs);
    for (int i = 0; i < m->ninputs; i++) {
        const int64_t len = batch * (m->inputs[i].frames > 0 ? m->inputs[i].frames : 1) * m->inputs[i].features;
        float *x = rt_malloc((size_t)len * sizeof(float));
        for (int64_t k = 0; k < len; k++) x[k] = (float)rt_rng_normal(seed, UINT64_C(3) << 32 | (uint64_t)i, (uint64_t)k);
        ins[i] = rt_dev_like(x, (size_t)len * sizeof(float));
        rt_dev_upload((void *)ins[i], x, (size_t)len * sizeof(float));
        if (ins[i] != x) rt_free(x);
    }
    for (int i = 0; i < m->noutputs; i++) {
        const RtModelIo *io = &m->outputs[i];
        const int64_t rows = batch * (io->frames > 0 ? io->frames : 1), len = rows * io->features;
        outs[i] = be->alloc((size_t)len * sizeof(float));
        douts[i] = be->alloc((size_t)len * sizeof(float));
        const size_t tb = io->is_class ? (size_t)rows * sizeof(int64_t) : (size_t)len * sizeof(float);
        void *h = rt_malloc(tb);
        if (io->is_class) {
            int64_t *c = h;
            for (int64_t k = 0; k < rows; k++) c[k] = k % io->features;
        } else {
            float *t = h;
            for (int64_t k = 0; k < len; k++) t[k] = (float)rt_rng_normal(seed, UINT64_C(4) << 32 | (uint64_t)i, (uint64_t)k);
        }
        tgs[i] = rt_dev_like(h, tb);
        rt_dev_upload((void *)tgs[i], h, tb);
        if (tgs[i] != h) rt_free(h);
    }
    m->init(m, hparams, hstate, seed);
    rt_dev_upload(params, hparams, pb);
    rt_dev_upload(state, hstate, sb);
    RtExec x = {.batch = batch, .mode = RT_MODE_INFERENCE, .params = params, .state = state, .prep = prep,
                .inputs = ins, .outputs = outs, .targets = tgs, .doutputs = douts, .grads = grads, .arena = arena,
                .dropout_seed = seed, .bn_momentum = -1};
    double *t = rt_malloc((size_t)steps * sizeof(double)), *tg = rt_malloc((size_t)steps * sizeof(double));
    double t0 = rt_now();
    m->prepare(m, &x);
    be->sync();
    const double prep_s = rt_now() - t0;
    for (int s = 0; s < warm + steps; s++) {
        t0 = rt_now();
        const double g0 = rt_sgemm_seconds();
        m->forward(m, &x);
        be->sync();
        if (s >= warm) t[s - warm] = rt_now() - t0, tg[s - warm] = rt_sgemm_seconds() - g0;
    }
    const double fwd = median(t, steps), fwd_gemm = median(tg, steps);
    if (be->host_memory)
        printf("%s: batch %" PRId64 ", %d steps, %d threads (%s), OpenBLAS %s\n", m->name, batch, steps, o->threads,
               m->options, openblas_get_corename());
    else
        printf("%s: batch %" PRId64 ", %d steps, %s on %s (%s)\n", m->name, batch, steps, be->name, be->device(),
               m->options);
    printf("  prepare            %9.3f ms\n", 1e3 * prep_s);
    printf("  forward (infer)    %9.3f ms/batch  %10.0f samples/s\n", 1e3 * fwd, (double)batch / fwd);
    if (be->host_memory) gemm_split("forward (infer)", fwd_gemm, fwd);
    const int lo = m->train.loss_output;
    if (m->backward && lo >= 0) {
        const RtModelIo *io = &m->outputs[lo];
        const int64_t rows = batch * (io->frames > 0 ? io->frames : 1);
        RtOptimCfg cfg = {.kind = RT_OPTIM_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
        RtOptim opt;
        rt_optim_init(&opt, &cfg, m->params_size);
        const size_t ob = (size_t)rt_optim_state_len(&cfg, m->params_size) * sizeof(float);
        float *ostate = rt_dev_like(opt.state, ob);
        rt_dev_upload(ostate, opt.state, ob);
        x.mode = RT_MODE_TRAINING;
        x.dropout = true;
        double *tf = rt_malloc((size_t)steps * sizeof(double)), *tb = rt_malloc((size_t)steps * sizeof(double));
        for (int s = 0; s < warm + steps; s++) {
            x.step = (uint64_t)s;
            t0 = rt_now();
            const double g0 = rt_sgemm_seconds();
            m->forward(m, &x);
            be->sync();
            double t1 = rt_now();
            be->loss(rt_model_loss(m), outs[lo], tgs[lo], rows, io->features, io->coords, douts[lo]);
            m->backward(m, &x);
            be->optim_step(&opt, ostate, params, grads, 1e-6);
            be->sync();
            if (s >= warm) tf[s - warm] = t1 - t0, tb[s - warm] = rt_now() - t0, tg[s - warm] = rt_sgemm_seconds() - g0;
        }
        const double f = median(tf, steps), st = median(tb, steps), st_gemm = median(tg, steps);
        printf("  forward (train)    %9.3f ms/batch\n", 1e3 * f);
        printf("  training step      %9.3f ms/batch  %10.0f samples/s  (forward, loss, backward, adam)\n", 1e3 * st,
               (double)batch / st);
        if (be->host_memory) gemm_split("training step", st_gemm, st);
        rt_free(tf);
        rt_free(tb);
        rt_dev_release(ostate, opt.state);
        rt_optim_free(&opt);
    } else {
        printf("  training step      -  (%s)\n", m->backward ? "the model has no loss" : "no backward pass compiled");
    }
    /* rt_free for what was the host's (a CPU program's every buffer), else the backend's */
    for (int i = 0; i < m->ninputs; i++) be->free((void *)ins[i]);
    for (int i = 0; i < m->noutputs; i++) be->free(outs[i]), be->free(douts[i]), be->free((void *)tgs[i]);
    rt_dev_release(params, hparams);
    rt_dev_release(state, hstate);
    be->free(grads), be->free(prep), be->free(arena);
    void *all[] = {hparams, hstate, ins, outs, douts, tgs, t, tg};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) rt_free(all[i]);
    return RT_EXIT_OK;
}
