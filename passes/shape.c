/* passes/shape.c: the time and feature extents of every tensor, by the op
 * semantics of docs/design.md. Every extent the user can get wrong is checked
 * here, once, at the op that goes wrong; a node whose input already failed is
 * skipped so that one mistake gives one error. */
#include <string.h>

#include "passes/passes.h"

/* "[241 x 1024]" or "[34]"; buf holds at least 48 bytes. */
static const char *fmt_shape(char *buf, size_t size, IrShape s) {
    if (s.time == IR_NO_TIME) snprintf(buf, size, "[%d]", s.feat);
    else snprintf(buf, size, "[%d x %d]", s.time, s.feat);
    return buf;
}

/* The single consumer of n, or NULL when n has none or several. */
static IrNode *single_consumer(const IrProgram *p, const IrNode *n) {
    IrNode *found = NULL;
    int uses = 0;
    for (IrNode *m = n->next; m; m = m->next)
        for (int i = 0; i < m->nin; i++)
            if (m->in[i] == n) {
                found = m;
                uses++;
            }
    return uses == 1 ? found : NULL;
}

IrDecl *pass_output_reached(const IrProgram *p, const IrNode *n) {
    const IrNode *cur = n;
    for (;;) {
        IrNode *c = single_consumer(p, cur);
        if (!c) return NULL;
        if (c->op == IR_OUTPUT) return p->outputs[c->a.io];
        if (!ir_op_has(c->op, OPF_KEEPS_TYPE)) return NULL;
        /* Only add and sub pass on a type through an operand other than the first. */
        if (c->in[0] != cur && c->op != IR_ADD && c->op != IR_SUB) return NULL;
        cur = c;
    }
}

static const char *op_name(const IrNode *n) { return ir_op_info[n->op].name; }

/* The width of a layer: written, or the output's (width 0). */
static bool layer_width(IrProgram *p, IrNode *n, int *width) {
    if (n->a.out > 0) {
        *width = n->a.out;
        return true;
    }
    const IrDecl *d = pass_output_reached(p, n);
    if (!d) {
        diag_error(p->diag, n->loc,
                   "%s has no width, and its result does not reach an output through "
                   "type-keeping ops to take one from",
                   op_name(n));
        diag_note(p->diag, n->loc, "give the width, e.g. %s(x, 256)", op_name(n));
        return false;
    }
    *width = d->feat;
    return true;
}

static bool need_time(IrProgram *p, IrNode *n) {
    const IrShape *s = &n->in[0]->shape;
    if (s->time != IR_NO_TIME) return true;
    diag_error(p->diag, n->loc, "%s needs a tensor with a time axis, but its input [%d] has none",
               op_name(n), s->feat);
    return false;
}

static bool check_output(IrProgram *p, IrNode *n) {
    const IrDecl *d = p->outputs[n->a.io];
    const IrShape *s = &n->shape;
    char buf[64];
    if (d->seq && s->time == IR_NO_TIME) {
        diag_error(p->diag, n->loc,
                   "output '%s' is declared as a sequence, the net produces %s without a time axis",
                   d->name, fmt_shape(buf, sizeof buf, *s));
        return false;
    }
    if (!d->seq && s->time != IR_NO_TIME) {
        diag_error(p->diag, n->loc,
                   "output '%s' is declared without a time axis, the net produces %s", d->name,
                   fmt_shape(buf, sizeof buf, *s));
        return false;
    }
    if (d->seq && d->frames > 0 && d->frames != s->time) {
        diag_error(p->diag, n->loc, "output '%s' is declared with %d frame%s, the net produces %d",
                   d->name, d->frames, d->frames == 1 ? "" : "s", s->time);
        return false;
    }
    if (d->feat != s->feat) {
        diag_error(p->diag, n->loc, "output '%s' is declared with %d features, the net produces %d",
                   d->name, d->feat, s->feat);
        diag_note(p->diag, d->loc, "'%s' is declared here", d->name);
        return false;
    }
    return true;
}

/* The shape of one node from its inputs'. Returns false after an error. */
static bool shape_node(IrProgram *p, IrNode *n) {
    IrShape *s = &n->shape;
    const IrShape *x = n->nin > 0 ? &n->in[0]->shape : NULL;
    char b0[64], b1[64];
    if (ir_op_has(n->op, OPF_SEQ_IN) && !need_time(p, n)) return false;
    switch (n->op) {
    case IR_INPUT: {
        const IrDecl *d = p->inputs[n->a.io];
        if (d->seq && d->frames <= 0) {
            diag_error(p->diag, d->loc, "input '%s' needs a frame count: write seq(N)", d->name);
            return false;
        }
        s->time = d->seq ? d->frames : IR_NO_TIME;
        s->feat = d->feat;
        return true;
    }
    case IR_OUTPUT:
        *s = *x;
        return check_output(p, n);
    case IR_LINEAR:
    case IR_INVARIANT:
        s->time = x->time;
        return layer_width(p, n, &s->feat);
    case IR_CONV1D: {
        const IrAttrs *a = &n->a;
        int stride = a->stride > 0 ? a->stride : 1, dil = a->dilation > 0 ? a->dilation : 1;
        long span = (long)x->time + 2L * a->padding - (long)dil * (a->kernel - 1) - 1;
        long t = span < 0 ? 0 : span / stride + 1;
        if (t <= 0) {
            char extra[64] = "";
            if (stride != 1 || a->padding != 0)
                snprintf(extra, sizeof extra, ", stride %d, padding %d", stride, a->padding);
            diag_error(p->diag, n->loc,
                       "conv1d output would have 0 frames: input has %d frames, kernel %d, "
                       "dilation %d%s",
                       x->time, a->kernel, dil, extra);
            return false;
        }
        s->time = (int)t;
        return layer_width(p, n, &s->feat);
    }
    case IR_LSTM:
    case IR_GRU:
        s->time = x->time;
        if (!layer_width(p, n, &s->feat)) return false;
        if (n->nin > 1) {
            const IrNode *e = n->in[1];
            int layers = n->a.layers > 0 ? n->a.layers : 1;
            int elayers = e->a.layers > 0 ? e->a.layers : 1;
            if (e->op != n->op) {
                diag_error(p->diag, n->loc, "the initial state of %s must come from another %s, not %s",
                           op_name(n), op_name(n), op_name(e));
                return false;
            }
            if (e->shape.feat != s->feat || elayers != layers) {
                diag_error(p->diag, n->loc,
                           "this %s (%d layer%s of width %d) cannot start from the final states of "
                           "one with %d layer%s of width %d",
                           op_name(n), layers, layers == 1 ? "" : "s", s->feat, elayers,
                           elayers == 1 ? "" : "s", e->shape.feat);
                diag_note(p->diag, e->loc, "the initial state comes from here");
                return false;
            }
        }
        return true;
    case IR_BATCHNORM:
    case IR_DROPOUT:
    case IR_ACT:
    case IR_SOFTMAX:
        *s = *x;
        return true;
    case IR_ADD:
    case IR_SUB: {
        const IrShape *y = &n->in[1]->shape;
        if (x->time != y->time || x->feat != y->feat) {
            diag_error(p->diag, n->loc, "cannot %s tensors of different shapes: %s and %s",
                       n->op == IR_ADD ? "add" : "subtract", fmt_shape(b0, sizeof b0, *x),
                       fmt_shape(b1, sizeof b1, *y));
            return false;
        }
        *s = *x;
        return true;
    }
    case IR_CONCAT:
        s->time = x->time;
        s->feat = 0;
        for (int i = 0; i < n->nin; i++) {
            const IrShape *y = &n->in[i]->shape;
            if (y->time != x->time) {
                diag_error(p->diag, n->loc,
                           "cannot concatenate tensors of different lengths: %s and %s",
                           fmt_shape(b0, sizeof b0, *x), fmt_shape(b1, sizeof b1, *y));
                return false;
            }
            s->feat += y->feat;
        }
        if (s->feat > IR_MAX_WIDTH) {
            diag_error(p->diag, n->loc, "concat gives %d features, beyond chiralc's limit of %d", s->feat, IR_MAX_WIDTH);
            return false;
        }
        return true;
    case IR_CROP:
        if (2L * n->a.crop >= x->time) {
            diag_error(p->diag, n->loc, "crop of %d frames from each end leaves none of %d",
                       n->a.crop, x->time);
            return false;
        }
        s->time = ir_crop_frames(x->time, n->a.crop, n->a.stride);
        s->feat = x->feat;
        return true;
    case IR_MEANPOOL:
    case IR_LAST:
        s->time = IR_NO_TIME;
        s->feat = x->feat;
        return true;
    case IR_REPEAT:
        if (x->time != IR_NO_TIME) {
            diag_error(p->diag, n->loc,
                       "repeat needs a tensor without a time axis, but its input %s has one",
                       fmt_shape(b0, sizeof b0, *x));
            diag_note(p->diag, n->loc, "take one frame first, e.g. repeat(last(x), n)");
            return false;
        }
        s->time = n->a.frames;
        s->feat = x->feat;
        return true;
    case IR_FLATTEN:
        s->time = IR_NO_TIME;
        if ((long)x->time * x->feat > IR_MAX_WIDTH) {
            diag_error(p->diag, n->loc, "flatten of %s gives %ld features, beyond chiralc's limit of %d",
                       fmt_shape(b0, sizeof b0, *x), (long)x->time * x->feat, IR_MAX_WIDTH);
            return false;
        }
        s->feat = x->time * x->feat;
        return true;
    case IR_TARGET: /* the training graph: autodiff sets its nodes' shapes itself */
    case IR_LOSS:
    case IR_GRAD:
    case IR_PGRAD:
        return true;
    case IR_NUM_OPS:
        break;
    }
    sup_bug("shape: unknown op %d", (int)n->op);
}

bool pass_shape(IrProgram *p) {
    ir_renumber(p);
    bool *bad = arena_new_array(p->arena, bool, p->nnodes + 1);
    bool ok = true;
    ir_foreach(p, n) {
        bool skip = false;
        for (int i = 0; i < n->nin; i++) skip |= bad[n->in[i]->id];
        if (skip || !shape_node(p, n)) {
            bad[n->id] = true;
            ok = false;
            /* Something plausible, so that later passes never read garbage. */
            if (n->shape.feat <= 0) n->shape.feat = n->nin ? n->in[0]->shape.feat : 1;
        }
        n->shape.feat_written = n->shape.feat;
    }
    return ok;
}
