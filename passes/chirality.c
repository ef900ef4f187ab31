/* passes/chirality.c: a chirality type for every tensor (chirality.md 6,
 * docs/design.md "The chirality pass").
 *
 * Types flow forward in program order. Layers with weights are where the pass
 * chooses: the output's type when the result reaches an output through
 * type-keeping ops, the trivial type after a trivial input, otherwise a hidden
 * type of the layer's width by the layout. The joints layout may round a width
 * down; the node's shape.feat follows (feat_written keeps what the user wrote)
 * and every later node takes its width from its inputs again. */
#include <math.h>
#include <string.h>

#include "passes/passes.h"

/* The desc of a type that could not be computed: ops after it skip their checks,
 * so one mistake gives one error. */
static const char chi_error_desc[] = "(error)";

static bool poisoned(const IrNode *n) {
    for (int i = 0; i < n->nin; i++)
        if (n->in[i]->chi.desc == chi_error_desc) return true;
    return false;
}

static IrChi error_chi(int n) {
    IrChi c = ir_chi_trivial(n);
    c.desc = chi_error_desc;
    return c;
}

static const IrSkeleton *first_skeleton(const IrProgram *p) {
    for (int i = 0; i < p->ninputs; i++)
        if (p->inputs[i]->skeleton) return p->inputs[i]->skeleton;
    return NULL;
}

static bool same_loc(SrcLoc a, SrcLoc b) {
    return a.file == b.file && a.line == b.line && a.col == b.col;
}

/* A layer written inside a loop is one layer to the user: a note or error about
 * it is shown for the first of its nodes only. The message is kept in the node's
 * note, which is also how the dump shows it. */
static bool first_time(const IrProgram *p, IrNode *n, const char *msg) {
    if (n->note && strcmp(n->note, msg) == 0) return false;
    n->note = msg;
    ir_foreach(p, m) if (m != n && same_loc(m->loc, n->loc) && m->note &&
                         strcmp(m->note, msg) == 0) return false;
    return true;
}

static SrcLoc hint_loc(const IrProgram *p, const IrNode *n) {
    return p->cfg.loc.file ? p->cfg.loc : n->loc;
}

/* layout joints: |J| units of c channels, the first round(neg_ratio * c)
 * negated; a unit's partner is the mirrored joint's unit. */
static bool joints_type(IrProgram *p, IrNode *n, const IrSkeleton *s, int width, IrChi *out) {
    int J = s->njoints;
    if (width < J) {
        const char *msg = arena_printf(p->arena,
                                       "width %d is too small for layout joints: skeleton '%s' "
                                       "has %d joints",
                                       width, s->name, J);
        if (first_time(p, n, msg)) {
            diag_error(p->diag, n->loc, "%s", msg);
            diag_note(p->diag, hint_loc(p, n),
                      "use a width that is a multiple of %d, or `layout pairs` in the chirality "
                      "block",
                      J);
        }
        return false;
    }
    int c = width / J, rounded = c * J;
    if (rounded != width) {
        const char *msg = arena_printf(p->arena,
                                       "width %d rounded down to %d: a multiple of the %d joints "
                                       "of skeleton '%s'",
                                       width, rounded, J, s->name);
        if (first_time(p, n, msg)) diag_note(p->diag, n->loc, "%s", msg);
    }
    int neg = (int)lround(p->cfg.neg_ratio * c);
    if (neg > c) neg = c;
    IrChi t = {.n = rounded};
    t.partner = arena_new_array(p->arena, int, rounded);
    t.sign = arena_new_array(p->arena, signed char, rounded);
    for (int j = 0; j < J; j++)
        for (int k = 0; k < c; k++) {
            t.partner[j * c + k] = s->partner[j] * c + k;
            t.sign[j * c + k] = (signed char)(k < neg ? -1 : 1);
        }
    t.desc = arena_printf(p->arena, "joints %s %dx%d neg %d", s->name, J, c, neg);
    *out = t;
    return true;
}

/* layout pairs: the centre share of the skeleton's joints, with the parity of
 * the width so that the rest pairs up; [left | right | centre], negated first. */
static IrChi pairs_type(IrProgram *p, const IrSkeleton *s, int width) {
    int J = s->njoints, Jc = 0;
    for (int j = 0; j < J; j++) Jc += s->partner[j] == j;
    double exact = (double)width * Jc / J;
    int centre = (int)lround(exact);
    if ((width - centre) % 2 != 0) {
        /* the nearer of the two neighbours with the right parity, the lower on a tie */
        int lo = centre - 1, hi = centre + 1;
        centre = (lo >= 0 && (exact - lo <= hi - exact || hi > width)) ? lo : hi;
    }
    int P = (width - centre) / 2;
    int pn = (int)lround(p->cfg.neg_ratio * P), cn = (int)lround(p->cfg.neg_ratio * centre);
    IrChi t = {.n = width};
    t.partner = arena_new_array(p->arena, int, width > 0 ? width : 1);
    t.sign = arena_new_array(p->arena, signed char, width > 0 ? width : 1);
    for (int i = 0; i < P; i++) {
        t.partner[i] = P + i;
        t.partner[P + i] = i;
        t.sign[i] = t.sign[P + i] = (signed char)(i < pn ? -1 : 1);
    }
    for (int i = 0; i < centre; i++) {
        t.partner[2 * P + i] = 2 * P + i;
        t.sign[2 * P + i] = (signed char)(i < cn ? -1 : 1);
    }
    t.desc = arena_printf(p->arena, "pairs %s 2x%d+%d neg %d+%d", s->name, P, centre, pn, cn);
    return t;
}

/* The type of a layer's result; sets the layer's (possibly rounded) width. */
static bool layer_type(IrProgram *p, IrNode *n) {
    int width = n->shape.feat_written;
    n->shape.feat = width;
    if (p->cfg.baseline) {
        n->chi = ir_chi_trivial(width);
        return true;
    }
    const IrDecl *d = pass_output_reached(p, n);
    if (d && d->feat == width) {
        n->chi = d->chi;
        return true;
    }
    const IrSkeleton *s = first_skeleton(p);
    if (ir_chi_is_trivial(&n->in[0]->chi) || !s) {
        n->chi = ir_chi_trivial(width);
        return true;
    }
    if (p->cfg.layout == IR_LAYOUT_PAIRS) {
        n->chi = pairs_type(p, s, width);
        return true;
    }
    IrChi t;
    if (!joints_type(p, n, s, width, &t)) {
        n->chi = error_chi(width);
        return false;
    }
    n->chi = t;
    n->shape.feat = t.n;
    return true;
}

static bool type_output(IrProgram *p, IrNode *n) {
    const IrDecl *d = p->outputs[n->a.io];
    const IrNode *x = n->in[0];
    n->shape.feat = x->shape.feat;
    if (p->cfg.baseline) {
        n->chi = ir_chi_trivial(n->shape.feat);
        return true;
    }
    if (x->shape.feat != d->feat) {
        diag_error(p->diag, n->loc, "output '%s' is declared with %d features, the net produces %d",
                   d->name, d->feat, x->shape.feat);
        if (x->note) diag_note(p->diag, x->loc, "%s", x->note);
        n->chi = error_chi(n->shape.feat);
        return false;
    }
    /* A trivial declaration accepts any type here: the invariance pass puts an
     * invariance layer in front of this output. */
    if (ir_chi_is_trivial(&d->chi)) {
        n->chi = d->chi;
        return true;
    }
    if (!ir_chi_equal(&x->chi, &d->chi)) {
        diag_error(p->diag, n->loc,
                   "output '%s' is declared with chirality type '%s', the net produces '%s'",
                   d->name, d->chi.desc, x->chi.desc);
        diag_note(p->diag, d->loc, "'%s' is declared here", d->name);
        n->chi = error_chi(n->shape.feat);
        return false;
    }
    n->chi = d->chi;
    return true;
}

bool pass_chirality_node(IrProgram *p, IrNode *n) {
    if (poisoned(n)) {
        n->chi = error_chi(n->shape.feat);
        return true; /* already reported */
    }
    const IrNode *x = n->nin > 0 ? n->in[0] : NULL;
    switch (n->op) {
    case IR_INPUT: {
        const IrDecl *d = p->inputs[n->a.io];
        n->chi = p->cfg.baseline ? ir_chi_trivial(n->shape.feat) : d->chi;
        return true;
    }
    case IR_OUTPUT:
        return type_output(p, n);
    case IR_LINEAR:
    case IR_CONV1D:
        return layer_type(p, n);
    case IR_LSTM:
    case IR_GRU:
        if (!layer_type(p, n)) return false;
        if (n->nin > 1 && !ir_chi_equal(&n->in[1]->chi, &n->chi)) {
            diag_error(p->diag, n->loc,
                       "the initial state of this %s has chirality type '%s', its hidden state "
                       "'%s'",
                       ir_op_info[n->op].name, n->in[1]->chi.desc, n->chi.desc);
            diag_note(p->diag, n->in[1]->loc, "the initial state comes from here");
            return false;
        }
        return true;
    case IR_INVARIANT:
        /* an inserted one has the (rounded) width of its input as a.out */
        n->shape.feat = n->a.out > 0 ? n->a.out : n->shape.feat_written;
        n->chi = ir_chi_trivial(n->shape.feat);
        return true;
    case IR_ADD:
    case IR_SUB: {
        const IrNode *y = n->in[1];
        n->shape.feat = x->shape.feat;
        n->chi = x->chi;
        if (!ir_chi_equal(&x->chi, &y->chi)) {
            diag_error(p->diag, n->loc, "cannot %s tensors of different chirality types: '%s' and '%s'",
                       n->op == IR_ADD ? "add" : "subtract", x->chi.desc, y->chi.desc);
            diag_note(p->diag, x->loc, "the left operand, of type '%s', is made here", x->chi.desc);
            diag_note(p->diag, y->loc, "the right operand, of type '%s', is made here", y->chi.desc);
            n->chi = error_chi(n->shape.feat);
            return false;
        }
        return true;
    }
    case IR_CONCAT: {
        IrChi *parts = arena_new_array(p->arena, IrChi, n->nin);
        n->shape.feat = 0;
        for (int i = 0; i < n->nin; i++) {
            parts[i] = n->in[i]->chi;
            n->shape.feat += n->in[i]->shape.feat;
        }
        n->chi = ir_chi_concat(p->arena, parts, n->nin);
        return true;
    }
    case IR_FLATTEN:
        n->shape.feat = x->shape.time * x->shape.feat;
        n->chi = ir_chi_tile(p->arena, &x->chi, x->shape.time);
        return true;
    case IR_BATCHNORM:
    case IR_DROPOUT:
    case IR_ACT:
    case IR_CROP:
    case IR_MEANPOOL:
    case IR_LAST:
    case IR_REPEAT:
    case IR_SOFTMAX:
        n->shape.feat = x->shape.feat;
        n->chi = x->chi;
        return true;
    case IR_TARGET: /* the training graph: autodiff sets its nodes' types itself */
    case IR_LOSS:
    case IR_GRAD:
    case IR_PGRAD:
        return true;
    case IR_NUM_OPS:
        break;
    }
    sup_bug("chirality: unknown op %d", (int)n->op);
}

bool pass_chirality(IrProgram *p) {
    bool ok = true;
    ir_foreach(p, n) ok &= pass_chirality_node(p, n);
    return ok;
}
