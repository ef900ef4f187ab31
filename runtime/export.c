/* runtime/export.c: the dense export file (`export --dense`; the command itself is
 * export_cmd.c).
 *
 * The compiled model computes its dense weights itself (RtModel.densify, made
 * by codegen/export.c); this file only writes them with the graph description,
 * in the format PyTorch's loaders read without help: safetensors, one tensor
 * per module parameter, named as the module's state_dict names it. */
#include <string.h>

#include "runtime/rt.h"

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool rt_export_dense(const RtModel *m, const float *params, const float *state, const char *path, RtError *e) {
    if (!m->densify || !m->dense || m->ndense <= 0)
        return rt_fail(e, "%s: model '%s' has no dense export (compiled without one)", path, m->name);
    float *dense = rt_calloc((size_t)m->dense_size + 1, sizeof(float));
    m->densify(m, params, state, dense);
    /* nn.BatchNorm1d's state_dict also holds num_batches_tracked: an int64 scalar that
     * only matters for momentum=None, which the graph never asks for */
    int nbn = 0;
    for (int i = 0; i < m->ndense; i++) nbn += ends_with(m->dense[i].name, ".running_mean");
    int n = m->ndense + nbn;
    RtTensorOut *t = rt_calloc((size_t)n + 1, sizeof *t);
    char **names = rt_calloc((size_t)nbn + 1, sizeof *names);
    static const int64_t zero = 0;
    int k = 0, b = 0;
    bool ok = true;
    for (int i = 0; i < m->ndense && ok; i++) {
        const RtModelDense *d = &m->dense[i];
        if (d->offset < 0 || d->count < 0 || d->offset + d->count > m->dense_size)
            ok = rt_fail(e, "%s: dense tensor '%s' lies outside the model's dense buffer", path, d->name);
        t[k] = (RtTensorOut){.name = d->name, .dtype = RT_F32, .ndim = d->ndim, .data = dense + d->offset};
        for (int j = 0; j < d->ndim && j < 3; j++) t[k].shape[j] = d->shape[j];
        k++;
        if (ends_with(d->name, ".running_mean")) {
            size_t len = strlen(d->name) - strlen(".running_mean");
            names[b] = rt_malloc(len + sizeof ".num_batches_tracked");
            memcpy(names[b], d->name, len);
            memcpy(names[b] + len, ".num_batches_tracked", sizeof ".num_batches_tracked");
            t[k++] = (RtTensorOut){.name = names[b], .dtype = RT_I64, .ndim = 0, .data = &zero};
            b++;
        }
    }
    const char *meta[] = {"graph",       m->graph_json ? m->graph_json : "",
                          "model",       m->name ? m->name : "",
                          "fingerprint", m->fingerprint ? m->fingerprint : "",
                          "options",     m->options ? m->options : "",
                          "format",      "chiralc-dense-1"};
    if (ok) ok = rt_safetensors_write(path, t, k, meta, (int)(sizeof meta / sizeof *meta / 2), e);
    for (int i = 0; i < b; i++) rt_free(names[i]);
    rt_free(names);
    rt_free(t);
    rt_free(dense);
    return ok;
}
