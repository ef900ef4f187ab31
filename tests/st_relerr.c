/* tests/st_relerr.c: st_relerr A.safetensors B.safetensors NAME [NAME_IN_B]: prints the
 * relative error max|a - b| / max|b| of float32 tensor NAME of A against NAME_IN_B (default
 * NAME) of B, for the CPU/GPU comparison (tests/run_cuda_gpu.sh); NaN anywhere prints nan.
 * Exit 1 with one line when a file or tensor is missing or the shapes differ. */
#include <math.h>
#include <string.h>

#include "runtime/rt.h"

static const RtArray *find(const RtSafetensors *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->tensors[i].name, name) == 0) return &s->tensors[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fputs("usage: st_relerr A.safetensors B.safetensors NAME [NAME_IN_B]\n", stderr);
        return 2;
    }
    RtSafetensors a, b;
    RtError e;
    if (!rt_safetensors_read(argv[1], &a, &e) || !rt_safetensors_read(argv[2], &b, &e)) {
        fprintf(stderr, "st_relerr: %s\n", e.msg);
        return 1;
    }
    const char *nb = argc > 4 ? argv[4] : argv[3];
    const RtArray *x = find(&a, argv[3]), *y = find(&b, nb);
    if (!x || !y || x->dtype != RT_F32 || y->dtype != RT_F32 || rt_array_count(x) != rt_array_count(y)) {
        fprintf(stderr, "st_relerr: %s: no float32 tensor '%s' of %s's size\n", x ? argv[2] : argv[1],
                x ? nb : argv[3], x ? argv[1] : argv[2]);
        return 1;
    }
    const float *p = x->data, *q = y->data;
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < rt_array_count(x); i++) {
        double d = fabs((double)p[i] - (double)q[i]);
        if (isnan(d)) diff = NAN;
        if (d > diff) diff = d;
        if (fabs((double)q[i]) > scale) scale = fabs((double)q[i]);
    }
    printf("%.3e\n", scale > 0 ? diff / scale : diff);
    rt_safetensors_free(&a);
    rt_safetensors_free(&b);
    return 0;
}
