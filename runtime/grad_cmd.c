/* runtime/grad_cmd.c: `MODEL grad --load ckpt --data d.npz --out g.safetensors`: one batch
 * through the model, everything a comparison of two builds needs (a CPU and a GPU
 * program of one model, tests/run_cuda_gpu.sh), as safetensors:
 *   train/output   the training forward's output (dropout on, seed --seed, step 0)
 *   train/loss     the loss of that output (float32 [1])
 *   train/grad     the parameter gradients of backward (training mode)
 *   train/state    the running statistics after the training forward
 *   init/state     the checkpoint's running statistics (what train/state moved from)
 *   infer/output   the inference forward's output (prepare first) of the same batch
 *   infer/mirror   T(f(T x)) for the chirality transform T of the input and the output:
 *                  equal to infer/output for an equivariant model
 * The batch is the first --batch samples in order, unmirrored; the weights are the
 * checkpoint's. Everything runs where the program runs (rt.h, backend section). */
#include <inttypes.h>
#include <string.h>

#include "runtime/rt.h"

/* The training loop's dropout key (train.c), so a program's masks are the training run's. */
#define DROPOUT_KEY UINT64_C(0x9E3779B97F4A7C15)

int rt_cmd_grad(const RtModel *m, const RtOpts *o) {
    RtError e;
    if (!rt_task_supported(m, &e)) return rt_report(m, &e);
    if (!m->backward || m->train.loss_output < 0)
        return rt_fail(&e, "model '%s' has no %s: grad needs the training graph", m->name,
                       m->backward ? "loss" : "backward pass"), rt_report(m, &e);
    const RtBackend *be = rt_backend();
    const RtModelIo *in = &m->inputs[0], *out = &m->outputs[0];
    RtTask t;
    if (!rt_task_load(m, o, o->data, &t, &e)) return rt_report(m, &e);
    const int64_t want = o->batch > 0 ? o->batch : 16;
    const int64_t b = t.set.nsamples < want ? t.set.nsamples : want;
    const int64_t out_len = (int64_t)(out->frames > 0 ? out->frames : 1) * out->features;
    const int64_t x_frames = b * (in->frames > 0 ? in->frames : 1), y_frames = b * (out->frames > 0 ? out->frames : 1);
    const size_t pb = ((size_t)m->params_size + 1) * sizeof(float), sb = ((size_t)m->state_size + 1) * sizeof(float);
    const size_t xb = (size_t)(b * t.x_len) * sizeof(float), ob = (size_t)(b * out_len) * sizeof(float);
    float *hp = rt_calloc((size_t)m->params_size + 1, sizeof(float));
    float *hs = rt_calloc((size_t)m->state_size + 1, sizeof(float));
    float *h_state = rt_calloc((size_t)m->state_size + 1, sizeof(float));
    float *x = rt_calloc((size_t)(b * t.x_len) + 1, sizeof(float));
    float *y = rt_calloc((size_t)(b * t.y_len) + 1, sizeof(float));
    int64_t *cls = rt_calloc((size_t)(b * t.y_len) + 1, sizeof(int64_t));
    int64_t *idx = rt_calloc((size_t)b + 1, sizeof(int64_t));
    float *h_out = rt_calloc((size_t)(b * out_len) + 1, sizeof(float));
    float *h_inf = rt_calloc((size_t)(b * out_len) + 1, sizeof(float));
    float *h_mir = rt_calloc((size_t)(b * out_len) + 1, sizeof(float));
    float *h_tmp = rt_calloc((size_t)(b * (out_len > t.x_len ? out_len : t.x_len)) + 1, sizeof(float));
    float *h_grad = rt_calloc((size_t)m->params_size + 1, sizeof(float));
    float loss32 = 0;
    bool ok = rt_ckpt_load(o->load, m, hp, hs, NULL, &(RtCkptMeta){0}, &e);
    float *params = NULL, *state = NULL, *grads = NULL, *prep = NULL, *arena = NULL, *dx = NULL, *dy = NULL,
          *dout = NULL, *dd = NULL;
    int64_t *dcls = NULL;
    if (ok) {
        for (int64_t k = 0; k < b; k++) idx[k] = k;
        rt_batch_fill(&t.set, idx, b, NULL, 0, 0, x, y, cls, NULL);
        params = rt_dev_like(hp, pb), state = rt_dev_like(hs, sb);
        grads = be->alloc(pb), prep = be->alloc(((size_t)m->prep_size + 1) * sizeof(float));
        arena = be->alloc(((size_t)(m->arena_per_sample * b + m->arena_fixed) + 1) * sizeof(float));
        dx = be->alloc(xb + 4), dout = be->alloc(ob + 4), dd = be->alloc(ob + 4);
        dy = rt_dev_like(y, (size_t)(b * t.y_len + 1) * sizeof(float));
        dcls = rt_dev_like(cls, (size_t)(b * t.y_len + 1) * sizeof(int64_t));
        rt_dev_upload(params, hp, pb);
        rt_dev_upload(state, hs, sb);
        rt_dev_upload(dx, x, xb);
        rt_dev_upload(dy, y, (size_t)(b * t.y_len) * sizeof(float));
        rt_dev_upload(dcls, cls, (size_t)(b * t.y_len) * sizeof(int64_t));
        const float *ins[1] = {dx};
        float *outs[1] = {dout}, *douts[1] = {dd};
        const void *tgs[1] = {out->is_class ? (const void *)dcls : (const void *)dy};
        const uint64_t seed = o->seed_given ? o->seed : 1;
        RtExec ex = {.batch = b, .mode = RT_MODE_TRAINING, .params = params, .state = state, .prep = prep,
                     .inputs = ins, .outputs = outs, .targets = tgs, .doutputs = douts, .grads = grads,
                     .arena = arena, .dropout = true, .dropout_seed = seed ^ DROPOUT_KEY, .step = 0,
                     .bn_momentum = -1};
        m->forward(m, &ex);
        double loss = be->loss(rt_model_loss(m), dout, tgs[0], y_frames, out->features, out->coords, dd);
        loss32 = (float)loss;
        m->backward(m, &ex);
        rt_dev_download(h_out, dout, ob);
        rt_dev_download(h_grad, grads, pb);
        /* into a buffer of its own: on the CPU `state` is `hs` itself, which the upload of the
         * checkpoint's statistics below overwrites */
        rt_dev_download(h_state, state, sb);
        /* inference, on the checkpoint's statistics again (the training forward moved them) */
        ok = rt_ckpt_load(o->load, m, hp, hs, NULL, &(RtCkptMeta){0}, &e);
        rt_dev_upload(state, hs, sb);
        ex.mode = RT_MODE_INFERENCE;
        ex.dropout = false;
        m->prepare(m, &ex);
        m->forward(m, &ex);
        rt_dev_download(h_inf, dout, ob);
        /* the mirrored batch: T x in, T of the output back */
        RtMirror mi = {in->partner, in->sign, in->features}, mo = {out->partner, out->sign, out->features};
        if (in->partner) rt_mirror_frames(&mi, x, h_tmp, x_frames);
        else memcpy(h_tmp, x, xb);
        rt_dev_upload(dx, h_tmp, xb);
        m->forward(m, &ex);
        rt_dev_download(h_tmp, dout, ob);
        if (out->partner && !out->is_class) rt_mirror_frames(&mo, h_tmp, h_mir, y_frames);
        else memcpy(h_mir, h_tmp, ob);
    }
    if (ok) {
        RtTensorOut ts[] = {
            {.name = "train/output", .dtype = RT_F32, .ndim = 1, .shape = {b * out_len}, .data = h_out},
            {.name = "train/loss", .dtype = RT_F32, .ndim = 1, .shape = {1}, .data = &loss32},
            {.name = "train/grad", .dtype = RT_F32, .ndim = 1, .shape = {m->params_size}, .data = h_grad},
            {.name = "train/state", .dtype = RT_F32, .ndim = 1, .shape = {m->state_size}, .data = h_state},
            {.name = "init/state", .dtype = RT_F32, .ndim = 1, .shape = {m->state_size}, .data = hs},
            {.name = "infer/output", .dtype = RT_F32, .ndim = 1, .shape = {b * out_len}, .data = h_inf},
            {.name = "infer/mirror", .dtype = RT_F32, .ndim = 1, .shape = {b * out_len}, .data = h_mir},
        };
        const char *kv[] = {"model", m->name, "fingerprint", m->fingerprint, "backend", be->name};
        ok = rt_safetensors_write(o->out, ts, (int)(sizeof ts / sizeof *ts), kv, 3, &e);
    }
    if (params) {
        rt_dev_release(params, hp), rt_dev_release(state, hs), rt_dev_release(dy, y), rt_dev_release(dcls, cls);
        void *dev[] = {grads, prep, arena, dx, dout, dd};
        for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) be->free(dev[i]);
    }
    void *all[] = {hp, hs, h_state, x, y, cls, idx, h_out, h_inf, h_mir, h_tmp, h_grad};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) rt_free(all[i]);
    rt_task_free(&t);
    if (!ok) return rt_report(m, &e);
    printf("%s: wrote %s (batch %" PRId64 ", loss %.9g, on %s)\n", m->name, o->out, b, (double)loss32, be->name);
    return RT_EXIT_OK;
}
