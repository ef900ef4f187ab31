/* runtime/array.c: n-dimensional arrays as NumPy has them. */
#include <string.h>

#include "runtime/rt.h"

int64_t rt_array_count(const RtArray *a) {
    int64_t n = 1;
    for (int i = 0; i < a->ndim; i++) n *= a->shape[i];
    return n;
}

void rt_array_free(RtArray *a) {
    if (!a) return;
    if (a->dtype == RT_STR && a->data) {
        char **s = a->data;
        int64_t n = rt_array_count(a);
        for (int64_t i = 0; i < n; i++) rt_free(s[i]);
    }
    rt_free(a->data);
    rt_free(a->name);
    a->data = NULL;
    a->name = NULL;
}

const char *rt_dtype_name(RtDtype t) {
    switch (t) {
    case RT_F32: return "float32";
    case RT_F64: return "float64";
    case RT_I64: return "int64";
    case RT_I32: return "int32";
    case RT_U8: return "uint8";
    case RT_BOOL: return "bool";
    case RT_STR: return "str";
    }
    return "?";
}

const char *rt_shape_str(const RtArray *a, char *buf, size_t n) {
    size_t used = 0;
    if (n == 0) return buf;
    buf[0] = 0;
    used += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < a->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}
