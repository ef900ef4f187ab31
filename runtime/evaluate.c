/* runtime/evaluate.c: inference over a data set (eval, and train's validation) and the
 * predict command.
 *
 * Samples are visited in order in batches, without mirroring or dropout, with the
 * inference weights that prepare() derives (batchnorm folded). The loss and every
 * metric are means over poses (batch x frames), so batches combine weighted by
 * their rows and the result does not depend on the batch size. */
#include <inttypes.h>
#include <string.h>

#include "runtime/rt.h"

RtLossKind rt_model_loss(const RtModel *m) {
    static const char *const names[] = {"mse", "l1", "mpjpe", "cross_entropy"};
    for (int k = 0; k < 4; k++)
        if (strcmp(m->train.loss, names[k]) == 0) return (RtLossKind)k;
    /* no train block loss: what a class or a pose output would use */
    return m->noutputs > 0 && m->outputs[0].is_class ? RT_LOSS_CROSS_ENTROPY : RT_LOSS_MSE;
}

typedef struct MetricInfo {
    const char *csv, *label, *unit;
} MetricInfo;
static const MetricInfo metric_info[] = {
    {"mpjpe_mm", "MPJPE", "mm"}, {"p_mpjpe_mm", "P-MPJPE", "mm"}, {"pck_0.05", "PCK@0.05", "%"},
    {"mpjpe", "MPJPE", "(data units)"}, {"top1", "top-1", "%"}, {"top5", "top-5", "%"},
};

int rt_metric_names(const RtModel *m, const char **names) {
    const RtModelIo *out = &m->outputs[0];
    int n = 0;
    if (out->is_class) {
        names[n++] = "top1";
        if (out->features > 5) names[n++] = "top5";
    } else if (out->joints > 0 && out->coords == 3) {
        names[n++] = "mpjpe_mm";
        names[n++] = "p_mpjpe_mm";
    } else if (out->joints > 0) {
        names[n++] = "pck_0.05";
        names[n++] = "mpjpe";
    }
    return n;
}

static double metric(const char *name, const RtModelIo *out, const float *y, const void *t, int64_t rows) {
    const float *tf = t;
    if (strcmp(name, "top1") == 0) return 100.0 * rt_metric_topk(y, t, rows, out->features, 1);
    if (strcmp(name, "top5") == 0) return 100.0 * rt_metric_topk(y, t, rows, out->features, 5);
    if (strcmp(name, "mpjpe_mm") == 0) return RT_METRES_TO_MM * rt_metric_mpjpe(y, tf, rows, out->joints, out->coords);
    if (strcmp(name, "p_mpjpe_mm") == 0)
        return RT_METRES_TO_MM * rt_metric_p_mpjpe(y, tf, rows, out->joints, out->coords);
    if (strcmp(name, "pck_0.05") == 0) return 100.0 * rt_metric_pck(y, tf, rows, out->joints, out->coords, 0.05, RT_PCK_BBOX);
    return rt_metric_mpjpe(y, tf, rows, out->joints, out->coords);
}

void rt_evaluate(const RtModel *m, const float *params, float *state, float *prep, float *arena, int64_t batch,
                 const RtTask *t, RtEvalResult *r) {
    memset(r, 0, sizeof *r);
    const RtModelIo *out = &m->outputs[0];
    const RtDataset *d = &t->set;
    r->nmetrics = rt_metric_names(m, r->names);
    RtExec x = {.batch = batch, .mode = RT_MODE_INFERENCE, .params = params, .state = state, .prep = prep,
                .arena = arena, .bn_momentum = -1};
    m->prepare(m, &x);
    const int64_t n = d->nsamples, out_len = (int64_t)(out->frames > 0 ? out->frames : 1) * out->features;
    float *xb = rt_malloc((size_t)(batch * t->x_len) * sizeof(float));
    float *yb = out->is_class ? NULL : rt_malloc((size_t)(batch * t->y_len) * sizeof(float));
    int64_t *cb = out->is_class ? rt_malloc((size_t)(batch * t->y_len) * sizeof(int64_t)) : NULL;
    float *ob = rt_malloc((size_t)(batch * out_len) * sizeof(float));
    int64_t *idx = rt_malloc((size_t)batch * sizeof(int64_t));
    /* the model reads and writes the backend's memory: the batch goes in, the outputs
     * come back, and the loss and metrics are computed here on the host */
    float *dxb = rt_dev_like(xb, (size_t)(batch * t->x_len) * sizeof(float));
    float *dob = rt_dev_like(ob, (size_t)(batch * out_len) * sizeof(float));
    const RtLossKind lk = rt_model_loss(m);
    double sum_loss = 0, sum_m[RT_MAX_METRICS] = {0};
    int64_t rows_all = 0;
    for (int64_t s = 0; s < n; s += batch) {
        const int64_t b = n - s < batch ? n - s : batch;
        for (int64_t k = 0; k < b; k++) idx[k] = s + k;
        rt_batch_fill(d, idx, b, NULL, 0, 0, xb, yb, cb, NULL);
        rt_dev_upload(dxb, xb, (size_t)(b * t->x_len) * sizeof(float));
        const float *ins[1] = {dxb};
        float *outs[1] = {dob};
        x.batch = b;
        x.inputs = ins;
        x.outputs = outs;
        m->forward(m, &x);
        rt_dev_download(ob, dob, (size_t)(b * out_len) * sizeof(float));
        const int64_t rows = b * d->y_frames;
        const void *tg = out->is_class ? (const void *)cb : (const void *)yb;
        sum_loss += (double)rows * rt_loss(lk, ob, tg, rows, out->features, out->coords, NULL);
        for (int i = 0; i < r->nmetrics; i++) sum_m[i] += (double)rows * metric(r->names[i], out, ob, tg, rows);
        rows_all += rows;
    }
    r->loss = rows_all ? sum_loss / (double)rows_all : 0;
    for (int i = 0; i < r->nmetrics; i++) r->values[i] = rows_all ? sum_m[i] / (double)rows_all : 0;
    rt_dev_release(dxb, xb);
    rt_dev_release(dob, ob);
    rt_free(xb);
    rt_free(yb);
    rt_free(cb);
    rt_free(ob);
    rt_free(idx);
}

const char *rt_metric_label(const char *csv_name, const char **unit) {
    for (size_t i = 0; i < sizeof metric_info / sizeof *metric_info; i++)
        if (strcmp(metric_info[i].csv, csv_name) == 0) {
            if (unit) *unit = metric_info[i].unit;
            return metric_info[i].label;
        }
    if (unit) *unit = "";
    return csv_name;
}

/* The buffers of inference with the weights of a checkpoint: the host's (h*) and the
 * model's, in the backend's memory (the same buffers on the CPU). */
typedef struct Infer {
    float *hparams, *hstate;
    float *params, *state, *prep, *arena;
} Infer;

static bool infer_load(const RtModel *m, const char *path, int64_t batch, Infer *w, RtError *e) {
    const RtBackend *be = rt_backend();
    const size_t pb = ((size_t)m->params_size + 1) * sizeof(float), sb = ((size_t)m->state_size + 1) * sizeof(float);
    w->hparams = rt_calloc((size_t)m->params_size + 1, sizeof(float));
    w->hstate = rt_calloc((size_t)m->state_size + 1, sizeof(float));
    w->params = rt_dev_like(w->hparams, pb);
    w->state = rt_dev_like(w->hstate, sb);
    w->prep = be->alloc(((size_t)m->prep_size + 1) * sizeof(float));
    w->arena = be->alloc(((size_t)(m->arena_per_sample * batch + m->arena_fixed) + 1) * sizeof(float));
    RtCkptMeta meta;
    if (!rt_ckpt_load(path, m, w->hparams, w->hstate, NULL, &meta, e)) return false;
    rt_dev_upload(w->params, w->hparams, pb);
    rt_dev_upload(w->state, w->hstate, sb);
    return true;
}

static void infer_free(Infer *w) {
    rt_dev_release(w->params, w->hparams);
    rt_dev_release(w->state, w->hstate);
    rt_backend()->free(w->prep);
    rt_backend()->free(w->arena);
    rt_free(w->hparams);
    rt_free(w->hstate);
}

int rt_cmd_eval(const RtModel *m, const RtOpts *o) {
    RtError e;
    RtTask t;
    const int64_t batch = o->batch > 0 ? o->batch : (m->train.batch > 0 ? m->train.batch : 256);
    if (!rt_task_load(m, o, o->data, &t, &e)) return rt_report(m, &e);
    Infer w;
    if (!infer_load(m, o->load, batch, &w, &e)) {
        infer_free(&w);
        rt_task_free(&t);
        return rt_report(m, &e);
    }
    RtEvalResult r;
    rt_evaluate(m, w.params, w.state, w.prep, w.arena, batch, &t, &r);
    printf("%s: %s on %s: %" PRId64 " samples\n", m->name, o->load, o->data, t.set.nsamples);
    printf("  %-10s %.6g (%s)\n", "loss", r.loss, rt_loss_name(rt_model_loss(m)));
    for (int i = 0; i < r.nmetrics; i++) {
        const char *unit;
        const char *label = rt_metric_label(r.names[i], &unit);
        printf("  %-10s %.4f %s\n", label, r.values[i], unit);
    }
    infer_free(&w);
    rt_task_free(&t);
    return RT_EXIT_OK;
}

int rt_cmd_predict(const RtModel *m, const RtOpts *o) {
    RtError e;
    if (!rt_task_supported(m, &e)) return rt_report(m, &e);
    const RtModelIo *in = &m->inputs[0], *out = &m->outputs[0];
    const int64_t batch = o->batch > 0 ? o->batch : (m->train.batch > 0 ? m->train.batch : 256);
    /* the one array, checked as an .npz member named after the model's input */
    RtNpz z = {.path = (char *)o->in, .n = 1};
    RtArray a;
    if (!rt_npy_read(o->in, &a, &e)) return rt_report(m, &e);
    char *saved = a.name;
    a.name = (char *)in->name;
    z.arrays = &a;
    int64_t shape[RT_MAX_DIMS];
    int nd = 0;
    shape[nd++] = -1;
    if (in->frames > 0) shape[nd++] = in->frames;
    if (in->joints > 0) shape[nd++] = in->joints, shape[nd++] = in->coords;
    else shape[nd++] = in->features;
    const RtArray *x = rt_npz_get(&z, in->name, RT_F32, nd, shape, &e);
    a.name = saved;
    if (!x) {
        rt_array_free(&a);
        return rt_report(m, &e);
    }
    const int64_t n = a.shape[0], x_len = (int64_t)(in->frames > 0 ? in->frames : 1) * in->features;
    const int64_t out_len = (int64_t)(out->frames > 0 ? out->frames : 1) * out->features;
    Infer w;
    if (!infer_load(m, o->load, batch, &w, &e)) {
        infer_free(&w);
        rt_array_free(&a);
        return rt_report(m, &e);
    }
    float *y = rt_malloc((size_t)(n * out_len + 1) * sizeof(float));
    /* one batch at a time through the model's memory */
    float *dxb = rt_backend()->alloc((size_t)(batch * x_len + 1) * sizeof(float));
    float *dyb = rt_backend()->alloc((size_t)(batch * out_len + 1) * sizeof(float));
    RtExec ex = {.batch = batch, .mode = RT_MODE_INFERENCE, .params = w.params, .state = w.state, .prep = w.prep,
                 .arena = w.arena, .bn_momentum = -1};
    m->prepare(m, &ex);
    for (int64_t s = 0; s < n; s += batch) {
        ex.batch = n - s < batch ? n - s : batch;
        const float *hx = (const float *)a.data + s * x_len;
        float *hy = y + s * out_len;
        /* on the CPU the model reads and writes the host arrays in place */
        const bool host = rt_backend()->host_memory;
        if (!host) rt_dev_upload(dxb, hx, (size_t)(ex.batch * x_len) * sizeof(float));
        const float *ins[1] = {host ? hx : dxb};
        float *outs[1] = {host ? hy : dyb};
        ex.inputs = ins;
        ex.outputs = outs;
        m->forward(m, &ex);
        if (!host) rt_dev_download(hy, dyb, (size_t)(ex.batch * out_len) * sizeof(float));
    }
    rt_backend()->free(dxb);
    rt_backend()->free(dyb);
    RtArray ya = {.name = (char *)out->name, .dtype = RT_F32, .data = y, .itemsize = 4};
    ya.shape[ya.ndim++] = n;
    if (out->frames > 0) ya.shape[ya.ndim++] = out->frames;
    if (out->joints > 0) ya.shape[ya.ndim++] = out->joints, ya.shape[ya.ndim++] = out->coords;
    else ya.shape[ya.ndim++] = out->features;
    bool ok = rt_npy_write(o->out, &ya, &e);
    rt_free(y);
    infer_free(&w);
    rt_array_free(&a);
    if (!ok) return rt_report(m, &e);
    printf("%s: wrote %s (%" PRId64 " samples)\n", m->name, o->out, n);
    return RT_EXIT_OK;
}
