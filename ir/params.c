/* ir/params.c: the folded parameters of a program, in one flat buffer.
 *
 * Every weight is stored in the even/odd basis (chirality.md 2), so that any
 * value of the buffer is an equivariant network: there is nothing to tie or
 * mask, except the paper's sharing, which holds one block of A at zero. */
#include <math.h>
#include <string.h>

#include "ir/ir.h"

/* ---- random numbers ------------------------------------------------------------ */

/* splitmix64's finaliser: a bijection with good avalanche, enough to turn
 * (seed, counter) into independent-looking 64-bit words. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t ir_rand_u64(uint64_t seed, uint64_t counter) {
    /* The seed goes through the mixer first so that seeds s and s+1 do not
     * give shifted copies of one stream. */
    return mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) + counter * 0x9e3779b97f4a7c15ULL);
}

double ir_rand_uniform(uint64_t seed, uint64_t counter) {
    return (double)(ir_rand_u64(seed, counter) >> 11) * 0x1.0p-53;
}

double ir_rand_normal(uint64_t seed, uint64_t counter) {
    /* Box-Muller from two uniforms drawn at 2c and 2c+1; 1 - u keeps log away from 0. */
    double u1 = 1.0 - ir_rand_uniform(seed, 2 * counter);
    double u2 = ir_rand_uniform(seed, 2 * counter + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- layout ---------------------------------------------------------------------- */

typedef struct Layout {
    Arena *arena;
    IrParamEntry *e;
    int n, cap;
    long size;
} Layout;

static void add(Layout *l, const IrNode *node, const char *name, int layer, int gate, int tap,
                int rows, int cols, bool trainable, const IrBasis *out, const IrBasis *in) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        IrParamEntry *e = arena_new_array(l->arena, IrParamEntry, cap);
        if (l->n) memcpy(e, l->e, sizeof *e * (size_t)l->n);
        l->e = e;
        l->cap = cap;
    }
    l->e[l->n++] = (IrParamEntry){node, name, layer, gate, tap, rows, cols, l->size, trainable, out, in};
    l->size += (long)rows * cols;
}

/* The basis a layer's weights act in: an unconstrained layer sees trivial types. */
static const IrBasis *basis_of(Arena *a, const IrChi *c, bool unconstrained) {
    IrBasis *b = arena_alloc(a, sizeof *b);
    if (unconstrained) {
        IrChi t = ir_chi_trivial(c->n);
        *b = ir_basis(a, &t);
    } else {
        *b = ir_basis(a, c);
    }
    return b;
}


static void add_map(Layout *l, const IrNode *n, const char *a_name, const char *b_name, int layer,
                    int gate, int tap, const IrBasis *out, const IrBasis *in) {
    add(l, n, a_name, layer, gate, tap, out->d_even, in->d_even, true, out, in);
    add(l, n, b_name, layer, gate, tap, out->d_odd, in->d_odd, true, out, in);
}

static void layout_recurrent(Layout *l, Arena *a, const IrNode *n) {
    bool unc = n->a.unconstrained;
    bool lstm = n->op == IR_LSTM;
    int ngates = lstm ? 4 : 3;
    const IrBasis *hid = basis_of(a, &n->chi, unc);
    IrChi pos = ir_chi_all_positive(a, &n->chi);
    const IrBasis *gpos = basis_of(a, &pos, unc);
    const IrBasis *in0 = basis_of(a, &n->in[0]->chi, unc);
    int layers = n->a.layers > 0 ? n->a.layers : 1;
    for (int layer = 0; layer < layers; layer++) {
        const IrBasis *in = layer == 0 ? in0 : hid;
        for (int g = 0; g < ngates; g++) {
            /* lstm's g (2) and gru's n (2) are the candidates: hidden type */
            const IrBasis *gt = g == 2 ? hid : gpos;
            add_map(l, n, "Wx.A", "Wx.B", layer, g, 0, gt, in);
            add_map(l, n, "Wh.A", "Wh.B", layer, g, 0, gt, hid);
            add(l, n, "bias", layer, g, 0, gt->d_even, 1, true, gt, gt);
            if (!lstm && g == 2) add(l, n, "bias_h", layer, g, 0, gt->d_even, 1, true, gt, gt);
        }
    }
}

IrParams *ir_params_new(Arena *a, const IrProgram *p) {
    IrParams *w = arena_alloc(a, sizeof *w);
    w->prog = p;
    int nn = 0;
    ir_foreach(p, n) nn++;
    w->nnodes = nn;
    w->node_first = arena_new_array(a, int, nn);
    w->node_count = arena_new_array(a, int, nn);
    Layout l = {.arena = a};
    ir_foreach(p, n) {
        if (n->id < 0 || n->id >= nn) sup_bug("ir_params_new: node ids not renumbered");
        w->node_first[n->id] = l.n;
        bool unc = n->a.unconstrained;
        switch (n->op) {
        case IR_LINEAR:
        case IR_CONV1D:
        case IR_INVARIANT: {
            const IrBasis *out = basis_of(a, &n->chi, unc);
            const IrBasis *in = basis_of(a, &n->in[0]->chi, unc);
            int taps = n->op == IR_CONV1D ? n->a.kernel : 1;
            sup_assert(taps >= 1);
            for (int t = 0; t < taps; t++) add_map(&l, n, "A", "B", 0, 0, t, out, in);
            if (n->a.bias) add(&l, n, "bias", 0, 0, 0, out->d_even, 1, true, out, out);
            break;
        }
        case IR_BATCHNORM: {
            const IrBasis *b = basis_of(a, &n->chi, unc);
            int *orb = arena_new_array(a, int, n->chi.n > 0 ? n->chi.n : 1);
            int norb = ir_chi_orbits(&n->chi, unc, orb);
            add(&l, n, "gamma", 0, 0, 0, norb, 1, true, b, b);
            add(&l, n, "beta", 0, 0, 0, b->d_even, 1, true, b, b);
            add(&l, n, "mean", 0, 0, 0, b->d_even, 1, false, b, b);
            add(&l, n, "var", 0, 0, 0, norb, 1, false, b, b);
            break;
        }
        case IR_LSTM:
        case IR_GRU:
            layout_recurrent(&l, a, n);
            break;
        default:
            break;
        }
        w->node_count[n->id] = l.n - w->node_first[n->id];
    }
    w->entries = l.e;
    w->nentries = l.n;
    w->size = l.size;
    w->data = arena_new_array(a, double, l.size > 0 ? l.size : 1);
    return w;
}

const IrParamEntry *ir_params_find(const IrParams *w, const IrNode *n, const char *name, int layer,
                                   int gate, int tap) {
    if (n->id < 0 || n->id >= w->nnodes) return NULL;
    for (int i = w->node_first[n->id], e = i + w->node_count[n->id]; i < e; i++) {
        const IrParamEntry *p = &w->entries[i];
        if (p->node == n && strcmp(p->name, name) == 0 && p->layer == layer && p->gate == gate &&
            p->tap == tap)
            return p;
    }
    return NULL;
}

double *ir_params_data(const IrParams *w, const IrParamEntry *e) { return w->data + e->offset; }

bool ir_params_fixed_zero(const IrParams *w, const IrParamEntry *e, int row, int col) {
    const IrNode *n = e->node;
    if (w->prog->cfg.sharing != IR_SHARING_PAPER || n->a.unconstrained) return false;
    /* every A block of a linear map: "A" of linear/conv1d/invariant, "Wx.A" and
     * "Wh.A" of the recurrences (as pass_count counts the paper's sharing) */
    size_t len = strlen(e->name);
    if (e->name[len - 1] != 'A' || n->op == IR_BATCHNORM) return false;
    /* even output without partner = a kept centre feature; even input with a
     * partner and sign -1 = the sum x_f - x_g of a negated pair */
    return e->basis_out->eg[row] == -1 && e->basis_in->eg[col] != -1 && e->basis_in->es[col] == -1;
}

void ir_params_randomize(IrParams *w, uint64_t seed) {
    uint64_t counter = 0;
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *e = &w->entries[i];
        const IrNode *n = e->node;
        double *d = ir_params_data(w, e);
        long sz = (long)e->rows * e->cols;
        const char *nm = e->name;
        bool block = e->cols > 1 || nm[0] == 'A' || nm[0] == 'B' || nm[0] == 'W';
        if (block) {
            double fan_in;
            if (n->op == IR_LSTM || n->op == IR_GRU)
                fan_in = nm[1] == 'x' ? n->in[0]->shape.feat : n->shape.feat;
            else
                fan_in = (double)(n->op == IR_CONV1D ? n->a.kernel : 1) * n->in[0]->shape.feat;
            double sd = 1.0 / sqrt(fan_in > 0 ? fan_in : 1.0);
            for (int r = 0; r < e->rows; r++)
                for (int c = 0; c < e->cols; c++) {
                    double v = sd * ir_rand_normal(seed, counter++);
                    d[(long)r * e->cols + c] = ir_params_fixed_zero(w, e, r, c) ? 0.0 : v;
                }
        } else if (strcmp(nm, "gamma") == 0) {
            for (long k = 0; k < sz; k++) d[k] = 1.0 + 0.1 * ir_rand_normal(seed, counter++);
        } else if (strcmp(nm, "var") == 0) {
            for (long k = 0; k < sz; k++) d[k] = 0.5 + ir_rand_uniform(seed, counter++);
        } else {
            for (long k = 0; k < sz; k++) d[k] = 0.1 * ir_rand_normal(seed, counter++);
        }
    }
}

void ir_params_dense(const IrParams *w, const IrParamEntry *a, const IrParamEntry *b, double *W) {
    const IrBasis *out = a->basis_out, *in = a->basis_in;
    sup_assert(b->basis_out == out && b->basis_in == in);
    const double *A = ir_params_data(w, a), *B = ir_params_data(w, b);
    int fi = in->n, fo = out->n;
    double *x = sup_malloc(sizeof(double) * (size_t)(fi + fo + in->d_even + in->d_odd + out->d_even + out->d_odd + 1));
    double *y = x + fi, *xe = y + fo, *xo = xe + in->d_even, *ye = xo + in->d_odd, *yo = ye + out->d_even;
    for (int j = 0; j < fi; j++) {
        memset(x, 0, sizeof(double) * (size_t)fi);
        x[j] = 1.0;
        ir_basis_analyse(in, x, xe, xo);
        for (int r = 0; r < out->d_even; r++) {
            double s = 0;
            for (int c = 0; c < in->d_even; c++) s += A[(long)r * in->d_even + c] * xe[c];
            ye[r] = s;
        }
        for (int r = 0; r < out->d_odd; r++) {
            double s = 0;
            for (int c = 0; c < in->d_odd; c++) s += B[(long)r * in->d_odd + c] * xo[c];
            yo[r] = s;
        }
        ir_basis_synthesise(out, ye, yo, y);
        for (int r = 0; r < fo; r++) W[(long)r * fi + j] = y[r];
    }
    sup_free(x);
}

void ir_params_print(FILE *out, const IrParams *w) {
    fprintf(out, "%-6s %-10s %-8s %5s %4s %4s %8s %8s %10s\n", "node", "op", "name", "layer", "gate",
            "tap", "rows", "cols", "offset");
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *e = &w->entries[i];
        fprintf(out, "%%%-5d %-10s %-8s %5d %4d %4d %8d %8d %10ld%s\n", e->node->id,
                ir_op_info[e->node->op].name, e->name, e->layer, e->gate, e->tap, e->rows, e->cols,
                e->offset, e->trainable ? "" : "  (running)");
    }
    fprintf(out, "total %ld\n", w->size);
}
