/* Tests of runtime/cmu.c: the CMU-derived task data (cameras, mirror, windows, determinism). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/rt.h"

static const int h36m_swap[17] = {0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13};
static const int penn_swap[13] = {0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11};

static const RtArray *get(RtArray *a, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].name, name) == 0) return &a[i];
    fail_msg("no array '%s'", name);
    return NULL;
}

/* data/cmu17.npz, read once for every test. */
static RtNpz cmu_npz;
static RtCmu cmu;

static int setup(void **state) {
    const char *src = getenv("CHIRALC_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/data/cmu17.npz", src ? src : ".");
    RtError e;
    if (!rt_npz_read(path, &cmu_npz, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    if (!rt_cmu_from_npz(&cmu_npz, &cmu, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    rt_npz_free(&cmu_npz);
    return 0;
}

/* A camera at (0, 4, 3) looking at the origin: forward f = (0, -4, -3) / 5, right =
 * f x up = (0.6, 0, 0) -> (1, 0, 0), down = f x right = (0, -0.6, 0.8). The point
 * P = (2, -0.4, 2.2) is P - eye = (2, -4.4, -0.8) from the camera, so
 *   X = 2,  Y = -0.6 * -4.4 + 0.8 * -0.8 = 2.64 - 0.64 = 2,  Z = -0.8 * -4.4 + -0.6 * -0.8 = 3.52 + 0.48 = 4.
 * With fx = 800, fy = 600, cx = cy = 500 in a 1000 x 1000 image:
 *   u = 800 * 2/4 + 500 = 900 -> 900 / 1000 * 2 - 1 = 0.8
 *   v = 600 * 2/4 + 500 = 800 -> 800 / 1000 * 2 - 1 = 0.6. */
static void test_project_hand_computed(void **state) {
    RtCmuCamera c;
    const double eye[3] = {0, 4, 3}, target[3] = {0, 0, 0};
    rt_cmu_look_at(&c, eye, target);
    c.fx = 800, c.fy = 600, c.cx = 500, c.cy = 500;
    const double R[3][3] = {{1, 0, 0}, {0, -0.6, 0.8}, {0, -0.8, -0.6}}, t[3] = {0, 0, 5};
    for (int i = 0; i < 3; i++) {
        assert_true(fabs(c.t[i] - t[i]) < 1e-12);
        for (int j = 0; j < 3; j++) assert_true(fabs(c.R[i][j] - R[i][j]) < 1e-12);
    }
    const double p[3] = {2, -0.4, 2.2};
    double xyz[3], uv[2];
    assert_true(rt_cmu_project(&c, 1000, 1000, p, xyz, uv));
    assert_true(fabs(xyz[0] - 2) < 1e-12 && fabs(xyz[1] - 2) < 1e-12 && fabs(xyz[2] - 4) < 1e-12);
    assert_true(fabs(uv[0] - 0.8) < 1e-12 && fabs(uv[1] - 0.6) < 1e-12);
    /* A non-square image: v / w * 2 - h / w with h = 500, v = 800: 1.6 - 0.5 = 1.1. */
    assert_true(rt_cmu_project(&c, 1000, 500, p, xyz, uv));
    assert_true(fabs(uv[1] - 1.1) < 1e-12);
    /* The camera itself and points behind it do not project. */
    const double behind[3] = {0, 8, 6};
    assert_false(rt_cmu_project(&c, 1000, 1000, eye, xyz, uv));
    assert_false(rt_cmu_project(&c, 1000, 1000, behind, xyz, uv));
}

/* The rig: H36M-like placement, rotations proper, optical axes through the target. */
static void test_rig_placement(void **state) {
    const double pi = 3.14159265358979323846, th = 0.95;
    for (uint64_t seed = 0; seed < 20; seed++) {
        RtCmuCamera cams[RT_CMU_CAMERAS];
        rt_cmu_rig(seed, th, cams);
        for (int k = 0; k < RT_CMU_CAMERAS; k++) {
            const RtCmuCamera *c = &cams[k];
            /* R R^T = I, det R = +1 */
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    double dot = 0;
                    for (int m = 0; m < 3; m++) dot += c->R[i][m] * c->R[j][m];
                    assert_true(fabs(dot - (i == j)) < 1e-12);
                }
            double det = c->R[0][0] * (c->R[1][1] * c->R[2][2] - c->R[1][2] * c->R[2][1]) -
                         c->R[0][1] * (c->R[1][0] * c->R[2][2] - c->R[1][2] * c->R[2][0]) +
                         c->R[0][2] * (c->R[1][0] * c->R[2][1] - c->R[1][1] * c->R[2][0]);
            assert_true(fabs(det - 1) < 1e-12);
            assert_true(fabs(c->R[0][1]) < 1e-12); /* the x axis is horizontal */
            assert_true(c->R[1][1] < 0);            /* image y points down in the world */
            double C[3];                            /* centre: -R^T t */
            for (int i = 0; i < 3; i++) C[i] = -(c->R[0][i] * c->t[0] + c->R[1][i] * c->t[1] + c->R[2][i] * c->t[2]);
            double dist = hypot(C[0], C[2]), az = atan2(C[0], C[2]) * 180 / pi;
            if (az < 0) az += 360;
            assert_true(dist >= 4.5 && dist <= 5.5);
            assert_true(C[1] >= 1.5 && C[1] <= 1.7);
            assert_true(fabs(az - (45 + 90 * k)) <= 5.0 + 1e-9);
            /* the target (0, th, 0) is on the optical axis: camera coordinates (0, 0, |T - C|) */
            const double T[3] = {0, th, 0};
            double xyz[3], uv[2];
            assert_true(rt_cmu_project(c, 1000, 1000, T, xyz, uv));
            assert_true(fabs(xyz[0]) < 1e-12 && fabs(xyz[1]) < 1e-12);
            assert_true(fabs(uv[0]) < 1e-12 && fabs(uv[1]) < 1e-12);
            assert_true(c->fx == c->fy && c->fx >= 1140 && c->fx <= 1150);
            assert_true(c->cx == 500 && c->cy == 500);
        }
    }
    /* another seed, another rig */
    RtCmuCamera a[RT_CMU_CAMERAS], b[RT_CMU_CAMERAS];
    rt_cmu_rig(1, th, a);
    rt_cmu_rig(2, th, b);
    assert_true(a[0].t[2] != b[0].t[2]);
}

/* A one-clip input viewing `pos` (train split). */
static RtCmu one_clip(const float *pos, int64_t len, int64_t *start, int64_t *zero) {
    RtCmu d = cmu;
    start[0] = 0;
    start[1] = len;
    d.path = "clip";
    d.nframes = len;
    d.nclips = 1;
    d.pos = pos;
    d.clip_start = start;
    d.clip_action = zero;
    d.clip_split = zero;
    d.clip_split_balanced = zero;
    d.clip_extra = NULL;
    return d;
}

/* Reflect the scene through the vertical plane holding camera k's optical axis, swap the
 * left/right labels, derive again: camera k's data must be the chirality transform of the
 * original (camera x and u negated, left/right joints swapped). For lifting and forecast. */
static void mirror_clip(int64_t c, uint64_t seed) {
    int64_t f0 = cmu.clip_start[c], len = cmu.clip_start[c + 1] - f0, start[2], zero = 0;
    const float *pos = cmu.pos + f0 * 17 * 3;
    RtCmu d = one_clip(pos, len, start, &zero);
    RtCmuOptions lift, fc;
    rt_cmu_defaults(&lift, RT_CMU_LIFTING);
    rt_cmu_defaults(&fc, RT_CMU_FORECAST);
    lift.seed = fc.seed = seed;
    RtError e;
    RtArray *a, *fa;
    int n, fn;
    assert_true(rt_cmu_derive(&d, &lift, 0, &a, &n, &e));
    assert_true(rt_cmu_derive(&d, &fc, 0, &fa, &fn, &e));
    const double *R = get(a, n, "camera_R")->data, *t = get(a, n, "camera_t")->data;
    const double *origin = get(a, n, "clip_origin")->data;
    float *refl = malloc((size_t)len * 17 * 3 * sizeof *refl);
    for (int k = 0; k < RT_CMU_CAMERAS; k++) {
        /* The plane: through the camera centre origin - R^T t, normal the camera's x axis
         * (horizontal), which holds the optical axis and the vertical. */
        const double *Rk = R + k * 9, *tk = t + k * 3, *nrm = Rk;
        double C[3];
        for (int i = 0; i < 3; i++) C[i] = origin[k * 3 + i] - (Rk[i] * tk[0] + Rk[3 + i] * tk[1] + Rk[6 + i] * tk[2]);
        assert_true(fabs(nrm[1]) < 1e-12);
        for (int64_t f = 0; f < len; f++)
            for (int j = 0; j < 17; j++) {
                const float *p = pos + (f * 17 + h36m_swap[j]) * 3;
                double s = (p[0] - C[0]) * nrm[0] + (p[1] - C[1]) * nrm[1] + (p[2] - C[2]) * nrm[2];
                for (int i = 0; i < 3; i++) refl[(f * 17 + j) * 3 + i] = (float)(p[i] - 2 * s * nrm[i]);
            }
        int64_t start2[2];
        RtCmu dm = one_clip(refl, len, start2, &zero);
        RtArray *b, *fb;
        int nb, fnb;
        assert_true(rt_cmu_derive(&dm, &lift, 0, &b, &nb, &e));
        assert_true(rt_cmu_derive(&dm, &fc, 0, &fb, &fnb, &e));
        /* the same camera sees the mirrored scene */
        const double *Rb = get(b, nb, "camera_R")->data, *ob = get(b, nb, "clip_origin")->data;
        for (int i = 0; i < 9; i++) assert_true(fabs(Rb[k * 9 + i] - Rk[i]) < 1e-6);
        for (int i = 0; i < 3; i++) assert_true(fabs(ob[k * 3 + i] - origin[k * 3 + i]) < 1e-5);
        const int64_t *cs = get(a, n, "clip_start")->data, *cam = get(a, n, "clip_camera")->data;
        assert_int_equal(cam[k], k);
        const float *u = get(a, n, "pose2d")->data, *um = get(b, nb, "pose2d")->data;
        const float *x = get(a, n, "pose3d")->data, *xm = get(b, nb, "pose3d")->data;
        double worst = 0;
        for (int64_t f = cs[k]; f < cs[k + 1]; f++)
            for (int j = 0; j < 17; j++) {
                int s = h36m_swap[j];
                worst = fmax(worst, fabs(um[(f * 17 + j) * 2] + u[(f * 17 + s) * 2]));
                worst = fmax(worst, fabs(um[(f * 17 + j) * 2 + 1] - u[(f * 17 + s) * 2 + 1]));
                worst = fmax(worst, fabs(xm[(f * 17 + j) * 3] + x[(f * 17 + s) * 3]));
                worst = fmax(worst, fabs(xm[(f * 17 + j) * 3 + 1] - x[(f * 17 + s) * 3 + 1]));
                worst = fmax(worst, fabs(xm[(f * 17 + j) * 3 + 2] - x[(f * 17 + s) * 3 + 2]));
            }
        assert_true(worst < 1e-5);
        /* the mirror is not trivially satisfied: the data do move under it */
        double moved = 0;
        for (int64_t f = cs[k]; f < cs[k + 1]; f++)
            for (int j = 0; j < 17 * 2; j++) moved = fmax(moved, fabs(um[f * 34 + j] - u[f * 34 + j]));
        assert_true(moved > 1e-2);
        /* forecast windows of camera k, with the Penn Action joints */
        const RtArray *ob_a = get(fa, fn, "observed"), *ob_b = get(fb, fnb, "observed");
        const RtArray *pr_a = get(fa, fn, "predicted"), *pr_b = get(fb, fnb, "predicted");
        const int64_t *wc = get(fa, fn, "window_camera")->data;
        assert_int_equal(ob_a->shape[0], ob_b->shape[0]);
        worst = 0;
        for (int64_t w = 0; w < ob_a->shape[0]; w++) {
            if (wc[w] != k) continue;
            for (int part = 0; part < 2; part++) {
                const float *p = (part ? pr_a : ob_a)->data, *q = (part ? pr_b : ob_b)->data;
                for (int64_t tt = 0; tt < 10; tt++)
                    for (int j = 0; j < 13; j++) {
                        int64_t at = ((w * 10 + tt) * 13 + j) * 2, as = ((w * 10 + tt) * 13 + penn_swap[j]) * 2;
                        worst = fmax(worst, fabs(q[at] + p[as]));
                        worst = fmax(worst, fabs(q[at + 1] - p[as + 1]));
                    }
            }
        }
        assert_true(worst < 1e-5);
        rt_cmu_arrays_free(b, nb);
        rt_cmu_arrays_free(fb, fnb);
    }
    free(refl);
    rt_cmu_arrays_free(a, n);
    rt_cmu_arrays_free(fa, fn);
}

static void test_mirror_is_chirality_transform(void **state) {
    mirror_clip(0, 1);   /* basketball */
    mirror_clip(19, 7);  /* running: travels far from its mean */
    mirror_clip(60, 3);  /* walking_extra */
}

/* The windows of one clip as the task defines them, counted here from the lengths. */
static int64_t count_windows(int64_t len, int64_t size, int64_t stride) {
    int64_t n = 0;
    for (int64_t s = 0; s + size <= len; s += stride) n++;
    return n;
}

static void check_counts(bool balanced, bool no_extra) {
    const int64_t *split = balanced ? cmu.clip_split_balanced : cmu.clip_split;
    for (int sp = 0; sp < 2; sp++) {
        int64_t frames = 0, fwin = 0, awin = 0, fwin3 = 0, awin8 = 0, seqs = 0;
        for (int64_t c = 0; c < cmu.nclips; c++) {
            if (split[c] != sp || (no_extra && cmu.clip_extra[c])) continue;
            int64_t len = cmu.clip_start[c + 1] - cmu.clip_start[c];
            frames += 4 * len;
            seqs += 4;
            fwin += 4 * count_windows(len, 20, 5);
            awin += 4 * count_windows(len, 32, 16);
            fwin3 += 4 * count_windows(len, 7, 3);
            awin8 += 4 * count_windows(len, 40, 8);
        }
        RtCmuOptions o;
        RtError e;
        RtArray *a;
        int n;
        rt_cmu_defaults(&o, RT_CMU_LIFTING);
        o.balanced = balanced;
        o.no_extra = no_extra;
        assert_true(rt_cmu_derive(&cmu, &o, sp, &a, &n, &e));
        assert_int_equal(get(a, n, "pose2d")->shape[0], frames);
        assert_int_equal(get(a, n, "pose3d")->shape[0], frames);
        assert_int_equal(get(a, n, "clip_start")->shape[0], seqs + 1);
        if (!balanced && !no_extra) /* data/README.md's table: 13452 train, 3528 test frames */
            assert_int_equal(frames, 4 * (sp ? 3528 : 13452));
        rt_cmu_arrays_free(a, n);

        rt_cmu_defaults(&o, RT_CMU_FORECAST);
        o.balanced = balanced;
        o.no_extra = no_extra;
        assert_true(rt_cmu_derive(&cmu, &o, sp, &a, &n, &e));
        assert_int_equal(get(a, n, "observed")->shape[0], fwin);
        assert_int_equal(get(a, n, "predicted")->shape[0], fwin);
        assert_int_equal(get(a, n, "window_clip")->shape[0], fwin);
        rt_cmu_arrays_free(a, n);
        o.past = 4, o.future = 3, o.stride = 3;
        assert_true(rt_cmu_derive(&cmu, &o, sp, &a, &n, &e));
        assert_int_equal(get(a, n, "observed")->shape[1], 4);
        assert_int_equal(get(a, n, "predicted")->shape[1], 3);
        assert_int_equal(get(a, n, "observed")->shape[0], fwin3);
        rt_cmu_arrays_free(a, n);

        rt_cmu_defaults(&o, RT_CMU_ACTION);
        o.balanced = balanced;
        o.no_extra = no_extra;
        assert_true(rt_cmu_derive(&cmu, &o, sp, &a, &n, &e));
        assert_int_equal(get(a, n, "pose2d")->shape[0], awin);
        assert_int_equal(get(a, n, "action")->shape[0], awin);
        rt_cmu_arrays_free(a, n);
        o.frames = 40, o.stride = 8;
        assert_true(rt_cmu_derive(&cmu, &o, sp, &a, &n, &e));
        assert_int_equal(get(a, n, "pose2d")->shape[0], awin8);
        rt_cmu_arrays_free(a, n);
    }
}

static void test_window_counts_per_split(void **state) {
    check_counts(false, false);
    check_counts(true, false);
    check_counts(true, true);
}

/* The windows copy the lifting data's frames: forecast picks the Penn Action joints
 * (H36M 10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3), action all 17, labels follow clips. */
static void test_windows_match_sequences(void **state) {
    static const int penn[13] = {10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3};
    RtCmuOptions o;
    RtError e;
    RtArray *l, *f, *a;
    int nl, nf, na;
    rt_cmu_defaults(&o, RT_CMU_LIFTING);
    assert_true(rt_cmu_derive(&cmu, &o, 1, &l, &nl, &e));
    rt_cmu_defaults(&o, RT_CMU_FORECAST);
    assert_true(rt_cmu_derive(&cmu, &o, 1, &f, &nf, &e));
    rt_cmu_defaults(&o, RT_CMU_ACTION);
    assert_true(rt_cmu_derive(&cmu, &o, 1, &a, &na, &e));
    const float *u = get(l, nl, "pose2d")->data;
    const int64_t *cs = get(l, nl, "clip_start")->data, *src = get(l, nl, "clip_source")->data;
    const int64_t *cam = get(l, nl, "clip_camera")->data;
    int64_t nseq = get(l, nl, "clip_action")->shape[0];
    /* the lifting sequence of (clip, camera) */
#define SEQ_OF(clip, camera, out)                                                                  \
    do {                                                                                           \
        out = -1;                                                                                  \
        for (int64_t s_ = 0; s_ < nseq; s_++)                                                      \
            if (src[s_] == (clip) && cam[s_] == (camera)) out = s_;                                \
        assert_true(out >= 0);                                                                     \
    } while (0)
    const RtArray *obs = get(f, nf, "observed");
    const float *ob = obs->data, *pr = get(f, nf, "predicted")->data;
    const int64_t *wclip = get(f, nf, "window_clip")->data, *wcam = get(f, nf, "window_camera")->data;
    const int64_t *wst = get(f, nf, "window_start")->data;
    for (int64_t w = 0; w < obs->shape[0]; w++) {
        int64_t s;
        SEQ_OF(wclip[w], wcam[w], s);
        assert_true(wst[w] % 5 == 0 && cs[s] + wst[w] + 20 <= cs[s + 1]);
        for (int t = 0; t < 20; t++)
            for (int j = 0; j < 13; j++)
                for (int i = 0; i < 2; i++) {
                    float got = t < 10 ? ob[((w * 10 + t) * 13 + j) * 2 + i] : pr[((w * 10 + t - 10) * 13 + j) * 2 + i];
                    assert_true(got == u[((cs[s] + wst[w] + t) * 17 + penn[j]) * 2 + i]);
                }
    }
    const RtArray *ap = get(a, na, "pose2d");
    const float *ad = ap->data;
    const int64_t *act = get(a, na, "action")->data;
    wclip = get(a, na, "window_clip")->data, wcam = get(a, na, "window_camera")->data;
    wst = get(a, na, "window_start")->data;
    for (int64_t w = 0; w < ap->shape[0]; w++) {
        int64_t s;
        SEQ_OF(wclip[w], wcam[w], s);
        assert_int_equal(act[w], cmu.clip_action[wclip[w]]);
        assert_true(wst[w] % 16 == 0 && cs[s] + wst[w] + 32 <= cs[s + 1]);
        assert_memory_equal(ad + w * 32 * 17 * 2, u + (cs[s] + wst[w]) * 17 * 2, 32 * 17 * 2 * sizeof(float));
    }
    /* a standing person's head is above the pelvis: smaller v with image y down */
    int64_t above = 0, frames = cs[nseq];
    for (int64_t fr = 0; fr < frames; fr++) above += u[(fr * 17 + 10) * 2 + 1] < u[(fr * 17) * 2 + 1];
    assert_true(above > frames * 9 / 10);
    rt_cmu_arrays_free(l, nl);
    rt_cmu_arrays_free(f, nf);
    rt_cmu_arrays_free(a, na);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*len ? *len : 1);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* Two derivations with one seed write identical bytes; another seed changes the cameras. */
static void test_determinism(void **state) {
    char dir[] = "/tmp/test_cmu_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[3][4200];
    for (int run = 0; run < 3; run++) {
        RtCmuOptions o;
        RtError e;
        RtArray *a;
        int n;
        rt_cmu_defaults(&o, RT_CMU_LIFTING);
        o.seed = run < 2 ? 42 : 43;
        o.balanced = false;
        assert_true(rt_cmu_derive(&cmu, &o, 1, &a, &n, &e));
        snprintf(p[run], sizeof p[run], "%s/run%d.npz", dir, run);
        if (!rt_npz_write(p[run], a, n, &e)) fail_msg("%s", e.msg);
        rt_cmu_arrays_free(a, n);
    }
    size_t l0, l1, l2;
    char *b0 = slurp(p[0], &l0), *b1 = slurp(p[1], &l1), *b2 = slurp(p[2], &l2);
    assert_int_equal(l0, l1);
    assert_memory_equal(b0, b1, l0);
    assert_true(l0 != l2 || memcmp(b0, b2, l0) != 0);
    /* and what was written reads back as derived */
    RtNpz z;
    RtError e;
    assert_true(rt_npz_read(p[0], &z, &e));
    const int64_t shape[3] = {4 * 3528, 17, 2};
    assert_non_null(rt_npz_get(&z, "pose2d", RT_F32, 3, shape, &e));
    const int64_t any[1] = {-1};
    const RtArray *names = rt_npz_get(&z, "action_names", RT_STR, 1, any, &e);
    assert_non_null(names);
    assert_string_equal(((char **)names->data)[7], "washwindow");
    rt_npz_free(&z);
    free(b0), free(b1), free(b2);
    for (int run = 0; run < 3; run++) unlink(p[run]);
    rmdir(dir);
}

/* Bad input: one line naming the file and the array. */
static void test_bad_input(void **state) {
    RtError e;
    int64_t start[2], zero = 0;
    RtCmu d;
    RtCmuOptions o;
    rt_cmu_defaults(&o, RT_CMU_LIFTING);
    RtArray *a;
    int n;
    /* a clip wandering behind a camera */
    float *far = malloc(100 * 17 * 3 * sizeof *far);
    memcpy(far, cmu.pos, 100 * 17 * 3 * sizeof *far);
    for (int j = 0; j < 17; j++) far[(99 * 17 + j) * 3 + 2] += 400; /* the last frame 400 m away */
    d = one_clip(far, 100, start, &zero);
    assert_false(rt_cmu_derive(&d, &o, 0, &a, &n, &e));
    assert_non_null(strstr(e.msg, "clip: array 'positions_3d'"));
    assert_null(strchr(e.msg, '\n'));
    /* no balanced split in the input: only the source split is available */
    d = one_clip(cmu.pos, 100, start, &zero);
    d.clip_split_balanced = NULL;
    assert_false(rt_cmu_derive(&d, &o, 0, &a, &n, &e));
    assert_non_null(strstr(e.msg, "clip: no array 'clip_split_balanced'"));
    o.balanced = false;
    assert_true(rt_cmu_derive(&d, &o, 0, &a, &n, &e));
    rt_cmu_arrays_free(a, n);
    o.balanced = true;
    /* no test clip */
    d = one_clip(cmu.pos, 100, start, &zero);
    assert_false(rt_cmu_derive(&d, &o, 1, &a, &n, &e));
    assert_non_null(strstr(e.msg, "no test clips"));
    /* windows longer than every clip */
    rt_cmu_defaults(&o, RT_CMU_ACTION);
    o.frames = 101;
    assert_false(rt_cmu_derive(&d, &o, 0, &a, &n, &e));
    assert_non_null(strstr(e.msg, "101 frames"));
    free(far);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_project_hand_computed),
        cmocka_unit_test(test_rig_placement),
        cmocka_unit_test(test_mirror_is_chirality_transform),
        cmocka_unit_test(test_window_counts_per_split),
        cmocka_unit_test(test_windows_match_sequences),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
