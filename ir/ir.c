/* ir/ir.c: the op tables and the construction of programs and nodes. */
#include "ir/ir.h"

const IrOpInfo ir_op_info[IR_NUM_OPS] = {
#define X(e, name, lo, hi, flags) [IR_##e] = {name, lo, hi, flags},
    IR_OPS(X)
#undef X
};

const char *const ir_act_name[IR_NUM_ACTS] = {
#define X(e, name, odd) [IR_ACT_##e] = name,
    IR_ACTS(X)
#undef X
};

const bool ir_act_odd[IR_NUM_ACTS] = {
#define X(e, name, odd) [IR_ACT_##e] = odd,
    IR_ACTS(X)
#undef X
};

IrProgram *ir_program_new(Arena *a, Diag *d) {
    IrProgram *p = arena_alloc(a, sizeof *p);
    p->arena = a;
    p->diag = d;
    p->cfg.layout = IR_LAYOUT_JOINTS;
    p->cfg.neg_ratio = 1.0 / 3.0;
    p->cfg.activations = IR_ACTS_PAPER;
    p->cfg.sharing = IR_SHARING_FULL;
    return p;
}

static IrNode *node_alloc(IrProgram *p, IrOp op, SrcLoc loc) {
    sup_assert(op >= 0 && op < IR_NUM_OPS);
    IrNode *n = arena_alloc(p->arena, sizeof *n);
    n->op = op;
    n->loc = loc;
    n->id = p->nnodes++;
    n->shape.time = IR_NO_TIME;
    return n;
}

IrNode *ir_node_new(IrProgram *p, IrOp op, SrcLoc loc) {
    IrNode *n = node_alloc(p, op, loc);
    n->prev = p->last;
    if (p->last)
        p->last->next = n;
    else
        p->first = n;
    p->last = n;
    return n;
}

void ir_insert_before(IrProgram *p, IrNode *before, IrNode *n) {
    sup_assert(before && n && !n->prev && !n->next && p->first != n);
    n->next = before;
    n->prev = before->prev;
    if (before->prev)
        before->prev->next = n;
    else
        p->first = n;
    before->prev = n;
}

void ir_add_input(IrNode *n, IrNode *in) {
    if (n->nin >= IR_MAX_IN) sup_bug("%s node with more than %d inputs", ir_op_info[n->op].name, IR_MAX_IN);
    n->in[n->nin++] = in;
}

void ir_renumber(IrProgram *p) {
    int id = 0;
    ir_foreach(p, n) n->id = id++;
    p->nnodes = id;
}

void ir_replace_uses(IrProgram *p, IrNode *from, IrNode *to, IrNode *after) {
    for (IrNode *n = after ? after->next : p->first; n; n = n->next)
        for (int i = 0; i < n->nin; i++)
            if (n->in[i] == from) n->in[i] = to;
}

int ir_crop_frames(int T, int n, int stride) {
    const int span = T - 2 * n;
    return span < 1 ? 0 : (span - 1) / (stride > 0 ? stride : 1) + 1;
}

int ir_num_uses(const IrProgram *p, const IrNode *n) {
    int uses = 0;
    for (const IrNode *m = p->first; m; m = m->next)
        for (int i = 0; i < m->nin; i++) uses += m->in[i] == n;
    return uses;
}
