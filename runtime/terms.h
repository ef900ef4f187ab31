/* runtime/terms.h: the per-element arithmetic of the losses and the optimiser steps, one
 * definition for the CPU runtime (loss.c, optim.c) and the CUDA backend (cuda/backend.cu,
 * where nvcc compiles them __host__ __device__, as support/philox.h). Both sides sum and
 * loop in their own ways; what a term computes, in which order and in which precision
 * (double, rounded to float once), is written here once, so that a GPU run gives the
 * CPU's gradients and steps term for term (the CUDA side is compiled --fmad=false, the
 * CPU side without contraction into FMAs). */
#ifndef CHIRALC_RT_TERMS_H
#define CHIRALC_RT_TERMS_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define RT_TERM static inline __host__ __device__
#else
#define RT_TERM static inline
#endif

/* ---- losses: the term of element i (or joint j, row r) and its gradient, k = d(mean)/d(sum) */

RT_TERM double rt_mse_term(const float *y, const float *t, int64_t i, double k, float *grad) {
    double d = (double)y[i] - (double)t[i];
    if (grad) grad[i] = (float)(k * d);
    return d * d;
}

/* PyTorch's subgradient: 0 where the prediction equals the target. */
RT_TERM double rt_l1_term(const float *y, const float *t, int64_t i, double k, float *grad) {
    double d = (double)y[i] - (double)t[i];
    if (grad) grad[i] = (float)(d > 0 ? k : d < 0 ? -k : 0.0);
    return fabs(d);
}

/* The distance of joint j (nc coordinates). The norm is not differentiable at 0; 0 is the
 * subgradient PyTorch's torch.norm backward also returns there. */
RT_TERM double rt_mpjpe_term(const float *y, const float *t, int64_t j, int nc, double k, float *grad) {
    const float *yj = y + j * nc, *tj = t + j * nc;
    double ss = 0;
    for (int c = 0; c < nc; c++) {
        double d = (double)yj[c] - (double)tj[c];
        ss += d * d;
    }
    double dist = sqrt(ss);
    if (grad)
        for (int c = 0; c < nc; c++)
            grad[j * nc + c] = dist > 0 ? (float)(k * ((double)yj[c] - (double)tj[c]) / dist) : 0.0f;
    return dist;
}

/* -log softmax(y_r)[t_r], the log-softmax with the maximum subtracted: exp never overflows. */
RT_TERM double rt_cross_entropy_term(const float *y, const int64_t *t, int64_t r, int64_t nclass, double k,
                                     float *grad) {
    const float *yr = y + r * nclass;
    double mx = -INFINITY;
    for (int64_t c = 0; c < nclass; c++)
        if ((double)yr[c] > mx) mx = yr[c];
    double z = 0;
    for (int64_t c = 0; c < nclass; c++) z += exp((double)yr[c] - mx);
    double lse = mx + log(z);
    if (grad)
        for (int64_t c = 0; c < nclass; c++) {
            double pc = exp((double)yr[c] - lse);
            grad[r * nclass + c] = (float)(k * (pc - (c == t[r] ? 1.0 : 0.0)));
        }
    return lse - (double)yr[t[r]];
}

/* ---- optimiser steps: parameter i ------------------------------------------------------- */

/* SGD with weight decay wd and, where v is not NULL, momentum mu. PyTorch starts the buffer
 * as a copy of the first gradient; with a zero buffer mu * 0 + d is the same value. */
RT_TERM void rt_sgd_term(float *p, const float *g, float *v, int64_t i, double lr, double mu, double wd) {
    double d = (double)g[i] + wd * (double)p[i];
    if (v) {
        v[i] = (float)(mu * (double)v[i] + d);
        d = v[i];
    }
    p[i] = (float)((double)p[i] - lr * d);
}

/* Adam (AMSGrad where vmax is not NULL); step_size = lr / (1 - b1^t), sqrt_bc2 =
 * sqrt(1 - b2^t) for step t. */
RT_TERM void rt_adam_term(float *p, const float *g, float *m, float *v, float *vmax, int64_t i, double b1, double b2,
                          double eps, double wd, double step_size, double sqrt_bc2) {
    double gi = (double)g[i] + wd * (double)p[i];
    m[i] = (float)(b1 * (double)m[i] + (1.0 - b1) * gi);
    v[i] = (float)(b2 * (double)v[i] + (1.0 - b2) * gi * gi);
    double vv = v[i];
    if (vmax) {
        if (v[i] > vmax[i]) vmax[i] = v[i];
        vv = vmax[i];
    }
    double denom = sqrt(vv) / sqrt_bc2 + eps;
    p[i] = (float)((double)p[i] - step_size * (double)m[i] / denom);
}

#undef RT_TERM
#endif
