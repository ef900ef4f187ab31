/* Tests of ir/chi.c: chirality types, their orbit counts, the transform and the
 * even/odd basis. Expected numbers are counted by hand from the skeleton. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/ir.h"

/* The 17-joint H3.6M skeleton in the data's order (examples/videopose3d.net):
 * 6 mirror pairs, 5 centre joints (hip spine thorax neck head). */
static const char *h36m_joints[17] = {"hip", "rhip", "rknee", "rfoot", "lhip", "lknee",
                                      "lfoot", "spine", "thorax", "neck", "head", "lshoulder",
                                      "lelbow", "lwrist", "rshoulder", "relbow", "rwrist"};
static int h36m_partner[17] = {0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13};
static const IrSkeleton h36m = {.name = "h36m", .njoints = 17, .joints = h36m_joints,
                                .partner = h36m_partner};

static const bool xneg_y[2] = {true, false};
static const bool xneg_yz[3] = {true, false, false};

/* The joints-layout hidden type of the chirality pass, built here independently:
 * 17 units of c channels, the first `neg` of each negated. */
static IrChi joints_type(Arena *a, int c, int neg) {
    IrChi t = {.n = 17 * c, .desc = "joints"};
    t.partner = arena_new_array(a, int, t.n);
    t.sign = arena_new_array(a, signed char, t.n);
    for (int j = 0; j < 17; j++)
        for (int k = 0; k < c; k++) {
            t.partner[j * c + k] = h36m_partner[j] * c + k;
            t.sign[j * c + k] = k < neg ? -1 : 1;
        }
    return t;
}

static double rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0 - 1.0;
}

static void test_skeleton_type(void **state) {
    (void)state;
    Arena *a = arena_new();
    IrChi c = ir_chi_skeleton(a, &h36m, 2, xneg_y);
    assert_int_equal(c.n, 34);
    assert_string_equal(c.desc, "h36m(x!,y)");
    const char *why = NULL;
    assert_true(ir_chi_valid(&c, &why));
    /* joint-major: feature j*2 + coord; rhip (1) <-> lhip (4) */
    assert_int_equal(c.partner[1 * 2 + 0], 4 * 2 + 0);
    assert_int_equal(c.partner[4 * 2 + 1], 1 * 2 + 1);
    assert_int_equal(c.partner[0], 0); /* hip x: a centre feature */
    assert_int_equal(c.sign[1 * 2 + 0], -1);
    assert_int_equal(c.sign[1 * 2 + 1], 1);
    IrChiStats s = ir_chi_stats(&c);
    /* 6 joint pairs x 2 coords; 5 centre joints: y kept, x negated */
    assert_int_equal(s.pairs, 12);
    assert_int_equal(s.pairs_n, 6);
    assert_int_equal(s.centre_p, 5);
    assert_int_equal(s.centre_n, 5);
    assert_int_equal(s.d_even, 17);
    assert_int_equal(s.d_odd, 17);
    IrChi c3 = ir_chi_skeleton(a, &h36m, 3, xneg_yz);
    assert_string_equal(c3.desc, "h36m(x!,y,z)");
    s = ir_chi_stats(&c3);
    assert_int_equal(s.pairs, 18);
    assert_int_equal(s.centre_p, 10);
    assert_int_equal(s.centre_n, 5);
    assert_int_equal(s.d_even, 28);
    assert_int_equal(s.d_odd, 23);
    arena_free(a);
}

static void test_hidden_type_stats(void **state) {
    (void)state;
    Arena *a = arena_new();
    /* 1020 = 17 x 60, 20 of each 60 negated (chirality.md 2: 560 and 460) */
    IrChi t = joints_type(a, 60, 20);
    assert_true(ir_chi_valid(&t, NULL));
    IrChiStats s = ir_chi_stats(&t);
    assert_int_equal(s.pairs, 6 * 60);
    assert_int_equal(s.pairs_n, 6 * 20);
    assert_int_equal(s.centre_p, 5 * 40);
    assert_int_equal(s.centre_n, 5 * 20);
    assert_int_equal(s.d_even, 560);
    assert_int_equal(s.d_odd, 460);
    assert_int_equal((long)s.d_even * s.d_even + (long)s.d_odd * s.d_odd, 525200);
    IrChi pos = ir_chi_all_positive(a, &t);
    s = ir_chi_stats(&pos);
    assert_false(ir_chi_has_negated(&pos));
    assert_int_equal(s.pairs, 360);
    assert_int_equal(s.centre_p, 300);
    assert_int_equal(s.centre_n, 0);
    arena_free(a);
}

static void test_trivial_and_equal(void **state) {
    (void)state;
    Arena *a = arena_new();
    IrChi t = ir_chi_trivial(5);
    assert_true(ir_chi_is_trivial(&t));
    assert_false(ir_chi_has_negated(&t));
    /* an explicit identity is the trivial type */
    IrChi e = {.n = 5, .partner = arena_new_array(a, int, 5), .sign = arena_new_array(a, signed char, 5)};
    for (int f = 0; f < 5; f++) e.partner[f] = f, e.sign[f] = 1;
    assert_true(ir_chi_is_trivial(&e));
    assert_true(ir_chi_equal(&t, &e));
    IrChi t6 = ir_chi_trivial(6);
    assert_false(ir_chi_equal(&t, &t6));
    e.sign[2] = -1;
    assert_false(ir_chi_is_trivial(&e));
    assert_false(ir_chi_equal(&t, &e));
    IrChiStats s = ir_chi_stats(&t);
    assert_int_equal(s.d_even, 5);
    assert_int_equal(s.d_odd, 0);
    /* invalid types are caught */
    const char *why = NULL;
    e.partner[0] = 1; /* 0 -> 1 but 1 -> 1 */
    assert_false(ir_chi_valid(&e, &why));
    assert_non_null(why);
    e.partner[0] = 0;
    e.partner[3] = 4, e.partner[4] = 3, e.sign[3] = -1; /* partners of different signs */
    assert_false(ir_chi_valid(&e, &why));
    arena_free(a);
}

static void test_concat_tile(void **state) {
    (void)state;
    Arena *a = arena_new();
    IrChi parts[2] = {ir_chi_skeleton(a, &h36m, 2, xneg_y), ir_chi_trivial(3)};
    IrChi c = ir_chi_concat(a, parts, 2);
    assert_int_equal(c.n, 37);
    assert_true(ir_chi_valid(&c, NULL));
    assert_int_equal(c.partner[2], 8);
    assert_int_equal(c.partner[35], 35);
    assert_int_equal(c.sign[36], 1);
    IrChiStats s = ir_chi_stats(&c);
    assert_int_equal(s.d_even, 20);
    assert_int_equal(s.d_odd, 17);
    IrChi both[2] = {ir_chi_trivial(2), ir_chi_trivial(3)};
    IrChi tc = ir_chi_concat(a, both, 2);
    assert_true(ir_chi_is_trivial(&tc));
    assert_int_equal(tc.n, 5);
    IrChi t = ir_chi_tile(a, &parts[0], 3);
    assert_int_equal(t.n, 102);
    assert_true(ir_chi_valid(&t, NULL));
    assert_int_equal(t.partner[34 * 2 + 2], 34 * 2 + 8);
    assert_int_equal(ir_chi_stats(&t).pairs, 36);
    arena_free(a);
}

static void test_apply_involution(void **state) {
    (void)state;
    Arena *a = arena_new();
    IrChi c = ir_chi_skeleton(a, &h36m, 2, xneg_y);
    enum { ROWS = 3, N = 34 };
    double x[ROWS * N], y[ROWS * N], z[ROWS * N];
    unsigned seed = 7;
    for (int i = 0; i < ROWS * N; i++) x[i] = rnd(&seed);
    ir_chi_apply(&c, x, y, ROWS);
    /* (T x) at rhip.x is minus x at lhip.x; at lhip.y it is rhip.y */
    assert_true(y[N + 1 * 2 + 0] == -x[N + 4 * 2 + 0]);
    assert_true(y[2 * N + 4 * 2 + 1] == x[2 * N + 1 * 2 + 1]);
    ir_chi_apply(&c, y, z, ROWS);
    for (int i = 0; i < ROWS * N; i++) assert_true(z[i] == x[i]);
    arena_free(a);
}

static void test_basis_round_trip(void **state) {
    (void)state;
    Arena *a = arena_new();
    IrChi types[3] = {ir_chi_skeleton(a, &h36m, 2, xneg_y), joints_type(a, 6, 2),
                      ir_chi_trivial(4)};
    for (int t = 0; t < 3; t++) {
        const IrChi *c = &types[t];
        IrBasis b = ir_basis(a, c);
        IrChiStats s = ir_chi_stats(c);
        assert_int_equal(b.d_even, s.d_even);
        assert_int_equal(b.d_odd, s.d_odd);
        int n = c->n;
        double *x = calloc((size_t)n, sizeof *x), *tx = calloc((size_t)n, sizeof *x),
               *back = calloc((size_t)n, sizeof *x);
        double *e = calloc((size_t)b.d_even + 1, sizeof *e), *o = calloc((size_t)b.d_odd + 1, sizeof *o);
        double *te = calloc((size_t)b.d_even + 1, sizeof *e), *to = calloc((size_t)b.d_odd + 1, sizeof *o);
        /* integers: every step is exact, so the round trip must be too */
        for (int f = 0; f < n; f++) x[f] = (f * 37 % 11) - 5;
        ir_basis_analyse(&b, x, e, o);
        ir_basis_synthesise(&b, e, o, back);
        for (int f = 0; f < n; f++) assert_true(back[f] == x[f]);
        /* random reals: to round-off */
        unsigned seed = 3;
        for (int f = 0; f < n; f++) x[f] = rnd(&seed);
        ir_basis_analyse(&b, x, e, o);
        ir_basis_synthesise(&b, e, o, back);
        for (int f = 0; f < n; f++) assert_true(fabs(back[f] - x[f]) < 1e-15);
        /* the defining property: T keeps the even part and negates the odd part */
        ir_chi_apply(c, x, tx, 1);
        ir_basis_analyse(&b, tx, te, to);
        for (int k = 0; k < b.d_even; k++) assert_true(fabs(te[k] - e[k]) < 1e-15);
        for (int k = 0; k < b.d_odd; k++) assert_true(fabs(to[k] + o[k]) < 1e-15);
        /* components in the order of their orbit's first feature */
        for (int k = 1; k < b.d_even; k++) assert_true(b.ef[k] > b.ef[k - 1]);
        for (int k = 1; k < b.d_odd; k++) assert_true(b.of[k] > b.of[k - 1]);
        free(x), free(tx), free(back), free(e), free(o), free(te), free(to);
    }
    arena_free(a);
}

/* A dense map W = synthesise_out . blockdiag(A, B) . analyse_in, from random
 * A and B, commutes with the transforms: T_out W x = W T_in x. */
static void test_equivariant_dense_map(void **state) {
    (void)state;
    Arena *a = arena_new();
    IrChi in = ir_chi_skeleton(a, &h36m, 2, xneg_y);
    IrChi out = joints_type(a, 5, 2);
    IrBasis bi = ir_basis(a, &in), bo = ir_basis(a, &out);
    int ni = in.n, no = out.n;
    double *A = malloc(sizeof(double) * (size_t)(bo.d_even * bi.d_even));
    double *B = malloc(sizeof(double) * (size_t)(bo.d_odd * bi.d_odd));
    unsigned seed = 11;
    for (int i = 0; i < bo.d_even * bi.d_even; i++) A[i] = rnd(&seed);
    for (int i = 0; i < bo.d_odd * bi.d_odd; i++) B[i] = rnd(&seed);
    double *W = calloc((size_t)(no * ni), sizeof *W);
    double *unit = calloc((size_t)ni, sizeof *unit), *col = calloc((size_t)no, sizeof *col);
    double *ei = calloc((size_t)bi.d_even, sizeof(double)), *oi = calloc((size_t)bi.d_odd, sizeof(double));
    double *eo = calloc((size_t)bo.d_even, sizeof(double)), *oo = calloc((size_t)bo.d_odd, sizeof(double));
    for (int j = 0; j < ni; j++) {
        memset(unit, 0, sizeof(double) * (size_t)ni);
        unit[j] = 1;
        ir_basis_analyse(&bi, unit, ei, oi);
        for (int r = 0; r < bo.d_even; r++) {
            eo[r] = 0;
            for (int k = 0; k < bi.d_even; k++) eo[r] += A[r * bi.d_even + k] * ei[k];
        }
        for (int r = 0; r < bo.d_odd; r++) {
            oo[r] = 0;
            for (int k = 0; k < bi.d_odd; k++) oo[r] += B[r * bi.d_odd + k] * oi[k];
        }
        ir_basis_synthesise(&bo, eo, oo, col);
        for (int r = 0; r < no; r++) W[r * ni + j] = col[r];
    }
    double *x = malloc(sizeof(double) * (size_t)ni), *tx = malloc(sizeof(double) * (size_t)ni);
    double *y = calloc((size_t)no, sizeof(double)), *ty = malloc(sizeof(double) * (size_t)no),
           *ytx = calloc((size_t)no, sizeof(double));
    for (int j = 0; j < ni; j++) x[j] = rnd(&seed);
    ir_chi_apply(&in, x, tx, 1);
    for (int r = 0; r < no; r++)
        for (int j = 0; j < ni; j++) {
            y[r] += W[r * ni + j] * x[j];
            ytx[r] += W[r * ni + j] * tx[j];
        }
    ir_chi_apply(&out, y, ty, 1);
    double err = 0, norm = 0;
    for (int r = 0; r < no; r++) {
        err += (ty[r] - ytx[r]) * (ty[r] - ytx[r]);
        norm += y[r] * y[r];
    }
    assert_true(norm > 0);
    assert_true(sqrt(err / norm) < 1e-12);
    /* and a generic dense map does not commute: the test can fail */
    W[1] += 1.0; /* kept hip.y into a negated hip channel */
    memset(y, 0, sizeof(double) * (size_t)no);
    memset(ytx, 0, sizeof(double) * (size_t)no);
    for (int r = 0; r < no; r++)
        for (int j = 0; j < ni; j++) {
            y[r] += W[r * ni + j] * x[j];
            ytx[r] += W[r * ni + j] * tx[j];
        }
    ir_chi_apply(&out, y, ty, 1);
    err = 0;
    for (int r = 0; r < no; r++) err += (ty[r] - ytx[r]) * (ty[r] - ytx[r]);
    assert_true(sqrt(err / norm) > 1e-6);
    free(A), free(B), free(W), free(unit), free(col), free(ei), free(oi), free(eo), free(oo);
    free(x), free(tx), free(y), free(ty), free(ytx);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skeleton_type),     cmocka_unit_test(test_hidden_type_stats),
        cmocka_unit_test(test_trivial_and_equal), cmocka_unit_test(test_concat_tile),
        cmocka_unit_test(test_apply_involution),  cmocka_unit_test(test_basis_round_trip),
        cmocka_unit_test(test_equivariant_dense_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
