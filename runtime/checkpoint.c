/* runtime/checkpoint.c: training checkpoints as safetensors.
 *
 * One tensor per entry of the model's parameter and state tables ("param/NAME",
 * "state/NAME", shaped as the table says), so that any safetensors reader can look
 * at them; the optimiser's flat state and step count ("optim/state", "optim/step")
 * when a training run saves; and the metadata a resumed run needs to continue exactly
 * (seed, batch, learning rate, optimiser, epochs completed) plus the model's name and
 * fingerprint, which loading checks first: a checkpoint of another model is refused
 * with one line rather than loaded into the wrong places. Nothing that varies between
 * two runs with the same settings (times, paths) is stored, so identical training
 * gives identical files. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

#define CKPT_FORMAT "chiralc-checkpoint-1"

static char *tensor_name(const char *kind, const char *name) {
    size_t n = strlen(kind) + strlen(name) + 2;
    char *s = rt_malloc(n);
    snprintf(s, n, "%s/%s", kind, name);
    return s;
}

static void table_out(RtTensorOut *t, const char *kind, const RtModelParam *p, const float *base) {
    t->name = tensor_name(kind, p->name);
    t->dtype = RT_F32;
    t->ndim = p->ndim;
    t->shape[0] = p->shape[0];
    t->shape[1] = p->shape[1];
    t->data = base + p->offset;
}

bool rt_ckpt_save(const char *path, const RtModel *m, const float *params, const float *state, const RtOptim *opt,
                  const RtCkptMeta *meta, RtError *e) {
    int cap = m->nparams + m->nstate + 2, n = 0;
    RtTensorOut *t = rt_calloc((size_t)cap, sizeof *t);
    for (int i = 0; i < m->nparams; i++) table_out(&t[n++], "param", &m->params[i], params);
    for (int i = 0; i < m->nstate; i++) table_out(&t[n++], "state", &m->state[i], state);
    int64_t step = opt ? opt->step : 0;
    if (opt) {
        int64_t len = rt_optim_state_len(&opt->cfg, opt->n);
        t[n++] = (RtTensorOut){.name = tensor_name("optim", "state"), .dtype = RT_F32, .ndim = 1, .shape = {len},
                               .data = opt->state};
        t[n++] = (RtTensorOut){.name = tensor_name("optim", "step"), .dtype = RT_I64, .ndim = 1, .shape = {1},
                               .data = &step};
    }
    char epoch[32], seed[32], batch[32], lr[40];
    snprintf(epoch, sizeof epoch, "%d", meta->epoch);
    snprintf(seed, sizeof seed, "%" PRIu64, meta->seed);
    snprintf(batch, sizeof batch, "%" PRId64, meta->batch);
    snprintf(lr, sizeof lr, "%.17g", meta->lr);
    const char *kv[] = {"format", CKPT_FORMAT, "model", m->name, "fingerprint", m->fingerprint,
                        "options", m->options, "epoch", epoch, "seed", seed, "batch", batch, "lr", lr,
                        "optimizer", meta->optimizer};
    bool ok = rt_safetensors_write(path, t, n, kv, (int)(sizeof kv / sizeof *kv / 2), e);
    for (int i = 0; i < n; i++) rt_free((char *)t[i].name);
    rt_free(t);
    return ok;
}

static bool meta_num(const RtSafetensors *s, const char *key, double lo, double *out, RtError *e) {
    const char *v = rt_safetensors_meta(s, key);
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || !(d >= lo))
        return rt_fail(e, "%s: metadata '%s' is missing or not a number >= %g: not a chiralc checkpoint?", s->path,
                       key, lo);
    *out = d;
    return true;
}

/* The metadata, checked against the model. */
static bool read_meta(const RtSafetensors *s, const RtModel *m, RtCkptMeta *meta, RtError *e) {
    memset(meta, 0, sizeof *meta);
    const char *fmt = rt_safetensors_meta(s, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0)
        return rt_fail(e, "%s: not a chiralc checkpoint (metadata 'format' is %s%s%s, expected '" CKPT_FORMAT "')",
                       s->path, fmt ? "'" : "", fmt ? fmt : "missing", fmt ? "'" : "");
    const char *name = rt_safetensors_meta(s, "model"), *fp = rt_safetensors_meta(s, "fingerprint");
    if (!fp || strcmp(fp, m->fingerprint) != 0)
        return rt_fail(e, "%s: a checkpoint of another model ('%s', fingerprint %s); this program is '%s' (%s)",
                       s->path, name ? name : "?", fp ? fp : "missing", m->name, m->fingerprint);
    double epoch = 0, seed = 0, batch = 0, lr = 0; /* set when meta_num succeeds; -O3 cannot see it */
    if (!meta_num(s, "epoch", 0, &epoch, e) || !meta_num(s, "seed", 0, &seed, e) ||
        !meta_num(s, "batch", 1, &batch, e) || !meta_num(s, "lr", 0, &lr, e))
        return false;
    meta->epoch = (int)epoch;
    meta->seed = strtoull(rt_safetensors_meta(s, "seed"), NULL, 10); /* exact beyond 2^53 */
    meta->batch = (int64_t)batch;
    meta->lr = lr;
    const char *opt = rt_safetensors_meta(s, "optimizer");
    snprintf(meta->optimizer, sizeof meta->optimizer, "%s", opt ? opt : "");
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->tensors[i].name, "optim/step") == 0) meta->has_optim = true;
    return true;
}

static const RtArray *find(const RtSafetensors *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->tensors[i].name, name) == 0) return &s->tensors[i];
    return NULL;
}

static bool load_table(const RtSafetensors *s, const char *kind, const RtModelParam *tab, int n, float *dst,
                       RtError *e) {
    for (int i = 0; i < n; i++) {
        char *name = tensor_name(kind, tab[i].name);
        const RtArray *a = find(s, name);
        bool ok = true;
        if (!a) {
            ok = rt_fail(e, "%s: no tensor '%s' (the checkpoint does not match the model)", s->path, name);
        } else if (a->dtype != RT_F32 || a->ndim != tab[i].ndim || a->shape[0] != tab[i].shape[0] ||
                   (a->ndim == 2 && a->shape[1] != tab[i].shape[1])) {
            char want[80], got[200];
            if (tab[i].ndim == 2) snprintf(want, sizeof want, "[%" PRId64 ", %" PRId64 "]", tab[i].shape[0], tab[i].shape[1]);
            else snprintf(want, sizeof want, "[%" PRId64 "]", tab[i].shape[0]);
            ok = rt_fail(e, "%s: tensor '%s': expected float32 %s, got %s %s", s->path, name, want,
                         rt_dtype_name(a->dtype), rt_shape_str(a, got, sizeof got));
        } else {
            memcpy(dst + tab[i].offset, a->data, (size_t)tab[i].count * sizeof(float));
        }
        rt_free(name);
        if (!ok) return false;
    }
    return true;
}

bool rt_ckpt_peek(const char *path, const RtModel *m, RtCkptMeta *meta, RtError *e) {
    RtSafetensors s;
    if (!rt_safetensors_read(path, &s, e)) return false;
    bool ok = read_meta(&s, m, meta, e);
    rt_safetensors_free(&s);
    return ok;
}

bool rt_ckpt_load(const char *path, const RtModel *m, float *params, float *state, RtOptim *opt, RtCkptMeta *meta,
                  RtError *e) {
    RtSafetensors s;
    if (!rt_safetensors_read(path, &s, e)) return false;
    bool ok = read_meta(&s, m, meta, e) && load_table(&s, "param", m->params, m->nparams, params, e) &&
              load_table(&s, "state", m->state, m->nstate, state, e);
    if (ok && opt) {
        const RtArray *st = find(&s, "optim/state"), *step = find(&s, "optim/step");
        int64_t len = rt_optim_state_len(&opt->cfg, opt->n);
        if (!st || !step)
            ok = rt_fail(e, "%s: no optimiser state (tensors 'optim/state', 'optim/step'): cannot resume from it",
                         path);
        else if (st->dtype != RT_F32 || st->ndim != 1 || st->shape[0] != len)
            ok = rt_fail(e, "%s: tensor 'optim/state': expected float32 [%" PRId64 "] for %s, got %s with %" PRId64
                            " elements", path, len, meta->optimizer, rt_dtype_name(st->dtype), rt_array_count(st));
        else if (step->dtype != RT_I64 || rt_array_count(step) != 1 || ((const int64_t *)step->data)[0] < 0)
            ok = rt_fail(e, "%s: tensor 'optim/step': expected one non-negative int64", path);
        if (ok) {
            if (len) memcpy(opt->state, st->data, (size_t)len * sizeof(float));
            opt->step = ((const int64_t *)step->data)[0];
        }
    }
    rt_safetensors_free(&s);
    return ok;
}
