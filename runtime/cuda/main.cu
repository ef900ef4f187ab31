/* runtime/cuda/main.cu: the main() of a program built with `chiralc build --target cuda`.
 *
 * The one place where the CUDA backend is registered: linked before libchiralrt.a, it
 * takes the place of runtime/main.c, so the commands (train, eval, ...) keep the model's
 * buffers in GPU memory (rt.h, backend section). */
#include "runtime/cuda/rt_cuda.h"

int main(int argc, char **argv) {
    const RtModel *m = rt_model_get();
    rt_cuda_set_program(m->name);
    rt_backend_use(&rt_backend_cuda);
    return rt_main(m, argc, argv);
}
