/* passes/legalize.c: only odd functions on negated features (chirality.md 3, 4).
 *
 * An activation phi on a feature the mirror negates must satisfy
 * phi(-x) = -phi(x). Where the written function is not odd, `activations paper`
 * uses tanh everywhere in that tensor, `activations mixed` keeps the written
 * function on kept features and uses tanh on the negated ones. force=true keeps
 * the written function and warns: the result is not equivariant. */
#include <string.h>

#include "passes/passes.h"

/* Whether an earlier node written at the same place (a loop body) got the same note. */
static bool said_before(const IrProgram *p, const IrNode *n, const char *note) {
    for (const IrNode *m = p->first; m && m != n; m = m->next)
        if (m->loc.file == n->loc.file && m->loc.line == n->loc.line && m->loc.col == n->loc.col &&
            m->note && strcmp(m->note, note) == 0)
            return true;
    return false;
}

static int count_negated(const IrChi *c) {
    int k = 0;
    if (c->sign)
        for (int f = 0; f < c->n; f++) k += c->sign[f] < 0;
    return k;
}

bool pass_legalize(IrProgram *p) {
    if (p->cfg.baseline) return true;
    ir_foreach(p, n) {
        if (n->op != IR_ACT || ir_act_odd[n->a.act]) continue;
        int neg = count_negated(&n->chi);
        if (neg == 0) continue;
        const char *fn = ir_act_name[n->a.act];
        if (n->a.force) {
            n->note = arena_printf(p->arena, "%s forced on %d negated features", fn, neg);
            if (!said_before(p, n, n->note))
                diag_warning(p->diag, n->loc, "%s forced on %d negated features: the network is not equivariant",
                         fn, neg);
            continue;
        }
        if (p->cfg.activations == IR_ACTS_PAPER) {
            n->note = arena_printf(p->arena, "%s -> tanh on all %d features (activations paper)", fn,
                                   n->chi.n);
            n->a.act = IR_ACT_TANH;
            n->a.act_neg = IR_ACT_TANH;
        } else {
            n->note = arena_printf(p->arena, "%s -> tanh on %d negated features (activations mixed)",
                                   fn, neg);
            n->a.act_neg = IR_ACT_TANH;
        }
    }
    return true;
}
