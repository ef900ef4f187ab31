/* runtime/bench.c: `MODEL bench`: forward and training-step timings on random data.
 *
 * Weights from the model's initialiser and inputs from the counter-based RNG, so two
 * runs do the same arithmetic; a few untimed warm-up batches first (page faults,
 * OpenBLAS's thread start). Times are wall-clock medians over --steps batches. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int rt_cmd_bench(const RtModel *m, const RtOpts *o) {
    const int64_t batch = o->batch > 0 ? o->batch : (m->train.batch > 0 ? m->train.batch : 64);
    const uint64_t seed = o->seed_given ? o->seed : 1;
    const int steps = o->steps, warm = 2;
    float *params = rt_calloc((size_t)m->params_size + 1, sizeof(float));
    float *grads = rt_calloc((size_t)m->params_size + 1, sizeof(float));
    float *state = rt_calloc((size_t)m->state_size + 1, sizeof(float));
    float *prep = rt_calloc((size_t)m->prep_size + 1, sizeof(float));
    float *arena = rt_calloc((size_t)(m->arena_per_sample * batch + m->arena_fixed) + 1, sizeof(float));
    const float **ins = rt_calloc((size_t)m->ninputs + 1, sizeof *ins);
    float **outs = rt_calloc((size_t)m->noutputs + 1, sizeof *outs);
    float **douts = rt_calloc((size_t)m->noutputs + 1, sizeof *douts);
    const void **tgs = rt_calloc((size_t)m->noutputs + 1, sizeof *tgs);
    for (int i = 0; i < m->ninputs; i++) {
        const int64_t len = batch * (m->inputs[i].frames > 0 ? m->inputs[i].frames : 1) * m->inputs[i].features;
        float *x = rt_malloc((size_t)len * sizeof(float));
        for (int64_t k = 0; k < len; k++) x[k] = (float)rt_rng_normal(seed, UINT64_C(3) << 32 | (uint64_t)i, (uint64_t)k);
        ins[i] = x;
    }
    for (int i = 0; i < m->noutputs; i++) {
        const RtModelIo *io = &m->outputs[i];
        const int64_t rows = batch * (io->frames > 0 ? io->frames : 1), len = rows * io->features;
        outs[i] = rt_calloc((size_t)len, sizeof(float));
        douts[i] = rt_calloc((size_t)len, sizeof(float));
        if (io->is_class) {
            int64_t *c = rt_malloc((size_t)rows * sizeof(int64_t));
            for (int64_t k = 0; k < rows; k++) c[k] = k % io->features;
            tgs[i] = c;
        } else {
            float *t = rt_malloc((size_t)len * sizeof(float));
            for (int64_t k = 0; k < len; k++) t[k] = (float)rt_rng_normal(seed, UINT64_C(4) << 32 | (uint64_t)i, (uint64_t)k);
            tgs[i] = t;
        }
    }
    m->init(m, params, state, seed);
    RtExec x = {.batch = batch, .mode = RT_MODE_INFERENCE, .params = params, .state = state, .prep = prep,
                .inputs = ins, .outputs = outs, .targets = tgs, .doutputs = douts, .grads = grads, .arena = arena,
                .dropout_seed = seed, .bn_momentum = -1};
    double *t = rt_malloc((size_t)steps * sizeof(double));
    double t0 = rt_now();
    m->prepare(m, &x);
    const double prep_s = rt_now() - t0;
    for (int s = 0; s < warm + steps; s++) {
        t0 = rt_now();
        m->forward(m, &x);
        if (s >= warm) t[s - warm] = rt_now() - t0;
    }
    const double fwd = median(t, steps);
    printf("%s: batch %" PRId64 ", %d steps, %d threads (%s)\n", m->name, batch, steps, o->threads, m->options);
    printf("  prepare            %9.3f ms\n", 1e3 * prep_s);
    printf("  forward (infer)    %9.3f ms/batch  %10.0f samples/s\n", 1e3 * fwd, (double)batch / fwd);
    const int lo = m->train.loss_output;
    if (m->backward && lo >= 0) {
        const RtModelIo *io = &m->outputs[lo];
        const int64_t rows = batch * (io->frames > 0 ? io->frames : 1);
        RtOptimCfg cfg = {.kind = RT_OPTIM_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
        RtOptim opt;
        rt_optim_init(&opt, &cfg, m->params_size);
        x.mode = RT_MODE_TRAINING;
        x.dropout = true;
        double *tf = rt_malloc((size_t)steps * sizeof(double)), *tb = rt_malloc((size_t)steps * sizeof(double));
        for (int s = 0; s < warm + steps; s++) {
            x.step = (uint64_t)s;
            t0 = rt_now();
            m->forward(m, &x);
            double t1 = rt_now();
            rt_loss(rt_model_loss(m), outs[lo], tgs[lo], rows, io->features, io->coords, douts[lo]);
            m->backward(m, &x);
            rt_optim_step(&opt, params, grads, 1e-6);
            if (s >= warm) tf[s - warm] = t1 - t0, tb[s - warm] = rt_now() - t0;
        }
        const double f = median(tf, steps), st = median(tb, steps);
        printf("  forward (train)    %9.3f ms/batch\n", 1e3 * f);
        printf("  training step      %9.3f ms/batch  %10.0f samples/s  (forward, loss, backward, adam)\n", 1e3 * st,
               (double)batch / st);
        rt_free(tf);
        rt_free(tb);
        rt_optim_free(&opt);
    } else {
        printf("  training step      -  (%s)\n", m->backward ? "the model has no loss" : "no backward pass compiled");
    }
    for (int i = 0; i < m->ninputs; i++) rt_free((void *)ins[i]);
    for (int i = 0; i < m->noutputs; i++) rt_free(outs[i]), rt_free(douts[i]), rt_free((void *)tgs[i]);
    void *all[] = {params, grads, state, prep, arena, ins, outs, douts, tgs, t};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) rt_free(all[i]);
    return RT_EXIT_OK;
}
