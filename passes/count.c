/* passes/count.c: parameters and multiply-adds of every layer, three ways
 * (chirality.md 2, 7; docs/design.md "Counting"), for one sample:
 *   written: PyTorch's count of the network as written (written widths);
 *   paper:   the paper's sharing, full folding less the block from negated
 *            input pairs to kept centre outputs; MACs of its w(x1 + x2) trick;
 *   folded:  d_even_out*d_even_in + d_odd_out*d_odd_in per tap, even biases.
 * MACs count the weight multiply-adds of linear maps: per-frame products times
 * the frames produced. Elementwise work (biases, batchnorm, gates) is free. */
#include <string.h>

#include "passes/passes.h"

typedef long long ll;

/* Adds one linear map (taps of chi_in -> chi_out, written widths fo_w x fi_w)
 * to the three counts. */
static void add_map(IrCount c[IR_NUM_COUNTS], const IrChi *out, const IrChi *in, ll fo_w, ll fi_w,
                    ll taps, bool bias, ll frames, bool written, bool unconstrained) {
    if (written) {
        c[IR_WRITTEN].params += fo_w * fi_w * taps + (bias ? fo_w : 0);
        c[IR_WRITTEN].macs += fo_w * fi_w * taps * frames;
    }
    if (unconstrained) {
        /* dense on purpose: counted like a written layer of the chosen widths */
        ll fo = out->n, fi = in->n;
        for (int k = IR_PAPER; k <= IR_FOLDED; k++) {
            c[k].params += fo * fi * taps + (bias ? fo : 0);
            c[k].macs += fo * fi * taps * frames;
        }
        return;
    }
    IrChiStats so = ir_chi_stats(out), si = ir_chi_stats(in);
    ll folded = (ll)so.d_even * si.d_even + (ll)so.d_odd * si.d_odd;
    ll b = bias ? so.d_even : 0;
    c[IR_FOLDED].params += folded * taps + b;
    c[IR_FOLDED].macs += folded * taps * frames;
    c[IR_PAPER].params += (folded - (ll)so.centre_p * si.pairs_n) * taps + b;
    c[IR_PAPER].macs += (ll)out->n * (si.pairs + si.centre_p + si.centre_n) * taps * frames;
}

static void add_bias(IrCount c[IR_NUM_COUNTS], const IrChi *t, bool unconstrained) {
    ll d = unconstrained ? t->n : ir_chi_stats(t).d_even;
    c[IR_PAPER].params += d;
    c[IR_FOLDED].params += d;
}

static ll frames_of(const IrShape *s) { return s->time == IR_NO_TIME ? 1 : s->time; }

/* lstm (gates i f g o) and gru (r z n), PyTorch's parameterisation: per layer
 * W_ih, W_hh and the two bias vectors. Folded, gates other than g / n have the
 * hidden type with every sign +1; their two biases add up to one, except gru's
 * n, whose b_hn sits inside r * (...). */
static void count_recurrent(IrProgram *p, IrNode *n) {
    IrCount *c = n->count;
    bool lstm = n->op == IR_LSTM, unc = n->a.unconstrained;
    int gates = lstm ? 4 : 3, layers = n->a.layers > 0 ? n->a.layers : 1;
    ll hw = n->shape.feat_written, frames = frames_of(&n->shape);
    IrChi hid = unc ? ir_chi_trivial(n->chi.n) : n->chi;
    IrChi pos = ir_chi_all_positive(p->arena, &hid);
    for (int l = 0; l < layers; l++) {
        IrChi in = l == 0 ? n->in[0]->chi : hid;
        if (unc) in = ir_chi_trivial(in.n);
        ll xw = l == 0 ? n->in[0]->shape.feat_written : hw;
        c[IR_WRITTEN].params += 2LL * gates * hw; /* b_ih, b_hh */
        for (int g = 0; g < gates; g++) {
            bool candidate = g == 2; /* lstm g, gru n */
            const IrChi *gt = candidate ? &hid : &pos;
            add_map(c, gt, &in, hw, xw, 1, false, frames, true, false);
            add_map(c, gt, &hid, hw, hw, 1, false, frames, true, false);
            add_bias(c, gt, false);
            if (!lstm && candidate) add_bias(c, gt, false); /* gru: b_hn */
        }
    }
}

static void count_node(IrProgram *p, IrNode *n) {
    memset(n->count, 0, sizeof n->count);
    IrCount *c = n->count;
    const IrNode *x = n->nin > 0 ? n->in[0] : NULL;
    ll frames = frames_of(&n->shape);
    switch (n->op) {
    case IR_LINEAR:
    case IR_CONV1D:
    case IR_INVARIANT: {
        ll taps = n->op == IR_CONV1D ? (n->a.kernel > 0 ? n->a.kernel : 1) : 1;
        add_map(c, &n->chi, &x->chi, n->shape.feat_written, x->shape.feat_written, taps, n->a.bias,
                frames, !pass_invariance_inserted(n), n->a.unconstrained);
        break;
    }
    case IR_BATCHNORM: {
        IrChiStats s = ir_chi_stats(&n->chi);
        c[IR_WRITTEN].params = 2LL * n->shape.feat_written;
        c[IR_PAPER].params = c[IR_FOLDED].params =
            (ll)(s.pairs + s.centre_p + s.centre_n) + s.d_even;
        break;
    }
    case IR_LSTM:
    case IR_GRU:
        count_recurrent(p, n);
        break;
    default:
        break;
    }
}

bool pass_count(IrProgram *p) {
    ir_foreach(p, n) count_node(p, n);
    return true;
}

PassTotals pass_totals(const IrProgram *p) {
    PassTotals t;
    memset(&t, 0, sizeof t);
    for (const IrNode *n = p->first; n; n = n->next)
        for (int k = 0; k < IR_NUM_COUNTS; k++) {
            t.total[k].params += n->count[k].params;
            t.total[k].macs += n->count[k].macs;
        }
    return t;
}

/* 16952371 -> "16,952,371" */
static const char *thousands(char *buf, size_t size, ll v) {
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v);
    size_t len = strlen(digits), o = 0;
    if (v < 0 && o + 1 < size) buf[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static bool has_weights(const IrNode *n) { return ir_op_has(n->op, OPF_PARAMS); }

static const char *row_label(Arena *a, const IrNode *n) {
    char id[16];
    snprintf(id, sizeof id, "%%%d", n->id);
    const char *name = n->name ? n->name : id;
    if (n->loc.file)
        return arena_printf(a, "%s %s %s:%d", ir_op_info[n->op].name, name, n->loc.file->name,
                            n->loc.line);
    return arena_printf(a, "%s %s", ir_op_info[n->op].name, name);
}

enum { NCOLS = 6 };
static const char *const col_head[NCOLS] = {"written params", "paper params", "folded params",
                                            "written MACs",   "paper MACs",   "folded MACs"};

static ll cell(const IrCount c[IR_NUM_COUNTS], int col) {
    static const IrCountKind kind[NCOLS] = {IR_WRITTEN, IR_PAPER, IR_FOLDED,
                                            IR_WRITTEN, IR_PAPER, IR_FOLDED};
    return col < 3 ? c[kind[col]].params : c[kind[col]].macs;
}

void pass_print_counts(FILE *out, const IrProgram *p) {
    Arena *a = p->arena;
    PassTotals t = pass_totals(p);
    int wlabel = (int)strlen("folded / written");
    int wcol[NCOLS];
    char buf[40];
    for (int k = 0; k < NCOLS; k++) {
        wcol[k] = (int)strlen(col_head[k]);
        int w = (int)strlen(thousands(buf, sizeof buf, cell(t.total, k)));
        if (w > wcol[k]) wcol[k] = w;
    }
    for (const IrNode *n = p->first; n; n = n->next)
        if (has_weights(n)) {
            int w = (int)strlen(row_label(a, n));
            if (w > wlabel) wlabel = w;
        }
    fprintf(out, "%-*s", wlabel, "layer");
    for (int k = 0; k < NCOLS; k++) fprintf(out, "  %*s", wcol[k], col_head[k]);
    fputc('\n', out);
    for (const IrNode *n = p->first; n; n = n->next) {
        if (!has_weights(n)) continue;
        fprintf(out, "%-*s", wlabel, row_label(a, n));
        for (int k = 0; k < NCOLS; k++)
            fprintf(out, "  %*s", wcol[k], thousands(buf, sizeof buf, cell(n->count, k)));
        fputc('\n', out);
    }
    fprintf(out, "%-*s", wlabel, "total");
    for (int k = 0; k < NCOLS; k++)
        fprintf(out, "  %*s", wcol[k], thousands(buf, sizeof buf, cell(t.total, k)));
    fputc('\n', out);
    /* Ratios to the written network, each under its own column. */
    static const char *const ratio_label[2] = {"paper / written", "folded / written"};
    for (int r = 0; r < 2; r++) {
        char line[2048];
        int len = snprintf(line, sizeof line, "%-*s", wlabel, ratio_label[r]);
        for (int k = 0; k < NCOLS && len > 0 && len < (int)sizeof line; k++) {
            bool params = k < 3;
            IrCountKind kind = r == 0 ? IR_PAPER : IR_FOLDED;
            ll num = params ? t.total[kind].params : t.total[kind].macs;
            ll den = params ? t.total[IR_WRITTEN].params : t.total[IR_WRITTEN].macs;
            if (k % 3 != 1 + r || den == 0)
                len += snprintf(line + len, sizeof line - (size_t)len, "  %*s", wcol[k], "");
            else
                len += snprintf(line + len, sizeof line - (size_t)len, "  %*.3f", wcol[k],
                                (double)num / (double)den);
        }
        if (len >= (int)sizeof line) len = (int)sizeof line - 1;
        while (len > 0 && line[len - 1] == ' ') len--;
        line[len] = '\0';
        fprintf(out, "%s\n", line);
    }
}
