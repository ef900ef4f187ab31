/* runtime/cmu.c: the task data the examples train on, derived from the bundled CMU motion
 * capture (data/cmu17.npz): lifting pairs, forecasting windows and action windows.
 *
 * Everything 2D comes from virtual pinhole cameras, so that the mirror of a scene is exactly
 * the chirality transform of what is derived from it (rt.h explains the axis convention).
 * The rig is drawn from the seed with a private generator rather than rng.c, so that the
 * data of a seed never changes when the training RNG does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

static const int64_t h36m_left[6] = {4, 5, 6, 11, 12, 13}, h36m_right[6] = {1, 2, 3, 14, 15, 16};
/* Penn Action's 13 joints (examples/forecast_lstm.net's order) as H36M joints; the H36M
 * "foot" joints are the ankles. */
#define PENN_JOINTS 13
static const int penn_from_h36m[PENN_JOINTS] = {10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3};
static const int64_t penn_left[6] = {1, 3, 5, 7, 9, 11}, penn_right[6] = {2, 4, 6, 8, 10, 12};

/* ---- cameras -------------------------------------------------------------------------- */

static void cross3(const double a[3], const double b[3], double out[3]) {
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

static void normalise3(double v[3]) {
    double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (int i = 0; i < 3; i++) v[i] /= n;
}

void rt_cmu_look_at(RtCmuCamera *c, const double eye[3], const double target[3]) {
    static const double up[3] = {0, 1, 0};
    double z[3] = {target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]}, x[3], y[3];
    normalise3(z);
    /* forward x up is horizontal and points right; forward x right points down, which
     * makes (x, y, z) right-handed. A horizontal x axis is what makes the camera's
     * vertical plane the one the mirror test reflects through. */
    cross3(z, up, x);
    normalise3(x);
    cross3(z, x, y);
    for (int i = 0; i < 3; i++) {
        c->R[0][i] = x[i];
        c->R[1][i] = y[i];
        c->R[2][i] = z[i];
    }
    for (int r = 0; r < 3; r++)
        c->t[r] = -(c->R[r][0] * eye[0] + c->R[r][1] * eye[1] + c->R[r][2] * eye[2]);
}

bool rt_cmu_project(const RtCmuCamera *c, double w, double h, const double p[3], double xyz[3],
                    double uv[2]) {
    for (int r = 0; r < 3; r++) xyz[r] = c->R[r][0] * p[0] + c->R[r][1] * p[1] + c->R[r][2] * p[2] + c->t[r];
    if (!(xyz[2] >= 0.01)) return false;
    double u = c->fx * xyz[0] / xyz[2] + c->cx, v = c->fy * xyz[1] / xyz[2] + c->cy;
    uv[0] = u / w * 2 - 1;
    uv[1] = v / w * 2 - h / w;
    return true;
}

/* splitmix64's finaliser over a counter: a uniform in [0, 1) for (seed, counter). */
static double rig_uniform(uint64_t seed, uint64_t counter) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + (counter + 1) * 0xD1B54A32D192ED03ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (double)(x >> 11) * 0x1p-53;
}

void rt_cmu_rig(uint64_t seed, double target_height, RtCmuCamera cams[RT_CMU_CAMERAS]) {
    const double pi = 3.14159265358979323846;
    for (int k = 0; k < RT_CMU_CAMERAS; k++) {
        double az = (45.0 + 90.0 * k + 10.0 * (rig_uniform(seed, 4u * k) - 0.5)) * pi / 180.0;
        double dist = 4.5 + rig_uniform(seed, 4u * k + 1);
        double height = 1.5 + 0.2 * rig_uniform(seed, 4u * k + 2);
        double focal = 1140.0 + 10.0 * rig_uniform(seed, 4u * k + 3);
        double eye[3] = {dist * sin(az), height, dist * cos(az)}, target[3] = {0, target_height, 0};
        rt_cmu_look_at(&cams[k], eye, target);
        cams[k].fx = cams[k].fy = focal;
        cams[k].cx = cams[k].cy = RT_CMU_IMAGE / 2.0;
    }
}

/* ---- the input -------------------------------------------------------------------------- */

static const RtArray *find_array(const RtNpz *z, const char *name) {
    for (int i = 0; i < z->n; i++)
        if (strcmp(z->arrays[i].name, name) == 0) return &z->arrays[i];
    return NULL;
}

static bool check_01(const RtCmu *d, const char *name, const int64_t *v, RtError *e) {
    for (int64_t c = 0; c < d->nclips; c++)
        if (v[c] != 0 && v[c] != 1)
            return rt_fail(e, "%s: array '%s': expected 0 or 1, got %lld at clip %lld", d->path, name,
                           (long long)v[c], (long long)c);
    return true;
}

bool rt_cmu_from_npz(const RtNpz *z, RtCmu *out, RtError *e) {
    memset(out, 0, sizeof *out);
    out->path = z->path;
    const int64_t pos_shape[3] = {-1, RT_CMU_JOINTS, 3}, any[1] = {-1};
    const RtArray *pos = rt_npz_get(z, "positions_3d", RT_F32, 3, pos_shape, e);
    if (!pos) return false;
    const RtArray *start = rt_npz_get(z, "clip_start", RT_I64, 1, any, e);
    if (!start) return false;
    out->nframes = pos->shape[0];
    out->nclips = start->shape[0] - 1;
    out->pos = pos->data;
    out->clip_start = start->data;
    if (out->nclips < 1)
        return rt_fail(e, "%s: array 'clip_start': expected at least 2 entries, got %lld", z->path,
                       (long long)start->shape[0]);
    if (out->clip_start[0] != 0 || out->clip_start[out->nclips] != out->nframes)
        return rt_fail(e, "%s: array 'clip_start': expected to run from 0 to %lld (the frames of "
                       "'positions_3d'), got %lld to %lld", z->path, (long long)out->nframes,
                       (long long)out->clip_start[0], (long long)out->clip_start[out->nclips]);
    for (int64_t c = 0; c < out->nclips; c++)
        if (out->clip_start[c + 1] <= out->clip_start[c])
            return rt_fail(e, "%s: array 'clip_start': expected increasing values, got %lld then %lld",
                           z->path, (long long)out->clip_start[c], (long long)out->clip_start[c + 1]);

    const int64_t per_clip[1] = {out->nclips};
    const RtArray *names = rt_npz_get(z, "action_names", RT_STR, 1, any, e);
    if (!names) return false;
    out->nactions = names->shape[0];
    out->action_names = names->data;
    const RtArray *action = rt_npz_get(z, "clip_action", RT_I64, 1, per_clip, e);
    if (!action) return false;
    out->clip_action = action->data;
    for (int64_t c = 0; c < out->nclips; c++)
        if (out->clip_action[c] < 0 || out->clip_action[c] >= out->nactions)
            return rt_fail(e, "%s: array 'clip_action': expected labels in [0, %lld) (the entries of "
                           "'action_names'), got %lld at clip %lld", z->path, (long long)out->nactions,
                           (long long)out->clip_action[c], (long long)c);
    const RtArray *split = rt_npz_get(z, "clip_split", RT_I64, 1, per_clip, e);
    if (!split) return false;
    out->clip_split = split->data;
    if (!check_01(out, "clip_split", out->clip_split, e)) return false;
    /* Optional: the balanced split and the extra-clip flags. */
    if (find_array(z, "clip_split_balanced")) {
        const RtArray *b = rt_npz_get(z, "clip_split_balanced", RT_I64, 1, per_clip, e);
        if (!b) return false;
        out->clip_split_balanced = b->data;
        if (!check_01(out, "clip_split_balanced", out->clip_split_balanced, e)) return false;
    }
    if (find_array(z, "clip_extra")) {
        const RtArray *x = rt_npz_get(z, "clip_extra", RT_I64, 1, per_clip, e);
        if (!x) return false;
        out->clip_extra = x->data;
    }
    return true;
}

/* ---- derivation ------------------------------------------------------------------------- */

void rt_cmu_defaults(RtCmuOptions *o, RtCmuTask task) {
    memset(o, 0, sizeof *o);
    o->task = task;
    o->seed = 1;
    o->balanced = true;
    o->past = 10;
    o->future = 10;
    o->frames = 32;
    o->stride = task == RT_CMU_ACTION ? 16 : 5;
}

static int64_t windows_in(int64_t len, int64_t size, int64_t stride) {
    return len < size ? 0 : (len - size) / stride + 1;
}

/* An output array of the given shape, zeroed. */
static RtArray *new_array(RtArray *arrays, int *n, const char *name, RtDtype t, int ndim,
                          const int64_t *shape) {
    RtArray *a = &arrays[(*n)++];
    memset(a, 0, sizeof *a);
    size_t len = strlen(name) + 1;
    a->name = rt_malloc(len);
    memcpy(a->name, name, len);
    a->dtype = t;
    a->ndim = ndim;
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        a->shape[i] = shape[i];
        count *= shape[i];
    }
    a->itemsize = t == RT_F32 ? 4 : 8;
    a->data = rt_calloc((size_t)(count ? count : 1), a->itemsize);
    return a;
}

static void i64_array(RtArray *arrays, int *n, const char *name, const int64_t *v, int64_t count) {
    RtArray *a = new_array(arrays, n, name, RT_I64, 1, &count);
    memcpy(a->data, v, (size_t)count * sizeof *v);
}

static void strings_array(RtArray *arrays, int *n, const char *name, char *const *s, int64_t count) {
    RtArray *a = &arrays[(*n)++];
    memset(a, 0, sizeof *a);
    size_t len = strlen(name) + 1;
    a->name = rt_malloc(len);
    memcpy(a->name, name, len);
    a->dtype = RT_STR;
    a->ndim = 1;
    a->shape[0] = count;
    char **out = rt_calloc((size_t)(count ? count : 1), sizeof *out);
    size_t width = 1;
    for (int64_t i = 0; i < count; i++) {
        size_t l = strlen(s[i]);
        out[i] = rt_malloc(l + 1);
        memcpy(out[i], s[i], l + 1);
        if (l > width) width = l;
    }
    a->data = out;
    a->itemsize = 4 * width; /* as the reader has it: NumPy's <U, UCS-4, at least the longest name */
}

void rt_cmu_arrays_free(RtArray *arrays, int n) {
    if (!arrays) return;
    for (int i = 0; i < n; i++) rt_array_free(&arrays[i]);
    rt_free(arrays);
}

/* The 2D (screen-normalised) and root-relative 3D of one clip seen by one camera, float32:
 * uv [len, 17, 2], xyz [len, 17, 3] (either may be NULL). */
static bool see_clip(const RtCmu *d, int64_t c, const double origin[3], const RtCmuCamera *cam, int k,
                     float *uv, float *xyz, RtError *e) {
    int64_t f0 = d->clip_start[c], len = d->clip_start[c + 1] - f0;
    for (int64_t f = 0; f < len; f++) {
        double cam_xyz[RT_CMU_JOINTS][3];
        for (int j = 0; j < RT_CMU_JOINTS; j++) {
            const float *p = d->pos + ((f0 + f) * RT_CMU_JOINTS + j) * 3;
            double rig[3] = {p[0] - origin[0], p[1] - origin[1], p[2] - origin[2]}, q[2];
            if (!rt_cmu_project(cam, RT_CMU_IMAGE, RT_CMU_IMAGE, rig, cam_xyz[j], q))
                return rt_fail(e, "%s: array 'positions_3d': clip %lld frame %lld joint %d is behind "
                               "virtual camera %d (depth %.3f m); expected clips that stay within "
                               "about 4 m of their mean position", d->path, (long long)c, (long long)f,
                               j, k, cam_xyz[j][2]);
            if (uv) {
                uv[(f * RT_CMU_JOINTS + j) * 2] = (float)q[0];
                uv[(f * RT_CMU_JOINTS + j) * 2 + 1] = (float)q[1];
            }
        }
        if (xyz)
            for (int j = 0; j < RT_CMU_JOINTS; j++)
                for (int i = 0; i < 3; i++)
                    xyz[(f * RT_CMU_JOINTS + j) * 3 + i] = (float)(cam_xyz[j][i] - cam_xyz[0][i]);
    }
    return true;
}

static bool clip_in(const RtCmu *d, const RtCmuOptions *o, int64_t c, int split) {
    const int64_t *s = o->balanced ? d->clip_split_balanced : d->clip_split;
    return s[c] == split && !(o->no_extra && d->clip_extra && d->clip_extra[c]);
}

/* The rig's origin for clip c: its mean root on the floor, so every clip is seen alike. */
static void clip_origin(const RtCmu *d, int64_t c, double origin[3]) {
    double sx = 0, sz = 0;
    int64_t f0 = d->clip_start[c], len = d->clip_start[c + 1] - f0;
    for (int64_t f = f0; f < f0 + len; f++) {
        sx += d->pos[f * RT_CMU_JOINTS * 3];
        sz += d->pos[f * RT_CMU_JOINTS * 3 + 2];
    }
    origin[0] = sx / (double)len;
    origin[1] = 0;
    origin[2] = sz / (double)len;
}

static void camera_arrays(RtArray *arrays, int *n, const RtCmuCamera *cams) {
    const int64_t s_int[2] = {RT_CMU_CAMERAS, 4}, s_r[3] = {RT_CMU_CAMERAS, 3, 3}, s_t[2] = {RT_CMU_CAMERAS, 3};
    double *in = new_array(arrays, n, "camera_intrinsics", RT_F64, 2, s_int)->data;
    double *r = new_array(arrays, n, "camera_R", RT_F64, 3, s_r)->data;
    double *t = new_array(arrays, n, "camera_t", RT_F64, 2, s_t)->data;
    for (int k = 0; k < RT_CMU_CAMERAS; k++) {
        in[k * 4] = cams[k].fx;
        in[k * 4 + 1] = cams[k].fy;
        in[k * 4 + 2] = cams[k].cx;
        in[k * 4 + 3] = cams[k].cy;
        for (int i = 0; i < 3; i++) {
            t[k * 3 + i] = cams[k].t[i];
            for (int j = 0; j < 3; j++) r[(k * 3 + i) * 3 + j] = cams[k].R[i][j];
        }
    }
    const int64_t image[2] = {RT_CMU_IMAGE, RT_CMU_IMAGE};
    i64_array(arrays, n, "image_size", image, 2);
}

static const char *split_name(int split) { return split ? "test" : "train"; }

bool rt_cmu_derive(const RtCmu *d, const RtCmuOptions *o, int split, RtArray **arrays_out, int *n_out,
                   RtError *e) {
    *arrays_out = NULL;
    *n_out = 0;
    if (o->past < 1 || o->future < 1 || o->frames < 1 || o->stride < 1)
        return rt_fail(e, "%s: expected window sizes and stride >= 1", d->path);
    if (o->balanced && !d->clip_split_balanced)
        return rt_fail(e, "%s: no array 'clip_split_balanced' (expected for the balanced split; the "
                       "source split needs only 'clip_split')", d->path);

    /* The rig looks at the input's mean root height, the same for every clip and split. */
    double root_y = 0;
    for (int64_t f = 0; f < d->nframes; f++) root_y += d->pos[f * RT_CMU_JOINTS * 3 + 1];
    root_y /= (double)(d->nframes ? d->nframes : 1);
    RtCmuCamera cams[RT_CMU_CAMERAS];
    rt_cmu_rig(o->seed, root_y, cams);

    int64_t window = o->task == RT_CMU_FORECAST ? o->past + o->future : o->frames;
    int64_t nseq = 0, nframes = 0, nwin = 0, maxlen = 0;
    for (int64_t c = 0; c < d->nclips; c++) {
        if (!clip_in(d, o, c, split)) continue;
        int64_t len = d->clip_start[c + 1] - d->clip_start[c];
        nseq += RT_CMU_CAMERAS;
        nframes += RT_CMU_CAMERAS * len;
        nwin += RT_CMU_CAMERAS * windows_in(len, window, o->stride);
        if (len > maxlen) maxlen = len;
    }
    if (nseq == 0)
        return rt_fail(e, "%s: no %s clips in the %s split", d->path, split_name(split),
                       o->balanced ? "balanced" : "source");
    if (o->task != RT_CMU_LIFTING && nwin == 0)
        return rt_fail(e, "%s: no %s clip is %lld frames long, the window length", d->path,
                       split_name(split), (long long)window);

    RtArray *arrays = rt_calloc(16, sizeof *arrays);
    int n = 0;
    bool ok = true;
    if (o->task == RT_CMU_LIFTING) {
        const int64_t s2[3] = {nframes, RT_CMU_JOINTS, 2}, s3[3] = {nframes, RT_CMU_JOINTS, 3};
        const int64_t sstart = nseq + 1, sorigin[2] = {nseq, 3};
        float *uv = new_array(arrays, &n, "pose2d", RT_F32, 3, s2)->data;
        float *xyz = new_array(arrays, &n, "pose3d", RT_F32, 3, s3)->data;
        int64_t *start = new_array(arrays, &n, "clip_start", RT_I64, 1, &sstart)->data;
        int64_t *action = new_array(arrays, &n, "clip_action", RT_I64, 1, &nseq)->data;
        int64_t *camera = new_array(arrays, &n, "clip_camera", RT_I64, 1, &nseq)->data;
        int64_t *source = new_array(arrays, &n, "clip_source", RT_I64, 1, &nseq)->data;
        double *origins = new_array(arrays, &n, "clip_origin", RT_F64, 2, sorigin)->data;
        int64_t s = 0, at = 0;
        for (int64_t c = 0; c < d->nclips && ok; c++) {
            if (!clip_in(d, o, c, split)) continue;
            int64_t len = d->clip_start[c + 1] - d->clip_start[c];
            double origin[3];
            clip_origin(d, c, origin);
            for (int k = 0; k < RT_CMU_CAMERAS && ok; k++, s++) {
                ok = see_clip(d, c, origin, &cams[k], k, uv + at * RT_CMU_JOINTS * 2,
                              xyz + at * RT_CMU_JOINTS * 3, e);
                start[s] = at;
                action[s] = d->clip_action[c];
                camera[s] = k;
                source[s] = c;
                memcpy(origins + s * 3, origin, sizeof origin);
                at += len;
            }
        }
        start[nseq] = at;
        i64_array(arrays, &n, "joints_left", h36m_left, 6);
        i64_array(arrays, &n, "joints_right", h36m_right, 6);
    } else {
        bool fc = o->task == RT_CMU_FORECAST;
        int nj = fc ? PENN_JOINTS : RT_CMU_JOINTS;
        float *out_a, *out_b = NULL;
        int64_t *label = NULL;
        if (fc) {
            const int64_t sp[4] = {nwin, o->past, PENN_JOINTS, 2}, sf[4] = {nwin, o->future, PENN_JOINTS, 2};
            out_a = new_array(arrays, &n, "observed", RT_F32, 4, sp)->data;
            out_b = new_array(arrays, &n, "predicted", RT_F32, 4, sf)->data;
        } else {
            const int64_t sa[4] = {nwin, o->frames, RT_CMU_JOINTS, 2};
            out_a = new_array(arrays, &n, "pose2d", RT_F32, 4, sa)->data;
            label = new_array(arrays, &n, "action", RT_I64, 1, &nwin)->data;
        }
        int64_t *wclip = new_array(arrays, &n, "window_clip", RT_I64, 1, &nwin)->data;
        int64_t *wcam = new_array(arrays, &n, "window_camera", RT_I64, 1, &nwin)->data;
        int64_t *wstart = new_array(arrays, &n, "window_start", RT_I64, 1, &nwin)->data;
        float *uv = rt_malloc((size_t)maxlen * RT_CMU_JOINTS * 2 * sizeof *uv);
        int64_t w = 0;
        for (int64_t c = 0; c < d->nclips && ok; c++) {
            if (!clip_in(d, o, c, split)) continue;
            int64_t len = d->clip_start[c + 1] - d->clip_start[c], nw = windows_in(len, window, o->stride);
            if (nw == 0) continue;
            double origin[3];
            clip_origin(d, c, origin);
            for (int k = 0; k < RT_CMU_CAMERAS && ok; k++) {
                ok = see_clip(d, c, origin, &cams[k], k, uv, NULL, e);
                for (int64_t i = 0; i < nw && ok; i++, w++) {
                    int64_t f0 = i * o->stride;
                    for (int64_t t = 0; t < window; t++) {
                        float *dst = fc && t >= o->past ? out_b + ((w * o->future + t - o->past) * nj) * 2
                                                        : out_a + ((w * (fc ? o->past : o->frames) + t) * nj) * 2;
                        for (int j = 0; j < nj; j++) {
                            int src = fc ? penn_from_h36m[j] : j;
                            dst[j * 2] = uv[((f0 + t) * RT_CMU_JOINTS + src) * 2];
                            dst[j * 2 + 1] = uv[((f0 + t) * RT_CMU_JOINTS + src) * 2 + 1];
                        }
                    }
                    if (label) label[w] = d->clip_action[c];
                    wclip[w] = c;
                    wcam[w] = k;
                    wstart[w] = f0;
                }
            }
        }
        rt_free(uv);
        i64_array(arrays, &n, "joints_left", fc ? penn_left : h36m_left, 6);
        i64_array(arrays, &n, "joints_right", fc ? penn_right : h36m_right, 6);
    }
    strings_array(arrays, &n, "action_names", d->action_names, d->nactions);
    camera_arrays(arrays, &n, cams);
    if (!ok) {
        rt_cmu_arrays_free(arrays, n);
        return false;
    }
    *arrays_out = arrays;
    *n_out = n;
    return true;
}
