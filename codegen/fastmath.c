/* codegen/fastmath.c: what the CPU backends inline into their loops instead of a
 * call per element: float32 tanh as a rational function, and the dropout mask's
 * constants.
 *
 * tanh. Why: glibc's tanhf is a call per element that no loop vectoriser can widen; in
 * the paper's activations (tanh wherever the mirror negates a channel, and its
 * derivative 1 - tanh^2 in the backward) it took a third of a VideoPose3D
 * training step. This form is a few multiplies, adds, one divide and selects,
 * which LLVM and gcc vectorise, and it is exactly odd, as chirality needs:
 *
 *   c = clamp(x, -9, 9);  u = c c;  y = c P(u) / Q(u);  tanh(x) ~ clamp(y, -1, 1)
 *
 * c, u and the quotient are computed the same way for x and -x, so f(-x) = -f(x)
 * bit for bit. Clamps are comparisons, so NaN passes through. P and Q (degrees
 * 5 and 3 in u) are a near-minimax fit of tanh(x)/x on [0, 9], made for this
 * project by iteratively reweighted least squares on the relative error; p0 = q0
 * = 1, so small x gives x exactly. Evaluated in float32 by Horner's rule, the
 * result was within 7 ulp (4e-7 relative) of tanh at 4 million points of [0, 10]
 * and 10^5 of [1e-30, 1] (test_codegen checks 1e-6 on a grid); at 9, tanh is
 * 1 - 3e-8, which rounds to 1. The generated CUDA keeps tanhf (one instruction
 * sequence on the GPU) and the float64 test mode keeps libm's tanh. */
#include "codegen/codegen.h"
#include "support/philox.h"

const double cg_tanh_num[CG_TANH_NNUM] = {1, 0.129192308, 0.00292076357, 9.26743724e-06, -1.27804913e-08,
                                          1.82553781e-11};
const double cg_tanh_den[CG_TANH_NDEN] = {1, 0.462525129, 0.0237631761, 0.000228100427};
const double cg_tanh_clamp = 9;

/* Dropout. The Philox block itself is inlined (support/philox.h in the C backend, the
 * same rounds built as IR in the LLVM one); its threshold and scale are constants of
 * the program, computed once here rather than per element. */
CgDropout cg_dropout_of(double p) {
    if (p >= 1) return (CgDropout){0, 0.0f};
    return (CgDropout){sup_dropout_threshold(p), (float)(1.0 / (1.0 - p))};
}
