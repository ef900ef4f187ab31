/* tests/cuda_probe.cu: the CUDA backend's error checks (runtime/cuda/rt_cuda.h), without
 * needing a GPU: each mode makes one call fail on any machine and must end the program
 * with status 1 and one line naming the statement, this file and line, and the error.
 *   cuda_probe cuda     RT_CUDA_CHECK on a cudaMalloc of 2^62 bytes (no memory anywhere;
 *                       no driver or device here)
 *   cuda_probe cublas   RT_CUBLAS_CHECK on cublasSgemm with no handle (not initialised)
 *   cuda_probe launch   RT_CUDA_LAUNCHED after a launch with 0 threads per block
 *   cuda_probe ok       RT_CUDA_CHECK(cudaSuccess): nothing, status 0 */
#include <string.h>

#include "runtime/cuda/rt_cuda.h"

static __global__ void probe_kernel(float *p) {
    if (p) p[0] = 1.0f;
}

int main(int argc, char **argv) {
    rt_cuda_set_program("cuda_probe");
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "cuda") == 0) {
        void *p = NULL;
        RT_CUDA_CHECK(cudaMalloc(&p, (size_t)1 << 62));
    } else if (strcmp(mode, "cublas") == 0) {
        float one = 1.0f;
        RT_CUBLAS_CHECK(cublasSgemm(NULL, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, NULL, 1, NULL, 1, &one, NULL, 1));
    } else if (strcmp(mode, "launch") == 0) {
        probe_kernel<<<1, 0>>>(NULL);
        RT_CUDA_LAUNCHED("probe_kernel");
    } else if (strcmp(mode, "ok") == 0) {
        RT_CUDA_CHECK(cudaSuccess);
        return 0;
    }
    return 3; /* a check that let its failure pass */
}
