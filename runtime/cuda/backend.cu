/* runtime/cuda/backend.cu: the CUDA backend's table (rt.h, backend section): device
 * memory, copies, the losses with their gradient, gradient clipping and the fused
 * optimiser step, all on one stream.
 *
 * Every loss term and optimiser step is the CPU's own code (runtime/terms.h, shared with
 * runtime/loss.c and runtime/optim.c), in double, compiled without contraction into FMAs
 * (--fmad=false): the optimiser step gives the CPU's floats bit for bit from the same
 * inputs. Sums (losses, the gradient
 * norm) are reduced deterministically: a fixed grid, each block's partial sum in a
 * fixed order, the partials added on the host in block order, so a run repeats
 * exactly; they differ from the CPU's sequential sums only by rounding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda/rt_cuda.h"
#include "runtime/terms.h"

enum { RED_BLOCKS = 264, THREADS = 256 };

static const char *g_prog = "chiralrt";
static bool g_ready;
static cudaStream_t g_stream;
static cublasHandle_t g_blas;
static int g_sms = 132;
static char g_device[256];
static double *g_partial; /* RED_BLOCKS partial sums on the device */

extern "C" void rt_cuda_set_program(const char *name) { g_prog = name; }

extern "C" void rt_cuda_fail(const char *stmt, const char *file, int line, const char *error, const char *description) {
    fflush(stdout);
    fprintf(stderr, "%s: error: CUDA: %s failed at %s:%d: %s (%s)\n", g_prog, stmt, file, line, error, description);
    exit(RT_EXIT_USER);
}

extern "C" cudaStream_t rt_cuda_stream(void) { return g_stream; }
extern "C" cublasHandle_t rt_cuda_blas(void) { return g_blas; }

extern "C" unsigned rt_cuda_grid(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads, cap = (int64_t)g_sms * 32;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

static bool cuda_init(RtError *e) {
    if (g_ready) return true;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess)
        return rt_fail(e, "no CUDA device is available (cudaGetDeviceCount: %s: %s)", cudaGetErrorName(err),
                       cudaGetErrorString(err));
    if (n == 0) return rt_fail(e, "no CUDA device is available (cudaGetDeviceCount found none)");
    int dev = 0;
    RT_CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp p;
    RT_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    /* the programs hold sm_90 code and compute_90 PTX: Hopper and newer */
    if (p.major < 9)
        return rt_fail(e, "CUDA device %d (%s) has compute capability %d.%d; this program was compiled for sm_90 "
                          "(Hopper) and newer", dev, p.name, p.major, p.minor);
    g_sms = p.multiProcessorCount > 0 ? p.multiProcessorCount : 1;
    snprintf(g_device, sizeof g_device, "%s (device %d, sm_%d%d, %d SMs, %.0f GiB)", p.name, dev, p.major, p.minor,
             g_sms, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    RT_CUDA_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    RT_CUBLAS_CHECK(cublasCreate(&g_blas));
    RT_CUBLAS_CHECK(cublasSetStream(g_blas, g_stream));
    /* float32 GEMMs in float32 (no TF32): the CPU's results to about 1e-6 */
    RT_CUBLAS_CHECK(cublasSetMathMode(g_blas, CUBLAS_DEFAULT_MATH));
    RT_CUDA_CHECK(cudaMalloc((void **)&g_partial, RED_BLOCKS * sizeof(double)));
    g_ready = true;
    return true;
}

static const char *cuda_device(void) { return g_device; }

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 1;
    RT_CUDA_CHECK(cudaMalloc(&p, bytes));
    RT_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, g_stream));
    return p;
}
static void cuda_free(void *p) {
    if (p) RT_CUDA_CHECK(cudaFree(p));
}
static void cuda_upload(void *dev, const void *host, size_t bytes) {
    if (bytes) RT_CUDA_CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, g_stream));
}
static void cuda_download(void *host, const void *dev, size_t bytes) {
    if (!bytes) return;
    RT_CUDA_CHECK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, g_stream));
    RT_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}
static void cuda_zero(void *dev, size_t bytes) {
    if (bytes) RT_CUDA_CHECK(cudaMemsetAsync(dev, 0, bytes, g_stream));
}
static void cuda_sync(void) { RT_CUDA_CHECK(cudaStreamSynchronize(g_stream)); }

/* ---- deterministic sums ------------------------------------------------------------------ */

/* Block b's sum of v (every thread's) into partial[b]: a fixed tree in shared memory. */
static __device__ void block_sum(double v, double *partial) {
    __shared__ double s[THREADS];
    s[threadIdx.x] = v;
    __syncthreads();
    for (int w = THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

/* The partials of the last reduction, added in block order. */
static double partial_total(void) {
    double h[RED_BLOCKS];
    cuda_download(h, g_partial, sizeof h);
    double s = 0;
    for (int i = 0; i < RED_BLOCKS; i++) s += h[i];
    return s;
}

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- losses (runtime/loss.c; the terms are runtime/terms.h's) ---------------------------- */

static __global__ void k_mse(const float *y, const float *t, int64_t n, double k, float *grad, double *partial) {
    double s = 0;
    GRID_STRIDE(i, n) s += rt_mse_term(y, t, i, k, grad);
    block_sum(s, partial);
}

static __global__ void k_l1(const float *y, const float *t, int64_t n, double k, float *grad, double *partial) {
    double s = 0;
    GRID_STRIDE(i, n) s += rt_l1_term(y, t, i, k, grad);
    block_sum(s, partial);
}

static __global__ void k_mpjpe(const float *y, const float *t, int64_t n, int nc, double k, float *grad,
                               double *partial) {
    double s = 0;
    GRID_STRIDE(j, n) s += rt_mpjpe_term(y, t, j, nc, k, grad);
    block_sum(s, partial);
}

static __global__ void k_cross_entropy(const float *y, const int64_t *t, int64_t rows, int64_t nclass, double k,
                                       float *grad, double *partial) {
    double s = 0;
    GRID_STRIDE(r, rows) s += rt_cross_entropy_term(y, t, r, nclass, k, grad);
    block_sum(s, partial);
}

static double cuda_loss(RtLossKind kind, const float *y, const void *t, int64_t rows, int64_t nfeat, int ncoords,
                        float *grad) {
    const float *tf = (const float *)t;
    int64_t n = rows * nfeat;
    switch (kind) {
    case RT_LOSS_MSE:
        if (n == 0) return 0;
        k_mse<<<RED_BLOCKS, THREADS, 0, g_stream>>>(y, tf, n, 2.0 / (double)n, grad, g_partial);
        RT_CUDA_LAUNCHED("k_mse");
        return partial_total() / (double)n;
    case RT_LOSS_L1:
        if (n == 0) return 0;
        k_l1<<<RED_BLOCKS, THREADS, 0, g_stream>>>(y, tf, n, 1.0 / (double)n, grad, g_partial);
        RT_CUDA_LAUNCHED("k_l1");
        return partial_total() / (double)n;
    case RT_LOSS_MPJPE:
        if (ncoords <= 0) return NAN;
        n = rows * (nfeat / ncoords);
        if (n == 0) return 0;
        k_mpjpe<<<RED_BLOCKS, THREADS, 0, g_stream>>>(y, tf, n, ncoords, 1.0 / (double)n, grad, g_partial);
        RT_CUDA_LAUNCHED("k_mpjpe");
        return partial_total() / (double)n;
    case RT_LOSS_CROSS_ENTROPY:
        if (rows == 0) return 0;
        k_cross_entropy<<<RED_BLOCKS, THREADS, 0, g_stream>>>(y, (const int64_t *)t, rows, nfeat, 1.0 / (double)rows,
                                                              grad, g_partial);
        RT_CUDA_LAUNCHED("k_cross_entropy");
        return partial_total() / (double)rows;
    }
    return NAN;
}

/* ---- clipping and the optimiser step (runtime/optim.c) ---------------------------------- */

static __global__ void k_sumsq(const float *g, int64_t n, double *partial) {
    double s = 0;
    GRID_STRIDE(i, n) s += (double)g[i] * (double)g[i];
    block_sum(s, partial);
}

static __global__ void k_scale(float *g, int64_t n, double c) {
    GRID_STRIDE(i, n) g[i] = (float)((double)g[i] * c);
}

static double cuda_clip(float *g, int64_t n, double max_norm) {
    if (n == 0) return 0;
    k_sumsq<<<RED_BLOCKS, THREADS, 0, g_stream>>>(g, n, g_partial);
    RT_CUDA_LAUNCHED("k_sumsq");
    double norm = sqrt(partial_total());
    if (max_norm > 0) {
        double c = max_norm / (norm + 1e-6);
        if (c < 1) {
            k_scale<<<rt_cuda_grid(n, THREADS), THREADS, 0, g_stream>>>(g, n, c);
            RT_CUDA_LAUNCHED("k_scale");
        }
    }
    return norm;
}

static __global__ void k_sgd(float *p, const float *g, float *v, int64_t n, double lr, double mu, double wd) {
    GRID_STRIDE(i, n) rt_sgd_term(p, g, v, i, lr, mu, wd);
}

static __global__ void k_adam(float *p, const float *g, float *m, float *v, float *vmax, int64_t n, double b1,
                              double b2, double eps, double wd, double step_size, double sqrt_bc2) {
    GRID_STRIDE(i, n) rt_adam_term(p, g, m, v, vmax, i, b1, b2, eps, wd, step_size, sqrt_bc2);
}

/* One fused kernel over the flat parameters; state is the device copy of o->state. */
static void cuda_optim_step(RtOptim *o, float *state, float *p, const float *g, double lr) {
    o->step++;
    const int64_t n = o->n;
    if (n == 0) return;
    const unsigned grid = rt_cuda_grid(n, THREADS);
    if (o->cfg.kind == RT_OPTIM_SGD) {
        k_sgd<<<grid, THREADS, 0, g_stream>>>(p, g, o->cfg.momentum != 0 ? state : NULL, n, lr, o->cfg.momentum,
                                              o->cfg.weight_decay);
        RT_CUDA_LAUNCHED("k_sgd");
        return;
    }
    const double b1 = o->cfg.beta1, b2 = o->cfg.beta2, t = (double)o->step;
    const double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    k_adam<<<grid, THREADS, 0, g_stream>>>(p, g, state, state + n, o->cfg.amsgrad ? state + 2 * n : NULL, n, b1, b2,
                                           o->cfg.eps, o->cfg.weight_decay, lr / bc1, sqrt(bc2));
    RT_CUDA_LAUNCHED("k_adam");
}

extern "C" const RtBackend rt_backend_cuda = {
    "cuda",      false,      cuda_init, cuda_device,     cuda_alloc, cuda_free,
    cuda_upload, cuda_download, cuda_zero, cuda_loss,    cuda_clip,  cuda_optim_step,
    cuda_sync,
};
