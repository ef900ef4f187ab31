/* fuzz/fuzz_loaders.c: libFuzzer harness for the runtime's file readers.
 * Every input goes to the .npy, .npz (from memory, through libzip) and safetensors
 * readers. Errors are fine; crashes, sanitizer reports, leaks and exits (a failed
 * allocation exits, so an allocation the input can make unbounded is a finding) are
 * findings. What reads as .npy is written back and must read back the same.
 *
 * Seeds: with CHIRALC_FUZZ_SEED_DIR set, LLVMFuzzerInitialize writes a few valid
 * files of each format there (before libFuzzer reads its corpus directories).
 *
 * Build and run (clang required):
 *   CC=clang cmake -S . -B build-fuzz -DCHIRALC_FUZZ=ON -DCHIRALC_SANITIZE=ON
 *   cmake --build build-fuzz --target fuzz_loaders
 *   mkdir -p corpus && CHIRALC_FUZZ_SEED_DIR=corpus ./build-fuzz/fuzz_loaders corpus -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "runtime/rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static size_t item_size(RtDtype t) {
    return t == RT_F32 || t == RT_I32 ? 4 : t == RT_U8 || t == RT_BOOL ? 1 : 8;
}

/* Header and data of a back into .npy bytes, read again: the same array, or abort. */
static void check_npy_round_trip(const RtArray *a) {
    /* Strings are held as char* (not their file bytes): the unit tests cover writing them. */
    if (a->dtype == RT_STR) return;
    char hdr[320];
    size_t hl = rt_npy_header(a, hdr, sizeof hdr);
    if (!hl) abort();
    size_t bytes = (size_t)rt_array_count(a) * item_size(a->dtype);
    uint8_t *buf = malloc(hl + bytes + 1);
    memcpy(buf, hdr, hl);
    if (bytes) memcpy(buf + hl, a->data, bytes);
    RtArray b;
    RtError e;
    if (!rt_npy_read_mem("again.npy", buf, hl + bytes, &b, &e)) {
        fprintf(stderr, "a written .npy does not read back: %s\n", e.msg);
        abort();
    }
    if (b.dtype != a->dtype || b.ndim != a->ndim || memcmp(b.shape, a->shape, sizeof b.shape) != 0 ||
        (bytes && memcmp(b.data, a->data, bytes) != 0))
        abort();
    rt_array_free(&b);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    RtError e;
    RtArray a;
    if (rt_npy_read_mem("fuzz.npy", data, size, &a, &e)) {
        char buf[200];
        rt_shape_str(&a, buf, sizeof buf);
        check_npy_round_trip(&a);
        rt_array_free(&a);
    }
    RtNpz z;
    if (rt_npz_read_mem("fuzz.npz", data, size, &z, &e)) {
        /* the checked accessor over every array, asking for what it holds (NaN scan) */
        for (int i = 0; i < z.n; i++) {
            RtDtype want = z.arrays[i].dtype == RT_F64 ? RT_F32 : z.arrays[i].dtype;
            char *name = z.arrays[i].name;
            (void)rt_npz_get(&z, name, want, -1, NULL, &e);
        }
        (void)rt_npz_get(&z, "no such array", RT_F32, 1, NULL, &e);
        rt_npz_free(&z);
    }
    RtSafetensors s;
    if (rt_safetensors_read_mem("fuzz.safetensors", data, size, &s, &e)) {
        (void)rt_safetensors_meta(&s, "format");
        rt_safetensors_free(&s);
    }
    return 0;
}

/* ---- seeds ------------------------------------------------------------------------ */

static char *seed_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_seeds(const char *dir) {
    RtError e;
    float f[12];
    int64_t l[4] = {0, 5, 9, 12};
    double d[3] = {0.5, -1, 2};
    for (int i = 0; i < 12; i++) f[i] = (float)i / 4;
    RtArray arrays[4] = {
        {.name = "positions_3d", .dtype = RT_F32, .ndim = 3, .shape = {2, 2, 3}, .data = f, .itemsize = 4},
        {.name = "clip_start", .dtype = RT_I64, .ndim = 1, .shape = {4}, .data = l, .itemsize = 8},
        {.name = "cams", .dtype = RT_F64, .ndim = 0, .data = d, .itemsize = 8},
        {.name = "mask", .dtype = RT_U8, .ndim = 2, .shape = {2, 2}, .data = l, .itemsize = 1},
    };
    char *p = seed_path(dir, "seed_f32.npy");
    rt_npy_write(p, &arrays[0], &e);
    free(p);
    p = seed_path(dir, "seed_i64.npy");
    rt_npy_write(p, &arrays[1], &e);
    free(p);
    p = seed_path(dir, "seed_stored.npz");
    rt_npz_write(p, arrays, 4, &e);
    free(p);
    RtTensorOut t[2] = {{"w", RT_F32, 2, {3, 4}, f}, {"step", RT_I64, 1, {1}, l}};
    const char *meta[2] = {"format", "pt"};
    p = seed_path(dir, "seed.safetensors");
    rt_safetensors_write(p, t, 2, meta, 1, &e);
    free(p);

    /* a deflated member, as np.savez_compressed writes, and a unicode array */
    static const char dict[] = "{'descr': '<U2', 'fortran_order': False, 'shape': (2,), }";
    static const uint32_t chars[4] = {'a', 'b', 0xE9, 0};
    static uint8_t u_npy[128 + sizeof chars];
    memcpy(u_npy, "\x93NUMPY\x01\x00\x76\x00", 10); /* header: 118 bytes, data at 128 */
    memset(u_npy + 10, ' ', 117);
    memcpy(u_npy + 10, dict, sizeof dict - 1);
    u_npy[127] = '\n';
    memcpy(u_npy + 128, chars, sizeof chars);
    p = seed_path(dir, "seed_unicode.npy");
    FILE *fu = fopen(p, "wb");
    if (fu) {
        fwrite(u_npy, 1, sizeof u_npy, fu);
        fclose(fu);
    }
    free(p);
    p = seed_path(dir, "seed_deflated.npz");
    int err;
    zip_t *za = zip_open(p, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (za) {
        zip_source_t *src = zip_source_buffer(za, u_npy, sizeof u_npy, 0);
        zip_int64_t idx = src ? zip_file_add(za, "names.npy", src, 0) : -1;
        if (idx >= 0) zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 9);
        else zip_source_free(src);
        zip_close(za);
    }
    free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *dir = getenv("CHIRALC_FUZZ_SEED_DIR");
    if (dir && *dir) write_seeds(dir);
    return 0;
}
