/* runtime/cuda/rt_cuda.h: the CUDA side of the runtime (libchiralrt_cuda.a): the backend
 * table (backend.cu), the CUDA program's main (main.cu), and what the .cu files chiralc
 * generates (codegen/emit_cuda.c) use: the stream, the cuBLAS handle, the checks.
 *
 * Every CUDA and cuBLAS call is checked: a failure is one line on stderr naming the
 * statement, the file and line, and the error, then exit status 1 (the runtime's status
 * for a failure that is not the command line's). */
#ifndef CHIRALC_RT_CUDA_H
#define CHIRALC_RT_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const RtBackend rt_backend_cuda;
/* The stream every model function and runtime operation runs on, in order, and the
 * cuBLAS handle bound to it; both exist after rt_backend_cuda.init succeeded. */
cudaStream_t rt_cuda_stream(void);
cublasHandle_t rt_cuda_blas(void);
/* Blocks for a grid-stride kernel over n points, `threads` per block: enough to cover
 * them, at most 32 per multiprocessor. */
unsigned rt_cuda_grid(int64_t n, int threads);
/* "NAME: error: CUDA: STMT failed at FILE:LINE: ERROR (DESCRIPTION)" and exit(1); NAME is
 * the program's model (rt_cuda_set_program). */
__attribute__((noreturn)) void rt_cuda_fail(const char *stmt, const char *file, int line, const char *error,
                                            const char *description);
void rt_cuda_set_program(const char *name);

#ifdef __cplusplus
}
#endif

#define RT_CUDA_CHECK(stmt)                                                                              \
    do {                                                                                                 \
        cudaError_t rt_err_ = (stmt);                                                                    \
        if (rt_err_ != cudaSuccess)                                                                      \
            rt_cuda_fail(#stmt, __FILE__, __LINE__, cudaGetErrorName(rt_err_), cudaGetErrorString(rt_err_)); \
    } while (0)
#define RT_CUBLAS_CHECK(stmt)                                                                            \
    do {                                                                                                 \
        cublasStatus_t rt_st_ = (stmt);                                                                  \
        if (rt_st_ != CUBLAS_STATUS_SUCCESS)                                                             \
            rt_cuda_fail(#stmt, __FILE__, __LINE__, cublasGetStatusName(rt_st_), cublasGetStatusString(rt_st_)); \
    } while (0)
/* After a kernel launch (`kernel`: its name, a string literal): the launch's own errors,
 * such as a bad configuration or no kernel image for this device. */
#define RT_CUDA_LAUNCHED(kernel)                                                                         \
    do {                                                                                                 \
        cudaError_t rt_err_ = cudaGetLastError();                                                        \
        if (rt_err_ != cudaSuccess)                                                                      \
            rt_cuda_fail("the launch of " kernel, __FILE__, __LINE__, cudaGetErrorName(rt_err_),          \
                         cudaGetErrorString(rt_err_));                                                   \
    } while (0)

#endif
