/* tools/chiraldata.c: derives the examples' task data from data/cmu17.npz.
 *
 *   chiraldata lifting|forecast|action --in data/cmu17.npz --out DIR [options]
 *
 * writes DIR/train.npz and DIR/test.npz. Both splits are derived before either file is
 * written, so bad input leaves nothing behind; each file appears whole (rt_npz_write). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/rt.h"

static const char usage[] =
    "usage: chiraldata lifting|forecast|action --in FILE.npz --out DIR [options]\n"
    "\n"
    "Derives task data from CMU motion capture (data/cmu17.npz) seen by 4 virtual cameras\n"
    "and writes DIR/train.npz and DIR/test.npz.\n"
    "  lifting   pose2d [F,17,2] and pose3d [F,17,3] per (clip, camera) sequence, cut by\n"
    "            clip_start; with the cameras (VideoPose3D, Martinez)\n"
    "  forecast  observed [N,past,13,2] and predicted [N,future,13,2] (forecast_lstm)\n"
    "  action    pose2d [N,frames,17,2] and action [N] (action_stconv)\n"
    "\n"
    "options:\n"
    "  --in FILE       the motion capture (positions_3d, clip_start, clip_action, ...)\n"
    "  --out DIR       output folder, created if missing\n"
    "  --seed S        camera placement (default 1); the same seed gives the same bytes\n"
    "  --split source|balanced\n"
    "                  clip_split (the source folders) or clip_split_balanced (default)\n"
    "  --no-extra      leave out the walking_extra clips\n"
    "  --past N        forecast: observed frames (default 10)\n"
    "  --future N      forecast: predicted frames (default 10)\n"
    "  --frames N      action: window length (default 32)\n"
    "  --stride N      forecast, action: frames between window starts (default 5, 16)\n"
    "  -h, --help      this text\n";

/* Bad data or files: status 1. */
static int fail(const char *msg) {
    fprintf(stderr, "chiraldata: error: %s\n", msg);
    return 1;
}

/* A bad command line: status 2, as chiralc. */
static int bad_usage(const char *msg) {
    fprintf(stderr, "chiraldata: error: %s (chiraldata --help lists the options)\n", msg);
    return 2;
}

/* A positive int flag value, or false with a message. */
static bool parse_int(const char *flag, const char *s, int *out, char *msg, size_t n) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > 100000) {
        snprintf(msg, n, "%s: expected an integer from 1 to 100000, got '%s'", flag, s);
        return false;
    }
    *out = (int)v;
    return true;
}

/* mkdir -p. */
static bool make_dirs(const char *dir, char *msg, size_t n) {
    size_t len = strlen(dir);
    char *p = rt_malloc(len + 1);
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        struct stat st;
        if (stat(p, &st) != 0) {
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                snprintf(msg, n, "%s: cannot create folder: %s", p, strerror(errno));
                rt_free(p);
                return false;
            }
        } else if (!S_ISDIR(st.st_mode)) {
            snprintf(msg, n, "%s: not a folder", p);
            rt_free(p);
            return false;
        }
        p[i] = c;
    }
    rt_free(p);
    return true;
}

int main(int argc, char **argv) {
    char msg[1200];
    if (argc < 2) return bad_usage("expected a task: lifting, forecast or action");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    RtCmuTask task;
    if (strcmp(argv[1], "lifting") == 0) task = RT_CMU_LIFTING;
    else if (strcmp(argv[1], "forecast") == 0) task = RT_CMU_FORECAST;
    else if (strcmp(argv[1], "action") == 0) task = RT_CMU_ACTION;
    else {
        snprintf(msg, sizeof msg, "unknown task '%s': expected lifting, forecast or action", argv[1]);
        return bad_usage(msg);
    }
    RtCmuOptions o;
    rt_cmu_defaults(&o, task);
    const char *in = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--no-extra") == 0) {
            o.no_extra = true;
            continue;
        }
        static const char *const valued[] = {"--in", "--out", "--seed", "--split", "--past",
                                             "--future", "--frames", "--stride"};
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= strcmp(a, valued[k]) == 0;
        if (!known) {
            snprintf(msg, sizeof msg, "unknown option '%s'", a);
            return bad_usage(msg);
        }
        if (i + 1 >= argc) {
            snprintf(msg, sizeof msg, "%s: expected a value", a);
            return bad_usage(msg);
        }
        const char *v = argv[++i];
        bool forecast_only = strcmp(a, "--past") == 0 || strcmp(a, "--future") == 0;
        if ((forecast_only && task != RT_CMU_FORECAST) ||
            (strcmp(a, "--frames") == 0 && task != RT_CMU_ACTION) ||
            (strcmp(a, "--stride") == 0 && task == RT_CMU_LIFTING)) {
            snprintf(msg, sizeof msg, "%s does not apply to the %s task", a, argv[1]);
            return bad_usage(msg);
        }
        if (strcmp(a, "--in") == 0) in = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || *end || end == v || v[0] == '-') {
                snprintf(msg, sizeof msg, "--seed: expected a non-negative integer, got '%s'", v);
                return bad_usage(msg);
            }
            o.seed = s;
        } else if (strcmp(a, "--split") == 0) {
            if (strcmp(v, "source") == 0) o.balanced = false;
            else if (strcmp(v, "balanced") == 0) o.balanced = true;
            else {
                snprintf(msg, sizeof msg, "--split: expected source or balanced, got '%s'", v);
                return bad_usage(msg);
            }
        } else {
            int *dst = strcmp(a, "--past") == 0     ? &o.past
                       : strcmp(a, "--future") == 0 ? &o.future
                       : strcmp(a, "--frames") == 0 ? &o.frames
                                                    : &o.stride;
            if (!parse_int(a, v, dst, msg, sizeof msg)) return bad_usage(msg);
        }
    }
    if (!in) return bad_usage("expected --in FILE.npz (the motion capture, e.g. data/cmu17.npz)");
    if (!out) return bad_usage("expected --out DIR");

    RtError e;
    RtNpz z;
    RtCmu d;
    if (!rt_npz_read(in, &z, &e)) return fail(e.msg);
    RtArray *arrays[2] = {NULL, NULL};
    int n[2] = {0, 0};
    bool ok = rt_cmu_from_npz(&z, &d, &e) && rt_cmu_derive(&d, &o, 0, &arrays[0], &n[0], &e) &&
              rt_cmu_derive(&d, &o, 1, &arrays[1], &n[1], &e);
    if (ok && !make_dirs(out, e.msg, sizeof e.msg)) ok = false;
    for (int s = 0; s < 2 && ok; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npz", out, s ? "test" : "train");
        ok = rt_npz_write(path, arrays[s], n[s], &e);
        if (ok) {
            char shape[128];
            printf("chiraldata: %s: %s %s\n", path, arrays[s][0].name,
                   rt_shape_str(&arrays[s][0], shape, sizeof shape));
        }
    }
    for (int s = 0; s < 2; s++) rt_cmu_arrays_free(arrays[s], n[s]);
    rt_npz_free(&z);
    return ok ? 0 : fail(e.msg);
}
