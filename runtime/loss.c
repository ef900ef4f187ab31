/* runtime/loss.c: the training losses, value and gradient w.r.t. the prediction.
 *
 * The definitions are those of the float64 reference interpreter (see rt.h), so the
 * compiled program and the interpreter can be compared on the loss and its gradient.
 * Sums are accumulated in double: a batch of 1024 x 51 float terms loses digits
 * otherwise. Each term and its gradient is runtime/terms.h's, the CUDA backend's too. */
#include <inttypes.h>
#include <math.h>

#include "runtime/rt.h"
#include "runtime/terms.h"

double rt_loss_mse(const float *y, const float *t, int64_t rows, int64_t nfeat, float *grad) {
    const int64_t n = rows * nfeat;
    if (n == 0) return 0;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += rt_mse_term(y, t, i, 2.0 / (double)n, grad);
    return s / (double)n;
}

double rt_loss_l1(const float *y, const float *t, int64_t rows, int64_t nfeat, float *grad) {
    const int64_t n = rows * nfeat;
    if (n == 0) return 0;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += rt_l1_term(y, t, i, 1.0 / (double)n, grad);
    return s / (double)n;
}

double rt_loss_mpjpe(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords, float *grad) {
    const int64_t n = rows * njoints;
    if (n == 0) return 0;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += rt_mpjpe_term(y, t, j, ncoords, 1.0 / (double)n, grad);
    return s / (double)n;
}

double rt_loss_cross_entropy(const float *y, const int64_t *t, int64_t rows, int64_t nclass, float *grad) {
    if (rows == 0) return 0;
    double s = 0;
    for (int64_t r = 0; r < rows; r++) s += rt_cross_entropy_term(y, t, r, nclass, 1.0 / (double)rows, grad);
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
