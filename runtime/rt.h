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

/* C linkage for the CUDA side (runtime/cuda/, generated .cu files), compiled as C++ by nvcc */
#ifdef __cplusplus
extern "C" {
#endif

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
/* The same from bytes in memory; label names them in errors ("data.npz: array 'x'"). */
bool rt_npy_read_mem(const char *label, const void *buf, size_t len, RtArray *out, RtError *e);
/* The .npy 1.0 preamble and header for a (padded to 64 bytes) into buf (256 bytes are
 * enough); returns its length, or 0 when a cannot be written (strings). */
size_t rt_npy_header(const RtArray *a, char *buf, size_t n);
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
bool rt_npz_read_mem(const char *label, const void *buf, size_t len, RtNpz *out, RtError *e);

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
bool rt_safetensors_read_mem(const char *label, const void *buf, size_t len, RtSafetensors *out,
                             RtError *e);

/* ---- rng.c: counter-based random numbers (the same on CPU and GPU) ----------------- */
/* Philox-style: a pure function of (seed, stream, counter), so any element of any
 * draw can be recomputed anywhere, in any order. */
uint64_t rt_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);
double rt_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);   /* [0, 1) */
double rt_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);
/* A seeded permutation of 0..n-1 (Fisher-Yates driven by rt_rng_u64). */
void rt_rng_permutation(uint64_t seed, uint64_t stream, int64_t *perm, int64_t n);
/* The Philox4x32-10 block function (Salmon et al. 2011, as in Random123 and cuRAND).
 * rt_rng_u64(seed, stream, counter) is out[0] | out[1] << 32 for key {seed lo, seed hi}
 * and ctr {counter lo, counter hi, stream lo, stream hi}. */
void rt_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* Dropout: is element k of draw `stream` kept at drop probability p? The definition is
 * support/philox.h's sup_dropout_keep (word k & 3 of block k >> 2), shared with the
 * interpreter and generated CUDA code; p >= 1 keeps nothing. */
int rt_rng_keep(uint64_t seed, uint64_t stream, uint64_t k, double p);

/* ---- parallel.c: the generated loop kernels and GEMMs on every core -------------------- */
/* A loop kernel's outer iterations [lo, hi) (generated code outlines them). */
typedef void (*RtParallelFn)(void *ctx, int64_t lo, int64_t hi);
/* Runs fn over [0, n) in contiguous chunks (16 a thread, fewer when n is smaller) that the
 * threads claim one at a time, and returns when all are done: every index exactly once,
 * the chunks the same whichever thread runs them. Serially (fn(ctx, 0, n)) with one
 * thread, or when `work` (the kernel's points) is too small to pay for waking a worker. */
void rt_parallel_for(RtParallelFn fn, void *ctx, int64_t n, int64_t work);
/* C = alpha op(A) op(B) + beta C, row-major, as cblas_sgemm (ta, tb: 0 or 1 for
 * transposed), in blocks of C's rows or columns on the pool's threads: the generated
 * code's GEMMs. */
void rt_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
              float beta, float *c, int ldc);
/* Wall seconds spent in rt_sgemm since the program started, every caller's calls summed. */
double rt_sgemm_seconds(void);
/* The pool's size, the caller included (default 1); it also sets OpenBLAS to one thread:
 * rt_sgemm parallelises GEMMs itself. */
void rt_parallel_set_threads(int n);
int rt_parallel_threads(void);

/* ---- optim.c: optimisers and schedules (PyTorch semantics, one flat buffer) ------- */
typedef enum RtOptimKind { RT_OPTIM_SGD, RT_OPTIM_ADAM } RtOptimKind;
typedef struct RtOptimCfg {
    RtOptimKind kind;
    double momentum;              /* SGD: v = momentum v + g; p -= lr v (no dampening) */
    double beta1, beta2, eps;     /* Adam: eps 1e-8 as torch.optim.Adam */
    double weight_decay;          /* L2 as PyTorch: g += weight_decay p, before the update */
    bool amsgrad;                 /* Adam: torch's amsgrad=True (VideoPose3D uses it) */
} RtOptimCfg;
typedef struct RtOptim {
    RtOptimCfg cfg;
    int64_t n;          /* parameters */
    float *state;       /* rt_optim_state_len floats: SGD v[n]; Adam m[n], v[n] (+ vmax[n]) */
    int64_t step;       /* steps taken (Adam's bias correction); checkpoints save it */
} RtOptim;
int64_t rt_optim_state_len(const RtOptimCfg *cfg, int64_t n);
void rt_optim_init(RtOptim *o, const RtOptimCfg *cfg, int64_t n);   /* zero state, step 0 */
void rt_optim_free(RtOptim *o);
/* One step over the flat parameters p[n] with gradient g[n] (g is not modified) at the
 * learning rate lr (from rt_lr_at_epoch). Arithmetic in double, stored in float. */
void rt_optim_step(RtOptim *o, float *p, const float *g, double lr);
/* VideoPose3D's exponential decay: epoch e (0-based) trains at lr * decay^e. */
double rt_lr_at_epoch(double lr, double decay, int epoch);
/* torch.nn.utils.clip_grad_norm_: the global L2 norm of g (accumulated in double) is
 * returned; if max_norm > 0, g is scaled by min(1, max_norm / (norm + 1e-6)). */
double rt_clip_grad_norm(float *g, int64_t n, double max_norm);
/* VideoPose3D's BN momentum (run.py): epoch e (0-based) of `epochs` trains with
 * initial * (final/initial)^(e / epochs), i.e. 0.1 in the first epoch, decaying
 * exponentially towards (never reaching) 0.001. Momentum in PyTorch's sense:
 * running = (1 - m) running + m batch. */
#define RT_BN_MOMENTUM_INITIAL 0.1
#define RT_BN_MOMENTUM_FINAL 0.001
double rt_bn_momentum_at_epoch(double initial, double final, int epoch, int epochs);

/* ---- loss.c: losses, value and gradient w.r.t. the prediction ----------------------- */
/* y, t, grad are [rows, nfeat] (rows = batch x frames). Each returns the loss (sums in
 * double) and, if grad != NULL, writes d loss / d y. Definitions (the interpreter's too):
 *   mse   mean over rows and features of (y - t)^2
 *   l1    mean |y - t| (gradient sign(y - t), 0 where equal)
 *   mpjpe mean over rows and joints of ||y_j - t_j||_2, features joint-major
 *         (nfeat = njoints * ncoords; gradient 0 where the distance is 0)
 *   cross_entropy  mean over rows of -log softmax(y)[t], t an int64 class index in
 *         [0, nfeat) (check labels with rt_check_labels first). */
typedef enum RtLossKind { RT_LOSS_MSE, RT_LOSS_L1, RT_LOSS_MPJPE, RT_LOSS_CROSS_ENTROPY } RtLossKind;
double rt_loss_mse(const float *y, const float *t, int64_t rows, int64_t nfeat, float *grad);
double rt_loss_l1(const float *y, const float *t, int64_t rows, int64_t nfeat, float *grad);
double rt_loss_mpjpe(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords, float *grad);
double rt_loss_cross_entropy(const float *y, const int64_t *t, int64_t rows, int64_t nclass, float *grad);
/* Dispatch: t is float* (int64_t* for cross_entropy); ncoords only for mpjpe. */
double rt_loss(RtLossKind k, const float *y, const void *t, int64_t rows, int64_t nfeat, int ncoords,
               float *grad);
const char *rt_loss_name(RtLossKind k);   /* "mse", ... */
/* Every label in [0, nclass): "data.npz: array 'labels': label 9 at index 17 is outside
 * [0, 8)" with what = "data.npz: array 'labels'". */
bool rt_check_labels(const int64_t *t, int64_t n, int64_t nclass, const char *what, RtError *e);

/* ---- metric.c: evaluation metrics ----------------------------------------------------- */
/* Each returns the mean over its `rows` (batch x frames) poses, so batches combine as a
 * rows-weighted mean. Poses are [rows, njoints * ncoords], joint-major. Results are in
 * the data's units: the CMU data are in metres, so the eval command multiplies MPJPE and
 * P-MPJPE by RT_METRES_TO_MM to report millimetres as the literature does. */
#define RT_METRES_TO_MM 1000.0
double rt_metric_mpjpe(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords);
/* Per pose: the similarity transform (scale, rotation, translation) that best maps the
 * prediction onto the target in least squares (SVD of the ncoords x ncoords
 * cross-covariance, LAPACKE_dgesvd), a proper rotation only (det +1, the sign fixed as
 * VideoPose3D's p_mpjpe does, so a mirrored prediction is NOT undone); then MPJPE.
 * ncoords in 1..3. */
double rt_metric_p_mpjpe(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords);
/* PCK@thr: the fraction of joints with ||y_j - t_j|| <= thr * scale. RT_PCK_ABS: scale 1
 * (thr in data units, e.g. 0.15 m for 3D PCK@150mm). RT_PCK_BBOX: scale = the longest
 * side of the target pose's axis-aligned bounding box (per pose and frame), the
 * normalisation of the Penn Action forecasting papers: PCK@0.05 is RT_PCK_BBOX, 0.05. */
typedef enum RtPckNorm { RT_PCK_ABS, RT_PCK_BBOX } RtPckNorm;
double rt_metric_pck(const float *y, const float *t, int64_t rows, int64_t njoints, int ncoords, double thr,
                     RtPckNorm norm);
/* Top-k accuracy of logits y [rows, nclass] against labels t: a row counts if its label
 * ranks among the first k by descending score, ties broken by the lower class index
 * (a stable argsort), so the result is deterministic. */
double rt_metric_topk(const float *y, const int64_t *t, int64_t rows, int64_t nclass, int k);

/* ---- batch.c: samples, the seeded shuffle, batches and the mirror augmentation --------- */
/* The chirality transform of one frame: (T x)_f = sign[f] * x[partner[f]], f < nfeat.
 * partner == NULL: the identity (trivial type, class targets). */
typedef struct RtMirror {
    const int32_t *partner;
    const float *sign;
    int64_t nfeat;
} RtMirror;
/* dst[fr*nfeat + f] = T(src frame fr); dst and src must not overlap. */
void rt_mirror_frames(const RtMirror *m, const float *src, float *dst, int64_t frames);
/* partner an involution within [0, nfeat), sign +-1 and equal on partners. */
bool rt_mirror_check(const RtMirror *m, const char *what, RtError *e);

/* A dataset, read-only views of the caller's arrays. Two kinds:
 * - sequences: x [F, x_feat] and y [F, y_feat] (or y_class [F]) frame by frame, clips
 *   [clip_start[c], clip_start[c+1]). As VideoPose3D's ChunkedGenerator: each clip of
 *   L frames is cut into ceil(L / t_out) output windows of t_out frames, centred on the
 *   clip (offset (n*t_out - L) / 2); a sample's input is its output window widened by
 *   pad_l = (rf-1)/2 frames before and rf-1-pad_l after (t_in = t_out + rf - 1 frames);
 *   frames outside the clip replicate its first / last frame ('edge' padding), for the
 *   input and the target alike. With t_out = 1 every frame is one sample.
 * - windows: x [N, x_frames, x_feat], y [N, y_frames, y_feat] or y_class [N, y_frames]:
 *   sample i is row i. */
typedef struct RtDataset {
    bool sequences;
    int64_t nsamples;
    const float *x;
    int64_t x_frames, x_feat;   /* per sample (sequences: x_frames = t_in) */
    const float *y;             /* float targets, or NULL */
    const int64_t *y_class;     /* class targets, or NULL */
    int64_t y_frames, y_feat;   /* per sample; y_feat = 1 for class targets */
    /* sequences only */
    const int64_t *clip_start;
    int64_t nclips, t_out, rf;
    int64_t *win_clip, *win_start;  /* per sample: its clip and first output frame (may be < start) */
    int64_t every;              /* sample i is the underlying sample i * every (0 or 1: all) */
} RtDataset;
/* nframes = F; clip_start [nclips + 1] must start at 0, never decrease and end at F
 * (else an error naming `what`, e.g. "train.npz: array 'clip_start'"). */
bool rt_dataset_sequences(RtDataset *d, const float *x, int64_t x_feat, const float *y, const int64_t *y_class,
                          int64_t y_feat, int64_t nframes, const int64_t *clip_start, int64_t nclips,
                          int64_t t_out, int64_t rf, const char *what, RtError *e);
void rt_dataset_windows(RtDataset *d, const float *x, int64_t n, int64_t x_frames, int64_t x_feat, const float *y,
                        const int64_t *y_class, int64_t y_frames, int64_t y_feat);
void rt_dataset_free(RtDataset *d);
/* Keeps every k-th sample (k >= 1): a cheaper epoch that still sees every clip. */
void rt_dataset_subsample(RtDataset *d, int64_t k);
/* One sample, unmirrored: x_out [x_frames * x_feat], and y_out [y_frames * y_feat] or
 * cls_out [y_frames] (either may be NULL). */
void rt_dataset_sample(const RtDataset *d, int64_t i, float *x_out, float *y_out, int64_t *cls_out);

/* Random streams of the training loop (rt_rng_*'s `stream`): the epoch is in the low 32 bits. */
#define RT_STREAM_SHUFFLE (UINT64_C(1) << 32)
#define RT_STREAM_MIRROR (UINT64_C(2) << 32)
/* The sample order of an epoch: a permutation of 0..n-1 from (seed, epoch), or 0..n-1
 * when !shuffle. */
void rt_batch_order(uint64_t seed, int epoch, bool shuffle, int64_t *order, int64_t n);
int64_t rt_batch_count(int64_t n, int64_t batch);   /* ceil: the last batch may be short */
typedef struct RtAugment {
    double mirror_p;            /* 0: off */
    RtMirror in, out;           /* T_in for x, T_out for float y; class targets unchanged */
} RtAugment;
/* Whether sample i is mirrored in this epoch: uniform(seed, RT_STREAM_MIRROR | epoch, i) < p.
 * A pure function of (seed, epoch, sample): independent of the batch order. */
bool rt_mirror_drawn(double p, uint64_t seed, int epoch, int64_t i);
/* Fills a batch of the samples idx[0..b) (a slice of the epoch order): x [b, x_frames *
 * x_feat], y [b, y_frames * y_feat] or cls [b, y_frames]; aug may be NULL (its mirrors
 * have nfeat = x_feat and y_feat). mirrored[k] (may be NULL): whether sample k was. */
void rt_batch_fill(const RtDataset *d, const int64_t *idx, int64_t b, const RtAugment *aug, uint64_t seed,
                   int epoch, float *x, float *y, int64_t *cls, bool *mirrored);

/* ---- progress.c: the terminal and the CSV log ------------------------------------------ */
double rt_now(void);    /* monotonic seconds */
typedef struct RtProgress {
    FILE *out;
    bool tty;           /* a bar redrawn with \r; else nothing until the epoch's line */
    int epoch, epochs;  /* 1-based for display */
    int64_t total, done;
    double t0, last_draw;
    int width;          /* characters of the last bar drawn, to clear it */
} RtProgress;
/* tty: 1 or 0 to force, -1 to ask isatty(fileno(out)). */
void rt_progress_begin(RtProgress *p, FILE *out, int tty, int epoch, int epochs, int64_t total);
/* done of total batches; redraws at most 10 times a second (and at the end), with the
 * running loss and the ETA of the epoch. */
void rt_progress_update(RtProgress *p, int64_t done, double loss);
/* Clears the bar and prints one line (the epoch's summary), on TTYs and elsewhere alike. */
void rt_progress_end(RtProgress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One row per epoch: epoch,lr,train_loss,val_loss,<metric names...>,seconds. The whole
 * file is rewritten atomically after each row (tmp + rename; epochs are few), so a run
 * killed at any moment leaves a valid CSV of whole rows. NaN values are empty fields. */
typedef struct RtCsvLog {
    char *path;
    int nmetrics;
    char *text;         /* the file's contents so far */
    size_t len, cap;
} RtCsvLog;
/* Starts the log. keep_epochs > 0 (a resumed run): rows of an existing file with the
 * same header and epoch <= keep_epochs are kept, so the resumed log has no repeats;
 * otherwise the file starts afresh. Writes the header (or the kept rows) at once. */
bool rt_csv_open(RtCsvLog *l, const char *path, const char *const *metric_names, int nmetrics, int keep_epochs,
                 RtError *e);
bool rt_csv_row(RtCsvLog *l, int epoch, double lr, double train_loss, double val_loss, const double *metrics,
                double seconds, RtError *e);
void rt_csv_close(RtCsvLog *l);

/* ---- cmu.c: the CMU-derived task data ---------------------------------------------- */
/* Task data derived from data/cmu17.npz (real CMU motion capture, 17 Human3.6M joints,
 * metres, world y up, floor y = 0): 2D->3D lifting pairs seen by virtual cameras, 2D
 * forecasting windows and 2D action windows. See data/README.md.
 *
 * Camera coordinates are x right, y down, z forward (right-handed, as OpenCV and
 * Human3.6M). Mirroring the scene through the camera's vertical plane (the one holding
 * the optical axis) then negates camera x, and with the principal point at the image
 * centre it negates the normalised u: the chirality transform of the derived data. */
#define RT_CMU_JOINTS 17
#define RT_CMU_CAMERAS 4
#define RT_CMU_IMAGE 1000       /* image width and height in pixels */
typedef struct RtCmuCamera {
    double R[3][3];             /* rows: the camera's x, y, z axes in rig coordinates */
    double t[3];                /* X_cam = R X_rig + t */
    double fx, fy, cx, cy;      /* pixels */
} RtCmuCamera;
/* A camera at eye looking at target (rig coordinates, y up); intrinsics left alone. */
void rt_cmu_look_at(RtCmuCamera *c, const double eye[3], const double target[3]);
/* Camera coordinates (metres) and VideoPose3D's screen-normalised 2D (u / w * 2 - 1,
 * v / w * 2 - h / w) of a rig point in a w x h image. False when the point is less
 * than 1 cm in front of the camera. */
bool rt_cmu_project(const RtCmuCamera *c, double w, double h, const double p[3], double xyz[3],
                    double uv[2]);
/* The 4 cameras for a seed: azimuths 45, 135, 225, 315 degrees (+-5, measured from +z
 * towards +x) around the rig origin (a clip's mean root on the floor), 4.5-5.5 m away,
 * 1.5-1.7 m high, looking at (0, target_height, 0); focal 1140-1150 px, square pixels,
 * principal point at the image centre. */
void rt_cmu_rig(uint64_t seed, double target_height, RtCmuCamera cams[RT_CMU_CAMERAS]);

/* The input, viewed in place (in an RtNpz or a test's own buffers). */
typedef struct RtCmu {
    const char *path;                   /* for error messages */
    int64_t nframes, nclips, nactions;
    const float *pos;                   /* [nframes, 17, 3] world positions, metres */
    const int64_t *clip_start;          /* [nclips + 1] */
    const int64_t *clip_action;         /* [nclips], < nactions */
    const int64_t *clip_split;          /* [nclips] 0 train, 1 test: the source folders */
    const int64_t *clip_split_balanced; /* [nclips]; NULL: none (only the source split) */
    const int64_t *clip_extra;          /* [nclips] 1 for walking_extra; NULL: none */
    char *const *action_names;          /* [nactions] */
} RtCmu;
/* Views z's arrays, checked (shapes, dtypes, clip_start ascending from 0 to the frame
 * count, labels in range, splits 0/1); the error names the file and array. */
bool rt_cmu_from_npz(const RtNpz *z, RtCmu *out, RtError *e);

typedef enum RtCmuTask { RT_CMU_LIFTING, RT_CMU_FORECAST, RT_CMU_ACTION } RtCmuTask;
typedef struct RtCmuOptions {
    RtCmuTask task;
    uint64_t seed;      /* the camera rig */
    bool balanced;      /* clip_split_balanced (the default) or the source's clip_split */
    bool no_extra;      /* leave out the walking_extra clips */
    int past, future;   /* forecast: observed and predicted frames (10, 10) */
    int frames;         /* action: window length (32) */
    int stride;         /* forecast (5) and action (16): frames between window starts */
} RtCmuOptions;
void rt_cmu_defaults(RtCmuOptions *o, RtCmuTask task);
/* The arrays of one split (0 train, 1 test), named as the examples' inputs and outputs
 * (pose2d, pose3d, observed, predicted, action) plus the cameras and bookkeeping; the
 * sequences are (clip, camera) pairs in clip-major order. An empty split is an error. */
bool rt_cmu_derive(const RtCmu *d, const RtCmuOptions *o, int split, RtArray **arrays, int *n,
                   RtError *e);
void rt_cmu_arrays_free(RtArray *arrays, int n);

/* ---- backend_cpu.c, cuda/backend.cu: where a model's buffers live ------------------------ */
/* Every pointer of an RtExec lives in the memory of the program's backend: the host's for
 * the C and LLVM backends, the GPU's for the CUDA one (chiralc build --target cuda). The
 * commands move batches in and results out through this table; data, checkpoints,
 * metrics and the weights' initialisation stay on the host. The CPU table is the runtime's
 * own code; the CUDA table (runtime/cuda/backend.cu) is registered by the CUDA program's
 * main() (runtime/cuda/main.cu) with rt_backend_use, and nowhere else. */
typedef struct RtBackend {
    const char *name;             /* "cpu", "cuda" */
    bool host_memory;             /* buffers are host memory: rt_dev_like returns the host buffer */
    /* Whether the device can run; else one line in e ("no CUDA device is available (...)"). */
    bool (*init)(RtError *e);
    const char *(*device)(void);  /* after init: what runs the model ("NVIDIA H100 ..., sm_90") */
    void *(*alloc)(size_t bytes); /* zeroed; exits with one line when memory runs out */
    void (*free)(void *p);
    void (*upload)(void *dev, const void *host, size_t bytes);
    void (*download)(void *host, const void *dev, size_t bytes); /* waits for the device */
    void (*zero)(void *dev, size_t bytes);
    /* rt_loss on the backend's buffers (y, t, grad); the loss comes back to the host. */
    double (*loss)(RtLossKind k, const float *y, const void *t, int64_t rows, int64_t nfeat, int ncoords,
                   float *grad);
    double (*clip)(float *g, int64_t n, double max_norm);                   /* rt_clip_grad_norm */
    /* rt_optim_step with the optimiser's moments in `state` (the backend's copy of o->state) */
    void (*optim_step)(RtOptim *o, float *state, float *p, const float *g, double lr);
    void (*sync)(void);           /* waits until the device has finished (timings) */
} RtBackend;
extern const RtBackend rt_backend_cpu;
const RtBackend *rt_backend(void);          /* the CPU unless rt_backend_use chose another */
void rt_backend_use(const RtBackend *b);
/* The backend's buffer for a host buffer of `bytes`: the host buffer itself where the
 * backend uses host memory, else a new zeroed device buffer (NULL for NULL). */
void *rt_dev_like(void *host, size_t bytes);
void rt_dev_release(void *dev, void *host);                     /* frees dev unless it is host */
void rt_dev_upload(void *dev, const void *host, size_t bytes);  /* nothing when dev == host */
void rt_dev_download(void *host, const void *dev, size_t bytes);

/* ---- model.h: what a compiled model gives the runtime -------------------------------- */
/* The ABI between the code chiralc generates (codegen/emit_c.c, later the LLVM and CUDA
 * backends) and libchiralrt: the generated file defines one RtModel and the function
 * rt_model_get() that returns it. Everything is float32; arrays are C order.
 * Tensors of one sample are [frames][features] (frames 0: no time axis: [features]);
 * a batch puts `batch` samples one after the other. docs/kernel-ir.md has the details. */
#define RT_MODEL_ABI 1

typedef struct RtModelIo {
    const char *name;
    int frames;               /* 0: no time axis */
    int features;
    const int32_t *partner;   /* the chirality transform (as RtMirror); NULL: trivial */
    const float *sign;
    bool is_class;            /* class(N) scores: targets are class indices */
    bool invariant;
    int joints, coords;       /* skeleton tensors: features = joints * coords; else 0, 0 */
} RtModelIo;

/* One folded parameter (or running statistic): `count` floats at `offset` of the flat
 * params (or state) buffer, shape [rows, cols] (cols == 1: a vector, ndim 1). */
typedef struct RtModelParam {
    const char *name;         /* "%3 conv1d h.A.tap0", unique */
    int64_t offset, count;
    int ndim;
    int64_t shape[2];
} RtModelParam;

/* One dense exported tensor: `count` floats at `offset` of the dense buffer, shape
 * shape[0..ndim) in PyTorch's layout for the module's parameter of that name. */
typedef struct RtModelDense {
    const char *name;         /* "n3.weight", "n5.running_var", "n7.weight_ih_l0" */
    int ndim;                 /* 1..3 */
    int64_t shape[3];
    int64_t offset, count;
} RtModelDense;

typedef enum RtMode { RT_MODE_INFERENCE, RT_MODE_TRAINING } RtMode;

/* One execution of a model function. The caller owns every buffer. */
typedef struct RtExec {
    int64_t batch;
    RtMode mode;
    const float *params;      /* RtModel.params_size */
    float *state;             /* RtModel.state_size: batchnorm running statistics; training
                                 forward updates them */
    float *prep;              /* RtModel.prep_size: derived inference weights; prepare()
                                 fills them from params and state, forward (inference) reads */
    const float *const *inputs;   /* [ninputs]: batch * frames * features each */
    float *const *outputs;        /* [noutputs] */
    const void *const *targets;   /* [noutputs]: float, or int64 class indices */
    /* backward: the runtime computes the loss and its gradient with respect to each output
     * (runtime/loss.c) into doutputs (NULL for outputs without a loss); backward then
     * overwrites grads with dL/dparams, after a forward of the same mode on the same batch */
    float *const *doutputs;       /* [noutputs] */
    float *grads;                 /* RtModel.params_size (backward) */
    float *arena;             /* arena_per_sample * batch + arena_fixed floats */
    /* dropout (training): element k of draw `stream` is kept when
     * rt_rng_keep(dropout_seed, (step << 32) | stream, k, p); dropout == false: off */
    bool dropout;
    uint64_t dropout_seed, step;
    double bn_momentum;       /* < 0: each batchnorm's own momentum */
} RtExec;

/* The train block of the model, as written (the runtime's defaults where not). */
typedef struct RtModelTrain {
    const char *loss;         /* "mse", "l1", "mpjpe", "cross_entropy", or "" */
    int loss_output;          /* index into outputs, -1 without a loss */
    const char *optimizer;    /* "adam" or "sgd" */
    double lr, beta1, beta2, momentum, decay, weight_decay, clip;
    int batch, epochs;
    double mirror;            /* augment mirror(p); 0: off */
} RtModelTrain;

typedef struct RtModel RtModel;
struct RtModel {
    int abi;                  /* RT_MODEL_ABI */
    const char *name;
    const char *fingerprint;  /* of the compiled graph: a checkpoint of another model differs */
    const char *options;      /* compilation options, e.g. "fold" or "no-fold baseline" */
    int ninputs, noutputs;
    const RtModelIo *inputs, *outputs;   /* targets: one per output, shaped like it */
    int nparams;
    const RtModelParam *params;
    int64_t params_size;
    int nstate;
    const RtModelParam *state;
    int64_t state_size, prep_size;
    int64_t arena_per_sample, arena_fixed;
    RtModelTrain train;
    /* Deterministic initial parameters and statistics from a seed (blocks N(0, 1/fan_in),
     * biases N(0, 0.01), gamma 1, beta 0, running mean 0 and variance 1). */
    void (*init)(const RtModel *m, float *params, float *state, uint64_t seed);
    void (*prepare)(const RtModel *m, RtExec *x);
    void (*forward)(const RtModel *m, RtExec *x);  /* by x->mode */
    void (*backward)(const RtModel *m, RtExec *x); /* NULL until the training graph is lowered */
    /* The dense export (codegen/export.c): every layer's weights as the stock PyTorch
     * module holds them (nn.Linear, nn.Conv1d, nn.BatchNorm1d, nn.LSTM, nn.GRU), named
     * "n<id>.weight" ..., dense_size floats in all; densify computes them from params
     * and state. graph_json describes the network for a loader (ops in order, their
     * attributes, the inputs' and outputs' chirality transforms). */
    int ndense;
    const RtModelDense *dense;
    int64_t dense_size;
    void (*densify)(const RtModel *m, const float *params, const float *state, float *dense);
    const char *graph_json;
};
/* Defined by the generated code. */
const RtModel *rt_model_get(void);

/* ---- export.c: the dense export file ---------------------------------------------------- */
/* Runs m->densify on (params, state) and writes the dense tensors as safetensors, atomically,
 * with metadata {"graph": m->graph_json, "model", "fingerprint", "options"}; each
 * BatchNorm1d also gets its "num_batches_tracked" (int64 scalar 0), so that
 * load_state_dict(strict=True) of the stock modules accepts the file as it is. */
bool rt_export_dense(const RtModel *m, const float *params, const float *state, const char *path, RtError *e);

/* ---- program: the produced program (main.c cli.c data.c checkpoint.c train.c evaluate.c
 *      bench.c info.c export_cmd.c) ------------------------------------------------------- */
/* main.c holds only main(), which calls rt_main(rt_model_get(), argc, argv): programs
 * with their own main (tests, tools) never pull it, nor the model, from the archive.
 * Exit status: 0, 1 for bad data, files or checkpoints (one line naming the file and
 * array), 2 for a bad command line (one line). */
enum { RT_EXIT_OK = 0, RT_EXIT_USER = 1, RT_EXIT_USAGE = 2 };
int rt_main(const RtModel *m, int argc, char **argv);

#define RT_MAX_ARRAY_MAPS 16
/* The options of every subcommand (cli.c); unset values are the model's. */
typedef struct RtOpts {
    const char *cmd;
    const char *data, *val, *save, *resume, *load, *log, *in, *out, *dense;
    int epochs;                 /* -1: the model's train block */
    int64_t batch;              /* 0: the model's */
    double lr, decay, clip, mirror;   /* < 0: the model's */
    double bn_momentum;         /* -1: VideoPose3D's schedule, -2: each layer's own, else fixed */
    const char *optimizer;      /* NULL: the model's */
    uint64_t seed;
    bool seed_given;
    int threads;                /* OpenBLAS threads (fixed, so results do not depend on it) */
    int steps;                  /* bench */
    int64_t subsample;          /* train, eval: every K-th sample (VideoPose3D's --downsample); 1: all */
    int progress;               /* -1: a bar on a TTY; 0: plain lines */
    int narrays;                /* --array NAME=ARRAY: the model's NAME is the file's ARRAY */
    const char *array_from[RT_MAX_ARRAY_MAPS], *array_to[RT_MAX_ARRAY_MAPS];
} RtOpts;

/* data.c: a task's data for the model's (one) input and output, read from an .npz.
 * Layouts: a `clip_start` array means frame sequences [F, ...] cut into centred windows
 * (rt_dataset_sequences; t_out = output frames, receptive field = input frames - t_out
 * + 1); otherwise ready windows [N, frames, joints, coords] / [N, frames, features]
 * (no frames axis for a model tensor without time). Class outputs take int64 labels
 * [N] (or [N, frames], or [F] for sequences). */
typedef struct RtTask {
    RtNpz npz;
    RtDataset set;
    int64_t x_len, y_len;       /* floats per sample (y: labels per sample for classes) */
} RtTask;
/* The model's name for an array after --array. */
const char *rt_array_name(const RtOpts *o, const char *model_name);
/* The model has exactly one input and one output (else an error naming the model). */
bool rt_task_supported(const RtModel *m, RtError *e);
bool rt_task_load(const RtModel *m, const RtOpts *o, const char *path, RtTask *t, RtError *e);
void rt_task_free(RtTask *t);

/* checkpoint.c: safetensors checkpoints. Tensors "param/NAME" and "state/NAME" per table
 * entry, "optim/state" and "optim/step" when an optimiser is saved; metadata: model,
 * fingerprint, options, epoch (completed), seed, batch, lr, optimizer. Written
 * atomically; loading checks the fingerprint and every tensor's shape. */
typedef struct RtCkptMeta {
    int epoch;                  /* epochs completed */
    uint64_t seed;
    int64_t batch;
    double lr;
    char optimizer[16];         /* "adam" / "sgd" */
    bool has_optim;
} RtCkptMeta;
bool rt_ckpt_save(const char *path, const RtModel *m, const float *params, const float *state,
                  const RtOptim *opt, const RtCkptMeta *meta, RtError *e);
/* opt (may be NULL): its state and step are restored; it must be initialised with the
 * checkpoint's optimiser kind (rt_ckpt_peek tells it). */
bool rt_ckpt_load(const char *path, const RtModel *m, float *params, float *state, RtOptim *opt,
                  RtCkptMeta *meta, RtError *e);
bool rt_ckpt_peek(const char *path, const RtModel *m, RtCkptMeta *meta, RtError *e);

/* evaluate.c: inference over a whole dataset, with the task's loss and metrics:
 * pose outputs with 3 coordinates: MPJPE and P-MPJPE in mm; with 2: PCK@0.05 (bounding
 * box) and MPJPE in data units; class outputs: top-1 and top-5 (%). */
#define RT_MAX_METRICS 4
typedef struct RtEvalResult {
    double loss;
    int nmetrics;
    const char *names[RT_MAX_METRICS];
    double values[RT_MAX_METRICS];
} RtEvalResult;
int rt_metric_names(const RtModel *m, const char **names);
/* The display name and unit of a metric ("mpjpe_mm" -> "MPJPE", "mm"). */
const char *rt_metric_label(const char *csv_name, const char **unit);
/* The train block's loss; without one: cross_entropy for class outputs, else mse. */
RtLossKind rt_model_loss(const RtModel *m);
/* prep and arena sized for batch; runs prepare first. */
void rt_evaluate(const RtModel *m, const float *params, float *state, float *prep, float *arena, int64_t batch,
                 const RtTask *t, RtEvalResult *r);

/* The subcommands; each returns the exit status. */
int rt_cmd_train(const RtModel *m, const RtOpts *o);
int rt_cmd_eval(const RtModel *m, const RtOpts *o);
int rt_cmd_predict(const RtModel *m, const RtOpts *o);
int rt_cmd_bench(const RtModel *m, const RtOpts *o);
int rt_cmd_info(const RtModel *m, const RtOpts *o);
int rt_cmd_export(const RtModel *m, const RtOpts *o);
/* grad_cmd.c: one batch's outputs, loss, gradients and mirrored output (comparing builds). */
int rt_cmd_grad(const RtModel *m, const RtOpts *o);
/* One line "NAME: error: ..." on stderr; returns RT_EXIT_USER. */
int rt_report(const RtModel *m, const RtError *e);
void rt_set_threads(int n);

#ifdef __cplusplus
}
#endif

#endif
