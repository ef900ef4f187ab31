/* ir/verify.c: the invariants every pass must keep.
 *
 * Runs between passes (pipeline.c). A broken invariant is the compiler's
 * fault, never the user's: it is reported as an internal error naming the
 * pass that ran last, so a bug shows up where it was made rather than as a
 * wrong number three passes later. */
#include <stdarg.h>
#include <string.h>

#include "ir/ir.h"

static const char *g_pass; /* for the message; the verifier is not reentrant anyway */

__attribute__((format(printf, 2, 3))) _Noreturn static void fail(const IrNode *n, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) sup_bug("IR verifier after pass '%s': %%%d (%s): %s", g_pass, n->id, ir_op_info[n->op].name, msg);
    sup_bug("IR verifier after pass '%s': %s", g_pass, msg);
}

static void verify_structure(const IrProgram *p, const IrNode **order) {
    int count = 0;
    const IrNode *prev = NULL;
    if (p->first && p->first->prev) fail(p->first, "the first node has a predecessor");
    ir_foreach(p, n) {
        if (n->prev != prev) fail(n, "prev does not point at the node before it");
        if (count >= p->nnodes) fail(n, "the list is longer than nnodes = %d", p->nnodes);
        if (n->id != count) fail(n, "id %d at position %d: ids must be 0.. in program order", n->id, count);
        order[count++] = n;
        prev = n;
    }
    if (p->last != prev) fail(NULL, "last does not point at the last node");
    if (count != p->nnodes) fail(NULL, "nnodes is %d but the list has %d nodes", p->nnodes, count);
}

/* ---- the training graph's ops (passes/autodiff.c) ---- */

static bool grad_of_state(const IrNode *n) {
    const IrNode *f = n->a.fwd;
    return n->op == IR_GRAD && (f->op == IR_LSTM || f->op == IR_GRU) && n->a.wrt == 1;
}

static void verify_train_built(const IrProgram *p, const IrNode *n, const IrNode **order) {
    const IrNode *f = n->a.fwd;
    switch (n->op) {
    case IR_TARGET:
        if (n->a.io < 0 || n->a.io >= p->noutputs) fail(n, "the target of output %d", n->a.io);
        break;
    case IR_LOSS:
        if (n->a.loss == IR_LOSS_NONE) fail(n, "no loss function");
        if (n->in[1]->op != IR_TARGET) fail(n, "its second operand is a %s, not a target", ir_op_info[n->in[1]->op].name);
        break;
    case IR_GRAD:
    case IR_PGRAD:
        if (!f || f->id < 0 || f->id >= n->id || order[f->id] != f) fail(n, "of= is not a node defined before it");
        if (ir_op_has(f->op, OPF_TRAIN) && f->op != IR_LOSS) fail(n, "the gradient of a %s", ir_op_info[f->op].name);
        if (n->op == IR_PGRAD && !ir_op_has(f->op, OPF_PARAMS)) fail(n, "of=%%%d has no parameters", f->id);
        if (n->op == IR_GRAD && (n->a.wrt < 0 || n->a.wrt >= f->nin))
            fail(n, "wrt=%d, but %%%d has %d inputs", n->a.wrt, f->id, f->nin);
        if (f->op == IR_LOSS && (n->nin != 2 || n->in[0] != f->in[0] || n->in[1] != f->in[1]))
            fail(n, "the gradient of a loss reads its prediction and target");
        break;
    default:
        break;
    }
}

static void verify_train_shape(const IrProgram *p, const IrNode *n) {
    const IrShape *s = &n->shape;
    const IrNode *f = n->a.fwd;
    switch (n->op) {
    case IR_TARGET: {
        const IrDecl *d = p->outputs[n->a.io];
        if (s->time != d->node->shape.time || s->feat != (d->is_class ? 1 : d->feat))
            fail(n, "[%d x %d] is not the label of output '%s'", s->time, s->feat, d->name);
        break;
    }
    case IR_LOSS:
        if (s->time != IR_NO_TIME || s->feat != 1) fail(n, "a loss is one number");
        if (n->in[0]->shape.time != n->in[1]->shape.time) fail(n, "prediction and target differ in frames");
        break;
    case IR_GRAD:
        if (grad_of_state(n)) {
            const IrNode *x = f->in[1];
            int w = (x->a.layers > 0 ? x->a.layers : 1) * x->shape.feat * (x->op == IR_LSTM ? 2 : 1);
            if (s->time != IR_NO_TIME || s->feat != w) fail(n, "not the shape of %%%d's final states", x->id);
        } else if (s->time != f->in[n->a.wrt]->shape.time || s->feat != f->in[n->a.wrt]->shape.feat) {
            fail(n, "[%d x %d], but the tensor it is the gradient of has [%d x %d]", s->time, s->feat,
                 f->in[n->a.wrt]->shape.time, f->in[n->a.wrt]->shape.feat);
        }
        break;
    case IR_PGRAD:
        if (s->time != IR_NO_TIME || s->feat != 0) fail(n, "a parameter gradient is not a tensor: [- x 0]");
        break;
    default:
        break;
    }
}

static void verify_built(const IrProgram *p, const IrNode **order) {
    ir_foreach(p, n) {
        if ((unsigned)n->op >= IR_NUM_OPS) fail(NULL, "node at position %d has op %d", n->id, (int)n->op);
        const IrOpInfo *info = &ir_op_info[n->op];
        if (n->nin < info->min_in || n->nin > info->max_in)
            fail(n, "%d inputs, expected %d to %d", n->nin, info->min_in, info->max_in);
        for (int i = 0; i < n->nin; i++) {
            const IrNode *in = n->in[i];
            if (!in) fail(n, "input %d is NULL", i);
            if (in->id < 0 || in->id >= n->id || order[in->id] != in)
                fail(n, "input %d (%%%d) is not a node defined before it", i, in->id);
        }
        switch (n->op) {
        case IR_INPUT:
            if (n->a.io < 0 || n->a.io >= p->ninputs || p->inputs[n->a.io]->node != n)
                fail(n, "not the node of input %d", n->a.io);
            break;
        case IR_OUTPUT:
            if (n->a.io < 0 || n->a.io >= p->noutputs || p->outputs[n->a.io]->node != n)
                fail(n, "not the node of output %d", n->a.io);
            break;
        case IR_LSTM:
        case IR_GRU:
            if (n->nin == 2 && n->in[1]->op != n->op) fail(n, "init= is a %s", ir_op_info[n->in[1]->op].name);
            break;
        case IR_TARGET:
        case IR_LOSS:
        case IR_GRAD:
        case IR_PGRAD:
            verify_train_built(p, n, order);
            break;
        case IR_ACT:
            if ((unsigned)n->a.act >= IR_NUM_ACTS || (unsigned)n->a.act_neg >= IR_NUM_ACTS ||
                (unsigned)n->a.act_written >= IR_NUM_ACTS)
                fail(n, "bad activation function");
            break;
        default:
            break;
        }
    }
    for (int i = 0; i < p->ninputs; i++)
        if (!p->inputs[i]->node || p->inputs[i]->node->op != IR_INPUT)
            fail(NULL, "input '%s' has no INPUT node", p->inputs[i]->name);
    for (int i = 0; i < p->noutputs; i++)
        if (!p->outputs[i]->node || p->outputs[i]->node->op != IR_OUTPUT)
            fail(NULL, "output '%s' has no OUTPUT node", p->outputs[i]->name);
}

static void same_time(const IrNode *n, const IrNode *in) {
    if (n->shape.time != in->shape.time) fail(n, "time %d, but its input %%%d has %d", n->shape.time, in->id, in->shape.time);
}
static void same_feat(const IrNode *n, const IrNode *in) {
    if (n->shape.feat != in->shape.feat) fail(n, "width %d, but its input %%%d has %d", n->shape.feat, in->id, in->shape.feat);
}

static void verify_decl_shape(const IrNode *n, const IrDecl *d) {
    if (n->shape.feat != d->feat) fail(n, "width %d, but '%s' is declared with %d", n->shape.feat, d->name, d->feat);
    if (d->seq != (n->shape.time != IR_NO_TIME)) fail(n, "time axis does not match the declaration of '%s'", d->name);
    if (d->seq && d->frames && n->shape.time != d->frames)
        fail(n, "%d frames, but '%s' is declared with %d", n->shape.time, d->name, d->frames);
}

static void verify_shapes(const IrProgram *p) {
    ir_foreach(p, n) {
        const IrShape *s = &n->shape;
        if (s->feat <= 0 && n->op != IR_PGRAD) fail(n, "width %d", s->feat);
        if (s->time != IR_NO_TIME && s->time <= 0) fail(n, "time %d", s->time);
        const IrNode *x = n->nin ? n->in[0] : NULL;
        if (x && ir_op_has(n->op, OPF_SEQ_IN) && x->shape.time == IR_NO_TIME)
            fail(n, "its input %%%d has no time axis", x->id);
        switch (n->op) {
        case IR_INPUT: verify_decl_shape(n, p->inputs[n->a.io]); break;
        case IR_OUTPUT:
            verify_decl_shape(n, p->outputs[n->a.io]);
            same_time(n, x);
            same_feat(n, x);
            break;
        case IR_CONV1D: {
            const IrAttrs *a = &n->a;
            int t = (x->shape.time + 2 * a->padding - a->dilation * (a->kernel - 1) - 1) / a->stride + 1;
            if (s->time != t) fail(n, "time %d, but the convolution of %d frames gives %d", s->time, x->shape.time, t);
            break;
        }
        case IR_LINEAR:
        case IR_INVARIANT:
        case IR_LSTM:
        case IR_GRU:
            same_time(n, x);
            if (n->nin == 2) same_feat(n, n->in[1]);
            break;
        case IR_BATCHNORM:
        case IR_DROPOUT:
        case IR_ACT:
        case IR_SOFTMAX:
            same_time(n, x);
            same_feat(n, x);
            break;
        case IR_ADD:
        case IR_SUB:
            if (n->in[0]->shape.time != n->in[1]->shape.time || n->in[0]->shape.feat != n->in[1]->shape.feat)
                fail(n, "operands of different shapes");
            same_time(n, x);
            same_feat(n, x);
            break;
        case IR_CONCAT: {
            int f = 0;
            for (int i = 0; i < n->nin; i++) {
                same_time(n, n->in[i]);
                f += n->in[i]->shape.feat;
            }
            if (f != s->feat) fail(n, "width %d, but its inputs add up to %d", s->feat, f);
            break;
        }
        case IR_CROP:
            same_feat(n, x);
            if (s->time != ir_crop_frames(x->shape.time, n->a.crop, n->a.stride))
                fail(n, "time %d, but cropping %d frames from each end of %d with stride %d leaves %d", s->time,
                     n->a.crop, x->shape.time, n->a.stride, ir_crop_frames(x->shape.time, n->a.crop, n->a.stride));
            break;
        case IR_MEANPOOL:
        case IR_LAST:
            same_feat(n, x);
            if (s->time != IR_NO_TIME) fail(n, "the result must have no time axis");
            break;
        case IR_REPEAT:
            same_feat(n, x);
            if (x->shape.time != IR_NO_TIME) fail(n, "its input has a time axis");
            if (s->time != n->a.frames) fail(n, "time %d, but repeats %d frames", s->time, n->a.frames);
            break;
        case IR_TARGET:
        case IR_LOSS:
        case IR_GRAD:
        case IR_PGRAD:
            verify_train_shape(p, n);
            break;
        case IR_FLATTEN:
            if (s->time != IR_NO_TIME || s->feat != x->shape.time * x->shape.feat)
                fail(n, "[%d x %d] is not the flattening of [%d x %d]", s->time, s->feat, x->shape.time,
                     x->shape.feat);
            break;
        default:
            break;
        }
    }
}

static void verify_types(const IrProgram *p) {
    ir_foreach(p, n) {
        const IrChi *c = &n->chi;
        if (c->n != n->shape.feat) fail(n, "type of %d features on a width of %d", c->n, n->shape.feat);
        const char *why = NULL;
        if (!ir_chi_valid(c, &why)) fail(n, "invalid type: %s", why ? why : "?");
        if (p->cfg.baseline && c->partner) fail(n, "a non-trivial type in the baseline network");
        if (ir_op_has(n->op, OPF_KEEPS_TYPE) && n->op != IR_OUTPUT && !ir_chi_equal(c, &n->in[0]->chi))
            fail(n, "its type differs from its input's, but %s keeps the type", ir_op_info[n->op].name);
        switch (n->op) {
        case IR_ADD:
        case IR_SUB:
            if (!ir_chi_equal(&n->in[0]->chi, &n->in[1]->chi)) fail(n, "operands of different types");
            break;
        case IR_INVARIANT:
            if (!ir_chi_is_trivial(c)) fail(n, "the result of an invariance layer is not trivial");
            break;
        case IR_GRAD: /* a gradient transforms like its tensor (T is orthogonal) */
            if (!grad_of_state(n) && !ir_chi_equal(c, &n->a.fwd->in[n->a.wrt]->chi))
                fail(n, "its type differs from the type of the tensor it is the gradient of");
            break;
        case IR_INPUT:
        case IR_OUTPUT: {
            const IrDecl *d = n->op == IR_INPUT ? p->inputs[n->a.io] : p->outputs[n->a.io];
            /* The baseline network is the written one: every type trivial. */
            if (!p->cfg.baseline && !ir_chi_equal(c, &d->chi))
                fail(n, "its type is not the declared type of '%s'", d->name);
            /* Until invariance insertion, a trivial output may still be fed a
             * chiral tensor; that is the invariance pass's to fix. */
            if (n->op == IR_OUTPUT && !(ir_chi_is_trivial(c) && !ir_chi_is_trivial(&n->in[0]->chi)) &&
                !ir_chi_equal(c, &n->in[0]->chi))
                fail(n, "its type differs from the tensor assigned to it");
            break;
        }
        case IR_CONCAT: {
            int f = 0;
            for (int i = 0; i < n->nin; i++) f += n->in[i]->chi.n;
            if (f != c->n) fail(n, "type of %d features, but its inputs' add up to %d", c->n, f);
            break;
        }
        default:
            break;
        }
    }
}

void ir_verify(const IrProgram *p, IrStage stage, const char *after_pass) {
    g_pass = after_pass ? after_pass : "?";
    sup_assert(p != NULL);
    if (p->nnodes < 0) fail(NULL, "nnodes is %d", p->nnodes);
    const IrNode **order = sup_malloc(sizeof *order * (size_t)(p->nnodes + 1));
    verify_structure(p, order);
    verify_built(p, order);
    sup_free(order);
    if (stage >= IR_STAGE_SHAPED) verify_shapes(p);
    if (stage >= IR_STAGE_TYPED) verify_types(p);
}
