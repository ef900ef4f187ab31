/* codegen/export.c: the dense export.
 *
 * PyTorch (and every other framework) knows dense layers, not (A, B) blocks in
 * an even/odd basis. The export gives each layer with parameters the tensors of
 * the stock module that computes it, under that module's own names and layouts:
 *   linear, invariant  nN.weight [out, in], nN.bias [out]          (nn.Linear)
 *   conv1d             nN.weight [out, in, k], nN.bias [out]       (nn.Conv1d)
 *   batchnorm          nN.weight, .bias, .running_mean, .running_var (nn.BatchNorm1d)
 *   lstm, gru          nN.weight_ih_l{k} [G*H, in], .weight_hh_l{k} [G*H, H],
 *                      .bias_ih_l{k}, .bias_hh_l{k} [G*H]            (nn.LSTM, nn.GRU)
 * where N is the node's id. Each weight is W = S_out blockdiag(A, B) Q_in
 * (chirality.md 2, as ir_params_dense builds it), a bias or beta or running mean
 * the synthesis of its even part, gamma and the running variance repeat their
 * orbit's value on every feature. The recurrences' single folded bias goes to
 * bias_ih and bias_hh is zero, except gru's n gate, whose hidden-side bias b_hn
 * sits inside r * (...) and is a parameter of its own ("bias_h").
 *
 * The construction is lowered into the kernel IR as the function `densify`
 * (params, state -> the dense buffer), so every backend produces it without
 * knowing about PyTorch; it allocates nothing and uses no temporaries.
 * The graph (ops, attributes, names of the tensors, the inputs' and outputs'
 * chirality transforms) is a JSON string made here at compile time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"

/* One basis as gathers (tables over the features):
 *   analysis: feature j enters even component kE[j] with coefficient aE[j] and
 *             odd component kO[j] with aO[j] (0 where it enters none);
 *   synthesis: feature f = ca[f] * even[ie[f]] + cb[f] * odd[io[f]].
 * Read off ir_basis_analyse / ir_basis_synthesise on unit vectors, so that the
 * export follows whatever convention the basis has. */
typedef struct QS {
    int n, de, dod;
    int kE, aE, kO, aO, ie, ca, io, cb;
} QS;

typedef struct X {
    CgModel *m;
    KirProgram *k;
    Arena *a;
    int dense;            /* the buffer */
    CgDense *t;
    int n, cap;
    long size;
} X;

static QS qs_of(X *x, const IrBasis *b) {
    QS q = {.n = b->n, .de = b->d_even, .dod = b->d_odd};
    int n = b->n, m = b->d_even + b->d_odd;
    double *v = sup_malloc(sizeof(double) * (size_t)(n + m + 1)), *ev = v + n, *od = ev + b->d_even;
    int *ki = sup_malloc(sizeof(int) * 4 * (size_t)(n + 1));
    int *kE = ki, *kO = ki + n, *ie = kO + n, *io = ie + n;
    float *kf = sup_malloc(sizeof(float) * 4 * (size_t)(n + 1));
    float *aE = kf, *aO = kf + n, *ca = aO + n, *cb = ca + n;
    memset(ki, 0, sizeof(int) * 4 * (size_t)(n + 1));
    memset(kf, 0, sizeof(float) * 4 * (size_t)(n + 1));
    for (int j = 0; j < n; j++) {
        memset(v, 0, sizeof(double) * (size_t)n);
        v[j] = 1;
        ir_basis_analyse(b, v, ev, od);
        for (int c = 0; c < b->d_even; c++)
            if (ev[c] != 0) {
                if (aE[j] != 0) sup_bug("dense export: feature %d enters two even components", j);
                kE[j] = c, aE[j] = (float)ev[c];
            }
        for (int c = 0; c < b->d_odd; c++)
            if (od[c] != 0) {
                if (aO[j] != 0) sup_bug("dense export: feature %d enters two odd components", j);
                kO[j] = c, aO[j] = (float)od[c];
            }
    }
    for (int c = 0; c < m; c++) {
        memset(ev, 0, sizeof(double) * (size_t)m);
        ev[c] = 1; /* even components first, then odd (od follows ev) */
        memset(v, 0, sizeof(double) * (size_t)n);
        ir_basis_synthesise(b, ev, od, v);
        bool even = c < b->d_even;
        for (int f = 0; f < n; f++) {
            if (v[f] == 0) continue;
            if (even) ie[f] = c, ca[f] = (float)v[f];
            else io[f] = c - b->d_even, cb[f] = (float)v[f];
        }
    }
    KirProgram *k = x->k;
    q.kE = kir_tab_int(k, kE, n), q.kO = kir_tab_int(k, kO, n);
    q.ie = kir_tab_int(k, ie, n), q.io = kir_tab_int(k, io, n);
    q.aE = kir_tab_float(k, aE, n), q.aO = kir_tab_float(k, aO, n);
    q.ca = kir_tab_float(k, ca, n), q.cb = kir_tab_float(k, cb, n);
    sup_free(v);
    sup_free(ki);
    sup_free(kf);
    return q;
}

/* ---- the table ------------------------------------------------------------------------- */

static long add_dense(X *x, const char *name, int ndim, long d0, long d1, long d2) {
    if (x->n == x->cap) {
        int cap = x->cap ? 2 * x->cap : 16;
        CgDense *t = arena_new_array(x->a, CgDense, cap);
        if (x->n) memcpy(t, x->t, sizeof *t * (size_t)x->n);
        x->t = t, x->cap = cap;
    }
    long count = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    x->t[x->n++] = (CgDense){arena_strdup(x->a, name), ndim, {d0, ndim > 1 ? d1 : 0, ndim > 2 ? d2 : 0},
                             x->size, count};
    long off = x->size;
    x->size += count;
    return off;
}

/* ---- kernels ----------------------------------------------------------------------------- */

static KirIndex pix(X *x, const IrParamEntry *e) {
    long i = e - x->m->layout->entries;
    return kir_ix(x->m->entry_state[i] ? x->m->state_buf : x->m->params_buf, x->m->entry_offset[i]);
}
static KirExpr *mul(X *x, KirExpr *a, KirExpr *b) { return kir_bin(x->k, KIR_E_MUL, a, b); }

/* dense[dst + o * ldo + i * ldi] = (S_out blockdiag(A, B) Q_in)[o][i] for one tap. */
static void emit_map(X *x, const IrParamEntry *A, const IrParamEntry *B, long dst, long ldo, long ldi,
                     const char *label) {
    KirProgram *k = x->k;
    QS o = qs_of(x, A->basis_out), in = qs_of(x, A->basis_in);
    if (o.n == 0 || in.n == 0) return;
    KirDim ext[2] = {{o.n, false}, {in.n, false}};
    KirStep *s = kir_loop(k, KIR_FN_DENSIFY, label, 2, ext);
    KirExpr *e = NULL;
    if (o.de > 0 && in.de > 0) {
        KirIndex ia = pix(x, A);
        kir_ix_tab(&ia, o.ie, 0, in.de);
        kir_ix_tab(&ia, in.kE, 1, 1);
        e = mul(x, mul(x, kir_tabv(k, o.ca, 0), kir_tabv(k, in.aE, 1)), kir_load(k, ia));
    }
    if (o.dod > 0 && in.dod > 0) {
        KirIndex ib = pix(x, B);
        kir_ix_tab(&ib, o.io, 0, in.dod);
        kir_ix_tab(&ib, in.kO, 1, 1);
        KirExpr *eb = mul(x, mul(x, kir_tabv(k, o.cb, 0), kir_tabv(k, in.aO, 1)), kir_load(k, ib));
        e = e ? kir_bin(k, KIR_E_ADD, e, eb) : eb;
    }
    KirIndex d = kir_ix(x->dense, dst);
    kir_ix_var(&d, 0, ldo), kir_ix_var(&d, 1, ldi);
    kir_store(k, s, d, e ? e : kir_const(k, 0));
}

/* dense[dst + f] = the synthesis of an even vector (bias, beta, running mean);
 * e == NULL: zeros. n: the features (when e == NULL). */
static void emit_even_vec(X *x, const IrParamEntry *e, long n, long dst, const char *label) {
    KirProgram *k = x->k;
    if (n == 0) return;
    KirDim ext[1] = {{n, false}};
    KirStep *s = kir_loop(k, KIR_FN_DENSIFY, label, 1, ext);
    KirExpr *v = kir_const(k, 0);
    if (e) {
        QS q = qs_of(x, e->basis_out);
        sup_assert(q.n == n);
        if (q.de > 0) {
            KirIndex i = pix(x, e);
            kir_ix_tab(&i, q.ie, 0, 1);
            v = mul(x, kir_tabv(k, q.ca, 0), kir_load(k, i));
        }
    }
    KirIndex d = kir_ix(x->dense, dst);
    kir_ix_var(&d, 0, 1);
    kir_store(k, s, d, v);
}

/* dense[dst + f] = e[orbit of f] (gamma, running variance). */
static void emit_orbit_vec(X *x, const IrNode *n, const IrParamEntry *e, long dst, const char *label) {
    int F = n->shape.feat;
    if (F == 0) return;
    int *orb = sup_malloc(sizeof(int) * (size_t)(F + 1));
    ir_chi_orbits(&n->chi, n->a.unconstrained || !n->chi.partner, orb);
    int t = kir_tab_int(x->k, orb, F);
    sup_free(orb);
    KirDim ext[1] = {{F, false}};
    KirStep *s = kir_loop(x->k, KIR_FN_DENSIFY, label, 1, ext);
    KirIndex i = pix(x, e);
    kir_ix_tab(&i, t, 0, 1);
    KirIndex d = kir_ix(x->dense, dst);
    kir_ix_var(&d, 0, 1);
    kir_store(x->k, s, d, kir_load(x->k, i));
}

static const IrParamEntry *need(X *x, const IrNode *n, const char *name, int layer, int gate, int tap) {
    const IrParamEntry *e = ir_params_find(x->m->layout, n, name, layer, gate, tap);
    if (!e) sup_bug("dense export: %s %%%d has no parameter %s", ir_op_info[n->op].name, n->id, name);
    return e;
}

static void export_node(X *x, const IrNode *n) {
    Arena *a = x->a;
    int Fo = n->shape.feat;
    switch (n->op) {
    case IR_LINEAR:
    case IR_INVARIANT:
    case IR_CONV1D: {
        int Fi = n->in[0]->shape.feat;
        bool conv = n->op == IR_CONV1D;
        int taps = conv ? n->a.kernel : 1;
        const char *w = arena_printf(a, "n%d.weight", n->id);
        long off = conv ? add_dense(x, w, 3, Fo, Fi, taps) : add_dense(x, w, 2, Fo, Fi, 0);
        for (int t = 0; t < taps; t++)
            emit_map(x, need(x, n, "A", 0, 0, t), need(x, n, "B", 0, 0, t), off + t, (long)Fi * taps, taps,
                     conv ? arena_printf(a, "%s tap %d", w, t) : w);
        if (n->a.bias) {
            const char *b = arena_printf(a, "n%d.bias", n->id);
            emit_even_vec(x, need(x, n, "bias", 0, 0, 0), Fo, add_dense(x, b, 1, Fo, 0, 0), b);
        }
        return;
    }
    case IR_BATCHNORM: {
        static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
        static const char *const src[4] = {"gamma", "beta", "mean", "var"};
        for (int i = 0; i < 4; i++) {
            const char *nm = arena_printf(a, "n%d.%s", n->id, names[i]);
            long off = add_dense(x, nm, 1, Fo, 0, 0);
            const IrParamEntry *e = need(x, n, src[i], 0, 0, 0);
            if (i == 0 || i == 3) emit_orbit_vec(x, n, e, off, nm);
            else emit_even_vec(x, e, Fo, off, nm);
        }
        return;
    }
    case IR_LSTM:
    case IR_GRU: {
        bool lstm = n->op == IR_LSTM;
        int G = lstm ? 4 : 3, H = Fo, L = n->a.layers > 0 ? n->a.layers : 1;
        for (int ly = 0; ly < L; ly++) {
            int Fi = ly == 0 ? n->in[0]->shape.feat : H;
            const char *wih = arena_printf(a, "n%d.weight_ih_l%d", n->id, ly);
            const char *whh = arena_printf(a, "n%d.weight_hh_l%d", n->id, ly);
            const char *bih = arena_printf(a, "n%d.bias_ih_l%d", n->id, ly);
            const char *bhh = arena_printf(a, "n%d.bias_hh_l%d", n->id, ly);
            long oih = add_dense(x, wih, 2, (long)G * H, Fi, 0), ohh = add_dense(x, whh, 2, (long)G * H, H, 0);
            long obi = add_dense(x, bih, 1, (long)G * H, 0, 0), obh = add_dense(x, bhh, 1, (long)G * H, 0, 0);
            for (int g = 0; g < G; g++) {
                emit_map(x, need(x, n, "Wx.A", ly, g, 0), need(x, n, "Wx.B", ly, g, 0), oih + (long)g * H * Fi, Fi, 1,
                         arena_printf(a, "%s gate %d", wih, g));
                emit_map(x, need(x, n, "Wh.A", ly, g, 0), need(x, n, "Wh.B", ly, g, 0), ohh + (long)g * H * H, H, 1,
                         arena_printf(a, "%s gate %d", whh, g));
                emit_even_vec(x, need(x, n, "bias", ly, g, 0), H, obi + (long)g * H, arena_printf(a, "%s gate %d", bih, g));
                const IrParamEntry *bh = !lstm && g == 2 ? need(x, n, "bias_h", ly, g, 0) : NULL;
                emit_even_vec(x, bh, H, obh + (long)g * H, arena_printf(a, "%s gate %d", bhh, g));
            }
        }
        return;
    }
    default:
        return;
    }
}

/* ---- the graph as JSON --------------------------------------------------------------------- */

static void js_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}
static void js_key(FILE *f, const char *k) {
    fputs(", ", f);
    js_str(f, k);
    fputs(": ", f);
}
static void js_num(FILE *f, const char *k, double v) {
    js_key(f, k);
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fputs("null", f);
}
static void js_int(FILE *f, const char *k, long v) {
    js_key(f, k);
    fprintf(f, "%ld", v);
}
static void js_bool(FILE *f, const char *k, bool v) {
    js_key(f, k);
    fputs(v ? "true" : "false", f);
}
static void js_strk(FILE *f, const char *k, const char *v) {
    js_key(f, k);
    if (v) js_str(f, v);
    else fputs("null", f);
}

/* The declaration's transform as partner and sign lists (null: trivial). */
static void js_decl(FILE *f, const IrDecl *d, int frames, int i) {
    bool triv = d->invariant || !d->chi.partner;
    fputs("  {\"name\": ", f);
    js_str(f, d->name);
    js_int(f, "index", i);
    js_int(f, "node", d->node ? d->node->id : -1);
    js_key(f, "frames");
    if (frames) fprintf(f, "%d", frames);
    else fputs("null", f);
    js_int(f, "features", d->feat);
    js_bool(f, "is_class", d->is_class);
    js_bool(f, "invariant", d->invariant);
    js_int(f, "joints", d->skeleton ? d->skeleton->njoints : 0);
    js_int(f, "coords", d->skeleton ? d->ncoords : 0);
    js_key(f, "partner");
    if (triv) fputs("null", f);
    else
        for (int j = 0; j < d->feat; j++) fprintf(f, "%s%d", j ? ", " : "[", d->chi.partner[j]);
    if (!triv) fputc(']', f);
    js_key(f, "sign");
    if (triv) fputs("null", f);
    else
        for (int j = 0; j < d->feat; j++) fprintf(f, "%s%d", j ? ", " : "[", d->chi.sign[j]);
    if (!triv) fputc(']', f);
    fputc('}', f);
}

static void js_node(FILE *f, const IrNode *n) {
    const IrAttrs *a = &n->a;
    fputs("  {\"id\": ", f);
    fprintf(f, "%d", n->id);
    js_key(f, "name");
    fprintf(f, "\"n%d\"", n->id);
    js_strk(f, "op", ir_op_info[n->op].name);
    js_strk(f, "label", n->name);
    js_key(f, "inputs");
    fputc('[', f);
    for (int i = 0; i < n->nin; i++) fprintf(f, "%s\"n%d\"", i ? ", " : "", n->in[i]->id);
    fputc(']', f);
    js_key(f, "frames");
    if (n->shape.time == IR_NO_TIME) fputs("null", f);
    else fprintf(f, "%d", n->shape.time);
    js_int(f, "features", n->shape.feat);
    switch (n->op) {
    case IR_INPUT:
    case IR_OUTPUT: js_int(f, "io", a->io); break;
    case IR_LINEAR:
    case IR_INVARIANT:
    case IR_CONV1D:
        js_int(f, "in", n->in[0]->shape.feat);
        js_int(f, "out", n->shape.feat);
        js_bool(f, "bias", a->bias);
        if (n->op == IR_CONV1D) {
            js_int(f, "kernel", a->kernel);
            js_int(f, "dilation", a->dilation > 0 ? a->dilation : 1);
            js_int(f, "stride", a->stride > 0 ? a->stride : 1);
            js_int(f, "padding", a->padding);
        }
        break;
    case IR_BATCHNORM:
        js_num(f, "eps", a->eps > 0 ? a->eps : 1e-5);
        js_num(f, "momentum", a->momentum);
        break;
    case IR_DROPOUT: js_num(f, "p", a->p); break;
    case IR_ACT: {
        /* as the lowering: act_neg applies on the negated features of the input's type */
        const IrChi *c = &n->in[0]->chi;
        js_strk(f, "act", ir_act_name[a->act]);
        js_num(f, "slope", a->slope);
        if (c->partner && a->act != a->act_neg && ir_chi_has_negated(c)) {
            js_strk(f, "act_neg", ir_act_name[a->act_neg]);
            js_key(f, "neg_mask");
            for (int j = 0; j < c->n; j++) fprintf(f, "%s%d", j ? ", " : "[", c->sign[j] < 0 ? 1 : 0);
            fputc(']', f);
        }
        break;
    }
    case IR_CROP:
        js_int(f, "crop", a->crop);
        js_int(f, "stride", a->stride);
        break;
    case IR_REPEAT: js_int(f, "frames_out", a->frames); break;
    case IR_LSTM:
    case IR_GRU:
        js_int(f, "in", n->in[0]->shape.feat);
        js_int(f, "hidden", n->shape.feat);
        js_int(f, "layers", a->layers > 0 ? a->layers : 1);
        js_num(f, "p", a->p);
        js_key(f, "init");
        if (n->nin > 1) fprintf(f, "\"n%d\"", n->in[1]->id);
        else fputs("null", f);
        break;
    default: break;
    }
    fputc('}', f);
}

static const char *graph_json(X *x, const bool *bwd) {
    const CgModel *m = x->m;
    const IrProgram *p = m->prog;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) sup_bug("open_memstream failed");
    fputs("{\"format\": \"chiralc-graph-1\"", f);
    js_strk(f, "model", p->model);
    js_strk(f, "fingerprint", m->fingerprint);
    fputs(",\n\"inputs\": [\n", f);
    for (int i = 0; i < p->ninputs; i++) {
        js_decl(f, p->inputs[i], m->input_frames[i], i);
        fputs(i + 1 < p->ninputs ? ",\n" : "\n", f);
    }
    fputs("],\n\"outputs\": [\n", f);
    for (int i = 0; i < p->noutputs; i++) {
        js_decl(f, p->outputs[i], m->output_frames[i], i);
        fputs(i + 1 < p->noutputs ? ",\n" : "\n", f);
    }
    fputs("],\n\"nodes\": [\n", f);
    bool first = true;
    ir_foreach(p, n) {
        if (bwd[n->id]) continue;
        if (!first) fputs(",\n", f);
        first = false;
        js_node(f, n);
    }
    fputs("\n]}\n", f);
    fclose(f);
    const char *s = arena_strdup(x->a, text);
    free(text); /* open_memstream allocates with malloc */
    return s;
}

/* ---- entry point ------------------------------------------------------------------------------ */

void cg_export_lower(CgModel *m) {
    Arena *a = m->prog->arena;
    X x = {.m = m, .k = m->k, .a = a};
    x.dense = kir_buf(m->k, "dense", KIR_BUF_DENSE, 0, 0);
    /* the forward graph only: the training graph's nodes (and whatever depends on them) are not layers */
    int nn = m->layout->nnodes;
    bool *bwd = arena_new_array(a, bool, nn + 1);
    ir_foreach(m->prog, n) {
        bwd[n->id] = ir_op_has(n->op, OPF_TRAIN);
        for (int i = 0; i < n->nin; i++) bwd[n->id] |= bwd[n->in[i]->id];
        if (!bwd[n->id]) export_node(&x, n);
    }
    m->k->bufs[x.dense].fixed = x.size;
    CgExport *e = arena_alloc(a, sizeof *e);
    *e = (CgExport){.t = x.t, .n = x.n, .size = x.size, .dense_buf = x.dense, .graph_json = graph_json(&x, bwd)};
    m->dense = e;
}
