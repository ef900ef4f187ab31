/* passes/autodiff.c: reverse mode over the graph IR (docs/design.md
 * "Training graph"). For a program compiled for training it appends to the
 * forward graph the label of the loss's output (target), the loss, and in
 * reverse program order the gradient of every tensor the loss depends on
 * through parameters (grad nodes) and the gradient of every layer's folded
 * parameters (pgrad nodes). The parameters are the IrParams blocks
 * themselves (A, B, even biases, per-orbit gammas), so a gradient step can
 * never leave the equivariant set.
 *
 * A tensor used several times gets the sum of its consumers' gradients (add
 * nodes). Ops whose gradient is the incoming one unchanged (output, add, the
 * first operand of sub) pass it on without a node. */
#include <string.h>

#include "passes/passes.h"

typedef struct List {
    IrNode **v;
    int n, cap;
} List;

typedef struct Ad {
    IrProgram *p;
    int nfwd;
    List *seq;   /* by forward node id: gradients of its result */
    List *state; /* by forward node id: gradients of its final states (lstm/gru used as init=) */
    bool *needs; /* by forward node id: the loss depends on it through parameters */
} Ad;

static void push(Arena *a, List *l, IrNode *n) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 4;
        IrNode **v = arena_new_array(a, IrNode *, cap);
        if (l->n) memcpy(v, l->v, sizeof *v * (size_t)l->n);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
}

/* The sum of the gradients in l, or NULL when there are none. */
static IrNode *sum(Ad *ad, const List *l) {
    if (l->n == 0) return NULL;
    IrNode *acc = l->v[0];
    for (int i = 1; i < l->n; i++) {
        IrNode *s = ir_node_new(ad->p, IR_ADD, acc->loc);
        ir_add_input(s, acc);
        ir_add_input(s, l->v[i]);
        s->shape = acc->shape;
        s->chi = acc->chi;
        s->note = "gradient sum";
        acc = s;
    }
    return acc;
}

static bool recurrent(const IrNode *n) { return n->op == IR_LSTM || n->op == IR_GRU; }

/* Width of a recurrence's final states: per layer h, and c for an lstm. */
static int state_width(const IrNode *n) {
    int layers = n->a.layers > 0 ? n->a.layers : 1;
    return layers * n->shape.feat * (n->op == IR_LSTM ? 2 : 1);
}

static IrNode *new_grad(Ad *ad, IrOp op, IrNode *f, int wrt) {
    IrNode *g = ir_node_new(ad->p, op, f->loc);
    g->a.fwd = f;
    g->a.wrt = wrt;
    return g;
}

/* The forward tensors a grad / pgrad of f reads besides its gradient inputs
 * (docs/design.md "Training graph", the table of operands). */
static void add_operands(IrNode *g, IrNode *f, bool pgrad) {
    switch (f->op) {
    case IR_LINEAR:
    case IR_INVARIANT:
    case IR_CONV1D:
        if (pgrad) ir_add_input(g, f->in[0]);
        break;
    case IR_BATCHNORM:
    case IR_ACT:
        ir_add_input(g, f->in[0]);
        break;
    case IR_SOFTMAX:
        ir_add_input(g, f); /* its own result */
        break;
    case IR_LSTM:
    case IR_GRU:
        for (int i = 0; i < f->nin; i++) ir_add_input(g, f->in[i]);
        break;
    default:
        break;
    }
}

/* Adds the gradient inputs of a grad / pgrad of f: dy, and for a recurrence
 * the gradient of its final states. */
static void add_grads(IrNode *g, IrNode *dy, IrNode *ds) {
    if (dy) ir_add_input(g, dy);
    if (ds) ir_add_input(g, ds);
}

static void contribute(Ad *ad, IrNode *to, IrNode *grad) {
    if (to->id < ad->nfwd && ad->needs[to->id]) push(ad->p->arena, &ad->seq[to->id], grad);
}

static void backward_node(Ad *ad, IrNode *f) {
    Arena *a = ad->p->arena;
    IrNode *dy = sum(ad, &ad->seq[f->id]);
    IrNode *ds = recurrent(f) ? sum(ad, &ad->state[f->id]) : NULL;
    if (!dy && !ds) return;
    switch (f->op) {
    case IR_INPUT:
        return;
    case IR_OUTPUT:
        contribute(ad, f->in[0], dy);
        return;
    case IR_ADD:
        contribute(ad, f->in[0], dy);
        contribute(ad, f->in[1], dy);
        return;
    case IR_SUB:
        contribute(ad, f->in[0], dy);
        break; /* the second operand below */
    default:
        break;
    }
    for (int i = f->op == IR_SUB ? 1 : 0; i < f->nin; i++) {
        IrNode *x = f->in[i];
        if (!ad->needs[x->id]) continue;
        IrNode *g = new_grad(ad, IR_GRAD, f, i);
        add_grads(g, dy, ds);
        add_operands(g, f, false);
        if (recurrent(f) && i == 1) {
            /* the gradient of init's final states, not of its sequence */
            int w = state_width(x);
            g->shape = (IrShape){IR_NO_TIME, w, w};
            g->chi = ir_chi_tile(a, &x->chi, w / (x->shape.feat > 0 ? x->shape.feat : 1));
            push(a, &ad->state[x->id], g);
        } else {
            g->shape = x->shape;
            g->chi = x->chi;
            contribute(ad, x, g);
        }
    }
    if (ir_op_has(f->op, OPF_PARAMS)) {
        IrNode *g = new_grad(ad, IR_PGRAD, f, 0);
        add_grads(g, dy, ds);
        add_operands(g, f, true);
        g->shape = (IrShape){IR_NO_TIME, 0, 0};
        g->chi = ir_chi_trivial(0);
        g->chi.desc = NULL; /* not a tensor: no type to show */
    }
}

bool pass_autodiff(IrProgram *p) {
    if (!p->training) return true;
    const IrDecl *d = p->train.loss_output;
    if (p->train.loss == IR_LOSS_NONE || !d) {
        diag_error(p->diag, (SrcLoc){0}, "%s: cannot train: the model has no loss (train { loss ... })",
                   p->file ? p->file->name : p->model ? p->model : "model");
        return false;
    }
    int io = -1;
    for (int i = 0; i < p->noutputs; i++)
        if (p->outputs[i] == d) io = i;
    sup_assert(io >= 0 && d->node);
    Arena *a = p->arena;
    Ad ad = {.p = p, .nfwd = p->nnodes};
    ad.seq = arena_new_array(a, List, ad.nfwd + 1);
    ad.state = arena_new_array(a, List, ad.nfwd + 1);
    ad.needs = arena_new_array(a, bool, ad.nfwd + 1);
    memset(ad.seq, 0, sizeof(List) * (size_t)(ad.nfwd + 1));
    memset(ad.state, 0, sizeof(List) * (size_t)(ad.nfwd + 1));
    IrNode *last_fwd = p->last;
    ir_foreach(p, n) {
        if (n->id < 0 || n->id >= ad.nfwd) sup_bug("autodiff: node ids not renumbered");
        bool need = ir_op_has(n->op, OPF_PARAMS);
        for (int i = 0; i < n->nin; i++) need |= ad.needs[n->in[i]->id];
        ad.needs[n->id] = need;
    }
    /* the label, the loss, and its gradient (seed 1) */
    IrNode *out = d->node;
    IrNode *target = ir_node_new(p, IR_TARGET, d->loc);
    target->a.io = io;
    target->note = arena_printf(a, "the label of output '%s'", d->name);
    if (d->is_class) {
        target->shape = (IrShape){out->shape.time, 1, 1};
        target->chi = ir_chi_trivial(1);
    } else {
        target->shape = out->shape;
        target->chi = out->chi;
    }
    IrNode *loss = ir_node_new(p, IR_LOSS, p->train.loc);
    ir_add_input(loss, out);
    ir_add_input(loss, target);
    loss->a.loss = p->train.loss;
    loss->shape = (IrShape){IR_NO_TIME, 1, 1};
    loss->chi = ir_chi_trivial(1);
    if (ad.needs[out->id]) {
        IrNode *g = new_grad(&ad, IR_GRAD, loss, 0);
        ir_add_input(g, out);
        ir_add_input(g, target);
        g->shape = out->shape;
        g->chi = out->chi;
        push(a, &ad.seq[out->id], g);
    }
    for (IrNode *n = last_fwd; n; n = n->prev) backward_node(&ad, n);
    return true;
}
