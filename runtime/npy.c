/* runtime/npy.c: NumPy .npy files (format versions 1.0, 2.0 and 3.0).
 *
 * The header is a Python dict literal, {'descr': '<f4', 'fortran_order': False,
 * 'shape': (16980, 17, 3), }, padded with spaces. It is parsed by hand and strictly:
 * exactly the three keys, a plain dtype string, True/False, a tuple of integers.
 * Anything else is an error that says what was expected where, rather than a guess.
 * Data is read in the host's order, which must be little-endian (all we target). */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/rt.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the runtime reads little-endian data in place: a big-endian host needs byte swapping"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAX_HEADER (1u << 20) /* far above any real header, far below a bad allocation */

typedef struct NpyHeader {
    RtDtype dtype;
    size_t itemsize;
    int ndim;
    int64_t shape[RT_MAX_DIMS];
    uint64_t data_offset; /* preamble + header */
    uint64_t data_bytes;
    char descr[40];
} NpyHeader;

/* ---- the header dict ------------------------------------------------------------- */

typedef struct Lex {
    const char *label;
    const char *s;
    size_t n, i;
    RtError *e;
} Lex;

static bool bad(Lex *l, const char *what) {
    return rt_fail(l->e, "%s: bad .npy header at column %zu: %s", l->label, l->i + 1, what);
}

static void skip_ws(Lex *l) {
    while (l->i < l->n && (l->s[l->i] == ' ' || l->s[l->i] == '\t' || l->s[l->i] == '\n' ||
                           l->s[l->i] == '\r'))
        l->i++;
}

static bool eat(Lex *l, char c) {
    skip_ws(l);
    if (l->i < l->n && l->s[l->i] == c) {
        l->i++;
        return true;
    }
    return false;
}

/* A quoted string of printable ASCII without escapes, into buf. */
static bool lex_string(Lex *l, char *buf, size_t n) {
    skip_ws(l);
    if (l->i >= l->n || (l->s[l->i] != '\'' && l->s[l->i] != '"')) return bad(l, "expected a quoted string");
    char q = l->s[l->i++];
    size_t len = 0;
    for (;;) {
        if (l->i >= l->n) return bad(l, "unterminated string");
        char c = l->s[l->i];
        if (c == q) break;
        if (c == '\\') return bad(l, "escape sequences are not supported");
        if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e) return bad(l, "unexpected character in string");
        if (len + 1 >= n) return bad(l, "string too long");
        buf[len++] = c;
        l->i++;
    }
    l->i++;
    buf[len] = 0;
    return true;
}

static bool lex_word(Lex *l, const char *w) {
    size_t n = strlen(w);
    if (l->n - l->i >= n && memcmp(l->s + l->i, w, n) == 0) {
        size_t j = l->i + n;
        if (j < l->n && ((l->s[j] >= 'a' && l->s[j] <= 'z') || (l->s[j] >= 'A' && l->s[j] <= 'Z') ||
                         (l->s[j] >= '0' && l->s[j] <= '9') || l->s[j] == '_'))
            return false;
        l->i = j;
        return true;
    }
    return false;
}

/* A non-negative decimal integer as Python 3 writes it (no leading zeros, no '_'). */
static bool lex_int(Lex *l, int64_t *v) {
    skip_ws(l);
    size_t start = l->i;
    int64_t x = 0;
    while (l->i < l->n && l->s[l->i] >= '0' && l->s[l->i] <= '9') {
        int d = l->s[l->i] - '0';
        if (x > (INT64_MAX - d) / 10) return bad(l, "dimension too large");
        x = x * 10 + d;
        l->i++;
    }
    if (l->i == start) return bad(l, "expected a non-negative integer");
    if (l->s[start] == '0' && l->i - start > 1) return bad(l, "leading zeros in an integer");
    *v = x;
    return true;
}

static bool parse_shape(Lex *l, NpyHeader *h) {
    if (!eat(l, '(')) return bad(l, "expected '(' starting the shape tuple");
    h->ndim = 0;
    if (eat(l, ')')) return true;
    for (;;) {
        if (h->ndim == RT_MAX_DIMS)
            return rt_fail(l->e, "%s: more than %d dimensions are not supported", l->label, RT_MAX_DIMS);
        if (!lex_int(l, &h->shape[h->ndim++])) return false;
        if (eat(l, ')')) {
            /* (98) is an int in Python, not a tuple */
            if (h->ndim == 1) return bad(l, "a one-element shape needs a trailing comma, (n,)");
            return true;
        }
        if (!eat(l, ',')) return bad(l, "expected ',' or ')' in the shape tuple");
        if (eat(l, ')')) return true;
    }
}

static bool parse_dict(Lex *l, NpyHeader *h, bool *fortran) {
    bool seen[3] = {false, false, false};
    if (!eat(l, '{')) return bad(l, "expected '{'");
    for (;;) {
        if (eat(l, '}')) break;
        char key[32];
        if (!lex_string(l, key, sizeof key)) return false;
        int k = strcmp(key, "descr") == 0 ? 0 : strcmp(key, "fortran_order") == 0 ? 1
              : strcmp(key, "shape") == 0 ? 2 : -1;
        if (k < 0) return rt_fail(l->e, "%s: bad .npy header: unknown key '%s'", l->label, key);
        if (seen[k]) return rt_fail(l->e, "%s: bad .npy header: key '%s' twice", l->label, key);
        seen[k] = true;
        if (!eat(l, ':')) return bad(l, "expected ':'");
        skip_ws(l);
        if (k == 0) {
            if (l->i < l->n && l->s[l->i] == '[')
                return rt_fail(l->e, "%s: unsupported dtype: structured arrays are not supported", l->label);
            if (!lex_string(l, h->descr, sizeof h->descr)) return false;
        } else if (k == 1) {
            if (lex_word(l, "True")) *fortran = true;
            else if (lex_word(l, "False")) *fortran = false;
            else return bad(l, "expected True or False");
        } else if (!parse_shape(l, h)) {
            return false;
        }
        if (eat(l, '}')) break;
        if (!eat(l, ',')) return bad(l, "expected ',' or '}'");
    }
    skip_ws(l);
    if (l->i != l->n) return bad(l, "unexpected text after '}'");
    static const char *const names[3] = {"descr", "fortran_order", "shape"};
    for (int k = 0; k < 3; k++)
        if (!seen[k]) return rt_fail(l->e, "%s: bad .npy header: no '%s' key", l->label, names[k]);
    return true;
}

static bool parse_descr(const char *label, NpyHeader *h, RtError *e) {
    static const struct { const char *d; RtDtype t; size_t size; } known[] = {
        {"<f4", RT_F32, 4}, {"<f8", RT_F64, 8}, {"<i8", RT_I64, 8},
        {"<i4", RT_I32, 4}, {"|u1", RT_U8, 1},  {"|b1", RT_BOOL, 1},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(h->descr, known[i].d) == 0) {
            h->dtype = known[i].t;
            h->itemsize = known[i].size;
            return true;
        }
    const char *d = h->descr;
    if (d[0] == '<' && d[1] == 'U' && d[2] >= '1' && d[2] <= '9') {
        unsigned long long n = 0;
        const char *p = d + 2;
        while (*p >= '0' && *p <= '9' && n < 1000000) n = n * 10 + (unsigned)(*p++ - '0');
        if (*p == 0 && n < 1000000) {
            h->dtype = RT_STR;
            h->itemsize = (size_t)n * 4;
            return true;
        }
    }
    if (d[0] == '>' && d[1] != 0 && strcmp(d + 1, "u1") != 0 && strcmp(d + 1, "b1") != 0)
        return rt_fail(e, "%s: big-endian dtype '%s' is not supported (convert with a.astype('<%s'))", label,
                       d, d + 1);
    return rt_fail(e, "%s: unsupported dtype '%s' (supported: <f4 <f8 <i8 <i4 |u1 |b1 <U)", label, d);
}

static const char *header_shape(const NpyHeader *h, char *buf, size_t n) {
    RtArray a = {.ndim = h->ndim};
    memcpy(a.shape, h->shape, sizeof a.shape);
    return rt_shape_str(&a, buf, n);
}

/* The preamble (magic, version, header length) from the first bytes of the file. */
static bool parse_preamble(const char *label, const uint8_t *p, size_t avail, uint64_t total,
                           uint64_t *hdr_start, uint64_t *hdr_len, RtError *e) {
    size_t m = avail < 6 ? avail : 6;
    if (avail >= 4 && memcmp(p, "PK\x03\x04", 4) == 0)
        return rt_fail(e, "%s: not a .npy file (bad magic; it is a zip archive, a .npz?)", label);
    if (memcmp(p, NPY_MAGIC, m) != 0 || total < 6) return rt_fail(e, "%s: not a .npy file (bad magic)", label);
    if (total < 8)
        return rt_fail(e, "%s: truncated: file has %llu bytes, a .npy preamble needs at least 10", label,
                       (unsigned long long)total);
    int major = p[6], minor = p[7];
    if ((major < 1 || major > 3) || minor != 0)
        return rt_fail(e, "%s: unsupported .npy format version %d.%d (supported: 1.0, 2.0, 3.0)", label, major,
                       minor);
    uint64_t start = major == 1 ? 10 : 12;
    if (total < start)
        return rt_fail(e, "%s: truncated: file has %llu bytes, a version %d.0 preamble needs %llu", label,
                       (unsigned long long)total, major, (unsigned long long)start);
    uint64_t len = major == 1 ? (uint64_t)p[8] | (uint64_t)p[9] << 8
                              : (uint64_t)p[8] | (uint64_t)p[9] << 8 | (uint64_t)p[10] << 16 |
                                    (uint64_t)p[11] << 24;
    if (len > total - start)
        return rt_fail(e, "%s: truncated: the header says it is %llu bytes, the file has %llu after the preamble",
                       label, (unsigned long long)len, (unsigned long long)(total - start));
    if (len > NPY_MAX_HEADER)
        return rt_fail(e, "%s: a .npy header of %llu bytes is too long", label, (unsigned long long)len);
    *hdr_start = start;
    *hdr_len = len;
    return true;
}

/* The dict, then the data size from dtype and shape against the bytes the file has. */
static bool parse_header(const char *label, const char *text, size_t len, uint64_t data_offset, uint64_t total,
                         NpyHeader *h, RtError *e) {
    memset(h, 0, sizeof *h);
    bool fortran = false;
    Lex l = {label, text, len, 0, e};
    if (!parse_dict(&l, h, &fortran)) return false;
    if (!parse_descr(label, h, e)) return false;
    char sh[200];
    if (fortran)
        return rt_fail(e, "%s: fortran_order is True; only C-order arrays are supported "
                          "(save with np.ascontiguousarray)", label);
    uint64_t bytes = h->itemsize;
    for (int i = 0; i < h->ndim; i++) {
        uint64_t d = (uint64_t)h->shape[i];
        if (d && bytes > (uint64_t)INT64_MAX / d)
            return rt_fail(e, "%s: shape %s is too large", label, header_shape(h, sh, sizeof sh));
        bytes *= d;
    }
    if (bytes > SIZE_MAX) return rt_fail(e, "%s: shape %s is too large", label, header_shape(h, sh, sizeof sh));
    h->data_offset = data_offset;
    h->data_bytes = bytes;
    uint64_t have = total - data_offset;
    if (have < bytes)
        return rt_fail(e, "%s: truncated: header says shape %s %s (%llu bytes of data), file has %llu", label,
                       header_shape(h, sh, sizeof sh), rt_dtype_name(h->dtype), (unsigned long long)bytes,
                       (unsigned long long)have);
    if (have > bytes)
        return rt_fail(e, "%s: %llu unexpected bytes after the data of shape %s %s", label,
                       (unsigned long long)(have - bytes), header_shape(h, sh, sizeof sh),
                       rt_dtype_name(h->dtype));
    return true;
}

/* ---- the data -------------------------------------------------------------------- */

static size_t put_utf8(char *o, uint32_t c) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | c >> 6);
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12);
        o[1] = (char)(0x80 | (c >> 6 & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18);
    o[1] = (char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (char)(0x80 | (c >> 6 & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Fixed-width UCS-4 strings (NumPy pads with NULs at the end) to UTF-8 strings. */
static bool decode_strings(const char *label, const NpyHeader *h, const uint8_t *raw, int64_t count,
                           char ***out, RtError *e) {
    size_t width = h->itemsize / 4;
    char **s = rt_calloc((size_t)count ? (size_t)count : 1, sizeof *s);
    for (int64_t k = 0; k < count; k++) {
        const uint8_t *p = raw + (size_t)k * h->itemsize;
        size_t len = width;
        while (len > 0 && get_u32(p + 4 * (len - 1)) == 0) len--;
        char *o = rt_malloc(4 * len + 1), *q = o;
        for (size_t i = 0; i < len; i++) {
            uint32_t c = get_u32(p + 4 * i);
            if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
                rt_free(o);
                for (int64_t j = 0; j < k; j++) rt_free(s[j]);
                rt_free(s);
                return rt_fail(e, "%s: string %lld has an invalid character U+%04X", label, (long long)k,
                               (unsigned)c);
            }
            q += put_utf8(q, c);
        }
        *q = 0;
        s[k] = o;
    }
    *out = s;
    return true;
}

/* Takes raw (the data bytes, rt_malloc'd) and fills out, or frees raw and fails. */
static bool finish(const char *label, const NpyHeader *h, uint8_t *raw, RtArray *out, RtError *e) {
    memset(out, 0, sizeof *out);
    out->dtype = h->dtype;
    out->ndim = h->ndim;
    memcpy(out->shape, h->shape, sizeof out->shape);
    out->itemsize = h->itemsize;
    int64_t count = rt_array_count(out);
    if (h->dtype == RT_BOOL) {
        for (int64_t i = 0; i < count; i++)
            if (raw[i] > 1) {
                int v = raw[i];
                rt_free(raw);
                return rt_fail(e, "%s: bool element %lld has the value %d (expected 0 or 1)", label,
                               (long long)i, v);
            }
    }
    if (h->dtype == RT_STR) {
        char **s = NULL;
        bool ok = decode_strings(label, h, raw, count, &s, e);
        rt_free(raw);
        if (!ok) return false;
        out->data = s;
        return true;
    }
    out->data = raw;
    return true;
}

bool rt_npy_read_mem(const char *label, const void *buf, size_t len, RtArray *out, RtError *e) {
    const uint8_t *p = buf;
    uint64_t hs = 0, hl = 0;
    NpyHeader h;
    memset(out, 0, sizeof *out);
    if (!parse_preamble(label, p, len < 12 ? len : 12, len, &hs, &hl, e)) return false;
    if (!parse_header(label, (const char *)p + hs, hl, hs + hl, len, &h, e)) return false;
    uint8_t *raw = rt_malloc(h.data_bytes);
    memcpy(raw, p + h.data_offset, h.data_bytes);
    return finish(label, &h, raw, out, e);
}

static bool read_exact(FILE *f, void *buf, size_t n, const char *path, RtError *e) {
    if (n && fread(buf, 1, n, f) != n)
        return rt_fail(e, "%s: cannot read: %s", path, ferror(f) ? strerror(errno) : "unexpected end of file");
    return true;
}

bool rt_npy_read(const char *path, RtArray *out, RtError *e) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return rt_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rt_fail(e, "%s: not a regular file", path);
    }
    uint64_t total = (uint64_t)st.st_size;
    uint8_t pre[12];
    size_t npre = total < 12 ? (size_t)total : 12;
    uint64_t hs = 0, hl = 0;
    NpyHeader h;
    bool ok = read_exact(f, pre, npre, path, e) && parse_preamble(path, pre, npre, total, &hs, &hl, e);
    if (ok) {
        char *text = rt_malloc(hl ? hl : 1);
        size_t have = npre - (size_t)hs; /* header bytes already in pre (a version 1.0 preamble is 10) */
        memcpy(text, pre + hs, have < hl ? have : hl);
        ok = (have >= hl || read_exact(f, text + have, hl - have, path, e)) &&
             parse_header(path, text, hl, hs + hl, total, &h, e);
        rt_free(text);
        if (ok && npre > hs + hl) { /* a tiny header: data began inside pre */
            ok = fseek(f, (long)(hs + hl), SEEK_SET) == 0;
            if (!ok) rt_fail(e, "%s: cannot seek: %s", path, strerror(errno));
        }
    }
    if (ok) {
        uint8_t *raw = rt_malloc(h.data_bytes);
        if (!read_exact(f, raw, h.data_bytes, path, e)) {
            rt_free(raw);
            ok = false;
        } else {
            ok = finish(path, &h, raw, out, e);
        }
    }
    fclose(f);
    return ok;
}

/* ---- writing --------------------------------------------------------------------- */

size_t rt_npy_header(const RtArray *a, char *buf, size_t n) {
    static const char *const descr[] = {[RT_F32] = "<f4", [RT_F64] = "<f8", [RT_I64] = "<i8",
                                        [RT_I32] = "<i4", [RT_U8] = "|u1",  [RT_BOOL] = "|b1"};
    if ((unsigned)a->dtype > RT_STR || a->ndim < 0 || a->ndim > RT_MAX_DIMS) return 0;
    if (a->dtype == RT_STR && (a->itemsize < 4 || a->itemsize % 4)) return 0;
    char dict[256], str_descr[32];
    if (a->dtype == RT_STR) snprintf(str_descr, sizeof str_descr, "<U%zu", a->itemsize / 4);
    size_t len = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                                  a->dtype == RT_STR ? str_descr : descr[a->dtype]);
    for (int i = 0; i < a->ndim; i++)
        len += (size_t)snprintf(dict + len, sizeof dict - len, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    len += (size_t)snprintf(dict + len, sizeof dict - len, "%s), }", a->ndim == 1 ? "," : "");
    /* NumPy pads with spaces and a final newline so that the data starts 64-byte aligned. */
    size_t total = (10 + len + 1 + 63) / 64 * 64;
    if (total > n || total - 10 > 65535) return 0;
    memcpy(buf, NPY_MAGIC "\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xFF);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, len);
    memset(buf + 10 + len, ' ', total - 10 - len - 1);
    buf[total - 1] = '\n';
    return total;
}

bool rt_npy_write(const char *path, const RtArray *a, RtError *e) {
    char hdr[320];
    size_t hl = rt_npy_header(a, hdr, sizeof hdr);
    if (!hl) return rt_fail(e, "%s: cannot write %s arrays to .npy", path, rt_dtype_name(a->dtype));
    RtAtomic at;
    if (!rt_atomic_open(&at, path, e)) return false;
    size_t bytes = (size_t)rt_array_count(a) * (a->dtype == RT_F32 || a->dtype == RT_I32 ? 4
                                                : a->dtype == RT_U8 || a->dtype == RT_BOOL ? 1 : 8);
    fwrite(hdr, 1, hl, at.f);
    if (bytes) fwrite(a->data, 1, bytes, at.f);
    return rt_atomic_commit(&at, e);
}
