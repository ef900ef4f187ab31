/* passes/invariance.c: invariance layers where an op needs a trivial type
 * (chirality.md 3, 6). softmax and an output declared class, features or
 * invariant must see a tensor the mirror does not change. Where the user did
 * not put an invariance layer, one of the same width goes immediately before
 * the op; the types of everything after it are worked out again. */
#include <string.h>

#include "passes/passes.h"

static const char inserted_prefix[] = "inserted: ";

bool pass_invariance_inserted(const IrNode *n) {
    return n->op == IR_INVARIANT && n->note &&
           strncmp(n->note, inserted_prefix, sizeof inserted_prefix - 1) == 0;
}

static bool needs_trivial(const IrProgram *p, const IrNode *n) {
    if (ir_op_has(n->op, OPF_TRIVIAL_IN)) return true;
    return n->op == IR_OUTPUT && ir_chi_is_trivial(&p->outputs[n->a.io]->chi);
}

/* A new node placed immediately before `before`. */
static IrNode *new_before(IrProgram *p, IrNode *before, IrOp op, SrcLoc loc) {
    IrNode *n = ir_node_new(p, op, loc); /* appended; take it off the end again */
    p->last = n->prev;
    p->last->next = NULL;
    n->prev = NULL;
    ir_insert_before(p, before, n);
    return n;
}

bool pass_invariance(IrProgram *p) {
    if (p->cfg.baseline) return true;
    bool ok = true;
    for (IrNode *n = p->first; n; n = n->next) {
        if (!needs_trivial(p, n) || ir_chi_is_trivial(&n->in[0]->chi)) continue;
        IrNode *x = n->in[0];
        IrNode *inv = new_before(p, n, IR_INVARIANT, n->loc);
        ir_add_input(inv, x);
        inv->a.out = x->shape.feat;
        inv->a.bias = true;
        inv->shape.time = x->shape.time;
        inv->shape.feat = x->shape.feat;
        /* not in the written network: there, its consumer reads x as written */
        inv->shape.feat_written = x->shape.feat_written;
        if (n->op == IR_OUTPUT)
            inv->note = arena_printf(p->arena, "%soutput '%s' is declared invariant", inserted_prefix,
                                     p->outputs[n->a.io]->name);
        else
            inv->note = arena_printf(p->arena, "%s%s needs an invariant input", inserted_prefix,
                                     ir_op_info[n->op].name);
        n->in[0] = inv;
        for (IrNode *m = inv; m; m = m->next) ok &= pass_chirality_node(p, m);
    }
    ir_renumber(p);
    return ok;
}
