/* runtime/metric.c: evaluation metrics: MPJPE, P-MPJPE (Procrustes-aligned), PCK and
 * top-k accuracy. All are means over the poses (or rows) they are given, accumulated in
 * double, so that batches combine as a rows-weighted mean. */
#include <lapacke.h>
#include <math.h>

#include "runtime/rt.h"

double rt_metric_mpjpe(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords) {
    return rt_loss_mpjpe(y, t, rows, njoints, ncoords, NULL);
}

static double det(const double *m, int d) {
    if (d == 1) return m[0];
    if (d == 2) return m[0] * m[3] - m[1] * m[2];
    return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
           m[2] * (m[3] * m[7] - m[4] * m[6]);
}

/* The mean joint error of one pose after the alignment of VideoPose3D's p_mpjpe, which
 * it follows step by step (X the target, Y the prediction, rows are joints):
 * centre both, scale both to unit Frobenius norm, H = X0^T Y0 = U S V^T, R = V U^T;
 * if det R < 0 flip the last column of V and the last singular value (a reflection is
 * not a rotation); scale a = tr(S) |X0| / |Y0|; aligned = a Y R + (muX - a muY R). */
static double procrustes_error(const float *y, const float *t, int64_t nj, int d) {
    double mux[3] = {0}, muy[3] = {0};
    for (int64_t j = 0; j < nj; j++)
        for (int c = 0; c < d; c++) {
            mux[c] += t[j * d + c];
            muy[c] += y[j * d + c];
        }
    for (int c = 0; c < d; c++) {
        mux[c] /= (double)nj;
        muy[c] /= (double)nj;
    }
    double nx = 0, ny = 0, h[9] = {0};
    for (int64_t j = 0; j < nj; j++)
        for (int a = 0; a < d; a++) {
            double xa = t[j * d + a] - mux[a], ya = y[j * d + a] - muy[a];
            nx += xa * xa;
            ny += ya * ya;
            for (int b = 0; b < d; b++) h[a * d + b] += xa * ((double)y[j * d + b] - muy[b]);
        }
    nx = sqrt(nx);
    ny = sqrt(ny);
    double r[9] = {0}, scale = 0;
    if (nx > 0 && ny > 0) {
        for (int i = 0; i < d * d; i++) h[i] /= nx * ny;
        double s[3], u[9], vt[9], superb[3];
        if (LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'A', 'A', d, d, h, d, s, u, d, vt, d, superb) != 0) return NAN;
        /* V = vt^T: V[a][b] = vt[b][a]. R = V U^T: R[a][b] = sum_k vt[k][a] u[b][k]. */
        for (int pass = 0; pass < 2; pass++) {
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) {
                    double acc = 0;
                    for (int k = 0; k < d; k++) acc += vt[k * d + a] * u[b * d + k];
                    r[a * d + b] = acc;
                }
            if (pass == 1 || det(r, d) >= 0) break;
            for (int a = 0; a < d; a++) vt[(d - 1) * d + a] = -vt[(d - 1) * d + a];
            s[d - 1] = -s[d - 1];
        }
        double tr = 0;
        for (int k = 0; k < d; k++) tr += s[k];
        scale = tr * nx / ny;
    }
    /* translation: muX - a muY R */
    double tv[3];
    for (int b = 0; b < d; b++) {
        double acc = 0;
        for (int a = 0; a < d; a++) acc += muy[a] * r[a * d + b];
        tv[b] = mux[b] - scale * acc;
    }
    double err = 0;
    for (int64_t j = 0; j < nj; j++) {
        double ss = 0;
        for (int b = 0; b < d; b++) {
            double acc = 0;
            for (int a = 0; a < d; a++) acc += (double)y[j * d + a] * r[a * d + b];
            double diff = scale * acc + tv[b] - (double)t[j * d + b];
            ss += diff * diff;
        }
        err += sqrt(ss);
    }
    return err / (double)nj;
}

double rt_metric_p_mpjpe(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords) {
    if (rows == 0 || njoints == 0 || ncoords < 1 || ncoords > 3) return rows == 0 ? 0 : NAN;
    const int64_t stride = njoints * ncoords;
    double s = 0;
    for (int64_t r = 0; r < rows; r++) s += procrustes_error(y + r * stride, t + r * stride, njoints, ncoords);
    return s / (double)rows;
}

double rt_metric_pck(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords, double thr,
                     RtPckNorm norm) {
    if (rows == 0 || njoints == 0) return 0;
    const int64_t stride = njoints * ncoords;
    int64_t hits = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * stride, *tr = t + r * stride;
        double lim = thr;
        if (norm == RT_PCK_BBOX) {
            double side = 0;
            for (int c = 0; c < ncoords; c++) {
                double lo = INFINITY, hi = -INFINITY;
                for (int64_t j = 0; j < njoints; j++) {
                    double v = tr[j * ncoords + c];
                    if (v < lo) lo = v;
                    if (v > hi) hi = v;
                }
                if (hi - lo > side) side = hi - lo;
            }
            lim = thr * side;
        }
        for (int64_t j = 0; j < njoints; j++) {
            double ss = 0;
            for (int c = 0; c < ncoords; c++) {
                double d = (double)yr[j * ncoords + c] - (double)tr[j * ncoords + c];
                ss += d * d;
            }
            if (sqrt(ss) <= lim) hits++;
        }
    }
    return (double)hits / (double)(rows * njoints);
}

double rt_metric_topk(const float *y, const int64_t *t, int64_t rows, int64_t nclass, int k) {
    if (rows == 0) return 0;
    int64_t hits = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * nclass;
        const int64_t lab = t[r];
        const float sl = yr[lab];
        int64_t rank = 0;
        for (int64_t c = 0; c < nclass; c++)
            if (yr[c] > sl || (yr[c] == sl && c < lab)) rank++;
        if (rank < k) hits++;
    }
    return (double)hits / (double)rows;
}
