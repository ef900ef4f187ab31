/* runtime/rng.c: counter-based random numbers.
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC 2011), the generator of Random123, cuRAND and PyTorch's CUDA generator.
 * Every number is a pure function of (seed, stream, counter): the key is the seed,
 * the 128-bit counter is (counter, stream), laid out as cuRAND's curand_init lays out
 * (offset, subsequence). A GPU kernel can therefore recompute any draw in any order.
 * The exact derivations below (which words, which bits) are part of the contract:
 * checkpoints resume bit-identically only if they never change. */
#include <math.h>

#include "runtime/rt.h"
#include "support/philox.h"

void rt_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    sup_philox4x32((uint64_t)key[0] | (uint64_t)key[1] << 32, (uint64_t)ctr[2] | (uint64_t)ctr[3] << 32,
                   (uint64_t)ctr[0] | (uint64_t)ctr[1] << 32, out);
}

static void block(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]) {
    sup_philox4x32(seed, stream, counter, out);
}

int rt_rng_keep(uint64_t seed, uint64_t stream, uint64_t k, double p) {
    return p < 1 && sup_dropout_keep(seed, stream, k, sup_dropout_threshold(p));
}

uint64_t rt_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint32_t r[4];
    block(seed, stream, counter, r);
    return (uint64_t)r[0] | (uint64_t)r[1] << 32;
}

/* The top 53 bits: every double in [0, 1) that is a multiple of 2^-53, equally likely. */
static double to_unit(uint32_t lo, uint32_t hi) {
    uint64_t u = (uint64_t)lo | (uint64_t)hi << 32;
    return (double)(u >> 11) * 0x1.0p-53;
}

double rt_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint32_t r[4];
    block(seed, stream, counter, r);
    return to_unit(r[0], r[1]);
}

/* Box-Muller on the two halves of one block: u1 from words 0-1 (as rt_rng_uniform),
 * u2 from words 2-3. 1 - u1 lies in (0, 1], so the logarithm is finite. */
double rt_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint32_t r[4];
    block(seed, stream, counter, r);
    double u1 = to_unit(r[0], r[1]), u2 = to_unit(r[2], r[3]);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586476925 * u2);
}

/* Fisher-Yates from the top: step i (n-1 down to 1) swaps perm[i] with perm[j],
 * j = rt_rng_u64(seed, stream, i) mod (i + 1). The modulo bias is below n / 2^64. */
void rt_rng_permutation(uint64_t seed, uint64_t stream, int64_t *perm, int64_t n) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t j = rt_rng_u64(seed, stream, (uint64_t)i) % (uint64_t)(i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
