/* bench/cublas_sgemm.cu: cuBLAS sgemm throughput on a list of GEMM shapes, the GPU's
 * practical limit for a network made of those GEMMs (bench/gpu_run.py; bench/sgemm.c is
 * the CPU's).
 *
 * usage: cublas_sgemm [--min-time S] SHAPE...
 *   SHAPE = M,N,K[,TA,TB[,COUNT[,TIMES]]]   as bench/sgemm.c: row-major op(A) is M x K;
 *   COUNT: a strided batch of COUNT GEMMs, one cublasSgemmStridedBatched call (as the
 *   generated code issues it, codegen/emit_cuda.c); TIMES: how often the shape occurs.
 * float32 arithmetic (CUBLAS_DEFAULT_MATH, no TF32), as the CUDA programs' GEMMs.
 *
 * Each shape is timed alone with CUDA events: one untimed call, then calls until --min-time
 * seconds have passed (at least 5); its time is the median call. The last line is the
 * network-weighted total: `total FLOPS SECONDS GFLOP/S`, FLOPS = 2*M*N*K*COUNT*TIMES. */
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

[[noreturn]] static void fail(const char *stmt, const char *file, int line, const char *why) {
    fprintf(stderr, "cublas_sgemm: %s failed at %s:%d: %s\n", stmt, file, line, why);
    exit(1);
}
#define CHECK(stmt)                                                                   \
    do {                                                                              \
        cudaError_t e_ = (stmt);                                                      \
        if (e_ != cudaSuccess) fail(#stmt, __FILE__, __LINE__, cudaGetErrorString(e_)); \
    } while (0)
#define CHECK_BLAS(stmt)                                                                          \
    do {                                                                                          \
        cublasStatus_t s_ = (stmt);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS) fail(#stmt, __FILE__, __LINE__, cublasGetStatusString(s_)); \
    } while (0)

struct Shape {
    long m, n, k, count, times;
    bool ta, tb;
};

static bool parse_shape(const char *s, Shape *sh) {
    char ta = 'N', tb = 'N';
    *sh = Shape{0, 0, 0, 1, 1, false, false};
    int got = sscanf(s, "%ld,%ld,%ld,%c,%c,%ld,%ld", &sh->m, &sh->n, &sh->k, &ta, &tb, &sh->count, &sh->times);
    if (got != 3 && got != 5 && got != 6 && got != 7) return false;
    if ((ta != 'N' && ta != 'T') || (tb != 'N' && tb != 'T')) return false;
    if (sh->m < 1 || sh->n < 1 || sh->k < 1 || sh->count < 1 || sh->times < 1) return false;
    sh->ta = ta == 'T', sh->tb = tb == 'T';
    return true;
}

/* values in [-0.5, 0.5): no denormals, no overflow */
__global__ void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned s = (unsigned)i * 2654435761u + seed * 40503u + 1u;
        s ^= s >> 15, s *= 2246822519u, s ^= s >> 13;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

/* One call of the shape: row-major C[m x n] = op(A) op(B) is column-major
 * C^T = op(B)^T op(A)^T, as the generated code calls it. */
static void run_shape(cublasHandle_t h, const Shape &sh, const float *a, const float *b, float *c) {
    const float one = 1.0f, zero = 0.0f;
    const long lda = sh.ta ? sh.m : sh.k, ldb = sh.tb ? sh.k : sh.n, ldc = sh.n;
    const cublasOperation_t oa = sh.ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = sh.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (sh.count == 1)
        CHECK_BLAS(cublasSgemm(h, ob, oa, (int)sh.n, (int)sh.m, (int)sh.k, &one, b, (int)ldb, a, (int)lda, &zero, c,
                               (int)ldc));
    else
        CHECK_BLAS(cublasSgemmStridedBatched(h, ob, oa, (int)sh.n, (int)sh.m, (int)sh.k, &one, b, (int)ldb,
                                             sh.k * sh.n, a, (int)lda, sh.m * sh.k, &zero, c, (int)ldc, sh.m * sh.n,
                                             (int)sh.count));
}

int main(int argc, char **argv) {
    double min_time = 0.2;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--min-time") == 0) min_time = atof(argv[2]), first = 3;
    if (first >= argc) {
        fprintf(stderr, "usage: cublas_sgemm [--min-time S] M,N,K[,TA,TB[,COUNT[,TIMES]]]...\n");
        return 2;
    }
    std::vector<Shape> shapes;
    for (int i = first; i < argc; i++) {
        Shape sh;
        if (!parse_shape(argv[i], &sh)) {
            fprintf(stderr, "cublas_sgemm: bad shape '%s' (expected M,N,K[,TA,TB[,COUNT[,TIMES]]])\n", argv[i]);
            return 2;
        }
        shapes.push_back(sh);
    }
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
        fprintf(stderr, "cublas_sgemm: no CUDA device is available\n");
        return 1;
    }
    cudaDeviceProp p;
    CHECK(cudaGetDeviceProperties(&p, 0));
    printf("device %s\n", p.name);
    cublasHandle_t h;
    CHECK_BLAS(cublasCreate(&h));
    CHECK_BLAS(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    double total_flops = 0, total_s = 0;
    for (const Shape &sh : shapes) {
        const size_t na = (size_t)(sh.m * sh.k * sh.count), nb = (size_t)(sh.k * sh.n * sh.count),
                     nc = (size_t)(sh.m * sh.n * sh.count);
        float *a, *b, *c;
        CHECK(cudaMalloc(&a, na * sizeof(float)));
        CHECK(cudaMalloc(&b, nb * sizeof(float)));
        CHECK(cudaMalloc(&c, nc * sizeof(float)));
        fill<<<1024, 256>>>(a, na, 1);
        fill<<<1024, 256>>>(b, nb, 2);
        CHECK(cudaGetLastError());
        run_shape(h, sh, a, b, c);
        CHECK(cudaDeviceSynchronize());
        std::vector<double> t;
        double spent = 0;
        while (t.size() < 5 || spent < min_time) {
            CHECK(cudaEventRecord(e0));
            run_shape(h, sh, a, b, c);
            CHECK(cudaEventRecord(e1));
            CHECK(cudaEventSynchronize(e1));
            float ms = 0;
            CHECK(cudaEventElapsedTime(&ms, e0, e1));
            t.push_back(1e-3 * ms);
            spent += 1e-3 * ms;
        }
        std::sort(t.begin(), t.end());
        const size_t n = t.size();
        const double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
        const double flops = 2.0 * (double)sh.m * (double)sh.n * (double)sh.k * (double)sh.count;
        printf("shape %ld %ld %ld %c %c x%ld (%ld times)  %10.4f ms  %9.1f GFLOP/s\n", sh.m, sh.n, sh.k,
               sh.ta ? 'T' : 'N', sh.tb ? 'T' : 'N', sh.count, sh.times, 1e3 * med, 1e-9 * flops / med);
        total_flops += flops * (double)sh.times, total_s += med * (double)sh.times;
        CHECK(cudaFree(a));
        CHECK(cudaFree(b));
        CHECK(cudaFree(c));
    }
    printf("total %.0f %.6f %.2f\n", total_flops, total_s, 1e-9 * total_flops / total_s);
    cublasDestroy(h);
    return 0;
}
