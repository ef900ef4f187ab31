/* codegen/lower_int.h: what lower.c (the forward) shares with lower_grad.c (the
 * backward of the training graph). Private to codegen/: the lowering state, the
 * tables of a basis, and the small builders of indices and expressions. */
#ifndef CHIRALC_LOWER_INT_H
#define CHIRALC_LOWER_INT_H

#include "codegen/codegen.h"

/* The tables of one basis (chirality.md 2), as gathers:
 *   even component c = x[ef[c]] + es[c] * x[eg[c]]    (es = 0 for a centre)
 *   odd  component c = x[of[c]] + os[c] * x[og[c]]    (os = -s for a pair)
 *   feature f        = ca[f] * even[ie[f]] + cb[f] * odd[io[f]]
 *   feature j enters even component kE[j] with aE[j], odd component kO[j] with aO[j]. */
typedef struct BT {
    const IrBasis *b;
    int n, de, dod;
    int ef, eg, es, of, og, os;   /* tables (es, os float) */
    int ie, io, ca, cb;           /* synthesis */
    int kE, kO, aE, aO;           /* dense builder */
    bool pairs_e, pairs_o;        /* some component has a second term */
} BT;

/* A map's analysed input as its GEMMs read it: part p (0 even, 1 odd) is columns
 * off[p] .. of buffer buf[p] (-1: none), rows ld[p] apart, k taps of the part's width
 * side by side. Both parts share one buffer where the analysis is one kernel
 * (cg_eo_tabs); --no-fold keeps its dense im2col as part 0. */
typedef struct CgCols {
    int buf[2];
    long off[2], ld[2];
} CgCols;

/* The even and odd components of a basis as one gather per column (lower.c
 * cg_eo_tabs): column c = sh[c] (x[f1[c]] + s[c] x[f2[c]]), the included parts side by
 * side, each as k taps of its components, tap t reading t * step further into x. sh is
 * the adjoint of the synthesis's halving (S^T), -1 for the analysis (Q). */
typedef struct CgEoTabs {
    int f1, f2, s, sh;
    int n, off[2];   /* columns in all; where each part starts */
    bool pairs;      /* some column has a second term */
} CgEoTabs;

/* What a recurrence's training forward keeps for its backward, per layer: the
 * layer's input sequence, h and c after every step, and the gates of every step
 * ([N][T][(G+1)*H]: lstm i f g o; gru r z, the h part of n (W_hn h + b_hn), n). */
typedef struct CgRecHist {
    int *x, *hh, *cc, *gates;
} CgRecHist;

typedef struct L {
    CgModel *m;
    KirProgram *k;
    IrProgram *p;
    Arena *a;
    KirFn fn;
    bool train;                   /* training semantics (and weights from params, never prep) */
    bool keep;                    /* recurrences keep their per-step history (CgRecHist) */
    int *val;                     /* node id -> buffer */
    int **hfin, **cfin;           /* recurrent node id -> final state buffer per layer */
    BT **bts;
    int nbts, capbts;
    bool *bwd;                    /* node id -> part of the training graph's backward half */
    /* by node id, for the backward: a map's analysed (im2col'd) input (CgCols); a
     * training batchnorm's statistics */
    CgCols *xc;
    int *bnst;
    /* by node id: a training convolution's weights with the taps side by side ([out][tap][in],
     * even and odd), copied from the parameters by the forward; -1 where there is none */
    int *wsbe, *wsbo;
    CgRecHist *rec;
} L;

/* Orbits of a type numbered by first feature (as ir/params.c and the interpreter). */
typedef struct Orb {
    int norb;
    int orb, first, partner, sign; /* tables: orbit of feature, first feature of orbit,
                                      partner (int) and sign (float) of feature */
    int orbE, orbO;                /* orbit of each even / odd component */
} Orb;

/* A linear map's weights: taps of (A, B) blocks, an optional even bias. */
typedef struct Map {
    const IrParamEntry *A0, *B0, *bias;
    int taps;
    long tapstride;
    const BT *bo, *bi;
} Map;

/* BN folded into a preceding map at inference: per output component the scale
 * gamma/sqrt(var+eps), and the even shift sc*(bias - mean) + beta. */
typedef struct Fold {
    const IrNode *bn;
    const IrParamEntry *gamma, *beta, *mean, *var;
    Orb orb;
    double eps;
} Fold;

/* A component gathered per feature: a load at index + table. */
typedef struct Src {
    KirIndex at;
} Src;

static inline KirDim D(long n) { return (KirDim){n, false}; }
static inline KirDim NB(long n) { return (KirDim){n, true}; }
static inline int frames(const IrNode *n) { return n->shape.time == IR_NO_TIME ? 1 : n->shape.time; }
static inline const char *nname(L *l, const IrNode *n) {
    return n->name ? arena_printf(l->a, "%%%d %s %s", n->id, ir_op_info[n->op].name, n->name)
                   : arena_printf(l->a, "%%%d %s", n->id, ir_op_info[n->op].name);
}
static inline int temp(L *l, const char *name, long per_sample, long fixed) {
    return kir_buf(l->k, name, KIR_BUF_TEMP, per_sample, fixed);
}

static inline KirExpr *C(L *l, double v) { return kir_const(l->k, v); }
static inline KirExpr *ADD(L *l, KirExpr *a, KirExpr *b) {
    if (!a) return b;
    if (!b) return a;
    return kir_bin(l->k, KIR_E_ADD, a, b);
}
static inline KirExpr *MUL(L *l, KirExpr *a, KirExpr *b) { return kir_bin(l->k, KIR_E_MUL, a, b); }
static inline KirExpr *LD(L *l, KirIndex x) { return kir_load(l->k, x); }
static inline KirExpr *TV(L *l, int tab, int var) { return kir_tabv(l->k, tab, var); }

/* Index = buf[off + sum coefs + tab terms]: small builder. */
static inline KirIndex IX(int buf, long off) { return kir_ix(buf, off); }
static inline KirIndex IXv(int buf, long off, long c0, long c1, long c2, long c3) {
    KirIndex x = kir_ix(buf, off);
    x.coef[0] = c0, x.coef[1] = c1, x.coef[2] = c2, x.coef[3] = c3;
    return x;
}
static inline KirIndex withtab(KirIndex x, int tab, int var) {
    kir_ix_tab(&x, tab, var, 1);
    return x;
}
/* Sum of loads, each at index + table(tab, fvar) (a component gathered per feature). */
static inline KirExpr *gather(L *l, const Src *s, int ns, int tab, int fvar) {
    KirExpr *e = NULL;
    for (int i = 0; i < ns; i++) e = ADD(l, e, LD(l, withtab(s[i].at, tab, fvar)));
    return e;
}
static inline KirGemm gemm_abt(KirDim m, long n, long kk, int abuf, long aoff, long lda, int bbuf, long boff,
                               long ldb, int cbuf, long coff, long ldc, float beta) {
    KirGemm g = {.ta = false, .tb = true, .m = m, .n = D(n), .k = D(kk), .alpha = 1, .beta = beta};
    g.a = (KirMat){abuf, aoff, lda, 0};
    g.b = (KirMat){bbuf, boff, ldb, 0};
    g.c = (KirMat){cbuf, coff, ldc, 0};
    return g;
}

const BT *cg_bt_of(L *l, const IrBasis *b);
Orb cg_orb_of(L *l, const IrChi *c, bool trivial, const BT *bt);
/* Where a parameter entry lives: params or state buffer, and its offset. */
void cg_ploc(L *l, const IrParamEntry *e, int *buf, long *off);
const IrParamEntry *cg_need(L *l, const IrNode *n, const char *name, int layer, int gate, int tap);
static inline KirIndex PIX(L *l, const IrParamEntry *e, long extra) {
    int b;
    long off;
    cg_ploc(l, e, &b, &off);
    return IX(b, off + extra);
}
/* Even (odd) component `cvar` of x at index `row` (element = row + feature). */
KirExpr *cg_analyse_expr(L *l, const BT *t, bool even, KirIndex row, int cvar);
CgEoTabs cg_eo_tabs(L *l, const BT *t, const bool parts[2], int k, long step, bool adjoint);
/* Column cvar of the gather cg_eo_tabs describes, of the rows at `row`. */
KirExpr *cg_eo_expr(L *l, const CgEoTabs *t, KirIndex row, int cvar);
/* Feature fvar of a map's output from its even and odd sources: ca*E + cb*O. */
KirExpr *cg_synth_expr(L *l, const BT *t, int fvar, const Src *ev, int ne, const Src *od, int no);
Map cg_map_of(L *l, const IrNode *n, const char *a, const char *b, int layer, int gate);
Fold cg_fold_of(L *l, const IrNode *bn, const BT *bt);
/* Dense W[Fout][tap][Fin] of a map into (buf, off) (function fn): the taps side by side. */
void cg_dense_build(L *l, KirFn fn, const Map *m, int buf, long off, const Fold *bn, const char *what);
KirExpr *cg_act_expr(L *l, IrAct a, KirExpr *x, double slope);
/* A training batchnorm's batch statistics (l->bnst), F floats each: the batch mean, the
 * augmented batch's mean, its centred second moment, the variance pooled over partners,
 * the scale gamma / sqrt(var + eps) and the shift (beta synthesised to the features, once
 * per batch, so that the kernels normalising a [rows, F] tensor gather nothing and
 * vectorise whole rows; gathered there, through beta's runs of 20 features, every fifth
 * element of a run was left to a scalar remainder loop). */
enum { BN_M, BN_MU, BN_D, BN_VAR, BN_SCALE, BN_SHIFT, BN_NSTATS };
/* A training batchnorm's output at (row i0, feature i1) from its input xb and the batch
 * statistics: (x - mu) scale + shift, the forward's normalise. */
KirExpr *cg_bn_train_expr(L *l, const IrNode *n, int xb);
void cg_zero_fill(L *l, KirFn fn, int buf, long off, KirDim n, const char *what);
/* linear, conv1d, invariant (function l->fn); returns the node holding the result. */
const IrNode *cg_lower_linear(L *l, const IrNode *n);
void cg_lower_recurrent(L *l, const IrNode *n);

/* lower_grad.c: the backward of mode l->train into KIR_FN_BWD_INFER / _TRAIN,
 * after the forward of that mode (l->val holds its buffers). */
bool cg_lower_backward(L *l);

#endif
