/* runtime/safetensors.c: the safetensors format (github.com/huggingface/safetensors).
 *
 * An 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [3, 4], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * then the tensor data; offsets are relative to the end of the header. As the
 * reference implementation does, reading insists that the tensors tile the data
 * exactly: no overlaps, no holes, nothing after the last one. Writing pads the
 * header with spaces so that the data starts 8-byte aligned and puts the 8-byte
 * dtypes first, so that every tensor is aligned to its element size. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/rt.h"

#define ST_MAX_HEADER 100000000ull /* the reference implementation's limit */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = rt_malloc(n);
    memcpy(p, s, n);
    return p;
}

static void printable(char *dst, size_t n, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
    dst[i] = 0;
}

void rt_safetensors_free(RtSafetensors *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) rt_array_free(&s->tensors[i]);
    for (int i = 0; i < 2 * s->nmeta; i++) rt_free(s->meta_kv[i]);
    rt_free(s->tensors);
    rt_free(s->meta_kv);
    rt_free(s->path);
    memset(s, 0, sizeof *s);
}

const char *rt_safetensors_meta(const RtSafetensors *s, const char *key) {
    for (int i = 0; i < s->nmeta; i++)
        if (strcmp(s->meta_kv[2 * i], key) == 0) return s->meta_kv[2 * i + 1];
    return NULL;
}

/* ---- reading --------------------------------------------------------------------- */

typedef struct Src {
    const char *label;
    uint64_t size;
    FILE *f;            /* a file, or */
    const uint8_t *mem; /* bytes in memory */
} Src;

static bool src_read(Src *s, uint64_t off, void *buf, size_t n, RtError *e) {
    if (n == 0) return true;
    if (s->mem) {
        memcpy(buf, s->mem + off, n);
        return true;
    }
    if (fseeko(s->f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, n, s->f) != n)
        return rt_fail(e, "%s: cannot read: %s", s->label, ferror(s->f) ? strerror(errno) : "unexpected end of file");
    return true;
}

typedef struct Entry {
    const char *name; /* in the JSON document */
    RtDtype dtype;
    size_t itemsize;
    int ndim;
    int64_t shape[RT_MAX_DIMS];
    uint64_t begin, end;
} Entry;

static bool get_u64(json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool parse_entry(const char *label, const char *name, json_t *v, Entry *t, RtError *e) {
    char shown[300];
    printable(shown, sizeof shown, name);
    memset(t, 0, sizeof *t);
    t->name = name;
    if (!json_is_object(v)) return rt_fail(e, "%s: tensor '%s': expected an object", label, shown);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 && strcmp(key, "data_offsets") != 0) {
            char k[100];
            printable(k, sizeof k, key);
            return rt_fail(e, "%s: tensor '%s': unknown key '%s'", label, shown, k);
        }
    }
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt)) return rt_fail(e, "%s: tensor '%s': 'dtype' must be a string", label, shown);
    const char *d = json_string_value(dt);
    if (strcmp(d, "F32") == 0) t->dtype = RT_F32, t->itemsize = 4;
    else if (strcmp(d, "F64") == 0) t->dtype = RT_F64, t->itemsize = 8;
    else if (strcmp(d, "I64") == 0) t->dtype = RT_I64, t->itemsize = 8;
    else {
        char ds[40];
        printable(ds, sizeof ds, d);
        return rt_fail(e, "%s: tensor '%s': unsupported dtype '%s' (supported: F32, F64, I64)", label, shown, ds);
    }
    if (!json_is_array(sh) || json_array_size(sh) > RT_MAX_DIMS)
        return rt_fail(e, "%s: tensor '%s': 'shape' must be a list of at most %d sizes", label, shown, RT_MAX_DIMS);
    uint64_t bytes = t->itemsize;
    bool overflow = false;
    t->ndim = (int)json_array_size(sh);
    for (int i = 0; i < t->ndim; i++) {
        uint64_t x;
        if (!get_u64(json_array_get(sh, (size_t)i), &x))
            return rt_fail(e, "%s: tensor '%s': 'shape' must hold non-negative integers", label, shown);
        t->shape[i] = (int64_t)x;
        if (x && bytes > (uint64_t)INT64_MAX / x) overflow = true;
        else bytes *= x;
    }
    if (overflow) return rt_fail(e, "%s: tensor '%s': shape is too large", label, shown);
    if (!json_is_array(off) || json_array_size(off) != 2 || !get_u64(json_array_get(off, 0), &t->begin) ||
        !get_u64(json_array_get(off, 1), &t->end))
        return rt_fail(e, "%s: tensor '%s': 'data_offsets' must be [begin, end]", label, shown);
    if (t->begin > t->end)
        return rt_fail(e, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", label, shown,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end - t->begin != bytes) {
        RtArray a = {.ndim = t->ndim};
        memcpy(a.shape, t->shape, sizeof a.shape);
        char s[200];
        return rt_fail(e, "%s: tensor '%s': shape %s %s needs %llu bytes, data_offsets [%llu, %llu] give %llu",
                       label, shown, rt_shape_str(&a, s, sizeof s), d, (unsigned long long)bytes,
                       (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)(t->end - t->begin));
    }
    return true;
}

static int by_offset(const void *pa, const void *pb) {
    const Entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Overlaps, truncation, out-of-range offsets, holes and trailing bytes, in that order:
 * a file cut short shows up as "truncated" as long as its header is self-consistent. */
static bool check_layout(const char *label, Entry *t, int n, uint64_t data_size, RtError *e) {
    qsort(t, (size_t)n, sizeof *t, by_offset);
    uint64_t reach = 0;
    int reacher = -1;
    bool holes = false;
    char a[300], b[300];
    for (int i = 0; i < n; i++) {
        if (t[i].begin < reach) {
            printable(a, sizeof a, t[reacher].name);
            printable(b, sizeof b, t[i].name);
            return rt_fail(e, "%s: tensors '%s' and '%s' overlap (data_offsets [%llu, %llu] and [%llu, %llu])",
                           label, a, b, (unsigned long long)t[reacher].begin, (unsigned long long)t[reacher].end,
                           (unsigned long long)t[i].begin, (unsigned long long)t[i].end);
        }
        if (t[i].begin > reach) holes = true;
        if (t[i].end >= reach) {
            reach = t[i].end;
            reacher = i;
        }
    }
    if (!holes && reach > data_size)
        return rt_fail(e, "%s: truncated: header says %llu bytes of tensor data, file has %llu", label,
                       (unsigned long long)reach, (unsigned long long)data_size);
    for (int i = 0; i < n; i++)
        if (t[i].end > data_size) {
            printable(a, sizeof a, t[i].name);
            return rt_fail(e, "%s: tensor '%s': data_offsets [%llu, %llu] are beyond the %llu bytes of data", label,
                           a, (unsigned long long)t[i].begin, (unsigned long long)t[i].end,
                           (unsigned long long)data_size);
        }
    reach = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].begin > reach)
            return rt_fail(e, "%s: no tensor covers data bytes [%llu, %llu)", label, (unsigned long long)reach,
                           (unsigned long long)t[i].begin);
        if (t[i].end > reach) reach = t[i].end;
    }
    if (reach < data_size)
        return rt_fail(e, "%s: %llu unexpected bytes after the last tensor", label,
                       (unsigned long long)(data_size - reach));
    return true;
}

static bool parse_metadata(const char *label, json_t *m, RtSafetensors *out, RtError *e) {
    if (!json_is_object(m)) return rt_fail(e, "%s: '__metadata__' must be an object of strings", label);
    size_t n = json_object_size(m);
    out->meta_kv = rt_calloc(2 * n + 1, sizeof *out->meta_kv);
    const char *key;
    json_t *val;
    json_object_foreach(m, key, val) {
        if (!json_is_string(val)) {
            char k[200];
            printable(k, sizeof k, key);
            return rt_fail(e, "%s: '__metadata__' value of '%s' must be a string", label, k);
        }
        out->meta_kv[2 * out->nmeta] = dup_str(key);
        out->meta_kv[2 * out->nmeta + 1] = dup_str(json_string_value(val));
        out->nmeta++;
    }
    return true;
}

static bool parse_json(Src *s, json_t *root, uint64_t data_start, RtSafetensors *out, RtError *e) {
    const char *label = s->label;
    if (!json_is_object(root)) return rt_fail(e, "%s: bad JSON header: expected an object", label);
    size_t n = json_object_size(root);
    if (n > 1000000) return rt_fail(e, "%s: too many tensors", label);
    Entry *t = rt_calloc(n ? n : 1, sizeof *t);
    int nt = 0;
    bool ok = true;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!parse_metadata(label, val, out, e)) {
                ok = false;
                break;
            }
        } else if (!parse_entry(label, key, val, &t[nt++], e)) {
            ok = false;
            break;
        }
    }
    if (ok) ok = check_layout(label, t, nt, s->size - data_start, e);
    if (ok) {
        out->tensors = rt_calloc((size_t)nt ? (size_t)nt : 1, sizeof *out->tensors);
        for (int i = 0; i < nt && ok; i++) {
            RtArray *a = &out->tensors[i];
            a->name = dup_str(t[i].name);
            a->dtype = t[i].dtype;
            a->ndim = t[i].ndim;
            memcpy(a->shape, t[i].shape, sizeof a->shape);
            a->itemsize = t[i].itemsize;
            a->data = rt_malloc((size_t)(t[i].end - t[i].begin));
            out->n++;
            ok = src_read(s, data_start + t[i].begin, a->data, (size_t)(t[i].end - t[i].begin), e);
        }
    }
    rt_free(t);
    return ok;
}

static bool read_src(Src *s, RtSafetensors *out, RtError *e) {
    memset(out, 0, sizeof *out);
    uint8_t len8[8];
    if (s->size < 8)
        return rt_fail(e, "%s: truncated: file has %llu bytes, a safetensors file starts with an 8-byte header "
                          "length", s->label, (unsigned long long)s->size);
    if (!src_read(s, 0, len8, 8, e)) return false;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | len8[i];
    if (hl > s->size - 8)
        return rt_fail(e, "%s: header length %llu is beyond the end of the file (%llu bytes)", s->label,
                       (unsigned long long)hl, (unsigned long long)s->size);
    if (hl > ST_MAX_HEADER)
        return rt_fail(e, "%s: header length %llu is over the limit of %llu", s->label, (unsigned long long)hl,
                       ST_MAX_HEADER);
    char *text = rt_malloc((size_t)hl + 1);
    if (!src_read(s, 8, text, (size_t)hl, e)) {
        rt_free(text);
        return false;
    }
    json_error_t je;
    json_t *root = json_loadb(text, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    rt_free(text);
    if (!root) return rt_fail(e, "%s: bad JSON header: %s (at byte %d)", s->label, je.text, je.position);
    out->path = dup_str(s->label);
    bool ok = parse_json(s, root, 8 + hl, out, e);
    json_decref(root);
    if (!ok) rt_safetensors_free(out);
    return ok;
}

bool rt_safetensors_read(const char *path, RtSafetensors *out, RtError *e) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return rt_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rt_fail(e, "%s: not a regular file", path);
    }
    Src s = {path, (uint64_t)st.st_size, f, NULL};
    bool ok = read_src(&s, out, e);
    fclose(f);
    return ok;
}

bool rt_safetensors_read_mem(const char *label, const void *buf, size_t len, RtSafetensors *out, RtError *e) {
    Src s = {label, len, NULL, buf};
    if (!buf) s.mem = (const uint8_t *)"";
    return read_src(&s, out, e);
}

/* ---- writing --------------------------------------------------------------------- */

static const char *st_dtype(RtDtype t, size_t *size) {
    switch (t) {
    case RT_F32: *size = 4; return "F32";
    case RT_F64: *size = 8; return "F64";
    case RT_I64: *size = 8; return "I64";
    default: return NULL;
    }
}

static const RtTensorOut *g_sort_tensors; /* qsort has no context argument in C11 */

/* 8-byte dtypes first, then by name: every tensor aligned, and the layout deterministic. */
static int by_align_name(const void *pa, const void *pb) {
    const RtTensorOut *a = &g_sort_tensors[*(const int *)pa], *b = &g_sort_tensors[*(const int *)pb];
    size_t sa = 0, sb = 0;
    st_dtype(a->dtype, &sa);
    st_dtype(b->dtype, &sb);
    if (sa != sb) return sa > sb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static json_t *int_list(const int64_t *v, int n) {
    json_t *l = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(l, json_integer((json_int_t)v[i]));
    return l;
}

bool rt_safetensors_write(const char *path, const RtTensorOut *t, int n, const char *const *meta_kv, int nmeta,
                          RtError *e) {
    size_t isz;
    for (int i = 0; i < n; i++) {
        if (!t[i].name || strcmp(t[i].name, "__metadata__") == 0)
            return rt_fail(e, "%s: tensor %d has no usable name", path, i);
        if (!st_dtype(t[i].dtype, &isz))
            return rt_fail(e, "%s: tensor '%s': cannot write %s tensors", path, t[i].name, rt_dtype_name(t[i].dtype));
        if (t[i].ndim < 0 || t[i].ndim > RT_MAX_DIMS)
            return rt_fail(e, "%s: tensor '%s': %d dimensions", path, t[i].name, t[i].ndim);
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0) return rt_fail(e, "%s: tensor '%s': negative extent", path, t[i].name);
        for (int j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0) return rt_fail(e, "%s: tensor '%s' given twice", path, t[i].name);
    }
    int *order = rt_calloc((size_t)n + 1, sizeof *order);
    uint64_t *size = rt_calloc((size_t)n + 1, sizeof *size);
    for (int i = 0; i < n; i++) order[i] = i;
    g_sort_tensors = t;
    qsort(order, (size_t)n, sizeof *order, by_align_name);
    json_t *root = json_object();
    bool ok = true;
    uint64_t off = 0;
    for (int k = 0; k < n && ok; k++) {
        const RtTensorOut *x = &t[order[k]];
        const char *dt = st_dtype(x->dtype, &isz);
        uint64_t bytes = isz;
        for (int d = 0; d < x->ndim; d++) bytes *= (uint64_t)x->shape[d];
        size[order[k]] = bytes;
        const int64_t offs[2] = {(int64_t)off, (int64_t)(off + bytes)};
        off += bytes;
        json_t *o = json_object();
        json_object_set_new(o, "dtype", json_string(dt));
        json_object_set_new(o, "shape", int_list(x->shape, x->ndim));
        json_object_set_new(o, "data_offsets", int_list(offs, 2));
        if (json_object_set_new(root, x->name, o) != 0) ok = rt_fail(e, "%s: tensor name '%s' is not UTF-8", path, x->name);
    }
    if (ok && nmeta > 0) {
        json_t *m = json_object();
        for (int i = 0; i < nmeta && ok; i++) {
            json_t *v = json_string(meta_kv[2 * i + 1]);
            if (!v || json_object_get(m, meta_kv[2 * i]) || json_object_set_new(m, meta_kv[2 * i], v) != 0)
                ok = rt_fail(e, "%s: metadata key '%s' is repeated or not UTF-8", path, meta_kv[2 * i]);
        }
        json_object_set_new(root, "__metadata__", m);
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (ok && !text) ok = rt_fail(e, "%s: cannot encode the header", path);
    RtAtomic at;
    if (ok) ok = rt_atomic_open(&at, path, e);
    if (ok) {
        size_t tl = strlen(text), hl = (tl + 7) / 8 * 8; /* 8 + hl is a multiple of 8 */
        uint8_t len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
        fwrite(len8, 1, 8, at.f);
        fwrite(text, 1, tl, at.f);
        for (size_t i = tl; i < hl; i++) fputc(' ', at.f);
        for (int k = 0; k < n; k++)
            if (size[order[k]]) fwrite(t[order[k]].data, 1, (size_t)size[order[k]], at.f);
        ok = rt_atomic_commit(&at, e);
    }
    free(text); /* json_dumps allocates with malloc */
    rt_free(order);
    rt_free(size);
    return ok;
}
