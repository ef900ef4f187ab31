/* runtime/train.c: the training loop of a produced program.
 *
 * Per epoch: the seeded order of the samples, batches (the last, partial batch is kept:
 * every sample is seen once per epoch), the mirror augmentation, the training forward
 * (dropout on), the loss and its gradient with respect to the output, backward, clipping,
 * the optimiser step at the epoch's learning rate, with VideoPose3D's batchnorm-momentum
 * schedule; then validation, a line, a CSV row and the checkpoint.
 *
 * Resuming is exact because nothing random has hidden state: the order and the mirror
 * are functions of (seed, epoch, sample), dropout of (seed, optimiser step, element),
 * and the checkpoint written at the end of an epoch holds everything else (weights,
 * running statistics, optimiser moments and step). A run resumed from the checkpoint of
 * epoch k repeats epochs k+1... exactly as the unbroken run did. */
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "runtime/rt.h"

/* The dropout masks draw from their own key, apart from the weights' and the order's. */
#define DROPOUT_KEY UINT64_C(0x9E3779B97F4A7C15)

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

/* A run killed (SIGKILL, power) while writing leaves its temporary file; the next run
 * that saves to the same path removes such leftovers (PATH.tmp.XXXXXX, rt_atomic_open's
 * pattern), so the directory holds only whole checkpoints. */
static void remove_stale_temps(const char *path) {
    size_t n = strlen(path);
    char *pat = rt_malloc(n * 2 + sizeof ".tmp.??????");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[\\", path[i])) pat[k++] = '\\';
        pat[k++] = path[i];
    }
    memcpy(pat + k, ".tmp.??????", sizeof ".tmp.??????");
    glob_t g;
    if (glob(pat, GLOB_NOSORT, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
        globfree(&g);
    }
    rt_free(pat);
}

typedef struct Run {
    const RtModel *m;
    uint64_t seed;
    int64_t batch;
    double lr, decay, clip, mirror, bn_momentum;
    int epochs;
    RtOptimCfg ocfg;
    char optimizer[16];
} Run;

static int fail(const RtModel *m, RtError *e) { return rt_report(m, e); }

/* The settings: the command line, else the checkpoint resumed, else the train block. */
static bool settings(const RtModel *m, const RtOpts *o, const RtCkptMeta *resumed, Run *r, RtError *e) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->seed = o->seed_given ? o->seed : resumed ? resumed->seed : 1;
    r->batch = o->batch > 0 ? o->batch : resumed ? resumed->batch : m->train.batch > 0 ? m->train.batch : 64;
    r->lr = o->lr > 0 ? o->lr : resumed ? resumed->lr : m->train.lr;
    r->decay = o->decay > 0 ? o->decay : m->train.decay > 0 ? m->train.decay : 1.0;
    r->clip = o->clip >= 0 ? o->clip : m->train.clip;
    r->mirror = o->mirror >= 0 ? o->mirror : m->train.mirror;
    r->bn_momentum = o->bn_momentum;
    r->epochs = o->epochs >= 0 ? o->epochs : m->train.epochs > 0 ? m->train.epochs : 1;
    const char *opt = o->optimizer ? o->optimizer : resumed && resumed->optimizer[0] ? resumed->optimizer
                                                                                     : m->train.optimizer;
    snprintf(r->optimizer, sizeof r->optimizer, "%s", opt && *opt ? opt : "adam");
    bool adam = strcmp(r->optimizer, "adam") == 0;
    if (!adam && strcmp(r->optimizer, "sgd") != 0)
        return rt_fail(e, "model '%s': unknown optimizer '%s' (adam or sgd)", m->name, r->optimizer);
    r->ocfg = (RtOptimCfg){.kind = adam ? RT_OPTIM_ADAM : RT_OPTIM_SGD,
                           .momentum = m->train.momentum,
                           .beta1 = m->train.beta1 > 0 ? m->train.beta1 : 0.9,
                           .beta2 = m->train.beta2 > 0 ? m->train.beta2 : 0.999,
                           .eps = 1e-8,
                           .weight_decay = m->train.weight_decay};
    if (!(r->lr > 0)) return rt_fail(e, "model '%s': the learning rate must be positive (--lr)", m->name);
    return true;
}

/* Buffers of one training run, sized for the batch. The model's live in the backend's
 * memory (rt.h, backend section: on the CPU they are the host buffers themselves); the
 * host keeps the weights for initialisation and checkpoints and fills the batches. */
typedef struct Bufs {
    float *params, *state, *grads, *prep, *arena, *out, *dout, *ostate, *dx, *dy;   /* the model's */
    int64_t *dcls;
    float *hparams, *hstate, *x, *y;                                                 /* the host's */
    int64_t *cls, *order;
    size_t params_bytes, state_bytes, ostate_bytes;
} Bufs;

static void bufs_alloc(const RtModel *m, const RtTask *t, int64_t batch, Bufs *b) {
    const RtBackend *be = rt_backend();
    const RtModelIo *out = &m->outputs[0];
    const int64_t out_len = (int64_t)(out->frames > 0 ? out->frames : 1) * out->features;
    b->params_bytes = ((size_t)m->params_size + 1) * sizeof(float);
    b->state_bytes = ((size_t)m->state_size + 1) * sizeof(float);
    b->hparams = rt_calloc((size_t)m->params_size + 1, sizeof(float));
    b->hstate = rt_calloc((size_t)m->state_size + 1, sizeof(float));
    b->params = rt_dev_like(b->hparams, b->params_bytes);
    b->state = rt_dev_like(b->hstate, b->state_bytes);
    b->grads = be->alloc(b->params_bytes);
    b->prep = be->alloc(((size_t)m->prep_size + 1) * sizeof(float));
    b->arena = be->alloc(((size_t)(m->arena_per_sample * batch + m->arena_fixed) + 1) * sizeof(float));
    b->out = be->alloc(((size_t)(batch * out_len) + 1) * sizeof(float));
    b->dout = be->alloc(((size_t)(batch * out_len) + 1) * sizeof(float));
    b->x = rt_calloc((size_t)(batch * t->x_len) + 1, sizeof(float));
    b->y = rt_calloc((size_t)(batch * t->y_len) + 1, sizeof(float));
    b->cls = rt_calloc((size_t)(batch * t->y_len) + 1, sizeof(int64_t));
    b->dx = rt_dev_like(b->x, ((size_t)(batch * t->x_len) + 1) * sizeof(float));
    b->dy = rt_dev_like(b->y, ((size_t)(batch * t->y_len) + 1) * sizeof(float));
    b->dcls = rt_dev_like(b->cls, ((size_t)(batch * t->y_len) + 1) * sizeof(int64_t));
    b->order = rt_calloc((size_t)t->set.nsamples + 1, sizeof(int64_t));
}

static void bufs_free(Bufs *b) {
    const RtBackend *be = rt_backend();
    rt_dev_release(b->params, b->hparams);
    rt_dev_release(b->state, b->hstate);
    rt_dev_release(b->dx, b->x);
    rt_dev_release(b->dy, b->y);
    rt_dev_release(b->dcls, b->cls);
    void *dev[] = {b->grads, b->prep, b->arena, b->out, b->dout};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) be->free(dev[i]);
    void *all[] = {b->hparams, b->hstate, b->x, b->y, b->cls, b->order};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) rt_free(all[i]);
}

/* The optimiser's moments beside the model's weights (after rt_optim_init). */
static void bufs_optim(Bufs *b, const RtOptim *opt) {
    b->ostate_bytes = (size_t)rt_optim_state_len(&opt->cfg, opt->n) * sizeof(float);
    b->ostate = rt_dev_like(opt->state, b->ostate_bytes);
}

/* The host's weights (initial or resumed) to the model's buffers. */
static void bufs_upload(Bufs *b, const RtOptim *opt) {
    rt_dev_upload(b->params, b->hparams, b->params_bytes);
    rt_dev_upload(b->state, b->hstate, b->state_bytes);
    if (b->ostate) rt_dev_upload(b->ostate, opt->state, b->ostate_bytes);
}

static bool save(const Run *r, const char *path, const Bufs *b, RtOptim *opt, int epoch, RtError *e) {
    RtCkptMeta meta = {.epoch = epoch, .seed = r->seed, .batch = r->batch, .lr = r->lr};
    snprintf(meta.optimizer, sizeof meta.optimizer, "%s", r->optimizer);
    rt_dev_download(b->hparams, b->params, b->params_bytes);
    rt_dev_download(b->hstate, b->state, b->state_bytes);
    if (b->ostate) rt_dev_download(opt->state, b->ostate, b->ostate_bytes);
    return rt_ckpt_save(path, r->m, b->hparams, b->hstate, opt, &meta, e);
}

/* One epoch; returns the mean training loss (NaN when a batch's loss was not finite,
 * with the batch in *bad_batch), or stops early when a signal arrived. */
static double epoch_run(const Run *r, const RtTask *t, Bufs *b, RtOptim *opt, int ep, RtProgress *pr,
                        int progress, int64_t *bad_batch) {
    const RtModel *m = r->m;
    const RtModelIo *in = &m->inputs[0], *out = &m->outputs[0];
    const RtDataset *d = &t->set;
    const int64_t n = d->nsamples, nb = rt_batch_count(n, r->batch);
    const RtLossKind lk = rt_model_loss(m);
    const double lr = rt_lr_at_epoch(r->lr, r->decay, ep);
    RtAugment aug = {.mirror_p = r->mirror,
                     .in = {in->partner, in->sign, in->features},
                     .out = {out->is_class ? NULL : out->partner, out->sign, out->features}};
    rt_batch_order(r->seed, ep, true, b->order, n);
    rt_progress_begin(pr, stdout, progress, ep + 1, r->epochs, nb);
    const RtBackend *be = rt_backend();
    const float *ins[1] = {b->dx};
    float *outs[1] = {b->out}, *douts[1] = {b->dout};
    const void *tgs[1] = {out->is_class ? (const void *)b->dcls : (const void *)b->dy};
    RtExec x = {.mode = RT_MODE_TRAINING, .params = b->params, .state = b->state, .prep = b->prep,
                .inputs = ins, .outputs = outs, .targets = tgs, .doutputs = douts, .grads = b->grads,
                .arena = b->arena, .dropout = true, .dropout_seed = r->seed ^ DROPOUT_KEY,
                .bn_momentum = r->bn_momentum >= 0 ? r->bn_momentum
                               : r->bn_momentum == -1
                                   ? rt_bn_momentum_at_epoch(RT_BN_MOMENTUM_INITIAL, RT_BN_MOMENTUM_FINAL, ep, r->epochs)
                                   : -1};
    double sum = 0;
    int64_t rows_all = 0;
    for (int64_t bi = 0; bi < nb && !g_stop; bi++) {
        const int64_t s = bi * r->batch, bs = n - s < r->batch ? n - s : r->batch;
        rt_batch_fill(d, b->order + s, bs, &aug, r->seed, ep, b->x, b->y, b->cls, NULL);
        rt_dev_upload(b->dx, b->x, (size_t)(bs * t->x_len) * sizeof(float));
        if (out->is_class) rt_dev_upload(b->dcls, b->cls, (size_t)(bs * t->y_len) * sizeof(int64_t));
        else rt_dev_upload(b->dy, b->y, (size_t)(bs * t->y_len) * sizeof(float));
        x.batch = bs;
        x.step = (uint64_t)opt->step;
        m->forward(m, &x);
        const int64_t rows = bs * d->y_frames;
        double loss = be->loss(lk, b->out, tgs[0], rows, out->features, out->coords, b->dout);
        if (!isfinite(loss)) {
            *bad_batch = bi;
            return NAN;
        }
        m->backward(m, &x);
        be->clip(b->grads, m->params_size, r->clip);
        be->optim_step(opt, b->ostate, b->params, b->grads, lr);
        sum += loss * (double)rows;
        rows_all += rows;
        rt_progress_update(pr, bi + 1, sum / (double)rows_all);
    }
    if (g_stop) rt_progress_end(pr, "epoch %d/%d interrupted", ep + 1, r->epochs);
    return rows_all ? sum / (double)rows_all : 0;
}

int rt_cmd_train(const RtModel *m, const RtOpts *o) {
    RtError e;
    if (!rt_task_supported(m, &e)) return fail(m, &e);
    if (m->train.loss_output < 0)
        return rt_fail(&e, "model '%s' has no loss: its train block must name one to train", m->name), fail(m, &e);
    RtCkptMeta rmeta;
    if (o->resume && !rt_ckpt_peek(o->resume, m, &rmeta, &e)) return fail(m, &e);
    if (o->resume && !rmeta.has_optim)
        return rt_fail(&e, "%s: no optimiser state (tensors 'optim/state', 'optim/step'): cannot resume from it",
                       o->resume), fail(m, &e);
    Run r;
    if (!settings(m, o, o->resume ? &rmeta : NULL, &r, &e)) return fail(m, &e);
    if (r.epochs > (o->resume ? rmeta.epoch : 0) && !m->backward)
        return rt_fail(&e, "model '%s' was compiled without its backward pass: it cannot train (train --epochs 0 "
                           "only writes the initial weights)", m->name), fail(m, &e);
    RtTask t, v;
    if (!rt_task_load(m, o, o->data, &t, &e)) return fail(m, &e);
    bool have_val = o->val != NULL;
    if (have_val && !rt_task_load(m, o, o->val, &v, &e)) {
        rt_task_free(&t);
        return fail(m, &e);
    }
    Bufs b = {0};
    bufs_alloc(m, &t, r.batch, &b);
    RtOptim opt;
    rt_optim_init(&opt, &r.ocfg, m->params_size);
    bufs_optim(&b, &opt);
    m->init(m, b.hparams, b.hstate, r.seed);
    int status = RT_EXIT_USER, start = 0;
    RtCsvLog log = {0};
    bool log_open = false;
    if (o->resume) {
        if (!rt_ckpt_load(o->resume, m, b.hparams, b.hstate, &opt, &rmeta, &e)) {
            fail(m, &e);
            goto done;
        }
        start = rmeta.epoch;
    }
    bufs_upload(&b, &opt);
    const char *names[RT_MAX_METRICS];
    int nmetrics = have_val ? rt_metric_names(m, names) : 0;
    if (o->log) {
        if (!rt_csv_open(&log, o->log, names, nmetrics, start, &e)) {
            fail(m, &e);
            goto done;
        }
        log_open = true;
    }
    if (o->save) remove_stale_temps(o->save);
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_stop = 0;
    if (start < r.epochs)
        printf("%s: training on %s: %" PRId64 " samples, batch %" PRId64 ", %s lr %g, seed %" PRIu64
               ", epochs %d..%d\n", m->name, o->data, t.set.nsamples, r.batch, r.optimizer, r.lr, r.seed, start + 1,
               r.epochs);
    else if (o->resume)
        printf("%s: %s already holds %d epochs: nothing to train for --epochs %d\n", m->name, o->resume, start,
               r.epochs);
    else
        printf("%s: epochs 0: the initial weights (seed %" PRIu64 ")\n", m->name, r.seed);
    fflush(stdout);
    status = RT_EXIT_OK;
    for (int ep = start; ep < r.epochs; ep++) {
        double t0 = rt_now();
        int64_t bad = -1;
        RtProgress pr;
        double loss = epoch_run(&r, &t, &b, &opt, ep, &pr, o->progress, &bad);
        if (bad >= 0) {
            rt_progress_end(&pr, "epoch %d/%d stopped", ep + 1, r.epochs);
            rt_fail(&e, "%s: the loss is not finite in epoch %d, batch %" PRId64 " (learning rate too high? the last "
                        "checkpoint holds epoch %d)", o->data, ep + 1, bad + 1, ep);
            status = fail(m, &e);
            break;
        }
        if (g_stop) break;
        RtEvalResult vr = {.loss = NAN};
        if (have_val) rt_evaluate(m, b.params, b.state, b.prep, b.arena, r.batch, &v, &vr);
        double secs = rt_now() - t0, lr = rt_lr_at_epoch(r.lr, r.decay, ep);
        char line[512];
        int len = snprintf(line, sizeof line, "epoch %d/%d  lr %.3g  loss %.6g", ep + 1, r.epochs, lr, loss);
        if (have_val) len += snprintf(line + len, sizeof line - (size_t)len, "  val %.6g", vr.loss);
        for (int i = 0; i < vr.nmetrics && len < (int)sizeof line; i++) {
            const char *unit, *label = rt_metric_label(vr.names[i], &unit);
            len += snprintf(line + len, sizeof line - (size_t)len, "  %s %.4g%s%s", label, vr.values[i],
                            strcmp(unit, "%") == 0 ? "" : " ", unit[0] == '(' ? "" : unit);
        }
        rt_progress_end(&pr, "%s  %.1f s", line, secs);
        if (log_open && !rt_csv_row(&log, ep + 1, lr, loss, vr.loss, vr.values, secs, &e)) {
            status = fail(m, &e);
            break;
        }
        if (o->save && !save(&r, o->save, &b, &opt, ep + 1, &e)) {
            status = fail(m, &e);
            break;
        }
    }
    if (status == RT_EXIT_OK && g_stop) {
        fprintf(stderr, "%s: interrupted (signal %d)%s%s\n", m->name, (int)g_stop,
                o->save ? "; resume with --resume " : "", o->save ? o->save : "");
        status = 128 + (int)g_stop;
    }
    /* epochs 0: the initial weights */
    if (status == RT_EXIT_OK && o->save && r.epochs == 0 && !save(&r, o->save, &b, &opt, 0, &e)) status = fail(m, &e);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
done:
    if (log_open) rt_csv_close(&log);
    rt_dev_release(b.ostate, opt.state);
    rt_optim_free(&opt);
    bufs_free(&b);
    rt_task_free(&t);
    if (have_val) rt_task_free(&v);
    return status;
}
