/* runtime/rt.h: libchiralrt, linked into every program chiralc produces. Prefix rt_.
 *
 * The runtime knows nothing of the compiler: a compiled model describes itself
 * through RtModel (model.h section) and the runtime does the rest (data, training
 * loop, optimisers, losses, metrics, checkpoints, the command line).
 * Sections are named after the files that implement them.
 * Errors: functions that can fail on user data return false and fill an RtError with
 * one line naming the file, the array and what was expected. */
#ifndef CHIRALC_RT_H
#define CHIRALC_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct RtError {
    char msg[1024];
} RtError;
/* Formats into e (if e != NULL) and returns false, so `return rt_fail(e, ...)` reads well. */
bool rt_fail(RtError *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- alloc.c: the one allocation hook of the runtime ------------------------------ */
void *rt_malloc(size_t n);           /* exits with one line on failure */
void *rt_calloc(size_t n, size_t size);
void rt_free(void *p);
extern void *(*rt_alloc_hook)(size_t n); /* tests make allocations fail through it */

/* ---- array.c: n-dimensional arrays as NumPy has them ------------------------------- */
typedef enum RtDtype { RT_F32, RT_F64, RT_I64, RT_I32, RT_U8, RT_BOOL, RT_STR } RtDtype;
#define RT_MAX_DIMS 8
typedef struct RtArray {
    char *name;
    RtDtype dtype;
    int ndim;
    int64_t shape[RT_MAX_DIMS];
    void *data;         /* C order; RT_STR: an array of char* */
    size_t itemsize;    /* bytes per element in the file (strings: the fixed width) */
} RtArray;
int64_t rt_array_count(const RtArray *a);
void rt_array_free(RtArray *a);          /* the data and the name, not the struct */
const char *rt_dtype_name(RtDtype t);    /* "float32", ... */
/* Shape as text, "[16980, 17, 3]", into buf. */
const char *rt_shape_str(const RtArray *a, char *buf, size_t n);

/* ---- npy.c, npz.c: NumPy files (npz: stored and deflated members, via libzip) ------- */
bool rt_npy_read(const char *path, RtArray *out, RtError *e);
bool rt_npy_write(const char *path, const RtArray *a, RtError *e); /* atomic */
typedef struct RtNpz {
    char *path;
    int n;
    RtArray *arrays;    /* names without the ".npy" */
} RtNpz;
bool rt_npz_read(const char *path, RtNpz *out, RtError *e);
void rt_npz_free(RtNpz *z);
/* The array called name, checked: dtype (converted to float32 if want == RT_F32 and it
 * is float64), number of dims and each extent that is >= 0 in `shape` (-1: any).
 * Error names the file and array: "data.npz: array 'positions_3d': expected shape
 * [N, 17, 3], got [16980, 17, 2]". NaN or Inf in float data is an error too. */
const RtArray *rt_npz_get(const RtNpz *z, const char *name, RtDtype want, int ndim,
                          const int64_t *shape, RtError *e);
bool rt_npz_write(const char *path, const RtArray *arrays, int n, RtError *e); /* atomic, stored */

/* ---- atomic.c: files that appear whole or not at all ------------------------------- */
/* Opens PATH.tmp.XXXXXX beside path; rt_atomic_commit fsyncs, closes and renames it;
 * rt_atomic_abort removes it. */
typedef struct RtAtomic {
    FILE *f;
    char *tmp, *path;
} RtAtomic;
bool rt_atomic_open(RtAtomic *a, const char *path, RtError *e);
bool rt_atomic_commit(RtAtomic *a, RtError *e);
void rt_atomic_abort(RtAtomic *a);

/* ---- safetensors.c: checkpoints and exported weights ------------------------------- */
typedef struct RtTensorOut {
    const char *name;
    RtDtype dtype;      /* RT_F32 or RT_I64 */
    int ndim;
    int64_t shape[RT_MAX_DIMS];
    const void *data;
} RtTensorOut;
/* metadata: string key/value pairs (may be NULL/0), stored under "__metadata__". */
bool rt_safetensors_write(const char *path, const RtTensorOut *t, int n, const char *const *meta_kv,
                          int nmeta, RtError *e);
typedef struct RtSafetensors {
    char *path;
    int n;
    RtArray *tensors;
    int nmeta;
    char **meta_kv;     /* key0, value0, key1, value1, ... */
} RtSafetensors;
bool rt_safetensors_read(const char *path, RtSafetensors *out, RtError *e);
void rt_safetensors_free(RtSafetensors *s);
const char *rt_safetensors_meta(const RtSafetensors *s, const char *key);

/* ---- rng.c: counter-based random numbers (the same on CPU and GPU) ----------------- */
/* Philox-style: a pure function of (seed, stream, counter), so any element of any
 * draw can be recomputed anywhere, in any order. */
uint64_t rt_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);
double rt_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);   /* [0, 1) */
double rt_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);
/* A seeded permutation of 0..n-1 (Fisher-Yates driven by rt_rng_u64). */
void rt_rng_permutation(uint64_t seed, uint64_t stream, int64_t *perm, int64_t n);

#endif
