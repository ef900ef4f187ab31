/* tests/rttool.c: small file surgery for the produced programs' shell tests
 * (tests/run_train.sh), with the runtime's own readers and writers, so that the tests
 * need neither Python nor NumPy.
 *
 *   rttool extract IN.npz NAME OUT.npy         one member as a .npy file
 *   rttool head IN.npz OUT.npz N               the first N samples (windows: rows; sequences:
 *                                              the first clips with at most N frames in all)
 *   rttool corrupt IN.npz OUT.npz MODE NAME    MODE: nan (first element NaN), dtype (float32 ->
 *                                              int32), shape (last axis one shorter), drop
 *   rttool same A.safetensors B.safetensors    exit 0 when every tensor of A is in B with the
 *                                              same dtype, shape and bytes (and B has no others)
 * String arrays are left out of the .npz files written (the programs never read them). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

static int die(const RtError *e) {
    fprintf(stderr, "rttool: %s\n", e->msg);
    return 1;
}

static RtArray *find(RtNpz *z, const char *name) {
    for (int i = 0; i < z->n; i++)
        if (strcmp(z->arrays[i].name, name) == 0) return &z->arrays[i];
    return NULL;
}

/* Writes the non-string arrays of z. */
static int write_npz(const char *path, RtNpz *z) {
    RtArray *keep = rt_calloc((size_t)z->n + 1, sizeof *keep);
    int n = 0;
    for (int i = 0; i < z->n; i++)
        if (z->arrays[i].dtype != RT_STR) keep[n++] = z->arrays[i];
    RtError e;
    bool ok = rt_npz_write(path, keep, n, &e);
    rt_free(keep);
    return ok ? 0 : die(&e);
}

/* Keeps the first `rows` entries along axis 0 (in place; the data stays allocated). */
static void cut(RtArray *a, int64_t rows) {
    if (a->ndim > 0 && a->shape[0] > rows) a->shape[0] = rows;
}

static int head(RtNpz *z, int64_t n) {
    RtArray *cs = find(z, "clip_start");
    if (!cs) {
        int64_t all = -1;
        for (int i = 0; i < z->n; i++)
            if (z->arrays[i].dtype != RT_STR && z->arrays[i].ndim > 0 && z->arrays[i].shape[0] > all)
                all = z->arrays[i].shape[0];
        for (int i = 0; i < z->n; i++)
            if (z->arrays[i].ndim > 0 && z->arrays[i].shape[0] == all) cut(&z->arrays[i], n);
        return 0;
    }
    const int64_t *s = cs->data, nclips = cs->shape[0] - 1, frames = s[nclips];
    int64_t c = 0;
    while (c < nclips && s[c + 1] <= n) c++;
    if (c == 0) c = 1;
    for (int i = 0; i < z->n; i++) {
        RtArray *a = &z->arrays[i];
        if (a == cs || a->ndim == 0) continue;
        if (a->shape[0] == frames) cut(a, s[c]);
        else if (a->shape[0] == nclips) cut(a, c);
    }
    cut(cs, c + 1);
    return 0;
}

static int corrupt(RtNpz *z, const char *mode, const char *name) {
    RtArray *a = find(z, name);
    if (!a) {
        fprintf(stderr, "rttool: no array '%s'\n", name);
        return 1;
    }
    if (strcmp(mode, "drop") == 0) {
        /* swap it to the end, out of the count, and free it there */
        RtArray gone = *a;
        *a = z->arrays[--z->n];
        z->arrays[z->n] = gone;
        rt_array_free(&z->arrays[z->n]);
        return 0;
    }
    if (a->dtype != RT_F32) {
        fprintf(stderr, "rttool: array '%s' is not float32\n", name);
        return 1;
    }
    float *f = a->data;
    const int64_t n = rt_array_count(a);
    if (strcmp(mode, "nan") == 0) {
        f[n / 2] = NAN;
    } else if (strcmp(mode, "dtype") == 0) {
        int32_t *v = rt_malloc((size_t)n * sizeof(int32_t) + 1);
        for (int64_t i = 0; i < n; i++) v[i] = (int32_t)f[i];
        rt_free(a->data);
        a->data = v;
        a->dtype = RT_I32;
        a->itemsize = 4;
    } else if (strcmp(mode, "shape") == 0) {
        const int64_t last = a->shape[a->ndim - 1], rows = n / last;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c + 1 < last; c++) f[r * (last - 1) + c] = f[r * last + c];
        a->shape[a->ndim - 1] = last - 1;
    } else {
        fprintf(stderr, "rttool: unknown mode '%s'\n", mode);
        return 1;
    }
    return 0;
}

static size_t nbytes(const RtArray *a) { return (size_t)rt_array_count(a) * a->itemsize; }

static int same(const char *pa, const char *pb) {
    RtSafetensors a, b;
    RtError e;
    if (!rt_safetensors_read(pa, &a, &e)) return die(&e);
    if (!rt_safetensors_read(pb, &b, &e)) return die(&e);
    int st = a.n == b.n ? 0 : 1;
    if (st) fprintf(stderr, "rttool: %s has %d tensors, %s %d\n", pa, a.n, pb, b.n);
    for (int i = 0; i < a.n && !st; i++) {
        const RtArray *x = &a.tensors[i], *y = NULL;
        for (int j = 0; j < b.n; j++)
            if (strcmp(b.tensors[j].name, x->name) == 0) y = &b.tensors[j];
        if (!y || y->dtype != x->dtype || y->ndim != x->ndim || nbytes(x) != nbytes(y) ||
            memcmp(x->data, y->data, nbytes(x)) != 0) {
            fprintf(stderr, "rttool: tensor '%s' differs between %s and %s\n", x->name, pa, pb);
            st = 1;
        }
    }
    rt_safetensors_free(&a);
    rt_safetensors_free(&b);
    return st;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "same") == 0) return same(argv[2], argv[3]);
    if (argc < 5) {
        fputs("usage: rttool extract|head|corrupt|same ... (see tests/rttool.c)\n", stderr);
        return 2;
    }
    RtNpz z;
    RtError e;
    if (!rt_npz_read(argv[2], &z, &e)) return die(&e);
    int st;
    if (strcmp(argv[1], "extract") == 0) {
        RtArray *a = find(&z, argv[3]);
        st = !a ? (fprintf(stderr, "rttool: no array '%s'\n", argv[3]), 1)
                : rt_npy_write(argv[4], a, &e) ? 0 : die(&e);
    } else if (strcmp(argv[1], "head") == 0) {
        st = head(&z, strtoll(argv[4], NULL, 10));
        if (!st) st = write_npz(argv[3], &z);
    } else if (strcmp(argv[1], "corrupt") == 0 && argc == 6) {
        st = corrupt(&z, argv[4], argv[5]);
        if (!st) st = write_npz(argv[3], &z);
    } else {
        fputs("rttool: bad command line\n", stderr);
        st = 2;
    }
    rt_npz_free(&z);
    return st;
}
