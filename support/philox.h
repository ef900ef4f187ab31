/* support/philox.h: Philox4x32-10 and the dropout mask, one definition for every
 * place that draws: the float64 interpreter (ir/interp.c), the runtime on the CPU
 * (runtime/rng.c, called by generated C and LLVM code) and generated CUDA code.
 *
 * Philox4x32-10 is Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3" (SC 2011): every number is a pure function of (key, counter), so a GPU
 * thread can recompute any draw in any order. Header-only and free of other
 * headers' functions so that nvcc can compile it for the device: SUP_PHILOX_FN
 * becomes `__host__ __device__` there.
 *
 * The dropout contract (docs/kernel-ir.md, "RNG"): element k of draw `stream`
 * (stream = (step << 32) | (node id << 8) | sub) takes word k & 3 of the block
 * at counter k >> 2 and is kept when that 32-bit word is >= ceil(p * 2^32). Four
 * elements share one block, so a mask costs a quarter of a Philox call per element. */
#ifndef CHIRALC_SUPPORT_PHILOX_H
#define CHIRALC_SUPPORT_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define SUP_PHILOX_FN static inline __host__ __device__
#else
#define SUP_PHILOX_FN static inline
#endif

/* ctr = (counter lo, counter hi, stream lo, stream hi), key = (seed lo, seed hi): the
 * layout of cuRAND's curand_init(seed, subsequence = stream, offset = counter). */
SUP_PHILOX_FN void sup_philox4x32(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = (uint32_t)stream,
             c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u; /* golden ratio */
        k1 += 0xBB67AE85u; /* sqrt(3) - 1 */
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The keep threshold of dropout probability p < 1: words >= it are kept (2^32 (1 - p)
 * of the 2^32 words, up to rounding). p <= 0 keeps everything. */
SUP_PHILOX_FN uint32_t sup_dropout_threshold(double p) {
    if (p <= 0) return 0;
    double t = p * 4294967296.0;
    uint64_t c = (uint64_t)t;
    if ((double)c < t) c++;
    return c > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)c;
}

/* Is element k of draw `stream` kept? (p >= 1, which drops everything, is the caller's.) */
SUP_PHILOX_FN int sup_dropout_keep(uint64_t seed, uint64_t stream, uint64_t k, uint32_t threshold) {
    uint32_t r[4];
    sup_philox4x32(seed, stream, k >> 2, r);
    return r[k & 3] >= threshold;
}

#endif
