/* runtime/batch.c: samples, the seeded epoch order, batches and the mirror augmentation.
 *
 * Every random choice is a pure function of (seed, epoch, sample) through the
 * counter-based RNG, so an epoch can be replayed from its number alone: what --resume
 * needs to continue bit-identically, with no generator state to save. */
#include <inttypes.h>
#include <string.h>

#include "runtime/rt.h"

void rt_mirror_frames(const RtMirror *m, const float *src, float *dst, int64_t frames) {
    const int64_t nf = m->nfeat;
    if (!m->partner) {
        memcpy(dst, src, (size_t)(frames * nf) * sizeof(float));
        return;
    }
    for (int64_t fr = 0; fr < frames; fr++) {
        const float *s = src + fr * nf;
        float *d = dst + fr * nf;
        for (int64_t f = 0; f < nf; f++) d[f] = m->sign[f] * s[m->partner[f]];
    }
}

bool rt_mirror_check(const RtMirror *m, const char *what, RtError *e) {
    if (!m->partner) return true;
    for (int64_t f = 0; f < m->nfeat; f++) {
        int64_t p = m->partner[f];
        if (p < 0 || p >= m->nfeat || m->partner[p] != f)
            return rt_fail(e, "%s: partner of feature %" PRId64 " is not a pairing of [0, %" PRId64 ")", what, f,
                           m->nfeat);
        if ((m->sign[f] != 1 && m->sign[f] != -1) || m->sign[p] != m->sign[f])
            return rt_fail(e, "%s: sign of feature %" PRId64 " must be +1 or -1 and equal to its partner's", what,
                           f);
    }
    return true;
}

bool rt_dataset_sequences(RtDataset *d, const float *x, int64_t x_feat, const float *y, const int64_t *y_class,
                          int64_t y_feat, int64_t nframes, const int64_t *clip_start, int64_t nclips,
                          int64_t t_out, int64_t rf, const char *what, RtError *e) {
    memset(d, 0, sizeof *d);
    if (t_out < 1 || rf < 1) return rt_fail(e, "%s: output frames and receptive field must be >= 1", what);
    if (nclips < 0 || clip_start[0] != 0 || clip_start[nclips] != nframes)
        return rt_fail(e, "%s: expected clip starts from 0 to the %" PRId64 " frames, got %" PRId64 " to %" PRId64,
                       what, nframes, clip_start[0], clip_start[nclips < 0 ? 0 : nclips]);
    int64_t n = 0;
    for (int64_t c = 0; c < nclips; c++) {
        int64_t len = clip_start[c + 1] - clip_start[c];
        if (len < 0)
            return rt_fail(e, "%s: expected non-decreasing clip starts, got %" PRId64 " after %" PRId64 " at index %" PRId64,
                           what, clip_start[c + 1], clip_start[c], c + 1);
        n += (len + t_out - 1) / t_out;
    }
    d->sequences = true;
    d->nsamples = n;
    d->x = x;
    d->x_frames = t_out + rf - 1;
    d->x_feat = x_feat;
    d->y = y;
    d->y_class = y_class;
    d->y_frames = t_out;
    d->y_feat = y_class ? 1 : y_feat;
    d->clip_start = clip_start;
    d->nclips = nclips;
    d->t_out = t_out;
    d->rf = rf;
    d->win_clip = rt_malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    d->win_start = rt_malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    int64_t k = 0;
    for (int64_t c = 0; c < nclips; c++) {
        int64_t len = clip_start[c + 1] - clip_start[c];
        int64_t nw = (len + t_out - 1) / t_out;
        /* ChunkedGenerator centres the chunks on the clip: the overhang is split, the
         * odd frame going to the end. */
        int64_t offset = (nw * t_out - len) / 2;
        for (int64_t w = 0; w < nw; w++, k++) {
            d->win_clip[k] = c;
            d->win_start[k] = w * t_out - offset;
        }
    }
    return true;
}

void rt_dataset_windows(RtDataset *d, const float *x, int64_t n, int64_t x_frames, int64_t x_feat, const float *y,
                        const int64_t *y_class, int64_t y_frames, int64_t y_feat) {
    memset(d, 0, sizeof *d);
    d->nsamples = n;
    d->x = x;
    d->x_frames = x_frames;
    d->x_feat = x_feat;
    d->y = y;
    d->y_class = y_class;
    d->y_frames = y_frames;
    d->y_feat = y_class ? 1 : y_feat;
}

void rt_dataset_free(RtDataset *d) {
    rt_free(d->win_clip);
    rt_free(d->win_start);
    d->win_clip = d->win_start = NULL;
}

/* Frames [start, start + count) of a clip [lo, hi), relative frame numbers clamped to
 * the clip: numpy.pad's 'edge' mode, as VideoPose3D pads. */
static void copy_clamped(const void *src, size_t rowbytes, int64_t lo, int64_t hi, int64_t start, int64_t count,
                         void *dst) {
    for (int64_t i = 0; i < count; i++) {
        int64_t fr = lo + start + i;
        if (fr < lo) fr = lo;
        if (fr > hi - 1) fr = hi - 1;
        memcpy((char *)dst + (size_t)i * rowbytes, (const char *)src + (size_t)fr * rowbytes, rowbytes);
    }
}

void rt_dataset_subsample(RtDataset *d, int64_t k) {
    if (k <= 1) return;
    int64_t all = d->every > 1 ? d->nsamples * d->every : d->nsamples;
    d->every = k;
    d->nsamples = (all + k - 1) / k;
}

void rt_dataset_sample(const RtDataset *d, int64_t i, float *x_out, float *y_out, int64_t *cls_out) {
    if (d->every > 1) i *= d->every;
    if (d->sequences) {
        const int64_t c = d->win_clip[i], lo = d->clip_start[c], hi = d->clip_start[c + 1];
        const int64_t start = d->win_start[i], pad_l = (d->rf - 1) / 2;
        if (x_out) copy_clamped(d->x, (size_t)d->x_feat * sizeof(float), lo, hi, start - pad_l, d->x_frames, x_out);
        if (y_out && d->y)
            copy_clamped(d->y, (size_t)d->y_feat * sizeof(float), lo, hi, start, d->y_frames, y_out);
        if (cls_out && d->y_class) copy_clamped(d->y_class, sizeof(int64_t), lo, hi, start, d->y_frames, cls_out);
        return;
    }
    const int64_t xl = d->x_frames * d->x_feat, yl = d->y_frames * d->y_feat;
    if (x_out) memcpy(x_out, d->x + i * xl, (size_t)xl * sizeof(float));
    if (y_out && d->y) memcpy(y_out, d->y + i * yl, (size_t)yl * sizeof(float));
    if (cls_out && d->y_class) memcpy(cls_out, d->y_class + i * d->y_frames, (size_t)d->y_frames * sizeof(int64_t));
}

void rt_batch_order(uint64_t seed, int epoch, bool shuffle, int64_t *order, int64_t n) {
    if (shuffle) {
        rt_rng_permutation(seed, RT_STREAM_SHUFFLE | (uint32_t)epoch, order, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) order[i] = i;
}

int64_t rt_batch_count(int64_t n, int64_t batch) { return batch > 0 ? (n + batch - 1) / batch : 0; }

bool rt_mirror_drawn(double p, uint64_t seed, int epoch, int64_t i) {
    if (p <= 0) return false;
    return rt_rng_uniform(seed, RT_STREAM_MIRROR | (uint32_t)epoch, (uint64_t)i) < p;
}

void rt_batch_fill(const RtDataset *d, const int64_t *idx, int64_t b, const RtAugment *aug, uint64_t seed,
                   int epoch, float *x, float *y, int64_t *cls, bool *mirrored) {
    const int64_t xl = d->x_frames * d->x_feat, yl = d->y_frames * d->y_feat;
    float *tmp = NULL;
    bool any = aug && aug->mirror_p > 0;
    if (any) tmp = rt_malloc((size_t)(xl > yl ? xl : yl) * sizeof(float));
    for (int64_t k = 0; k < b; k++) {
        const int64_t i = idx[k];
        float *xk = x ? x + k * xl : NULL, *yk = y && d->y ? y + k * yl : NULL;
        int64_t *ck = cls && d->y_class ? cls + k * d->y_frames : NULL;
        bool m = any && rt_mirror_drawn(aug->mirror_p, seed, epoch, i);
        if (mirrored) mirrored[k] = m;
        if (!m) {
            rt_dataset_sample(d, i, xk, yk, ck);
            continue;
        }
        /* Gather into tmp, then transform into place: T needs the whole frame. */
        rt_dataset_sample(d, i, NULL, NULL, ck);
        if (xk && !aug->in.partner) {
            rt_dataset_sample(d, i, xk, NULL, NULL);
        } else if (xk) {
            rt_dataset_sample(d, i, tmp, NULL, NULL);
            rt_mirror_frames(&aug->in, tmp, xk, d->x_frames);
        }
        if (yk && !aug->out.partner) {
            rt_dataset_sample(d, i, NULL, yk, NULL);
        } else if (yk) {
            rt_dataset_sample(d, i, NULL, tmp, NULL);
            rt_mirror_frames(&aug->out, tmp, yk, d->y_frames);
        }
    }
    rt_free(tmp);
}
