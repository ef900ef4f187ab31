/* Tests of the runtime's file formats (.npy, .npz, safetensors), atomic writes and the
 * counter-based RNG. Files are built byte by byte here (or with libzip directly), so
 * the readers are checked against the formats, not against our own writers. Every
 * test runs inside a fresh temporary directory, so error messages name short paths. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

#include <cmocka.h>

#include "runtime/rt.h"
#include "support/philox.h"

static char g_dir[64];
static char g_cwd[4096];

static int setup(void **state) {
    if (!getcwd(g_cwd, sizeof g_cwd)) return -1;
    snprintf(g_dir, sizeof g_dir, "/tmp/test_rtio_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    return chdir(g_dir);
}

static int teardown(void **state) {
    DIR *d = opendir(g_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    if (chdir(g_cwd) != 0) return -1;
    return rmdir(g_dir);
}

static void write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* Entries of the test directory whose name contains ".tmp.". */
static int count_temporaries(void) {
    int n = 0;
    DIR *d = opendir(".");
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* A .npy file by hand: magic, version, header length, the dict padded with spaces
 * and a newline to a multiple of 16, then the data. */
static uint8_t g_npy[1 << 16];
static size_t make_npy(int major, const char *dict, const void *data, size_t n) {
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t end = (pre + dl + 1 + 15) / 16 * 16, hl = end - pre;
    memcpy(g_npy, "\x93NUMPY", 6);
    g_npy[6] = (uint8_t)major;
    g_npy[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) g_npy[8 + i] = (uint8_t)(hl >> (8 * i));
    memcpy(g_npy + pre, dict, dl);
    memset(g_npy + pre + dl, ' ', hl - dl - 1);
    g_npy[end - 1] = '\n';
    if (n) memcpy(g_npy + end, data, n);
    return end + n;
}

/* ---- arrays ---------------------------------------------------------------------- */

static void test_array_basics(void **state) {
    RtArray a = {.ndim = 3, .shape = {16980, 17, 3}};
    char buf[64];
    assert_int_equal(rt_array_count(&a), 16980 * 17 * 3);
    assert_string_equal(rt_shape_str(&a, buf, sizeof buf), "[16980, 17, 3]");
    RtArray s = {.ndim = 0};
    assert_int_equal(rt_array_count(&s), 1);
    assert_string_equal(rt_shape_str(&s, buf, sizeof buf), "[]");
    assert_string_equal(rt_shape_str(&a, buf, 6), "[1698"); /* clipped, still terminated */
    assert_string_equal(rt_dtype_name(RT_F32), "float32");
    assert_string_equal(rt_dtype_name(RT_F64), "float64");
    assert_string_equal(rt_dtype_name(RT_I64), "int64");
    assert_string_equal(rt_dtype_name(RT_I32), "int32");
    assert_string_equal(rt_dtype_name(RT_U8), "uint8");
    assert_string_equal(rt_dtype_name(RT_BOOL), "bool");
}

/* ---- .npy ------------------------------------------------------------------------ */

static void test_npy_read_handmade(void **state) {
    RtError e;
    RtArray a;
    const float f[6] = {1.5f, -2, 3, 0.25f, 5, 6e7f};
    size_t n = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    write_file("f.npy", g_npy, n);
    assert_true(rt_npy_read("f.npy", &a, &e));
    assert_int_equal(a.dtype, RT_F32);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_memory_equal(a.data, f, sizeof f);
    rt_array_free(&a);

    /* version 2.0, keys in another order, double quotes, a 0-d array */
    const int64_t v = -1234567890123;
    n = make_npy(2, "{\"shape\": (), 'descr': '<i8', 'fortran_order': False}", &v, sizeof v);
    assert_true(rt_npy_read_mem("v.npy", g_npy, n, &a, &e));
    assert_int_equal(a.dtype, RT_I64);
    assert_int_equal(a.ndim, 0);
    assert_int_equal(*(int64_t *)a.data, v);
    rt_array_free(&a);

    /* version 3.0, unicode: "ab", "h\u00e9llo", "\U0001F600" as <U5 (UCS-4, NUL padded) */
    uint32_t u[3][5] = {{'a', 'b'}, {'h', 0xE9, 'l', 'l', 'o'}, {0x1F600}};
    n = make_npy(3, "{'descr': '<U5', 'fortran_order': False, 'shape': (3,), }", u, sizeof u);
    write_file("u.npy", g_npy, n);
    assert_true(rt_npy_read("u.npy", &a, &e));
    assert_int_equal(a.dtype, RT_STR);
    assert_int_equal(a.itemsize, 20);
    char **s = a.data;
    assert_string_equal(s[0], "ab");
    assert_string_equal(s[1], "h\xc3\xa9llo");
    assert_string_equal(s[2], "\xf0\x9f\x98\x80");
    rt_array_free(&a);

    /* bool and uint8, and an empty array */
    const uint8_t b[4] = {1, 0, 0, 1};
    n = make_npy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2, 2), }", b, sizeof b);
    assert_true(rt_npy_read_mem("b.npy", g_npy, n, &a, &e));
    assert_int_equal(a.dtype, RT_BOOL);
    assert_memory_equal(a.data, b, 4);
    rt_array_free(&a);
    n = make_npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (0, 17, 3), }", NULL, 0);
    assert_true(rt_npy_read_mem("z.npy", g_npy, n, &a, &e));
    assert_int_equal(a.dtype, RT_U8);
    assert_int_equal(rt_array_count(&a), 0);
    rt_array_free(&a);
}

static void fill(RtArray *a, RtDtype t, int ndim, const int64_t *shape) {
    memset(a, 0, sizeof *a);
    a->dtype = t;
    a->ndim = ndim;
    memcpy(a->shape, shape, (size_t)ndim * sizeof *shape);
    size_t n = (size_t)rt_array_count(a);
    a->itemsize = t == RT_F32 || t == RT_I32 ? 4 : t == RT_U8 || t == RT_BOOL ? 1 : 8;
    a->data = rt_malloc(n * a->itemsize + 1);
    for (size_t i = 0; i < n; i++) switch (t) {
        case RT_F32: ((float *)a->data)[i] = (float)i * 0.5f - 3; break;
        case RT_F64: ((double *)a->data)[i] = (double)i / 3.0 - 1e10; break;
        case RT_I64: ((int64_t *)a->data)[i] = (int64_t)i * 1000000007 - (1ll << 40); break;
        case RT_I32: ((int32_t *)a->data)[i] = (int32_t)i * 7 - 100; break;
        case RT_U8: ((uint8_t *)a->data)[i] = (uint8_t)(i * 37); break;
        case RT_BOOL: ((uint8_t *)a->data)[i] = (uint8_t)(i % 3 == 0); break;
        case RT_STR: break;
        }
}

static void assert_same(const RtArray *a, const RtArray *b) {
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->ndim, b->ndim);
    for (int d = 0; d < a->ndim; d++) assert_int_equal(a->shape[d], b->shape[d]);
    assert_int_equal(a->itemsize, b->itemsize);
    assert_memory_equal(a->data, b->data, (size_t)rt_array_count(a) * a->itemsize + 0);
}

static const RtDtype k_dtypes[] = {RT_F32, RT_F64, RT_I64, RT_I32, RT_U8, RT_BOOL};
static const int64_t k_shapes[][3] = {{0}, {7}, {2, 3, 4}, {0, 5}};
static const int k_ndims[] = {0, 1, 3, 2};

static void test_npy_round_trip(void **state) {
    RtError e;
    for (size_t t = 0; t < 6; t++)
        for (size_t s = 0; s < 4; s++) {
            RtArray a, b;
            fill(&a, k_dtypes[t], k_ndims[s], k_shapes[s]);
            assert_true(rt_npy_write("r.npy", &a, &e));
            if (!rt_npy_read("r.npy", &b, &e)) fail_msg("%s", e.msg);
            assert_same(&a, &b);
            rt_array_free(&a);
            rt_array_free(&b);
        }
    assert_int_equal(count_temporaries(), 0);
    /* The bytes NumPy 1.x writes for np.zeros((2, 3), '<f4'): a 128-byte header. */
    RtArray a;
    fill(&a, RT_F32, 2, (const int64_t[]){2, 3});
    assert_true(rt_npy_write("h.npy", &a, &e));
    size_t n;
    uint8_t *got = slurp("h.npy", &n);
    static const char want[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    assert_int_equal(n, 128 + 24);
    assert_memory_equal(got, want, sizeof want - 1);
    for (size_t i = sizeof want - 1; i < 127; i++) assert_int_equal(got[i], ' ');
    assert_int_equal(got[127], '\n');
    free(got);
    /* a one-element shape is written with the tuple comma */
    rt_array_free(&a);
    fill(&a, RT_I64, 1, (const int64_t[]){98});
    assert_true(rt_npy_write("h.npy", &a, &e));
    got = slurp("h.npy", &n);
    assert_non_null(strstr((char *)got + 10, "'shape': (98,), }"));
    free(got);
    rt_array_free(&a);
    /* strings are read-only */
    RtArray s = {.dtype = RT_STR, .ndim = 1, .shape = {1}};
    assert_false(rt_npy_write("s.npy", &s, &e));
    assert_string_equal(e.msg, "s.npy: cannot write str arrays to .npy");
}

static void expect_npy_error(size_t n, const char *want) {
    RtError e;
    RtArray a;
    write_file("t.npy", g_npy, n);
    e.msg[0] = 0;
    assert_false(rt_npy_read("t.npy", &a, &e));
    assert_string_equal(e.msg, want);
    /* from memory: the same message under the label */
    char mem_want[1200];
    snprintf(mem_want, sizeof mem_want, "%s", want);
    assert_false(rt_npy_read_mem("t.npy", g_npy, n, &a, &e));
    assert_string_equal(e.msg, mem_want);
}

#define F4_23 "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"

static void test_npy_errors(void **state) {
    const float f[7] = {0};
    char want[300];
    size_t n = make_npy(1, F4_23, f, 24);
    expect_npy_error(n - 4, "t.npy: truncated: header says shape [2, 3] float32 (24 bytes of data), file has 20");
    n = make_npy(1, F4_23, f, 28);
    expect_npy_error(n, "t.npy: 4 unexpected bytes after the data of shape [2, 3] float32");

    memcpy(g_npy, "\x93NUMPz not numpy at all", 24);
    expect_npy_error(24, "t.npy: not a .npy file (bad magic)");
    memcpy(g_npy, "PK\x03\x04 not numpy at all, really", 24);
    expect_npy_error(24, "t.npy: not a .npy file (bad magic; it is a zip archive, a .npz?)");
    expect_npy_error(0, "t.npy: not a .npy file (bad magic)");
    make_npy(1, F4_23, f, 24);
    expect_npy_error(7, "t.npy: truncated: file has 7 bytes, a .npy preamble needs at least 10");
    expect_npy_error(9, "t.npy: truncated: file has 9 bytes, a version 1.0 preamble needs 10");

    n = make_npy(1, F4_23, f, 24);
    g_npy[6] = 4;
    expect_npy_error(n, "t.npy: unsupported .npy format version 4.0 (supported: 1.0, 2.0, 3.0)");
    n = make_npy(1, F4_23, f, 24);
    g_npy[8] = g_npy[9] = 0xFF;
    snprintf(want, sizeof want,
             "t.npy: truncated: the header says it is 65535 bytes, the file has %zu after the preamble", n - 10);
    expect_npy_error(n, want);

    n = make_npy(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }", f, 24);
    expect_npy_error(n, "t.npy: bad .npy header at column 17: expected ',' or '}'");
    n = make_npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (98), }", f, 0);
    expect_npy_error(n, "t.npy: bad .npy header at column 55: a one-element shape needs a trailing comma, (n,)");
    n = make_npy(1, F4_23 " x", f, 24);
    expect_npy_error(n, "t.npy: bad .npy header at column 61: unexpected text after '}'");
    n = make_npy(1, "{'descr': '<f4', 'shape': (2, 3), }", f, 24);
    expect_npy_error(n, "t.npy: bad .npy header: no 'fortran_order' key");
    n = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", f, 24);
    expect_npy_error(n, "t.npy: bad .npy header: unknown key 'x'");
    n = make_npy(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", f, 24);
    expect_npy_error(n, "t.npy: bad .npy header: key 'descr' twice");
    n = make_npy(1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3)}", f, 24);
    expect_npy_error(n, "t.npy: bad .npy header at column 35: expected True or False");

    n = make_npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f, 24);
    expect_npy_error(n, "t.npy: fortran_order is True; only C-order arrays are supported "
                        "(save with np.ascontiguousarray)");
    n = make_npy(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f, 24);
    expect_npy_error(n, "t.npy: unsupported dtype '<c8' (supported: <f4 <f8 <i8 <i4 |u1 |b1 <U)");
    n = make_npy(1, "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", f, 24);
    expect_npy_error(n, "t.npy: unsupported dtype '|O' (supported: <f4 <f8 <i8 <i4 |u1 |b1 <U)");
    n = make_npy(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }", f, 24);
    expect_npy_error(n, "t.npy: big-endian dtype '>f8' is not supported (convert with a.astype('<f8'))");
    n = make_npy(1, "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (6,), }", f, 24);
    expect_npy_error(n, "t.npy: unsupported dtype: structured arrays are not supported");
    n = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", f, 24);
    expect_npy_error(n, "t.npy: shape [4611686018427387904, 4] is too large");
    n = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3, 4, 5, 6, 7, 8, 9), }", f, 24);
    expect_npy_error(n, "t.npy: more than 8 dimensions are not supported");

    const uint8_t b[3] = {1, 2, 0};
    n = make_npy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", b, 3);
    expect_npy_error(n, "t.npy: bool element 1 has the value 2 (expected 0 or 1)");
    const uint32_t u[2] = {'a', 0xD800};
    n = make_npy(1, "{'descr': '<U2', 'fortran_order': False, 'shape': (1,), }", u, 8);
    expect_npy_error(n, "t.npy: string 0 has an invalid character U+D800");

    RtError e;
    RtArray a;
    assert_false(rt_npy_read("missing.npy", &a, &e));
    assert_string_equal(e.msg, "missing.npy: cannot open: No such file or directory");
}

/* ---- .npz ------------------------------------------------------------------------ */

static void test_npz_round_trip(void **state) {
    RtError e;
    RtArray in[24];
    char names[24][16];
    int n = 0;
    for (size_t t = 0; t < 6; t++)
        for (size_t s = 0; s < 4; s++, n++) {
            fill(&in[n], k_dtypes[t], k_ndims[s], k_shapes[s]);
            snprintf(names[n], sizeof names[n], "a%d_%s", n, rt_dtype_name(k_dtypes[t]));
            in[n].name = names[n];
        }
    assert_true(rt_npz_write("r.npz", in, n, &e));
    RtNpz z;
    if (!rt_npz_read("r.npz", &z, &e)) fail_msg("%s", e.msg);
    assert_int_equal(z.n, n);
    assert_string_equal(z.path, "r.npz");
    for (int i = 0; i < n; i++) {
        assert_string_equal(z.arrays[i].name, names[i]);
        assert_same(&in[i], &z.arrays[i]);
    }
    rt_npz_free(&z);

    /* libzip itself sees stored members named NAME.npy, with sound CRCs */
    int err;
    zip_t *za = zip_open("r.npz", ZIP_RDONLY | ZIP_CHECKCONS, &err);
    assert_non_null(za);
    assert_int_equal(zip_get_num_entries(za, 0), n);
    zip_stat_t st;
    assert_int_equal(zip_stat_index(za, 2, 0, &st), 0);
    assert_int_equal(st.comp_method, ZIP_CM_STORE);
    char want[32];
    snprintf(want, sizeof want, "%s.npy", names[2]);
    assert_string_equal(st.name, want);
    zip_discard(za);

    /* the same arrays give the same bytes (fixed timestamps), and memory reads agree */
    size_t n1, n2;
    uint8_t *b1 = slurp("r.npz", &n1);
    assert_true(rt_npz_write("r2.npz", in, n, &e));
    uint8_t *b2 = slurp("r2.npz", &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    assert_true(rt_npz_read_mem("mem.npz", b1, n1, &z, &e));
    assert_int_equal(z.n, n);
    assert_same(&in[10], &z.arrays[10]);
    rt_npz_free(&z);
    free(b1);
    free(b2);
    for (int i = 0; i < n; i++) {
        in[i].name = NULL;
        rt_array_free(&in[i]);
    }
    assert_int_equal(count_temporaries(), 0);

    RtArray dup[2] = {{.name = "x", .dtype = RT_F32}, {.name = "x", .dtype = RT_F32}};
    assert_false(rt_npz_write("d.npz", dup, 2, &e));
    assert_string_equal(e.msg, "d.npz: array 'x' given twice");
}

/* A deflated member written by libzip (as np.savez_compressed does with zlib). */
static void make_deflated(const char *path, const char *member, const void *buf, size_t n) {
    int err;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    assert_non_null(za);
    zip_source_t *src = zip_source_buffer(za, buf, n, 0);
    assert_non_null(src);
    zip_int64_t idx = zip_file_add(za, member, src, 0);
    assert_true(idx >= 0);
    assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 9), 0);
    assert_int_equal(zip_close(za), 0);
}

static void test_npz_deflated(void **state) {
    static float f[1000][3];
    for (int i = 0; i < 1000; i++) f[i][i % 3] = (float)(i % 10);
    size_t n = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 3), }", f, sizeof f);
    make_deflated("def.npz", "pos.npy", g_npy, n);
    size_t len;
    uint8_t *bytes = slurp("def.npz", &len);
    assert_true(len < n / 4); /* it really is compressed */

    RtError e;
    RtNpz z;
    if (!rt_npz_read("def.npz", &z, &e)) fail_msg("%s", e.msg);
    assert_int_equal(z.n, 1);
    assert_string_equal(z.arrays[0].name, "pos");
    const RtArray *a = rt_npz_get(&z, "pos", RT_F32, 2, (const int64_t[]){-1, 3}, &e);
    assert_non_null(a);
    assert_memory_equal(a->data, f, sizeof f);
    rt_npz_free(&z);

    /* damage the compressed stream: one line from libzip (zlib or CRC), not a crash */
    uint16_t name_len = (uint16_t)(bytes[26] | bytes[27] << 8), extra = (uint16_t)(bytes[28] | bytes[29] << 8);
    size_t data = 30u + name_len + extra;
    for (size_t i = data + 10; i < data + 20; i++) bytes[i] ^= 0x5A;
    write_file("bad.npz", bytes, len);
    assert_false(rt_npz_read("bad.npz", &z, &e));
    assert_true(strncmp(e.msg, "bad.npz: array 'pos': ", 22) == 0);
    assert_null(strchr(e.msg, '\n'));
    assert_false(rt_npz_read_mem("bad.npz", bytes, len, &z, &e));
    assert_true(strncmp(e.msg, "bad.npz: array 'pos': ", 22) == 0);
    free(bytes);
}

static void make_pose_npz(const char *path, float nan_at_121) {
    RtArray a[3];
    fill(&a[0], RT_F32, 3, (const int64_t[]){4, 17, 2});
    fill(&a[1], RT_I64, 1, (const int64_t[]){5});
    fill(&a[2], RT_F64, 2, (const int64_t[]){2, 3});
    a[0].name = "positions_3d";
    a[1].name = "clip_start";
    a[2].name = "cams";
    ((float *)a[0].data)[1 * 34 + 2 * 2 + 1] = nan_at_121;
    RtError e;
    assert_true(rt_npz_write(path, a, 3, &e));
    for (int i = 0; i < 3; i++) {
        a[i].name = NULL;
        rt_array_free(&a[i]);
    }
}

static void test_npz_get(void **state) {
    RtError e;
    RtNpz z;
    make_pose_npz("data.npz", 1.0f);
    assert_true(rt_npz_read("data.npz", &z, &e));
    assert_null(rt_npz_get(&z, "pose2d", RT_F32, 2, NULL, &e));
    assert_string_equal(e.msg, "data.npz: no array 'pose2d' (it has: positions_3d, clip_start, cams)");
    assert_null(rt_npz_get(&z, "positions_3d", RT_F32, 3, (const int64_t[]){-1, 17, 3}, &e));
    assert_string_equal(e.msg, "data.npz: array 'positions_3d': expected shape [N, 17, 3], got [4, 17, 2]");
    assert_null(rt_npz_get(&z, "positions_3d", RT_F32, 2, (const int64_t[]){-1, 17}, &e));
    assert_string_equal(e.msg, "data.npz: array 'positions_3d': expected shape [N, 17], got [4, 17, 2]");
    assert_null(rt_npz_get(&z, "clip_start", RT_F32, 1, NULL, &e));
    assert_string_equal(e.msg, "data.npz: array 'clip_start': expected float32, got int64");
    const RtArray *a = rt_npz_get(&z, "positions_3d", RT_F32, 3, (const int64_t[]){4, 17, -1}, &e);
    assert_non_null(a);
    assert_true(rt_npz_get(&z, "clip_start", RT_I64, 1, (const int64_t[]){5}, &e) != NULL);
    /* float64 becomes float32 when float32 is asked for: fill() gave i / 3 - 1e10 */
    a = rt_npz_get(&z, "cams", RT_F32, -1, NULL, &e);
    assert_non_null(a);
    assert_int_equal(a->dtype, RT_F32);
    assert_int_equal(a->itemsize, 4);
    assert_true(((const float *)a->data)[4] == (float)(4.0 / 3.0 - 1e10));
    rt_npz_free(&z);

    make_pose_npz("nan.npz", NAN);
    assert_true(rt_npz_read("nan.npz", &z, &e));
    assert_null(rt_npz_get(&z, "positions_3d", RT_F32, 3, NULL, &e));
    assert_string_equal(e.msg, "nan.npz: array 'positions_3d': element [1, 2, 1] is NaN");
    rt_npz_free(&z);
    make_pose_npz("inf.npz", -INFINITY);
    assert_true(rt_npz_read("inf.npz", &z, &e));
    assert_null(rt_npz_get(&z, "positions_3d", RT_F32, 3, NULL, &e));
    assert_string_equal(e.msg, "inf.npz: array 'positions_3d': element [1, 2, 1] is Inf");
    rt_npz_free(&z);
}

static void test_npz_errors(void **state) {
    RtError e;
    RtNpz z;
    assert_false(rt_npz_read("nothere.npz", &z, &e));
    assert_string_equal(e.msg, "nothere.npz: cannot open: No such file or directory");
    write_file("empty.npz", "", 0);
    assert_false(rt_npz_read("empty.npz", &z, &e));
    assert_string_equal(e.msg, "empty.npz: not a .npz file (empty)");
    const float f[6] = {0};
    size_t n = make_npy(1, F4_23, f, 24);
    write_file("plain.npz", g_npy, n);
    assert_false(rt_npz_read("plain.npz", &z, &e));
    assert_string_equal(e.msg, "plain.npz: not a .npz file (not a zip archive)");
    /* a member that is not .npy inside, and one that is not named .npy */
    make_deflated("m.npz", "x.npy", "hello", 5);
    assert_false(rt_npz_read("m.npz", &z, &e));
    assert_string_equal(e.msg, "m.npz: array 'x': not a .npy file (bad magic)");
    make_deflated("m.npz", "x.txt", g_npy, n);
    assert_false(rt_npz_read("m.npz", &z, &e));
    assert_string_equal(e.msg, "m.npz: member 'x.txt' is not a .npy file");
    /* a bad header inside a member names the array */
    n = make_npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f, 24);
    make_deflated("m.npz", "w.npy", g_npy, n);
    assert_false(rt_npz_read("m.npz", &z, &e));
    assert_string_equal(e.msg, "m.npz: array 'w': fortran_order is True; only C-order arrays are supported "
                               "(save with np.ascontiguousarray)");
    /* a stored npz cut short */
    make_pose_npz("cut.npz", 0);
    size_t len;
    uint8_t *b = slurp("cut.npz", &len);
    write_file("cut.npz", b, len / 2);
    assert_false(rt_npz_read("cut.npz", &z, &e));
    assert_true(strncmp(e.msg, "cut.npz: ", 9) == 0);
    assert_null(strchr(e.msg, '\n'));
    free(b);
}

/* The real data set: documented in ../shared/data/README.md. */
static void test_cmu17(void **state) {
    const char *src = getenv("CHIRALC_SOURCE_DIR");
    char path[4200];
    struct stat st;
    if (!src) skip();
    snprintf(path, sizeof path, "%s/data/cmu17.npz", src);
    if (stat(path, &st) != 0) snprintf(path, sizeof path, "%s/../shared/data/cmu17.npz", src);
    if (stat(path, &st) != 0) skip();
    RtError e;
    RtNpz z;
    if (!rt_npz_read(path, &z, &e)) fail_msg("%s", e.msg);
    const RtArray *pos = rt_npz_get(&z, "positions_3d", RT_F32, 3, (const int64_t[]){16980, 17, 3}, &e);
    if (!pos) fail_msg("%s", e.msg);
    const RtArray *cs = rt_npz_get(&z, "clip_start", RT_I64, 1, (const int64_t[]){98}, &e);
    assert_non_null(cs);
    assert_int_equal(((const int64_t *)cs->data)[0], 0);
    assert_int_equal(((const int64_t *)cs->data)[97], 16980);
    const RtArray *ca = rt_npz_get(&z, "clip_action", RT_I64, 1, (const int64_t[]){97}, &e);
    assert_non_null(ca);
    for (int i = 0; i < 97; i++) assert_in_range(((const int64_t *)ca->data)[i], 0, 7);
    const RtArray *jn = rt_npz_get(&z, "joint_names", RT_STR, 1, (const int64_t[]){17}, &e);
    assert_non_null(jn);
    assert_string_equal(((char **)jn->data)[0], "pelvis");
    const RtArray *an = rt_npz_get(&z, "action_names", RT_STR, 1, (const int64_t[]){8}, &e);
    assert_non_null(an);
    const char *actions[8] = {"basketball", "basketball_signal", "directing_traffic", "jumping",
                              "running",    "soccer",            "walking",           "washwindow"};
    for (int i = 0; i < 8; i++) assert_string_equal(((char **)an->data)[i], actions[i]);
    assert_non_null(rt_npz_get(&z, "clip_name", RT_STR, 1, (const int64_t[]){97}, &e));
    const RtArray *fps = rt_npz_get(&z, "fps", RT_I64, 0, NULL, &e);
    if (fps) assert_int_equal(*(const int64_t *)fps->data, 30);
    const RtArray *par = rt_npz_get(&z, "joint_parents", RT_I64, 1, (const int64_t[]){17}, &e);
    assert_non_null(par);
    const int64_t parents[17] = {-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15};
    assert_memory_equal(par->data, parents, sizeof parents);
    /* metres, y up, floor near 0: every coordinate within a few metres of the origin's height */
    const float *p = pos->data;
    for (int64_t i = 1; i < 16980 * 17 * 3; i += 3) assert_true(p[i] > -1.0f && p[i] < 3.0f);
    rt_npz_free(&z);
}

/* ---- safetensors ----------------------------------------------------------------- */

static void test_safetensors_round_trip(void **state) {
    float w[3][4];
    int64_t step[1] = {123456789012345};
    double d[2] = {0.1, -2.5e300};
    for (int i = 0; i < 12; i++) w[i / 4][i % 4] = (float)i - 5.5f;
    RtTensorOut t[4] = {
        {"w", RT_F32, 2, {3, 4}, w},
        {"step", RT_I64, 1, {1}, step},
        {"b", RT_F32, 1, {3}, w},
        {"d", RT_F64, 1, {2}, d},
    };
    const char *meta[4] = {"format", "pt", "chiralc", "0.1"};
    RtError e;
    assert_true(rt_safetensors_write("c.safetensors", t, 4, meta, 2, &e));
    assert_int_equal(count_temporaries(), 0);

    /* the bytes, checked with jansson directly: data starts 8-aligned, 8-byte types first */
    size_t len;
    uint8_t *b = slurp("c.safetensors", &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    assert_int_equal((8 + hl) % 8, 0);
    assert_int_equal(len, 8 + hl + 16 + 8 + 12 + 48);
    json_error_t je;
    json_t *root = json_loadb((const char *)b + 8, hl, 0, &je);
    assert_non_null(root);
    json_t *dw = json_object_get(root, "d"), *sw = json_object_get(root, "step");
    assert_string_equal(json_string_value(json_object_get(dw, "dtype")), "F64");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(dw, "data_offsets"), 0)), 0);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(sw, "data_offsets"), 0)), 16);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(sw, "data_offsets"), 1)), 24);
    assert_memory_equal(b + 8 + hl + 16, step, 8);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "__metadata__"), "format")), "pt");
    json_decref(root);
    free(b);

    RtSafetensors s;
    if (!rt_safetensors_read("c.safetensors", &s, &e)) fail_msg("%s", e.msg);
    assert_int_equal(s.n, 4);
    assert_string_equal(rt_safetensors_meta(&s, "chiralc"), "0.1");
    assert_null(rt_safetensors_meta(&s, "nope"));
    int found = 0;
    for (int i = 0; i < s.n; i++) {
        const RtArray *a = &s.tensors[i];
        if (strcmp(a->name, "w") == 0) {
            assert_int_equal(a->dtype, RT_F32);
            assert_int_equal(a->ndim, 2);
            assert_int_equal(a->shape[1], 4);
            assert_memory_equal(a->data, w, sizeof w);
            found++;
        } else if (strcmp(a->name, "step") == 0) {
            assert_int_equal(a->dtype, RT_I64);
            assert_int_equal(*(int64_t *)a->data, step[0]);
            found++;
        } else if (strcmp(a->name, "d") == 0) {
            assert_int_equal(a->dtype, RT_F64);
            assert_memory_equal(a->data, d, sizeof d);
            found++;
        } else if (strcmp(a->name, "b") == 0) {
            assert_memory_equal(a->data, w, 12);
            found++;
        }
    }
    assert_int_equal(found, 4);
    rt_safetensors_free(&s);

    RtTensorOut bad[1] = {{"u", RT_U8, 1, {3}, w}};
    assert_false(rt_safetensors_write("x.safetensors", bad, 1, NULL, 0, &e));
    assert_string_equal(e.msg, "x.safetensors: tensor 'u': cannot write uint8 tensors");
}

/* A safetensors file by hand: the JSON given, then `data` bytes of 0x11. */
static void make_st(const char *path, const char *json, size_t data, int64_t claimed_len) {
    static uint8_t buf[1 << 14];
    size_t jl = strlen(json);
    uint64_t hl = claimed_len >= 0 ? (uint64_t)claimed_len : jl;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i));
    memcpy(buf + 8, json, jl);
    memset(buf + 8 + jl, 0x11, data);
    write_file(path, buf, 8 + jl + data);
}

static void expect_st_error(const char *json, size_t data, int64_t claimed_len, const char *want) {
    RtError e;
    RtSafetensors s;
    make_st("c.safetensors", json, data, claimed_len);
    assert_false(rt_safetensors_read("c.safetensors", &s, &e));
    assert_string_equal(e.msg, want);
    size_t len;
    uint8_t *b = slurp("c.safetensors", &len);
    assert_false(rt_safetensors_read_mem("c.safetensors", b, len, &s, &e));
    assert_string_equal(e.msg, want);
    free(b);
}

#define ST_A "\"a\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}"

static void test_safetensors_errors(void **state) {
    RtError e;
    RtSafetensors s;
    make_st("ok.safetensors", "{" ST_A "}", 48, -1);
    assert_true(rt_safetensors_read("ok.safetensors", &s, &e));
    assert_int_equal(s.n, 1);
    assert_int_equal(((uint8_t *)s.tensors[0].data)[47], 0x11);
    rt_safetensors_free(&s);

    expect_st_error("{" ST_A "}", 44, -1, "c.safetensors: truncated: header says 48 bytes of tensor data, file has 44");
    expect_st_error("{" ST_A "}", 52, -1, "c.safetensors: 4 unexpected bytes after the last tensor");
    /* header length 1000; the file has strlen(json) = 57 + 48 bytes after it, 8 + 105 in all */
    expect_st_error("{" ST_A "}", 48, 1000, "c.safetensors: header length 1000 is beyond the end of the file (113 bytes)");
    write_file("c.safetensors", "\x05\0\0", 3);
    assert_false(rt_safetensors_read("c.safetensors", &s, &e));
    assert_string_equal(e.msg, "c.safetensors: truncated: file has 3 bytes, a safetensors file starts with an "
                               "8-byte header length");

    /* bad JSON: jansson's own account of it, and where */
    static const char bad_json[] = "{\"a\":{\"dtype\":\"F32\",}";
    json_error_t je;
    assert_null(json_loadb(bad_json, sizeof bad_json - 1, 0, &je));
    char want[400];
    snprintf(want, sizeof want, "c.safetensors: bad JSON header: %s (at byte %d)", je.text, je.position);
    expect_st_error(bad_json, 48, -1, want);
    expect_st_error("[1, 2]", 0, -1, "c.safetensors: bad JSON header: expected an object");

    expect_st_error("{" ST_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[12],\"data_offsets\":[4048,4096]}}", 96, -1,
                    "c.safetensors: tensor 'b': data_offsets [4048, 4096] are beyond the 96 bytes of data");
    expect_st_error("{" ST_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[12],\"data_offsets\":[40,88]}}", 88, -1,
                    "c.safetensors: tensors 'a' and 'b' overlap (data_offsets [0, 48] and [40, 88])");
    expect_st_error("{" ST_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[52,56]}}", 56, -1,
                    "c.safetensors: no tensor covers data bytes [48, 52)");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,40]}}", 40, -1,
                    "c.safetensors: tensor 'a': shape [3, 4] F32 needs 48 bytes, data_offsets [0, 40] give 40");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[48,0]}}", 48, -1,
                    "c.safetensors: tensor 'a': data_offsets [48, 0] end before they begin");
    expect_st_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[0,24]}}", 24, -1,
                    "c.safetensors: tensor 'a': unsupported dtype 'BF16' (supported: F32, F64, I64)");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-3,4],\"data_offsets\":[0,48]}}", 48, -1,
                    "c.safetensors: tensor 'a': 'shape' must hold non-negative integers");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48],\"x\":1}}", 48, -1,
                    "c.safetensors: tensor 'a': unknown key 'x'");
    expect_st_error("{\"__metadata__\":{\"k\":1}," ST_A "}", 48, -1,
                    "c.safetensors: '__metadata__' value of 'k' must be a string");
}

/* ---- atomic writes --------------------------------------------------------------- */

static void test_atomic(void **state) {
    RtError e;
    RtArray a;
    fill(&a, RT_F32, 1, (const int64_t[]){4});
    assert_false(rt_npy_write("nodir/x.npy", &a, &e));
    assert_string_equal(e.msg, "nodir/x.npy: cannot create a temporary file beside it: No such file or directory");
    assert_false(rt_npz_write("nodir/x.npz", &a, 0, &e));
    RtTensorOut t = {"w", RT_F32, 1, {4}, a.data};
    assert_false(rt_safetensors_write("nodir/x.safetensors", &t, 1, NULL, 0, &e));
    assert_string_equal(e.msg,
                        "nodir/x.safetensors: cannot create a temporary file beside it: No such file or directory");
    assert_int_equal(count_temporaries(), 0);
    rt_array_free(&a);

    /* until commit the destination keeps its old content; abort leaves it and no temporary */
    write_file("dest.txt", "old", 3);
    mode_t old_mask = umask(022);
    RtAtomic at;
    assert_true(rt_atomic_open(&at, "dest.txt", &e));
    assert_int_equal(count_temporaries(), 1);
    fputs("new content", at.f);
    fflush(at.f);
    size_t n;
    uint8_t *b = slurp("dest.txt", &n);
    assert_int_equal(n, 3);
    free(b);
    rt_atomic_abort(&at);
    assert_int_equal(count_temporaries(), 0);
    b = slurp("dest.txt", &n);
    assert_memory_equal(b, "old", 3);
    free(b);
    assert_true(rt_atomic_open(&at, "dest.txt", &e));
    fputs("new content", at.f);
    assert_true(rt_atomic_commit(&at, &e));
    b = slurp("dest.txt", &n);
    assert_int_equal(n, 11);
    assert_memory_equal(b, "new content", 11);
    free(b);
    struct stat st;
    assert_int_equal(stat("dest.txt", &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644); /* as fopen under umask 022, not mkstemp's 0600 */
    umask(old_mask);
    assert_int_equal(count_temporaries(), 0);
}

/* ---- allocation failure ---------------------------------------------------------- */

static int g_allocs_left;
static void *failing_alloc(size_t n) { return g_allocs_left-- > 0 ? malloc(n ? n : 1) : NULL; }

/* Reading with the k-th allocation failing: exit status 1 and one line, for each k. */
static void test_allocation_failure(void **state) {
    make_pose_npz("oom.npz", 0);
    RtTensorOut t = {"w", RT_F32, 1, {2}, (const float[]){1, 2}};
    RtError e;
    assert_true(rt_safetensors_write("oom.safetensors", &t, 1, NULL, 0, &e));
    for (int k = 0; k < 6; k++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            dup2(fds[1], 2);
            close(fds[0]);
            g_allocs_left = k;
            rt_alloc_hook = failing_alloc;
            RtNpz z;
            RtSafetensors s;
            if (k % 2 == 0 && rt_npz_read("oom.npz", &z, &e)) _exit(0);
            if (k % 2 == 1 && rt_safetensors_read("oom.safetensors", &s, &e)) _exit(0);
            _exit(2);
        }
        close(fds[1]);
        char out[512] = {0};
        size_t got = 0;
        ssize_t r;
        while (got < sizeof out - 1 && (r = read(fds[0], out + got, sizeof out - 1 - got)) > 0) got += (size_t)r;
        close(fds[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
        assert_true(strncmp(out, "error: out of memory (allocating ", 33) == 0);
        assert_ptr_equal(strchr(out, '\n'), out + got - 1);
    }
}

/* ---- RNG --------------------------------------------------------------------------- */

static void test_philox_known_answers(void **state) {
    /* Random123's kat_vectors, philox4x32_10 */
    static const uint32_t ctr[3][4] = {
        {0, 0, 0, 0}, {~0u, ~0u, ~0u, ~0u}, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    static const uint32_t key[3][2] = {{0, 0}, {~0u, ~0u}, {0xa4093822, 0x299f31d0}};
    static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                        {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        rt_philox4x32(ctr[i], key[i], out);
        for (int j = 0; j < 4; j++) assert_int_equal(out[j], want[i][j]);
    }
    /* the documented mapping: key = seed, counter words = (counter lo, hi, stream lo, hi) */
    assert_int_equal(rt_rng_u64(0, 0, 0), 0xe169c58d6627e8d5ull);
    assert_int_equal(rt_rng_u64(~0ull, ~0ull, ~0ull), 0x41c83b0e408f276dull);
    assert_int_equal(rt_rng_u64(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull),
                     0x94fdccebd16cfe09ull);
    /* uniform: the top 53 bits; normal: Box-Muller on words 0-1 and 2-3 */
    double u1 = (double)(0xe169c58d6627e8d5ull >> 11) / 9007199254740992.0;
    double u2 = (double)(0x9b00dbd8bc57ac4cull >> 11) / 9007199254740992.0;
    assert_true(rt_rng_uniform(0, 0, 0) == u1);
    assert_true(fabs(rt_rng_normal(0, 0, 0) - sqrt(-2 * log(1 - u1)) * cos(6.283185307179586 * u2)) < 1e-12);
}

/* dropout's keep rate is 1 - p (p = 0: everything, p = 1: nothing); the edges of the
 * threshold round as documented */
static void test_rng_keep(void **state) {
    (void)state;
    const double ps[] = {0.0, 0.1, 0.25, 0.5, 0.9};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
        long kept = 0;
        for (uint64_t k = 0; k < 40000; k++) kept += rt_rng_keep(3, 9, k, ps[i]);
        assert_true(fabs((double)kept / 40000 - (1 - ps[i])) < 0.012);
        if (ps[i] == 0) assert_int_equal(kept, 40000);
    }
    for (uint64_t k = 0; k < 100; k++) assert_int_equal(rt_rng_keep(3, 9, k, 1.0), 0);
    assert_int_equal(sup_dropout_threshold(0.5), 0x80000000u);
    assert_int_equal(sup_dropout_threshold(1.0 - 0x1.0p-40), 0xFFFFFFFFu);
}

static void test_rng_properties(void **state) {
    /* a pure function: any order gives the same numbers */
    uint64_t fwd[64];
    for (int i = 0; i < 64; i++) fwd[i] = rt_rng_u64(42, 7, (uint64_t)i);
    for (int i = 63; i >= 0; i--) assert_int_equal(rt_rng_u64(42, 7, (uint64_t)i), fwd[i]);
    assert_true(rt_rng_u64(42, 8, 0) != fwd[0]);
    assert_true(rt_rng_u64(43, 7, 0) != fwd[0]);
    /* moments of 20000 draws: loose bounds (5+ standard errors), fixed seed, so deterministic */
    double su = 0, sn = 0, sn2 = 0, umin = 1, umax = 0;
    for (int i = 0; i < 20000; i++) {
        double u = rt_rng_uniform(1, 2, (uint64_t)i), z = rt_rng_normal(1, 3, (uint64_t)i);
        su += u;
        sn += z;
        sn2 += z * z;
        umin = u < umin ? u : umin;
        umax = u > umax ? u : umax;
    }
    assert_true(umin >= 0 && umax < 1);
    assert_true(fabs(su / 20000 - 0.5) < 0.012);
    assert_true(fabs(sn / 20000) < 0.04);
    assert_true(fabs(sn2 / 20000 - 1) < 0.06);
}

static void test_permutation(void **state) {
    enum { N = 1000 };
    static int64_t p[N], q[N];
    static char seen[N];
    rt_rng_permutation(5, 0, p, N);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        assert_in_range(p[i], 0, N - 1);
        assert_false(seen[p[i]]);
        seen[p[i]] = 1;
    }
    rt_rng_permutation(5, 0, q, N);
    assert_memory_equal(p, q, sizeof p);
    rt_rng_permutation(5, 1, q, N);
    assert_true(memcmp(p, q, sizeof p) != 0);
    int fixed = 0;
    for (int i = 0; i < N; i++) fixed += p[i] == i;
    assert_true(fixed < 10); /* about 1 expected for a random permutation */
    /* n = 2: one step, i = 1, j = rt_rng_u64(seed, stream, 1) mod 2; j = 0 swaps */
    for (uint64_t seed = 0; seed < 8; seed++) {
        int64_t two[2];
        rt_rng_permutation(seed, 0, two, 2);
        bool swapped = rt_rng_u64(seed, 0, 1) % 2 == 0;
        assert_int_equal(two[0], swapped ? 1 : 0);
        assert_int_equal(two[1], swapped ? 0 : 1);
    }
    rt_rng_permutation(1, 1, q, 0);
    rt_rng_permutation(1, 1, q, 1);
    assert_int_equal(q[0], 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_basics),
        cmocka_unit_test(test_npy_read_handmade),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_npy_errors),
        cmocka_unit_test(test_npz_round_trip),
        cmocka_unit_test(test_npz_deflated),
        cmocka_unit_test(test_npz_get),
        cmocka_unit_test(test_npz_errors),
        cmocka_unit_test(test_cmu17),
        cmocka_unit_test(test_safetensors_round_trip),
        cmocka_unit_test(test_safetensors_errors),
        cmocka_unit_test(test_atomic),
        cmocka_unit_test(test_allocation_failure),
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_rng_keep),
        cmocka_unit_test(test_rng_properties),
        cmocka_unit_test(test_permutation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
