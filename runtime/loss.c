/* runtime/loss.c: the training losses, value and gradient w.r.t. the prediction.
 *
 * The definitions are those of the float64 reference interpreter (see rt.h), so the
 * compiled program and the interpreter can be compared on the loss and its gradient.
 * Sums are accumulated in double: a batch of 1024 x 51 float terms loses digits
 * otherwise. */
#include <inttypes.h>
#include <math.h>

#include "runtime/rt.h"

double rt_loss_mse(const float *y, const float *t, int64_t rows, int64_t nfeat, float *grad) {
    const int64_t n = rows * nfeat;
    if (n == 0) return 0;
    double s = 0;
    const double k = 2.0 / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - (double)t[i];
        s += d * d;
        if (grad) grad[i] = (float)(k * d);
    }
    return s / (double)n;
}

double rt_loss_l1(const float *y, const float *t, int64_t rows, int64_t nfeat, float *grad) {
    const int64_t n = rows * nfeat;
    if (n == 0) return 0;
    double s = 0;
    const double k = 1.0 / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - (double)t[i];
        s += fabs(d);
        /* PyTorch's subgradient: 0 where the prediction equals the target. */
        if (grad) grad[i] = (float)(d > 0 ? k : d < 0 ? -k : 0.0);
    }
    return s / (double)n;
}

double rt_loss_mpjpe(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords, float *grad) {
    const int64_t n = rows * njoints;
    if (n == 0) return 0;
    double s = 0;
    const double k = 1.0 / (double)n;
    for (int64_t j = 0; j < n; j++) {
        const float *yj = y + j * ncoords, *tj = t + j * ncoords;
        double ss = 0;
        for (int c = 0; c < ncoords; c++) {
            double d = (double)yj[c] - (double)tj[c];
            ss += d * d;
        }
        double dist = sqrt(ss);
        s += dist;
        if (grad) {
            /* The norm is not differentiable at 0; 0 is the subgradient PyTorch's
             * torch.norm backward also returns there. */
            for (int c = 0; c < ncoords; c++)
                grad[j * ncoords + c] = dist > 0 ? (float)(k * ((double)yj[c] - (double)tj[c]) / dist) : 0.0f;
        }
    }
    return s / (double)n;
}

double rt_loss_cross_entropy(const float *y, const int64_t *t, int64_t rows, int64_t nclass, float *grad) {
    if (rows == 0) return 0;
    double s = 0;
    const double k = 1.0 / (double)rows;
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * nclass;
        /* log-softmax with the maximum subtracted: exp never overflows. */
        double mx = -INFINITY;
        for (int64_t c = 0; c < nclass; c++)
            if ((double)yr[c] > mx) mx = yr[c];
        double z = 0;
        for (int64_t c = 0; c < nclass; c++) z += exp((double)yr[c] - mx);
        double lse = mx + log(z);
        s += lse - (double)yr[t[r]];
        if (grad) {
            for (int64_t c = 0; c < nclass; c++) {
                double pc = exp((double)yr[c] - lse);
                grad[r * nclass + c] = (float)(k * (pc - (c == t[r] ? 1.0 : 0.0)));
            }
        }
    }
    return s / (double)rows;
}

double rt_loss(RtLossKind kind, const float *y, const void *t, int64_t rows, int64_t nfeat, int ncoords,
               float *grad) {
    switch (kind) {
    case RT_LOSS_MSE: return rt_loss_mse(y, t, rows, nfeat, grad);
    case RT_LOSS_L1: return rt_loss_l1(y, t, rows, nfeat, grad);
    case RT_LOSS_MPJPE: return ncoords > 0 ? rt_loss_mpjpe(y, t, rows, nfeat / ncoords, ncoords, grad) : NAN;
    case RT_LOSS_CROSS_ENTROPY: return rt_loss_cross_entropy(y, t, rows, nfeat, grad);
    }
    return NAN;
}

const char *rt_loss_name(RtLossKind kind) {
    static const char *const names[] = {"mse", "l1", "mpjpe", "cross_entropy"};
    return (unsigned)kind < 4 ? names[kind] : "?";
}

bool rt_check_labels(const int64_t *t, int64_t n, int64_t nclass, const char *what, RtError *e) {
    for (int64_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= nclass)
            return rt_fail(e, "%s: label %" PRId64 " at index %" PRId64 " is outside [0, %" PRId64 ")", what, t[i],
                           i, nclass);
    return true;
}
