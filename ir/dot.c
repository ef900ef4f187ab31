/* ir/dot.c: the program as a Graphviz digraph (`chiralc inspect --dot`).
 * One box per node, labelled with the op, its shape and its type; edges run
 * from an input to its user. Node names are the stable ids, not pointers. */
#include "ir/ir.h"

/* Label text goes inside a double-quoted DOT string. */
static void put_escaped(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if (*s == '\n') fputs("\\n", out);
        else fputc(*s, out);
    }
}

void ir_write_dot(FILE *out, const IrProgram *p) {
    fputs("digraph \"", out);
    put_escaped(out, p->model ? p->model : "model");
    fputs("\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n", out);
    ir_foreach(p, n) {
        fprintf(out, "  n%d [label=\"%%%d ", n->id, n->id);
        if (n->name) {
            put_escaped(out, n->name);
            fputs(" = ", out);
        }
        if (n->op == IR_ACT) fputs(ir_act_name[n->a.act], out);
        else fputs(ir_op_info[n->op].name, out);
        if (n->op == IR_ACT && n->a.act_neg != n->a.act) fprintf(out, "/%s", ir_act_name[n->a.act_neg]);
        if ((n->op == IR_GRAD || n->op == IR_PGRAD) && n->a.fwd)
            fprintf(out, " %%%d(%s)", n->a.fwd->id, ir_op_info[n->a.fwd->op].name);
        if (n->op == IR_GRAD) fprintf(out, " wrt %d", n->a.wrt);
        if (n->shape.feat > 0) {
            if (n->shape.time == IR_NO_TIME) fprintf(out, "\\n[- x %d]", n->shape.feat);
            else fprintf(out, "\\n[%d x %d]", n->shape.time, n->shape.feat);
        }
        if (n->chi.desc || n->chi.n > 0) {
            fputs("\\n", out);
            put_escaped(out, n->chi.desc ? n->chi.desc : "?");
            if (n->chi.partner) {
                IrChiStats s = ir_chi_stats(&n->chi);
                fprintf(out, "\\npairs %d/%dn, centre %dp+%dn", s.pairs, s.pairs_n, s.centre_p, s.centre_n);
            }
        }
        fputc('"', out);
        if (n->op == IR_INPUT || n->op == IR_OUTPUT) fputs(", shape=ellipse", out);
        else if (n->op == IR_INVARIANT) fputs(", style=filled, fillcolor=lightgrey", out);
        else if (ir_op_has(n->op, OPF_TRAIN)) fputs(", style=dashed", out);
        fputs("];\n", out);
    }
    ir_foreach(p, n) {
        for (int i = 0; i < n->nin; i++) {
            fprintf(out, "  n%d -> n%d", n->in[i]->id, n->id);
            if (i == 1 && (n->op == IR_LSTM || n->op == IR_GRU)) fputs(" [style=dashed, label=\"init\"]", out);
            fputs(";\n", out);
        }
    }
    fputs("}\n", out);
}
