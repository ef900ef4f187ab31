/* ir/print.c: the stable text form of a program.
 *
 * Golden tests diff it, so it shows only what is deterministic: ids, names,
 * attributes, shapes, types and notes; never a pointer. One line per node:
 *
 *   %3 h = conv1d %2 out=1024 k=3 d=3 nobias : [241 x 1020 (1024)] chi=joints h36m 17x60 neg 20 {pairs 360/120n, centre 200p+100n}  # note
 *
 * The part after ':' appears once the shape pass ran (shape), the chi= part
 * once the chirality pass ran, counts once the counting pass ran. */
#include "ir/ir.h"

static void print_stats(FILE *out, const IrChi *c) {
    if (!c->partner) return; /* trivial: nothing to count */
    IrChiStats s = ir_chi_stats(c);
    fprintf(out, " {pairs %d/%dn, centre %dp+%dn}", s.pairs, s.pairs_n, s.centre_p, s.centre_n);
}

static void print_chi(FILE *out, const IrChi *c) {
    fprintf(out, "chi=%s", c->desc ? c->desc : (c->partner ? "?" : "trivial"));
    print_stats(out, c);
}

static void print_type(FILE *out, const IrDecl *d) {
    if (d->seq) {
        fputs("seq", out);
        if (d->frames) fprintf(out, "(%d)", d->frames);
        fputc(' ', out);
    }
    if (d->skeleton) {
        fprintf(out, "%s (", d->skeleton->name);
        for (int k = 0; k < d->ncoords; k++)
            fprintf(out, "%s%s%s", k ? ", " : "", d->coords[k], d->coord_negated[k] ? "!" : "");
        fputc(')', out);
    } else {
        fprintf(out, "%s(%d)", d->is_class ? "class" : "features", d->feat);
    }
    if (d->invariant) fputs(" invariant", out);
}

static void print_decl(FILE *out, const char *kind, const IrDecl *d) {
    fprintf(out, "%-6s %s : ", kind, d->name);
    print_type(out, d);
    fprintf(out, " = %d features, ", d->feat);
    print_chi(out, &d->chi);
    fputc('\n', out);
}

static void print_header(FILE *out, const IrProgram *p) {
    fprintf(out, "model %s\n", p->model ? p->model : "?");
    for (int i = 0; i < p->nskeletons; i++) {
        const IrSkeleton *s = p->skeletons[i];
        fprintf(out, "skeleton %s: %d joints\n  joints", s->name, s->njoints);
        for (int j = 0; j < s->njoints; j++) fprintf(out, " %s", s->joints[j]);
        fputs("\n  mirror", out);
        int npairs = 0;
        for (int j = 0; j < s->njoints; j++)
            if (s->partner[j] > j) {
                fprintf(out, " %s:%s", s->joints[j], s->joints[s->partner[j]]);
                npairs++;
            }
        if (npairs == 0) fputs(" (none)", out);
        fputc('\n', out);
    }
    for (int i = 0; i < p->ninputs; i++) print_decl(out, "input", p->inputs[i]);
    for (int i = 0; i < p->noutputs; i++) print_decl(out, "output", p->outputs[i]);
    const IrChirality *c = &p->cfg;
    fprintf(out, "chirality: layout %s, neg_ratio %g, activations %s, sharing %s%s\n",
            c->layout == IR_LAYOUT_JOINTS ? "joints" : "pairs", c->neg_ratio,
            c->activations == IR_ACTS_PAPER ? "paper" : "mixed",
            c->sharing == IR_SHARING_FULL ? "full" : "paper", c->baseline ? ", baseline" : "");
    const IrTrain *t = &p->train;
    static const char *const losses[] = {"none", "mse", "l1", "mpjpe", "cross_entropy"};
    fprintf(out, "train: loss %s", losses[t->loss]);
    if (t->loss_output) fprintf(out, "(%s)", t->loss_output->name);
    if (t->optimizer == IR_OPTIM_ADAM)
        fprintf(out, ", optimizer adam(lr=%g, betas=(%g, %g)", t->lr, t->beta1, t->beta2);
    else
        fprintf(out, ", optimizer sgd(lr=%g, momentum=%g", t->lr, t->momentum);
    fprintf(out, ", decay=%g, weight_decay=%g), batch %d, epochs %d", t->decay, t->weight_decay, t->batch,
            t->epochs);
    if (t->clip > 0) fprintf(out, ", clip %g", t->clip);
    if (t->mirror > 0) fprintf(out, ", augment mirror(%g)", t->mirror);
    fputc('\n', out);
}

static void print_attrs(FILE *out, const IrNode *n) {
    const IrAttrs *a = &n->a;
    switch (n->op) {
    case IR_LINEAR:
    case IR_CONV1D:
    case IR_INVARIANT:
        if (a->out) fprintf(out, " out=%d", a->out);
        else fputs(" out=from-output", out);
        if (n->op == IR_CONV1D) {
            fprintf(out, " k=%d", a->kernel);
            if (a->dilation != 1) fprintf(out, " d=%d", a->dilation);
            if (a->stride != 1) fprintf(out, " s=%d", a->stride);
            if (a->padding != 0) fprintf(out, " pad=%d", a->padding);
        }
        if (!a->bias) fputs(" nobias", out);
        if (a->unconstrained) fputs(" unconstrained", out);
        break;
    case IR_BATCHNORM:
        fprintf(out, " eps=%g momentum=%g", a->eps, a->momentum);
        break;
    case IR_DROPOUT:
        fprintf(out, " p=%g", a->p);
        break;
    case IR_ACT:
        fprintf(out, " fn=%s", ir_act_name[a->act]);
        if (a->act_neg != a->act) fprintf(out, " neg=%s", ir_act_name[a->act_neg]);
        if (a->act_written != a->act || a->act_written != a->act_neg)
            fprintf(out, " written=%s", ir_act_name[a->act_written]);
        if (a->act == IR_ACT_LEAKY_RELU || a->act_neg == IR_ACT_LEAKY_RELU) fprintf(out, " slope=%g", a->slope);
        if (a->force) fputs(" force", out);
        break;
    case IR_CROP:
        fprintf(out, " n=%d", a->crop);
        if (a->stride > 1) fprintf(out, " stride=%d", a->stride);
        break;
    case IR_REPEAT:
        fprintf(out, " n=%d", a->frames);
        break;
    case IR_LSTM:
    case IR_GRU:
        fprintf(out, " hidden=%d layers=%d", a->out, a->layers);
        if (a->p > 0) fprintf(out, " dropout=%g", a->p);
        break;
    case IR_TARGET:
        fprintf(out, " io=%d", a->io);
        break;
    case IR_LOSS: {
        static const char *const losses[] = {"none", "mse", "l1", "mpjpe", "cross_entropy"};
        fprintf(out, " fn=%s", losses[a->loss]);
        break;
    }
    case IR_GRAD:
    case IR_PGRAD:
        if (n->op == IR_GRAD) fprintf(out, " wrt=%d", a->wrt);
        if (a->fwd) fprintf(out, " of=%%%d(%s)", a->fwd->id, ir_op_info[a->fwd->op].name);
        break;
    default:
        break;
    }
}

void ir_print_node(FILE *out, const IrNode *n) {
    fprintf(out, "%%%d", n->id);
    if (n->name) fprintf(out, " %s", n->name);
    fprintf(out, " = %s", ir_op_info[n->op].name);
    for (int i = 0; i < n->nin; i++) {
        bool init = i == 1 && (n->op == IR_LSTM || n->op == IR_GRU);
        fprintf(out, "%s%s%%%d", i ? "," : "", init ? " init=" : " ", n->in[i]->id);
    }
    print_attrs(out, n);
    if (n->shape.feat > 0) {
        fputs(" : [", out);
        if (n->shape.time == IR_NO_TIME) fputc('-', out);
        else fprintf(out, "%d", n->shape.time);
        fprintf(out, " x %d", n->shape.feat);
        if (n->shape.feat_written && n->shape.feat_written != n->shape.feat)
            fprintf(out, " (%d)", n->shape.feat_written);
        fputc(']', out);
    }
    if (n->chi.n > 0 || n->chi.desc) {
        fputc(' ', out);
        print_chi(out, &n->chi);
    }
    const IrCount *c = n->count;
    if (c[IR_WRITTEN].params || c[IR_WRITTEN].macs || c[IR_FOLDED].params || c[IR_FOLDED].macs)
        fprintf(out, " params=%lld/%lld/%lld macs=%lld/%lld/%lld", c[IR_WRITTEN].params, c[IR_PAPER].params,
                c[IR_FOLDED].params, c[IR_WRITTEN].macs, c[IR_PAPER].macs, c[IR_FOLDED].macs);
    if (n->note) fprintf(out, "  # %s", n->note);
    fputc('\n', out);
}

void ir_print(FILE *out, const IrProgram *p) {
    print_header(out, p);
    fputc('\n', out);
    ir_foreach(p, n) ir_print_node(out, n);
}
