/* frontend/ast.c: the syntax tree printed back as .net source, in one
 * canonical layout: sections in a fixed order (model, skeletons, lets, inputs,
 * outputs, net, train, chirality), one let per line, two-space indents, and
 * only the parentheses the precedence needs. Printing what a parse of the
 * printout gives yields the same text again, so tests can check that parsing
 * loses nothing. */
#include <stdlib.h>

#include "frontend/frontend.h"

/* Binding strength, as in parser.y: + - < * / < unary - < ^ < primary. */
enum { PREC_ADD = 1, PREC_MUL = 2, PREC_NEG = 3, PREC_POW = 4, PREC_ATOM = 5 };

static int prec(const AstExpr *e) {
    switch (e->kind) {
    case AST_BINARY:
        switch (e->u.bin.op) {
        case '+': case '-': return PREC_ADD;
        case '*': case '/': return PREC_MUL;
        default: return PREC_POW;
        }
    case AST_NEG: return PREC_NEG;
    default: return PREC_ATOM;
    }
}

/* The shortest decimal form that reads back as the same double. */
static void print_num(FILE *out, double v) {
    char buf[40];
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) { /* 80, not 8e+01 */
        fprintf(out, "%lld", (long long)v);
        return;
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, out);
}

static void print_expr(FILE *out, const AstExpr *e);

/* e as an operand that must bind at least as tightly as `min`. */
static void print_operand(FILE *out, const AstExpr *e, int min) {
    bool paren = prec(e) < min;
    if (paren) fputc('(', out);
    print_expr(out, e);
    if (paren) fputc(')', out);
}

static void print_expr(FILE *out, const AstExpr *e) {
    switch (e->kind) {
    case AST_NUM:
        print_num(out, e->u.num);
        break;
    case AST_IDENT:
        fputs(e->u.ident, out);
        break;
    case AST_CALL:
        fprintf(out, "%s(", e->u.call.fn);
        for (const AstArg *a = e->u.call.args; a; a = a->next) {
            if (a->key) fprintf(out, "%s=", a->key);
            print_expr(out, a->value);
            if (a->next) fputs(", ", out);
        }
        fputc(')', out);
        break;
    case AST_BINARY: {
        int p = prec(e);
        /* + - * / group to the left: a right operand of the same strength
         * needs parentheses, a - (b - c). ^ groups to the right: (a^b)^c,
         * and a negative base needs them too, (-a)^b, since -a^b = -(a^b). */
        bool pow = e->u.bin.op == '^';
        print_operand(out, e->u.bin.lhs, pow ? PREC_POW + 1 : p);
        if (pow)
            fputc('^', out);
        else
            fprintf(out, " %c ", e->u.bin.op);
        print_operand(out, e->u.bin.rhs, pow ? PREC_NEG : p + 1);
        break;
    }
    case AST_NEG:
        fputc('-', out);
        /* --a would read back the same, -(-a) is easier to read. */
        print_operand(out, e->u.neg, PREC_POW);
        break;
    case AST_TUPLE:
        fputc('(', out);
        for (const AstExpr *i = e->u.tuple.items; i; i = i->tuple_next) {
            print_expr(out, i);
            if (i->tuple_next) fputs(", ", out);
        }
        fputc(')', out);
        break;
    }
}

static void print_type(FILE *out, const AstType *t) {
    if (t->seq) {
        fputs("seq", out);
        if (t->frames) {
            fputc('(', out);
            print_expr(out, t->frames);
            fputc(')', out);
        }
        fputc(' ', out);
    }
    switch (t->kind) {
    case AST_TYPE_SKELETON:
        fprintf(out, "%s (", t->skeleton.name);
        for (const AstCoord *c = t->coords; c; c = c->next)
            fprintf(out, "%s%s%s", c->name, c->negated ? "!" : "", c->next ? ", " : "");
        fputc(')', out);
        break;
    case AST_TYPE_CLASS:
    case AST_TYPE_FEATURES:
        fputs(t->kind == AST_TYPE_CLASS ? "class(" : "features(", out);
        print_expr(out, t->width);
        fputc(')', out);
        break;
    }
    if (t->invariant) fputs(" invariant", out);
}

static void print_stmts(FILE *out, const AstStmt *s, int indent) {
    for (; s; s = s->next) {
        fprintf(out, "%*s", indent, "");
        if (s->kind == AST_ASSIGN) {
            fprintf(out, "%s = ", s->u.assign.name);
            print_expr(out, s->u.assign.value);
            fputc('\n', out);
        } else {
            fprintf(out, "for %s in ", s->u.loop.var);
            print_expr(out, s->u.loop.lo);
            fputs("..", out);
            print_expr(out, s->u.loop.hi);
            fputs(" {\n", out);
            print_stmts(out, s->u.loop.body, indent + 2);
            fprintf(out, "%*s}\n", indent, "");
        }
    }
}

static void print_settings(FILE *out, const char *block, const AstSetting *s) {
    fprintf(out, "%s {\n", block);
    for (; s; s = s->next) {
        fprintf(out, "  %s ", s->key.name);
        print_expr(out, s->value);
        fputc('\n', out);
    }
    fputs("}\n", out);
}

void ast_print(FILE *out, const AstProgram *p) {
    /* Sections are separated by one blank line; SECTION() prints it before every
     * section but the first. */
    bool first = true;
#define SECTION() (first ? (void)(first = false) : (void)fputc('\n', out))
    if (p->model.name) {
        SECTION();
        fprintf(out, "model %s\n", p->model.name);
    }
    for (const AstSkeleton *s = p->skeletons; s; s = s->next) {
        SECTION();
        fprintf(out, "skeleton %s {\n  joints", s->name.name);
        for (const AstName *j = s->joints; j; j = j->next) fprintf(out, " %s", j->name);
        fputc('\n', out);
        if (s->mirrors) {
            fputs("  mirror", out);
            for (const AstMirror *m = s->mirrors; m; m = m->next)
                fprintf(out, " %s:%s", m->a.name, m->b.name);
            fputc('\n', out);
        }
        fputs("}\n", out);
    }
    if (p->lets) {
        SECTION();
        for (const AstLet *l = p->lets; l; l = l->next) {
            fprintf(out, "let %s = ", l->name.name);
            print_expr(out, l->value);
            fputc('\n', out);
        }
    }
    if (p->inputs || p->outputs) {
        SECTION();
        for (const AstIo *io = p->inputs; io; io = io->next) {
            fprintf(out, "input %s : ", io->name.name);
            print_type(out, &io->type);
            fputc('\n', out);
        }
        for (const AstIo *io = p->outputs; io; io = io->next) {
            fprintf(out, "output %s : ", io->name.name);
            print_type(out, &io->type);
            fputc('\n', out);
        }
    }
    if (p->has_net) {
        SECTION();
        fputs("net {\n", out);
        print_stmts(out, p->net, 2);
        fputs("}\n", out);
    }
    if (p->has_train) {
        SECTION();
        print_settings(out, "train", p->train);
    }
    if (p->has_chirality) {
        SECTION();
        print_settings(out, "chirality", p->chirality);
    }
#undef SECTION
}
