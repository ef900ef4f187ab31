/* runtime/optim.c: SGD with momentum and Adam over one flat parameter buffer, with the
 * schedules of VideoPose3D (learning-rate decay, BN momentum) and gradient clipping.
 *
 * The update rules are PyTorch's (torch.optim.SGD with dampening 0 and no Nesterov,
 * torch.optim.Adam with L2 weight decay and optional amsgrad), so that a model trained
 * here can be compared with its PyTorch counterpart step for step. The state is one flat
 * float buffer so that a checkpoint saves it as a single tensor and --resume continues
 * bit-identically. The per-parameter step is runtime/terms.h's, the CUDA backend's too. */
#include <math.h>
#include <string.h>

#include "runtime/rt.h"
#include "runtime/terms.h"

int64_t rt_optim_state_len(const RtOptimCfg *cfg, int64_t n) {
    if (cfg->kind == RT_OPTIM_SGD) return cfg->momentum != 0 ? n : 0;
    return (cfg->amsgrad ? 3 : 2) * n;
}

void rt_optim_init(RtOptim *o, const RtOptimCfg *cfg, int64_t n) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    int64_t len = rt_optim_state_len(cfg, n);
    o->state = len ? rt_calloc((size_t)len, sizeof(float)) : NULL;
}

void rt_optim_free(RtOptim *o) {
    rt_free(o->state);
    o->state = NULL;
}

static void sgd_step(RtOptim *o, float *p, const float *g, double lr) {
    for (int64_t i = 0; i < o->n; i++) rt_sgd_term(p, g, o->state, i, lr, o->cfg.momentum, o->cfg.weight_decay);
}

static void adam_step(RtOptim *o, float *p, const float *g, double lr) {
    const double b1 = o->cfg.beta1, b2 = o->cfg.beta2;
    const int64_t n = o->n;
    float *m = o->state, *v = o->state + n, *vmax = o->cfg.amsgrad ? o->state + 2 * n : NULL;
    const double t = (double)o->step;   /* already incremented: the first step is t = 1 */
    const double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    const double step_size = lr / bc1, sqrt_bc2 = sqrt(bc2);
    for (int64_t i = 0; i < n; i++)
        rt_adam_term(p, g, m, v, vmax, i, b1, b2, o->cfg.eps, o->cfg.weight_decay, step_size, sqrt_bc2);
}

void rt_optim_step(RtOptim *o, float *p, const float *g, double lr) {
    o->step++;
    if (o->cfg.kind == RT_OPTIM_SGD) sgd_step(o, p, g, lr);
    else adam_step(o, p, g, lr);
}

double rt_lr_at_epoch(double lr, double decay, int epoch) {
    /* VideoPose3D multiplies lr by decay after every epoch; the closed form keeps a
     * resumed run from depending on how many multiplications it replayed. */
    return lr * pow(decay, (double)epoch);
}

double rt_clip_grad_norm(float *g, int64_t n, double max_norm) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)g[i] * (double)g[i];
    double norm = sqrt(ss);
    if (max_norm > 0) {
        /* torch.nn.utils.clip_grad_norm_'s coefficient, 1e-6 included, clamped at 1. */
        double c = max_norm / (norm + 1e-6);
        if (c < 1)
            for (int64_t i = 0; i < n; i++) g[i] = (float)((double)g[i] * c);
    }
    return norm;
}

double rt_bn_momentum_at_epoch(double initial, double final, int epoch, int epochs) {
    if (epochs <= 0) return initial;
    /* run.py sets momentum = initial * exp(-k/E * log(initial/final)) after finishing
     * epoch k (1-based), i.e. before 0-based epoch k: the same power of final/initial. */
    return initial * pow(final / initial, (double)epoch / (double)epochs);
}
