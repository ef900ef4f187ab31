/* runtime/npz.c: .npz files, zip archives of .npy members (what np.savez writes).
 * Reading goes through libzip (stored and deflated members, CRCs checked); writing
 * emits a plain stored zip by hand, streamed into an atomic file, with a fixed
 * timestamp so that the same arrays always give the same bytes. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>
#include <zlib.h>

#include "runtime/rt.h"

/* Deflate cannot expand more than about 1032:1; a directory entry claiming more is
 * corrupt, and believing it would allocate without bound. */
#define DEFLATE_MAX_RATIO 1032u

static char *dup_n(const char *s, size_t n) {
    char *p = rt_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* A name fit for a one-line message: non-printable bytes become '?'. */
static void printable(char *dst, size_t n, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
    dst[i] = 0;
}

void rt_npz_free(RtNpz *z) {
    if (!z) return;
    for (int i = 0; i < z->n; i++) rt_array_free(&z->arrays[i]);
    rt_free(z->arrays);
    rt_free(z->path);
    memset(z, 0, sizeof *z);
}

static bool read_member(const char *label, zip_t *za, zip_uint64_t i, RtArray *arr, RtError *e) {
    zip_stat_t st;
    char shown[300];
    if (zip_stat_index(za, i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE) ||
        !(st.valid & ZIP_STAT_COMP_SIZE) || !(st.valid & ZIP_STAT_COMP_METHOD))
        return rt_fail(e, "%s: cannot read the zip directory entry %llu: %s", label, (unsigned long long)i,
                       zip_strerror(za));
    printable(shown, sizeof shown, st.name);
    size_t nl = strlen(st.name);
    if (nl < 4 || strcmp(st.name + nl - 4, ".npy") != 0)
        return rt_fail(e, "%s: member '%s' is not a .npy file", label, shown);
    shown[nl - 4 < sizeof shown ? nl - 4 : sizeof shown - 1] = 0;
    char what[400];
    snprintf(what, sizeof what, "%s: array '%s'", label, shown);
    if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
        return rt_fail(e, "%s: unsupported compression method %d (stored and deflated are supported)", what,
                       (int)st.comp_method);
    if ((st.comp_method == ZIP_CM_STORE && st.size != st.comp_size) ||
        (st.comp_method == ZIP_CM_DEFLATE && st.size / DEFLATE_MAX_RATIO > st.comp_size + 64) ||
        st.size > SIZE_MAX / 2)
        return rt_fail(e, "%s: corrupt zip entry (%llu bytes from %llu compressed)", what,
                       (unsigned long long)st.size, (unsigned long long)st.comp_size);
    zip_file_t *zf = zip_fopen_index(za, i, 0);
    if (!zf) return rt_fail(e, "%s: cannot read: %s", what, zip_strerror(za));
    uint8_t *buf = rt_malloc((size_t)st.size);
    zip_int64_t got = zip_fread(zf, buf, st.size);
    bool ok = true;
    if (got < 0) {
        ok = rt_fail(e, "%s: cannot read: %s", what, zip_file_strerror(zf));
    } else if ((zip_uint64_t)got != st.size) {
        ok = rt_fail(e, "%s: truncated zip member: %llu of %llu bytes", what, (unsigned long long)got,
                     (unsigned long long)st.size);
    } else {
        /* Reading on to the end is what makes libzip check the CRC. */
        uint8_t extra;
        zip_int64_t more = zip_fread(zf, &extra, 1);
        if (more < 0) ok = rt_fail(e, "%s: cannot read: %s", what, zip_file_strerror(zf));
        else if (more > 0) ok = rt_fail(e, "%s: zip member longer than its directory entry says", what);
    }
    zip_fclose(zf);
    if (ok) ok = rt_npy_read_mem(what, buf, (size_t)st.size, arr, e);
    rt_free(buf);
    if (ok) arr->name = dup_n(st.name, nl - 4);
    return ok;
}

static bool read_archive(const char *label, zip_t *za, RtNpz *out, RtError *e) {
    zip_int64_t n = zip_get_num_entries(za, 0);
    if (n < 0) return rt_fail(e, "%s: cannot read the zip directory: %s", label, zip_strerror(za));
    if (n > 1000000) return rt_fail(e, "%s: %lld members are too many", label, (long long)n);
    out->path = dup_n(label, strlen(label));
    out->arrays = rt_calloc((size_t)n ? (size_t)n : 1, sizeof *out->arrays);
    for (zip_int64_t i = 0; i < n; i++) {
        if (!read_member(label, za, (zip_uint64_t)i, &out->arrays[i], e)) {
            rt_npz_free(out);
            return false;
        }
        out->n++;
        for (int j = 0; j < out->n - 1; j++)
            if (strcmp(out->arrays[j].name, out->arrays[out->n - 1].name) == 0) {
                char shown[300];
                printable(shown, sizeof shown, out->arrays[j].name);
                rt_npz_free(out);
                return rt_fail(e, "%s: array '%s' appears twice", label, shown);
            }
    }
    return true;
}

static bool open_failed(const char *label, int code, RtError *e) {
    if (code == ZIP_ER_NOENT) return rt_fail(e, "%s: cannot open: %s", label, strerror(ENOENT));
    if (code == ZIP_ER_NOZIP) return rt_fail(e, "%s: not a .npz file (not a zip archive)", label);
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    rt_fail(e, "%s: cannot open as a .npz (zip) file: %s", label, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return false;
}

bool rt_npz_read(const char *path, RtNpz *out, RtError *e) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) return rt_fail(e, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return rt_fail(e, "%s: not a regular file", path);
    if (st.st_size == 0) return rt_fail(e, "%s: not a .npz file (empty)", path);
    int code = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!za) return open_failed(path, code, e);
    bool ok = read_archive(path, za, out, e);
    zip_discard(za);
    return ok;
}

bool rt_npz_read_mem(const char *label, const void *buf, size_t len, RtNpz *out, RtError *e) {
    memset(out, 0, sizeof *out);
    if (len == 0) return rt_fail(e, "%s: not a .npz file (empty)", label);
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
    if (!src) {
        zip_error_fini(&ze);
        return rt_fail(e, "%s: cannot read from memory", label);
    }
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!za) {
        int code = zip_error_code_zip(&ze);
        zip_source_free(src);
        zip_error_fini(&ze);
        return open_failed(label, code, e);
    }
    zip_error_fini(&ze);
    bool ok = read_archive(label, za, out, e); /* the archive owns src now */
    zip_discard(za);
    return ok;
}

/* ---- checked access -------------------------------------------------------------- */

static void names_list(const RtNpz *z, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < z->n; i++) {
        char shown[200];
        printable(shown, sizeof shown, z->arrays[i].name);
        size_t need = strlen(shown) + (i ? 2 : 0);
        if (used + need + 6 >= n) { /* keep room for ", ..." */
            snprintf(buf + used, n - used, "%s...", i ? ", " : "");
            return;
        }
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", shown);
    }
}

static void index_str(const RtArray *a, int64_t flat, char *buf, size_t n) {
    int64_t idx[RT_MAX_DIMS];
    for (int d = a->ndim - 1; d >= 0; d--) {
        idx[d] = a->shape[d] ? flat % a->shape[d] : 0;
        flat = a->shape[d] ? flat / a->shape[d] : 0;
    }
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < a->ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* Widening conversions done in place, so that the array keeps one representation. */
static void convert(RtArray *a, RtDtype to) {
    size_t n = (size_t)rt_array_count(a);
    if (a->dtype == RT_F64 && to == RT_F32) {
        float *f = rt_malloc(n * sizeof *f);
        const double *d = a->data;
        for (size_t i = 0; i < n; i++) f[i] = (float)d[i];
        rt_free(a->data);
        a->data = f;
        a->itemsize = 4;
    } else if (a->dtype == RT_I32 && to == RT_I64) {
        int64_t *w = rt_malloc(n * sizeof *w);
        const int32_t *s = a->data;
        for (size_t i = 0; i < n; i++) w[i] = s[i];
        rt_free(a->data);
        a->data = w;
        a->itemsize = 8;
    }
    a->dtype = to;
}

const RtArray *rt_npz_get(const RtNpz *z, const char *name, RtDtype want, int ndim, const int64_t *shape,
                          RtError *e) {
    RtArray *a = NULL;
    for (int i = 0; i < z->n && !a; i++)
        if (strcmp(z->arrays[i].name, name) == 0) a = &z->arrays[i];
    if (!a) {
        char names[700];
        names_list(z, names, sizeof names);
        rt_fail(e, "%s: no array '%s' (it has: %s)", z->path, name, z->n ? names : "no arrays");
        return NULL;
    }
    if (a->dtype != want) {
        if ((a->dtype == RT_F64 && want == RT_F32) || (a->dtype == RT_I32 && want == RT_I64)) {
            convert(a, want);
        } else {
            rt_fail(e, "%s: array '%s': expected %s, got %s", z->path, name, rt_dtype_name(want),
                    rt_dtype_name(a->dtype));
            return NULL;
        }
    }
    bool shape_ok = ndim < 0 || a->ndim == ndim;
    for (int d = 0; shape_ok && shape && ndim >= 0 && d < ndim; d++)
        if (shape[d] >= 0 && a->shape[d] != shape[d]) shape_ok = false;
    if (!shape_ok) {
        char want_s[200], got_s[200];
        size_t used = (size_t)snprintf(want_s, sizeof want_s, "[");
        for (int d = 0; d < ndim && used < sizeof want_s; d++) {
            if (shape && shape[d] >= 0)
                used += (size_t)snprintf(want_s + used, sizeof want_s - used, "%s%lld", d ? ", " : "",
                                         (long long)shape[d]);
            else
                used += (size_t)snprintf(want_s + used, sizeof want_s - used, "%s%s", d ? ", " : "",
                                         d == 0 ? "N" : "*");
        }
        if (used < sizeof want_s) snprintf(want_s + used, sizeof want_s - used, "]");
        rt_fail(e, "%s: array '%s': expected shape %s, got %s", z->path, name, want_s,
                rt_shape_str(a, got_s, sizeof got_s));
        return NULL;
    }
    int64_t n = rt_array_count(a);
    for (int64_t i = 0; i < n && (a->dtype == RT_F32 || a->dtype == RT_F64); i++) {
        double v = a->dtype == RT_F32 ? (double)((const float *)a->data)[i] : ((const double *)a->data)[i];
        if (!isfinite(v)) {
            char at[200];
            index_str(a, i, at, sizeof at);
            rt_fail(e, "%s: array '%s': element %s is %s", z->path, name, at, isnan(v) ? "NaN" : "Inf");
            return NULL;
        }
    }
    return a;
}

/* ---- writing: a stored zip, by hand ---------------------------------------------- */

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    put16(p, v & 0xFFFF);
    put16(p + 2, v >> 16);
}

#define ZIP_DOS_DATE_1980 0x0021 /* 1980-01-01, as NumPy's zipfile writes it */

typedef struct Member {
    uint32_t crc, size, offset;
    size_t name_len;
    char *name;
} Member;

/* The fields common to the local header (from offset 4) and the central directory
 * entry (from offset 6): version needed, flags, method, time, date, crc, sizes, name length. */
static void common_fields(uint8_t *p, const Member *m) {
    bool ascii = true;
    for (size_t i = 0; i < m->name_len; i++) ascii = ascii && (unsigned char)m->name[i] < 0x80;
    put16(p, 20);
    put16(p + 2, ascii ? 0 : 0x0800); /* bit 11: the name is UTF-8 */
    put16(p + 4, 0);                  /* stored */
    put16(p + 6, 0);
    put16(p + 8, ZIP_DOS_DATE_1980);
    put32(p + 10, m->crc);
    put32(p + 14, m->size);
    put32(p + 18, m->size);
    put16(p + 22, (unsigned)m->name_len);
    put16(p + 24, 0); /* no extra field */
}

/* str arrays as NumPy's <U: UTF-8 to fixed-width UCS-4, NUL-padded to itemsize bytes. */
static uint8_t *encode_strings(const char *path, const RtArray *a, RtError *e) {
    int64_t count = rt_array_count(a);
    size_t width = a->itemsize / 4;
    uint8_t *out = rt_calloc((size_t)count ? (size_t)count : 1, a->itemsize ? a->itemsize : 1);
    for (int64_t k = 0; k < count; k++) {
        const unsigned char *s = (const unsigned char *)((char *const *)a->data)[k];
        uint8_t *o = out + (size_t)k * a->itemsize;
        for (size_t n = 0; *s; n++) {
            uint32_t c = *s++;
            int more = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
            if (more) c &= 0x3Fu >> more;
            for (; more > 0 && (*s & 0xC0) == 0x80; more--) c = c << 6 | (*s++ & 0x3Fu);
            if (more || n >= width) {
                rt_free(out);
                return rt_fail(e, "%s: array '%s': string %lld is not UTF-8 of at most %zu characters", path,
                               a->name, (long long)k, width), NULL;
            }
            for (int b = 0; b < 4; b++) o[4 * n + (size_t)b] = (uint8_t)(c >> (8 * b));
        }
    }
    return out;
}

bool rt_npz_write(const char *path, const RtArray *arrays, int n, RtError *e) {
    if (n < 0 || n > 0xFFFF) return rt_fail(e, "%s: cannot write %d arrays", path, n);
    for (int i = 0; i < n; i++) {
        if (!arrays[i].name || !arrays[i].name[0] || strlen(arrays[i].name) > 1000)
            return rt_fail(e, "%s: array %d needs a name of 1 to 1000 bytes", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(arrays[i].name, arrays[j].name) == 0)
                return rt_fail(e, "%s: array '%s' given twice", path, arrays[i].name);
    }
    RtAtomic at;
    if (!rt_atomic_open(&at, path, e)) return false;
    Member *m = rt_calloc((size_t)n ? (size_t)n : 1, sizeof *m);
    uint64_t offset = 0;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        const RtArray *a = &arrays[i];
        char hdr[320];
        size_t hl = rt_npy_header(a, hdr, sizeof hdr);
        size_t isz = a->dtype == RT_STR ? a->itemsize
                     : a->dtype == RT_F32 || a->dtype == RT_I32 ? 4 : a->dtype == RT_U8 || a->dtype == RT_BOOL ? 1 : 8;
        uint64_t bytes = (uint64_t)rt_array_count(a) * isz;
        m[i].name_len = strlen(a->name) + 4;
        m[i].name = rt_malloc(m[i].name_len + 1);
        snprintf(m[i].name, m[i].name_len + 1, "%s.npy", a->name);
        if (!hl || hl + bytes > 0xFFFFFFFEu || offset > 0xFFFFFFFEu - 30 - m[i].name_len - hl - bytes) {
            ok = rt_fail(e, "%s: array '%s' is too large for a zip without zip64", path, a->name);
            break;
        }
        const uint8_t *payload = a->data;
        uint8_t *enc = NULL;
        if (a->dtype == RT_STR && !(payload = enc = encode_strings(path, a, e))) {
            ok = false;
            break;
        }
        uLong crc = crc32(0L, Z_NULL, 0);
        crc = crc32(crc, (const Bytef *)hdr, (uInt)hl);
        for (uint64_t done = 0; done < bytes;) { /* crc32 takes at most 4 GiB - 1 at a time */
            uInt chunk = bytes - done > (1u << 30) ? (1u << 30) : (uInt)(bytes - done);
            crc = crc32(crc, (const Bytef *)payload + done, chunk);
            done += chunk;
        }
        m[i].crc = (uint32_t)crc;
        m[i].size = (uint32_t)(hl + bytes);
        m[i].offset = (uint32_t)offset;
        uint8_t lh[30];
        put32(lh, 0x04034b50);
        common_fields(lh + 4, &m[i]);
        fwrite(lh, 1, sizeof lh, at.f);
        fwrite(m[i].name, 1, m[i].name_len, at.f);
        fwrite(hdr, 1, hl, at.f);
        if (bytes) fwrite(payload, 1, (size_t)bytes, at.f);
        rt_free(enc);
        offset += 30 + m[i].name_len + hl + bytes;
    }
    uint64_t cd_start = offset;
    for (int i = 0; i < n && ok; i++) {
        uint8_t ch[46];
        memset(ch, 0, sizeof ch);
        put32(ch, 0x02014b50);
        put16(ch + 4, 0x0314); /* made by: Unix, version 2.0 */
        common_fields(ch + 6, &m[i]);
        /* comment length, disk, internal attributes: 0 */
        put32(ch + 38, 0100644u << 16); /* external attributes: a regular file, rw-r--r-- */
        put32(ch + 42, m[i].offset);
        fwrite(ch, 1, sizeof ch, at.f);
        fwrite(m[i].name, 1, m[i].name_len, at.f);
        offset += 46 + m[i].name_len;
    }
    if (ok && offset > 0xFFFFFFFEu) ok = rt_fail(e, "%s: too large for a zip without zip64", path);
    if (ok) {
        uint8_t end[22];
        memset(end, 0, sizeof end);
        put32(end, 0x06054b50);
        put16(end + 8, (unsigned)n);
        put16(end + 10, (unsigned)n);
        put32(end + 12, (uint32_t)(offset - cd_start));
        put32(end + 16, (uint32_t)cd_start);
        fwrite(end, 1, sizeof end, at.f);
    }
    for (int i = 0; i < n; i++) rt_free(m[i].name);
    rt_free(m);
    if (!ok) {
        rt_atomic_abort(&at);
        return false;
    }
    return rt_atomic_commit(&at, e);
}
