/* ir/elab.c: from the syntax tree to the graph.
 *
 * Elaboration is where the program's meaning is fixed: lets become numbers,
 * loops are unrolled, names resolve to tensors or constants, calls become
 * nodes with checked attributes, and the skeleton, declaration, train and
 * chirality settings are checked. Every error is reported and elaboration
 * goes on where it can, so that one run shows as many mistakes as possible;
 * a value that failed is V_ERR and is never reported a second time. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "ir/ir.h"

typedef enum ValKind { V_ERR, V_NUM, V_TENSOR } ValKind;
typedef struct Value {
    ValKind kind;
    double num;
    IrNode *node;
} Value;

static const Value v_err = {V_ERR, 0, NULL};

/* What a name was bound by: decides what may be assigned to it. */
typedef enum BindRole { B_DEAD, B_LET, B_INPUT, B_LOOPVAR, B_NET } BindRole;
typedef struct Bind {
    const char *name;
    BindRole role;
    Value v;
    SrcLoc loc;
    struct Bind *next;
} Bind;

typedef struct Elab {
    Arena *a;
    Diag *d;
    IrProgram *p;
    const AstProgram *ast;
    IrOverride *ov;
    int nov;
    Bind *env;
    SrcLoc *out_assigned;
    /* Declarations that failed their checks: their names read as V_ERR in the
     * net, so that one mistake is not reported again at every use. */
    const char **failed;
    int nfailed; /* per output: where it was assigned (file == NULL: not yet) */
} Elab;

/* Loops are unrolled: this bounds the graph a typo like 1..1e9 would build. */
#define ELAB_MAX_ITERATIONS 10000

/* ---- names ------------------------------------------------------------------ */

static Bind *lookup(Elab *e, const char *name) {
    for (Bind *b = e->env; b; b = b->next)
        if (b->role != B_DEAD && strcmp(b->name, name) == 0) return b;
    return NULL;
}

static Bind *bind(Elab *e, const char *name, BindRole role, Value v, SrcLoc loc) {
    Bind *b = arena_alloc(e->a, sizeof *b);
    b->name = name;
    b->role = role;
    b->v = v;
    b->loc = loc;
    b->next = e->env;
    e->env = b;
    return b;
}

static int find_output(const IrProgram *p, const char *name) {
    for (int i = 0; i < p->noutputs; i++)
        if (strcmp(p->outputs[i]->name, name) == 0) return i;
    return -1;
}

static const IrSkeleton *find_skeleton(const IrProgram *p, const char *name) {
    for (int i = 0; i < p->nskeletons; i++)
        if (strcmp(p->skeletons[i]->name, name) == 0) return p->skeletons[i];
    return NULL;
}

/* ---- constants -------------------------------------------------------------- */

static bool is_ident(const AstExpr *x, const char *name) {
    return x->kind == AST_IDENT && strcmp(x->u.ident, name) == 0;
}

/* An integral value in int range, else an error at loc. */
static bool to_int(Elab *e, double v, SrcLoc loc, int *out) {
    if (!isfinite(v) || v != floor(v)) {
        diag_error(e->d, loc, "expected an integer, got %g", v);
        return false;
    }
    if (v > INT_MAX || v < INT_MIN) {
        diag_error(e->d, loc, "integer %g is too large", v);
        return false;
    }
    *out = (int)v;
    return true;
}

/* ---- expressions ------------------------------------------------------------ */

static Value eval(Elab *e, const AstExpr *x, bool in_net);

static Value num(double v) {
    Value r = {V_NUM, v, NULL};
    return r;
}
static Value tensor(IrNode *n) {
    Value r = {V_TENSOR, 0, n};
    return r;
}

/* A node with the language's defaults for every attribute (docs/design.md),
 * which the call's options then override. */
static IrNode *new_node(Elab *e, IrOp op, SrcLoc loc) {
    IrNode *n = ir_node_new(e->p, op, loc);
    n->a.bias = true;
    n->a.dilation = 1;
    n->a.stride = 1;
    n->a.eps = 1e-5;
    n->a.momentum = 0.1;
    n->a.slope = 0.01;
    n->a.layers = 1;
    return n;
}

static Value eval_binary(Elab *e, const AstExpr *x, bool in_net) {
    Value l = eval(e, x->u.bin.lhs, in_net);
    Value r = eval(e, x->u.bin.rhs, in_net);
    if (l.kind == V_ERR || r.kind == V_ERR) return v_err;
    char op = x->u.bin.op;
    if (l.kind == V_TENSOR || r.kind == V_TENSOR) {
        if (op != '+' && op != '-') {
            diag_error(e->d, x->loc, "'%c' needs two constants; only '+' and '-' apply to tensors", op);
            return v_err;
        }
        if (l.kind != r.kind) {
            diag_error(e->d, x->loc, "cannot %s a tensor and a constant",
                       op == '+' ? "add" : "subtract");
            return v_err;
        }
        IrNode *n = new_node(e, op == '+' ? IR_ADD : IR_SUB, x->loc);
        ir_add_input(n, l.node);
        ir_add_input(n, r.node);
        return tensor(n);
    }
    double v;
    switch (op) {
    case '+': v = l.num + r.num; break;
    case '-': v = l.num - r.num; break;
    case '*': v = l.num * r.num; break;
    case '/':
        if (r.num == 0) {
            diag_error(e->d, x->loc, "division by zero");
            return v_err;
        }
        v = l.num / r.num;
        break;
    case '^': v = pow(l.num, r.num); break;
    default: sup_bug("unknown binary operator '%c'", op);
    }
    if (!isfinite(v)) {
        diag_error(e->d, x->loc, "the result is not a finite number");
        return v_err;
    }
    return num(v);
}

static Value eval_call(Elab *e, const AstExpr *x);

static Value eval(Elab *e, const AstExpr *x, bool in_net) {
    switch (x->kind) {
    case AST_NUM: return num(x->u.num);
    case AST_IDENT: {
        Bind *b = lookup(e, x->u.ident);
        if (!b) {
            diag_error(e->d, x->loc, "unknown name '%s'", x->u.ident);
            return v_err;
        }
        return b->v;
    }
    case AST_BINARY: return eval_binary(e, x, in_net);
    case AST_NEG: {
        Value v = eval(e, x->u.neg, in_net);
        if (v.kind == V_TENSOR) {
            diag_error(e->d, x->loc, "cannot negate a tensor; write 0 - x as a layer instead");
            return v_err;
        }
        if (v.kind == V_NUM) v.num = -v.num;
        return v;
    }
    case AST_TUPLE:
        diag_error(e->d, x->loc, "a tuple is not allowed here");
        return v_err;
    case AST_CALL:
        if (!in_net) {
            diag_error(e->d, x->loc, "'%s(...)' is not a constant expression", x->u.call.fn);
            return v_err;
        }
        return eval_call(e, x);
    }
    sup_bug("unknown expression kind %d", (int)x->kind);
}

/* A constant expression (lets, settings, declarations). On error returns false. */
static bool eval_num(Elab *e, const AstExpr *x, double *out) {
    Value v = eval(e, x, false);
    if (v.kind == V_ERR) return false;
    if (v.kind == V_TENSOR) {
        if (x->kind == AST_IDENT) diag_error(e->d, x->loc, "expected a constant: '%s' is a tensor", x->u.ident);
        else diag_error(e->d, x->loc, "expected a constant, not a tensor");
        return false;
    }
    *out = v.num;
    return true;
}

/* A size (width, frames, kernel, ...) within chiralc's limits (ir.h). */
static bool size_ok(Elab *e, int v, int max, const char *what, SrcLoc loc) {
    if (v <= max) return true;
    diag_error(e->d, loc, "%s %d is beyond chiralc's limit of %d", what, v, max);
    return false;
}

static bool eval_int(Elab *e, const AstExpr *x, int *out) {
    double v;
    return eval_num(e, x, &v) && to_int(e, v, x->loc, out);
}

/* ---- calls ------------------------------------------------------------------ */

typedef enum PKind { P_TENSOR, P_INT, P_NUM, P_BOOL } PKind;
typedef struct Param {
    const char *name;
    PKind kind;
    bool required;
} Param;

#define MAX_PARAMS 8
typedef struct Builtin {
    const char *name;
    IrOp op;
    IrAct act;          /* IR_ACT only */
    int npos;           /* the first npos params may be given by position */
    Param params[MAX_PARAMS];
} Builtin;

#define ACT_FN(fname, e) {fname, IR_ACT, IR_ACT_##e, 1, {{"x", P_TENSOR, true}, {"force", P_BOOL, false}}}
#define X1(fname, e) {fname, IR_##e, 0, 1, {{"x", P_TENSOR, true}}}

static const Builtin builtins[] = {
    {"linear", IR_LINEAR, 0, 2,
     {{"x", P_TENSOR, true}, {"out", P_INT, false}, {"bias", P_BOOL, false}, {"equivariant", P_BOOL, false}}},
    {"conv1d", IR_CONV1D, 0, 3,
     {{"x", P_TENSOR, true}, {"out", P_INT, false}, {"kernel", P_INT, true}, {"dilation", P_INT, false},
      {"stride", P_INT, false}, {"padding", P_INT, false}, {"bias", P_BOOL, false},
      {"equivariant", P_BOOL, false}}},
    {"invariant", IR_INVARIANT, 0, 2, {{"x", P_TENSOR, true}, {"out", P_INT, true}, {"bias", P_BOOL, false}}},
    {"batchnorm", IR_BATCHNORM, 0, 1, {{"x", P_TENSOR, true}, {"eps", P_NUM, false}, {"momentum", P_NUM, false}}},
    {"dropout", IR_DROPOUT, 0, 2, {{"x", P_TENSOR, true}, {"p", P_NUM, true}}},
    ACT_FN("relu", RELU),
    {"leaky_relu", IR_ACT, IR_ACT_LEAKY_RELU, 2,
     {{"x", P_TENSOR, true}, {"slope", P_NUM, false}, {"force", P_BOOL, false}}},
    ACT_FN("elu", ELU),
    ACT_FN("gelu", GELU),
    ACT_FN("sigmoid", SIGMOID),
    ACT_FN("tanh", TANH),
    ACT_FN("softsign", SOFTSIGN),
    ACT_FN("hardtanh", HARDTANH),
    {"concat", IR_CONCAT, 0, 0, {{NULL, P_TENSOR, false}}}, /* variadic: handled apart */
    {"crop", IR_CROP, 0, 2, {{"x", P_TENSOR, true}, {"n", P_INT, true}, {"stride", P_INT, false}}},
    X1("meanpool", MEANPOOL),
    X1("last", LAST),
    {"repeat", IR_REPEAT, 0, 2, {{"x", P_TENSOR, true}, {"n", P_INT, true}}},
    X1("flatten", FLATTEN),
    {"lstm", IR_LSTM, 0, 2,
     {{"x", P_TENSOR, true}, {"hidden", P_INT, true}, {"layers", P_INT, false}, {"dropout", P_NUM, false},
      {"init", P_TENSOR, false}}},
    {"gru", IR_GRU, 0, 2,
     {{"x", P_TENSOR, true}, {"hidden", P_INT, true}, {"layers", P_INT, false}, {"dropout", P_NUM, false},
      {"init", P_TENSOR, false}}},
    X1("softmax", SOFTMAX),
};
#define NBUILTINS (int)(sizeof builtins / sizeof builtins[0])

/* One argument as received: its value and where it was written. */
typedef struct Got {
    bool present;
    const AstExpr *expr;
    SrcLoc loc;  /* of the key for a keyword argument, else of the value */
    Value v;
    bool flag;   /* P_BOOL */
} Got;

static int nparams(const Builtin *b) {
    int n = 0;
    while (n < MAX_PARAMS && b->params[n].name) n++;
    return n;
}

/* "out, kernel, dilation" : the options a call accepts by name. */
static const char *option_list(Elab *e, const Builtin *b) {
    char *s = arena_strdup(e->a, "");
    for (int i = 0; i < nparams(b); i++) {
        if (b->params[i].kind == P_TENSOR && i == 0) continue;
        s = arena_printf(e->a, "%s%s%s", s, *s ? ", " : "", b->params[i].name);
    }
    return s;
}

/* Stores an argument's value in g, checked against the parameter's kind. */
static bool take_arg(Elab *e, const Builtin *b, const Param *pm, const AstExpr *x, Got *g) {
    if (pm->kind == P_BOOL) {
        if (is_ident(x, "true") || is_ident(x, "false")) {
            g->flag = is_ident(x, "true");
            return true;
        }
        diag_error(e->d, x->loc, "option '%s' of %s must be true or false", pm->name, b->name);
        return false;
    }
    Value v = eval(e, x, true);
    g->v = v;
    if (v.kind == V_ERR) return false;
    if (pm->kind == P_TENSOR && v.kind != V_TENSOR) {
        diag_error(e->d, x->loc, "argument '%s' of %s must be a tensor, got the constant %g", pm->name,
                   b->name, v.num);
        return false;
    }
    if (pm->kind != P_TENSOR && v.kind == V_TENSOR) {
        if (x->kind == AST_IDENT)
            diag_error(e->d, x->loc, "argument '%s' of %s must be a constant: '%s' is a tensor", pm->name,
                       b->name, x->u.ident);
        else
            diag_error(e->d, x->loc, "argument '%s' of %s must be a constant, not a tensor", pm->name,
                       b->name);
        return false;
    }
    if (pm->kind == P_INT) {
        int iv;
        if (!to_int(e, v.num, x->loc, &iv)) return false;
        bool width = strcmp(pm->name, "out") == 0 || strcmp(pm->name, "hidden") == 0;
        if (!size_ok(e, iv, width ? IR_MAX_WIDTH : IR_MAX_FRAMES, width ? "width" : pm->name, x->loc)) return false;
        g->v.num = iv;
    }
    return true;
}

static Value call_concat(Elab *e, const AstExpr *x) {
    int n = 0;
    bool ok = true;
    IrNode *ins[IR_MAX_IN];
    for (const AstArg *arg = x->u.call.args; arg; arg = arg->next) {
        if (arg->key) {
            diag_error(e->d, arg->key_loc, "unknown option '%s' for concat", arg->key);
            diag_note(e->d, arg->key_loc, "concat takes only tensors, by position");
            ok = false;
            continue;
        }
        Value v = eval(e, arg->value, true);
        if (v.kind == V_ERR) { ok = false; continue; }
        if (v.kind != V_TENSOR) {
            diag_error(e->d, arg->value->loc, "argument %d of concat must be a tensor, got the constant %g",
                       n + 1, v.num);
            ok = false;
            continue;
        }
        if (n < IR_MAX_IN) ins[n] = v.node;
        n++;
    }
    if (!ok) return v_err;
    if (n < 2 || n > IR_MAX_IN) {
        diag_error(e->d, x->loc, "concat takes 2 to %d tensors, got %d", IR_MAX_IN, n);
        return v_err;
    }
    IrNode *node = new_node(e, IR_CONCAT, x->loc);
    for (int i = 0; i < n; i++) ir_add_input(node, ins[i]);
    return tensor(node);
}

/* Range checks, each with the value the user gave. */
static bool check_min(Elab *e, const Got *g, const char *what, int min) {
    if (g->present && g->v.num < min) {
        diag_error(e->d, g->loc, "%s must be at least %d, got %g", what, min, g->v.num);
        return false;
    }
    return true;
}

static bool check_prob(Elab *e, const Got *g, const char *what) {
    if (g->present && !(g->v.num >= 0 && g->v.num < 1)) {
        diag_error(e->d, g->loc, "%s must be in [0, 1), got %g", what, g->v.num);
        return false;
    }
    return true;
}

/* "a repeat", "an input", "a relu": what a node is, for messages. */
static const char *op_article(Elab *e, const IrNode *n) {
    const char *name = n->op == IR_ACT ? ir_act_name[n->a.act] : ir_op_info[n->op].name;
    return arena_printf(e->a, "%s %s", strchr("aeiou", name[0]) ? "an" : "a", name);
}

static Value eval_call(Elab *e, const AstExpr *x) {
    const char *fn = x->u.call.fn;
    const Builtin *b = NULL;
    for (int i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i].name, fn) == 0) b = &builtins[i];
    if (!b) {
        diag_error(e->d, x->loc, "unknown function '%s'", fn);
        char *list = arena_strdup(e->a, "");
        for (int i = 0; i < NBUILTINS; i++)
            list = arena_printf(e->a, "%s%s%s", list, i ? ", " : "", builtins[i].name);
        diag_note(e->d, x->loc, "the functions are: %s", list);
        return v_err;
    }
    if (b->op == IR_CONCAT) return call_concat(e, x);

    int np = nparams(b);
    Got got[MAX_PARAMS];
    memset(got, 0, sizeof got);
    bool ok = true, unknown_key = false;
    int pos = 0;
    for (const AstArg *arg = x->u.call.args; arg; arg = arg->next) {
        int k = -1;
        SrcLoc loc;
        if (arg->key) {
            loc = arg->key_loc;
            for (int i = 0; i < np; i++)
                if (strcmp(b->params[i].name, arg->key) == 0 && !(i == 0 && b->params[i].kind == P_TENSOR))
                    k = i;
            if (k < 0) {
                diag_error(e->d, loc, "unknown option '%s' for %s", arg->key, b->name);
                const char *opts = option_list(e, b);
                if (*opts) diag_note(e->d, loc, "the options of %s are: %s", b->name, opts);
                else diag_note(e->d, loc, "%s takes no options", b->name);
                ok = false;
                unknown_key = true;
                continue;
            }
        } else {
            loc = arg->value->loc;
            if (pos >= b->npos) {
                diag_error(e->d, loc, "too many arguments to %s: it takes %d by position", b->name, b->npos);
                ok = false;
                pos++;
                continue;
            }
            k = pos++;
        }
        if (got[k].present) {
            diag_error(e->d, loc, "duplicate option '%s' for %s", b->params[k].name, b->name);
            diag_note(e->d, got[k].loc, "'%s' was first given here", b->params[k].name);
            ok = false;
            continue;
        }
        got[k].present = true;
        got[k].expr = arg->value;
        got[k].loc = loc;
        if (!take_arg(e, b, &b->params[k], arg->value, &got[k])) ok = false;
    }
    /* After a misspelt option, "missing 'kernel'" would only repeat it. */
    for (int i = 0; i < np && !unknown_key; i++) {
        if (b->params[i].required && !got[i].present) {
            diag_error(e->d, x->loc, "missing argument '%s' of %s", b->params[i].name, b->name);
            ok = false;
        }
    }
    if (!ok) return v_err;

    IrNode *n = new_node(e, b->op, x->loc);
    ir_add_input(n, got[0].v.node);
    IrAttrs *a = &n->a;
    for (int i = 1; i < np; i++) {
        const Got *g = &got[i];
        if (!g->present) continue;
        const char *pn = b->params[i].name;
        if (strcmp(pn, "out") == 0 || strcmp(pn, "hidden") == 0) {
            if (g->v.num < 1) {
                diag_error(e->d, g->loc, "width must be positive, got %g", g->v.num);
                ok = false;
            }
            a->out = (int)g->v.num;
        } else if (strcmp(pn, "kernel") == 0) {
            ok &= check_min(e, g, "kernel", 1);
            a->kernel = (int)g->v.num;
        } else if (strcmp(pn, "dilation") == 0) {
            ok &= check_min(e, g, "dilation", 1);
            a->dilation = (int)g->v.num;
        } else if (strcmp(pn, "stride") == 0) {
            ok &= check_min(e, g, "stride", 1);
            a->stride = (int)g->v.num;
        } else if (strcmp(pn, "padding") == 0) {
            ok &= check_min(e, g, "padding", 0);
            a->padding = (int)g->v.num;
        } else if (strcmp(pn, "bias") == 0) {
            a->bias = g->flag;
        } else if (strcmp(pn, "equivariant") == 0) {
            a->unconstrained = !g->flag;
        } else if (strcmp(pn, "force") == 0) {
            a->force = g->flag;
        } else if (strcmp(pn, "eps") == 0) {
            if (!(g->v.num > 0)) {
                diag_error(e->d, g->loc, "eps must be positive, got %g", g->v.num);
                ok = false;
            }
            a->eps = g->v.num;
        } else if (strcmp(pn, "momentum") == 0) {
            if (!(g->v.num >= 0 && g->v.num <= 1)) {
                diag_error(e->d, g->loc, "momentum must be in [0, 1], got %g", g->v.num);
                ok = false;
            }
            a->momentum = g->v.num;
        } else if (strcmp(pn, "p") == 0 || strcmp(pn, "dropout") == 0) {
            ok &= check_prob(e, g, "the dropout probability");
            a->p = g->v.num;
        } else if (strcmp(pn, "slope") == 0) {
            a->slope = g->v.num;
        } else if (strcmp(pn, "layers") == 0) {
            ok &= check_min(e, g, "layers", 1);
            a->layers = (int)g->v.num;
        } else if (strcmp(pn, "n") == 0) {
            if (b->op == IR_CROP) {
                ok &= check_min(e, g, "the number of frames to crop", 0);
                a->crop = (int)g->v.num;
            } else {
                ok &= check_min(e, g, "the number of frames", 1);
                a->frames = (int)g->v.num;
            }
        } else if (strcmp(pn, "init") == 0) {
            IrNode *init = g->v.node;
            const char *kind = b->op == IR_LSTM ? "an lstm" : "a gru";
            if (init->op != b->op) {
                if (g->expr->kind == AST_IDENT)
                    diag_error(e->d, g->expr->loc, "init= must name %s result: '%s' is %s", kind,
                               g->expr->u.ident, op_article(e, init));
                else
                    diag_error(e->d, g->expr->loc, "init= must name %s result, not %s", kind,
                               op_article(e, init));
                ok = false;
            } else {
                ir_add_input(n, init);
            }
        } else {
            sup_bug("parameter '%s' of %s not handled", pn, b->name);
        }
    }
    if (b->op == IR_ACT) a->act = a->act_neg = a->act_written = b->act;
    /* A decoder takes the encoder's final states layer by layer: the stacks
     * must agree. Both numbers are constants, so say it here. */
    if (ok && n->nin == 2) {
        const IrNode *init = n->in[1];
        if (init->a.layers != a->layers || init->a.out != a->out) {
            diag_error(e->d, x->loc,
                       "%s initialised from %s %s of %d layers x %d units, but it has %d layers x %d units",
                       b->name, b->op == IR_LSTM ? "an" : "a", b->name, init->a.layers, init->a.out, a->layers, a->out);
            diag_note(e->d, init->loc, "the %s named by init= is here", b->name);
            ok = false;
        }
    }
    return ok ? tensor(n) : v_err;
}

/* ---- the net block ------------------------------------------------------------ */

static void elab_stmts(Elab *e, const AstStmt *s);

static void elab_assign(Elab *e, const AstStmt *s) {
    const char *name = s->u.assign.name;
    Value v = eval(e, s->u.assign.value, true);
    int oi = find_output(e->p, name);
    if (oi >= 0) {
        IrDecl *d = e->p->outputs[oi];
        if (e->out_assigned[oi].file) {
            diag_error(e->d, s->loc, "output '%s' is assigned twice", name);
            diag_note(e->d, e->out_assigned[oi], "first assigned here");
            return;
        }
        e->out_assigned[oi] = s->loc;
        if (v.kind == V_ERR) return;
        if (v.kind != V_TENSOR) {
            diag_error(e->d, s->loc, "output '%s' must be assigned a tensor, not a constant", name);
            return;
        }
        IrNode *n = new_node(e, IR_OUTPUT, s->loc);
        n->name = d->name;
        n->a.io = oi;
        ir_add_input(n, v.node);
        d->node = n;
        bind(e, name, B_NET, v, s->loc);
        return;
    }
    Bind *b = lookup(e, name);
    if (b && b->role == B_INPUT) {
        diag_error(e->d, s->loc, "cannot assign to input '%s'", name);
        return;
    }
    if (b && b->role == B_LOOPVAR) {
        diag_error(e->d, s->loc, "cannot assign to loop variable '%s'", name);
        return;
    }
    if (v.kind == V_TENSOR && !v.node->name) v.node->name = name;
    if (b && b->role == B_NET) {
        b->v = v;
        b->loc = s->loc;
    } else {
        bind(e, name, B_NET, v, s->loc);
    }
}

static bool loop_bound(Elab *e, const AstExpr *x, int *out) {
    Value v = eval(e, x, false);
    if (v.kind == V_ERR) return false;
    if (v.kind == V_TENSOR) {
        if (x->kind == AST_IDENT)
            diag_error(e->d, x->loc, "loop bound is not a constant: '%s' is a tensor", x->u.ident);
        else
            diag_error(e->d, x->loc, "loop bound is not a constant");
        return false;
    }
    return to_int(e, v.num, x->loc, out);
}

static void elab_for(Elab *e, const AstStmt *s) {
    int lo = 0, hi = 0;
    bool ok = loop_bound(e, s->u.loop.lo, &lo);
    ok &= loop_bound(e, s->u.loop.hi, &hi);
    if (!ok) return;
    if ((long long)hi - lo + 1 > ELAB_MAX_ITERATIONS) {
        diag_error(e->d, s->u.loop.hi->loc, "loop of %lld iterations is too long (at most %d)",
                   (long long)hi - lo + 1, ELAB_MAX_ITERATIONS);
        return;
    }
    const char *var = s->u.loop.var;
    Bind *old = lookup(e, var);
    if (old && (old->role == B_INPUT || old->role == B_LOOPVAR)) {
        diag_error(e->d, s->u.loop.var_loc, "loop variable '%s' hides %s", var,
                   old->role == B_INPUT ? "an input" : "an enclosing loop's variable");
        return;
    }
    Bind saved = {0};
    if (old) saved = *old;
    Bind *b = old ? old : bind(e, var, B_LOOPVAR, num(0), s->u.loop.var_loc);
    b->role = B_LOOPVAR;
    for (int i = lo; i <= hi; i++) {
        b->v = num(i);
        int before = e->d->nerrors;
        elab_stmts(e, s->u.loop.body);
        /* The same mistake would be reported once per iteration. */
        if (e->d->nerrors > before) break;
    }
    if (old) {
        old->role = saved.role;
        old->v = saved.v;
    } else {
        b->role = B_DEAD;
    }
}

static void elab_stmts(Elab *e, const AstStmt *s) {
    for (; s; s = s->next) {
        if (s->kind == AST_ASSIGN) elab_assign(e, s);
        else elab_for(e, s);
    }
}

/* ---- skeletons ------------------------------------------------------------------ */

static IrSkeleton *elab_skeleton(Elab *e, const AstSkeleton *as) {
    int nj = 0;
    for (const AstName *j = as->joints; j; j = j->next) nj++;
    IrSkeleton *s = arena_alloc(e->a, sizeof *s);
    s->name = as->name.name;
    s->loc = as->name.loc;
    s->joints = arena_new_array(e->a, const char *, nj);
    s->joint_locs = arena_new_array(e->a, SrcLoc, nj);
    s->partner = arena_new_array(e->a, int, nj);
    SrcLoc *mirrored_at = arena_new_array(e->a, SrcLoc, nj);
    bool ok = true;
    if (nj == 0) {
        diag_error(e->d, as->name.loc, "skeleton '%s' has no joints", s->name);
        ok = false;
    }
    for (const AstName *j = as->joints; j; j = j->next) {
        bool dup = false;
        for (int k = 0; k < s->njoints; k++) {
            if (strcmp(s->joints[k], j->name) == 0) {
                diag_error(e->d, j->loc, "duplicate joint '%s' in skeleton '%s'", j->name, s->name);
                diag_note(e->d, s->joint_locs[k], "'%s' first declared here", j->name);
                ok = false;
                dup = true;
            }
        }
        if (dup) continue;
        s->joints[s->njoints] = j->name;
        s->joint_locs[s->njoints] = j->loc;
        s->partner[s->njoints] = s->njoints;
        s->njoints++;
    }
    for (const AstMirror *m = as->mirrors; m; m = m->next) {
        int ia = -1, ib = -1;
        for (int k = 0; k < s->njoints; k++) {
            if (strcmp(s->joints[k], m->a.name) == 0) ia = k;
            if (strcmp(s->joints[k], m->b.name) == 0) ib = k;
        }
        bool pair_ok = true;
        if (ia < 0) {
            diag_error(e->d, m->a.loc, "unknown joint '%s' in skeleton '%s'", m->a.name, s->name);
            pair_ok = false;
        }
        if (ib < 0) {
            diag_error(e->d, m->b.loc, "unknown joint '%s' in skeleton '%s'", m->b.name, s->name);
            pair_ok = false;
        }
        if (!pair_ok) {
            ok = false;
            continue;
        }
        if (ia == ib) {
            diag_error(e->d, m->b.loc, "joint '%s' is mirrored with itself", m->a.name);
            diag_note(e->d, m->b.loc, "a joint without a mirror partner is a centre joint: leave it out of 'mirror'");
            ok = false;
            continue;
        }
        const AstName *side[2] = {&m->a, &m->b};
        int idx[2] = {ia, ib};
        for (int t = 0; t < 2; t++) {
            int j = idx[t];
            if (s->partner[j] != j) {
                diag_error(e->d, side[t]->loc, "joint '%s' is already mirrored with '%s'", s->joints[j],
                           s->joints[s->partner[j]]);
                diag_note(e->d, mirrored_at[j], "the first pair is here");
                pair_ok = false;
            }
        }
        if (!pair_ok) {
            ok = false;
            continue;
        }
        s->partner[ia] = ib;
        s->partner[ib] = ia;
        mirrored_at[ia] = m->a.loc;
        mirrored_at[ib] = m->a.loc;
    }
    return ok ? s : NULL;
}

/* ---- inputs and outputs ------------------------------------------------------------ */

static IrDecl *elab_decl(Elab *e, const AstIo *io) {
    IrDecl *d = arena_alloc(e->a, sizeof *d);
    const AstType *t = &io->type;
    d->name = io->name.name;
    d->loc = io->name.loc;
    d->seq = t->seq;
    d->invariant = t->invariant;
    d->is_class = t->kind == AST_TYPE_CLASS;
    bool ok = true;
    if (t->frames) {
        if (eval_int(e, t->frames, &d->frames)) {
            if (d->frames < 1) {
                diag_error(e->d, t->frames->loc, "frames must be positive, got %d", d->frames);
                ok = false;
            } else if (!size_ok(e, d->frames, IR_MAX_FRAMES, "frames", t->frames->loc)) {
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    if (t->kind == AST_TYPE_SKELETON) {
        d->skeleton = find_skeleton(e->p, t->skeleton.name);
        if (!d->skeleton) {
            /* A skeleton that failed its own checks was reported already. */
            bool declared = false;
            for (const AstSkeleton *s = e->ast->skeletons; s; s = s->next)
                if (strcmp(s->name.name, t->skeleton.name) == 0) declared = true;
            if (!declared)
                diag_error(e->d, t->skeleton.loc, "unknown skeleton '%s'", t->skeleton.name);
            ok = false;
        }
        int nc = 0;
        for (const AstCoord *c = t->coords; c; c = c->next) nc++;
        d->coords = arena_new_array(e->a, const char *, nc);
        d->coord_negated = arena_new_array(e->a, bool, nc);
        const AstCoord **seen = arena_new_array(e->a, const AstCoord *, nc);
        for (const AstCoord *c = t->coords; c; c = c->next) {
            bool dup = false;
            for (int k = 0; k < d->ncoords; k++) {
                if (strcmp(seen[k]->name, c->name) == 0) {
                    diag_error(e->d, c->loc, "duplicate coordinate '%s'", c->name);
                    diag_note(e->d, seen[k]->loc, "'%s' first given here", c->name);
                    dup = true;
                }
            }
            if (dup) {
                ok = false;
                continue;
            }
            seen[d->ncoords] = c;
            d->coords[d->ncoords] = c->name;
            d->coord_negated[d->ncoords] = c->negated;
            d->ncoords++;
        }
        if (nc == 0) {
            diag_error(e->d, t->loc, "a skeleton type needs at least one coordinate");
            ok = false;
        }
        if (ok) {
            d->feat = d->skeleton->njoints * d->ncoords;
            d->chi = d->invariant ? ir_chi_trivial(d->feat)
                                  : ir_chi_skeleton(e->a, d->skeleton, d->ncoords, d->coord_negated);
            if (!d->invariant) { /* the coordinates as the user named them: "h36m(x!,y)" */
                char *desc = arena_printf(e->a, "%s(", d->skeleton->name);
                for (int k = 0; k < d->ncoords; k++)
                    desc = arena_printf(e->a, "%s%s%s%s", desc, k ? "," : "", d->coords[k],
                                        d->coord_negated[k] ? "!" : "");
                d->chi.desc = arena_printf(e->a, "%s)", desc);
            }
        }
    } else {
        if (eval_int(e, t->width, &d->feat)) {
            if (d->feat < 1) {
                diag_error(e->d, t->width->loc, "width must be positive, got %d", d->feat);
                ok = false;
            } else if (!size_ok(e, d->feat, IR_MAX_WIDTH, "width", t->width->loc)) {
                ok = false;
            }
        } else {
            ok = false;
        }
        if (ok) d->chi = ir_chi_trivial(d->feat);
    }
    return ok ? d : NULL;
}

/* Inputs, outputs and lets share one namespace. */
static bool check_unique(Elab *e, const char *name, SrcLoc loc) {
    for (int i = 0; i < e->p->ninputs; i++)
        if (strcmp(e->p->inputs[i]->name, name) == 0) {
            diag_error(e->d, loc, "'%s' is already declared", name);
            diag_note(e->d, e->p->inputs[i]->loc, "'%s' is first declared here", name);
            return false;
        }
    for (int i = 0; i < e->p->noutputs; i++)
        if (strcmp(e->p->outputs[i]->name, name) == 0) {
            diag_error(e->d, loc, "'%s' is already declared", name);
            diag_note(e->d, e->p->outputs[i]->loc, "'%s' is first declared here", name);
            return false;
        }
    Bind *b = lookup(e, name);
    if (b && b->role == B_LET) {
        diag_error(e->d, loc, "'%s' is already declared", name);
        diag_note(e->d, b->loc, "'%s' is first declared here", name);
        return false;
    }
    return true;
}

static void elab_decls(Elab *e) {
    IrProgram *p = e->p;
    int ni = 0, no = 0;
    for (const AstIo *io = e->ast->inputs; io; io = io->next) ni++;
    for (const AstIo *io = e->ast->outputs; io; io = io->next) no++;
    p->inputs = arena_new_array(e->a, IrDecl *, ni);
    p->outputs = arena_new_array(e->a, IrDecl *, no);
    e->failed = arena_new_array(e->a, const char *, ni + no);
    for (const AstIo *io = e->ast->inputs; io; io = io->next) {
        bool unique = check_unique(e, io->name.name, io->name.loc);
        IrDecl *d = elab_decl(e, io);
        if (!d || !unique) {
            e->failed[e->nfailed++] = io->name.name;
            continue;
        }
        p->inputs[p->ninputs++] = d;
    }
    for (const AstIo *io = e->ast->outputs; io; io = io->next) {
        bool unique = check_unique(e, io->name.name, io->name.loc);
        IrDecl *d = elab_decl(e, io);
        if (!d || !unique) {
            e->failed[e->nfailed++] = io->name.name;
            continue;
        }
        p->outputs[p->noutputs++] = d;
    }
    if (ni == 0 && e->ast->model.name)
        diag_error(e->d, e->ast->model.loc, "model '%s' declares no input", e->ast->model.name);
    if (no == 0 && e->ast->model.name)
        diag_error(e->d, e->ast->model.loc, "model '%s' declares no output", e->ast->model.name);
}

/* ---- lets ------------------------------------------------------------------------------ */

static void elab_lets(Elab *e) {
    for (const AstLet *l = e->ast->lets; l; l = l->next) {
        Bind *old = lookup(e, l->name.name);
        if (old) {
            diag_error(e->d, l->name.loc, "'%s' is already declared", l->name.name);
            diag_note(e->d, old->loc, "'%s' is first declared here", l->name.name);
            continue;
        }
        double v = 0;
        bool ok = eval_num(e, l->value, &v);
        for (int i = 0; i < e->nov; i++) {
            if (strcmp(e->ov[i].name, l->name.name) == 0) {
                v = e->ov[i].value;
                e->ov[i].used = true;
                ok = true;
            }
        }
        bind(e, l->name.name, B_LET, ok ? num(v) : v_err, l->name.loc);
    }
}

/* ---- settings ---------------------------------------------------------------------------- */

/* The settings of one block: each key at most once, every key known. */
static bool setting_key_ok(Elab *e, const AstSetting *s, const AstSetting *all, const char *block,
                           const char *const *keys) {
    bool known = false;
    for (int i = 0; keys[i]; i++)
        if (strcmp(keys[i], s->key.name) == 0) known = true;
    if (!known) {
        diag_error(e->d, s->key.loc, "unknown %s setting '%s'", block, s->key.name);
        char *list = arena_strdup(e->a, "");
        for (int i = 0; keys[i]; i++) list = arena_printf(e->a, "%s%s%s", list, i ? ", " : "", keys[i]);
        diag_note(e->d, s->key.loc, "the settings of %s are: %s", block, list);
        return false;
    }
    for (const AstSetting *o = all; o != s; o = o->next) {
        if (strcmp(o->key.name, s->key.name) == 0) {
            diag_error(e->d, s->key.loc, "duplicate setting '%s'", s->key.name);
            diag_note(e->d, o->key.loc, "'%s' was first set here", s->key.name);
            return false;
        }
    }
    return true;
}

/* A word setting: one of `words`; returns its index or -1 (reported). */
static int setting_word(Elab *e, const AstSetting *s, const char *what, const char *const *words) {
    const AstExpr *x = s->value;
    char *list = arena_strdup(e->a, "");
    for (int i = 0; words[i]; i++) list = arena_printf(e->a, "%s%s%s", list, i ? ", " : "", words[i]);
    if (x->kind != AST_IDENT) {
        diag_error(e->d, x->loc, "%s must be one of: %s", s->key.name, list);
        return -1;
    }
    for (int i = 0; words[i]; i++)
        if (strcmp(words[i], x->u.ident) == 0) return i;
    diag_error(e->d, x->loc, "unknown %s '%s'", what, x->u.ident);
    diag_note(e->d, x->loc, "valid %ss: %s", what, list);
    return -1;
}

static void elab_chirality(Elab *e) {
    static const char *const keys[] = {"layout", "neg_ratio", "activations", "sharing", NULL};
    static const char *const layouts[] = {"joints", "pairs", NULL};
    static const char *const acts[] = {"paper", "mixed", NULL};
    static const char *const sharings[] = {"full", "paper", NULL};
    IrChirality *c = &e->p->cfg;
    if (e->ast->chirality) c->loc = e->ast->chirality->key.loc;
    for (const AstSetting *s = e->ast->chirality; s; s = s->next) {
        if (!setting_key_ok(e, s, e->ast->chirality, "chirality", keys)) continue;
        const char *k = s->key.name;
        int w;
        if (strcmp(k, "layout") == 0) {
            if ((w = setting_word(e, s, "layout", layouts)) >= 0) c->layout = (IrLayout)w;
        } else if (strcmp(k, "activations") == 0) {
            if ((w = setting_word(e, s, "activation policy", acts)) >= 0) c->activations = (IrActPolicy)w;
        } else if (strcmp(k, "sharing") == 0) {
            if ((w = setting_word(e, s, "sharing", sharings)) >= 0) c->sharing = (IrSharing)w;
        } else {
            double v;
            if (!eval_num(e, s->value, &v)) continue;
            if (!(v > 0 && v < 1)) {
                diag_error(e->d, s->value->loc, "neg_ratio must be in (0, 1), got %g", v);
                continue;
            }
            c->neg_ratio = v;
        }
    }
}

/* loss NAME(output) */
static void train_loss(Elab *e, const AstSetting *s) {
    static const char *const losses[] = {"mse", "l1", "mpjpe", "cross_entropy", NULL};
    static const IrLoss kinds[] = {IR_LOSS_MSE, IR_LOSS_L1, IR_LOSS_MPJPE, IR_LOSS_CROSS_ENTROPY};
    const AstExpr *x = s->value;
    if (x->kind != AST_CALL) {
        diag_error(e->d, x->loc, "expected a loss applied to an output, like mse(pose3d)");
        return;
    }
    int k = -1;
    for (int i = 0; losses[i]; i++)
        if (strcmp(losses[i], x->u.call.fn) == 0) k = i;
    if (k < 0) {
        diag_error(e->d, x->loc, "unknown loss '%s'", x->u.call.fn);
        diag_note(e->d, x->loc, "the losses are: mse, l1, mpjpe, cross_entropy");
        return;
    }
    const AstArg *arg = x->u.call.args;
    if (!arg || arg->next || arg->key) {
        diag_error(e->d, x->loc, "%s takes one argument: the output it applies to", losses[k]);
        return;
    }
    if (arg->value->kind != AST_IDENT || find_output(e->p, arg->value->u.ident) < 0) {
        if (arg->value->kind == AST_IDENT)
            diag_error(e->d, arg->value->loc, "loss target '%s' is not a declared output", arg->value->u.ident);
        else
            diag_error(e->d, arg->value->loc, "the loss must name a declared output");
        return;
    }
    const IrDecl *d = e->p->outputs[find_output(e->p, arg->value->u.ident)];
    if (kinds[k] == IR_LOSS_CROSS_ENTROPY && !d->is_class) {
        diag_error(e->d, x->loc, "cross_entropy needs a class(N) output; '%s' is not one", d->name);
        return;
    }
    if (kinds[k] == IR_LOSS_MPJPE && !d->skeleton) {
        diag_error(e->d, x->loc, "mpjpe needs a skeleton output; '%s' is not one", d->name);
        return;
    }
    e->p->train.loss = kinds[k];
    e->p->train.loss_output = d;
}

static bool train_range(Elab *e, const AstExpr *x, const char *what, double v, double lo, bool lo_open,
                        double hi, bool hi_open) {
    if ((lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi)) return true;
    char hib[32];
    if (isinf(hi)) snprintf(hib, sizeof hib, "inf");
    else snprintf(hib, sizeof hib, "%g", hi);
    diag_error(e->d, x->loc, "%s must be in %c%g, %s%c, got %g", what, lo_open ? '(' : '[', lo, hib,
               hi_open ? ')' : ']', v);
    return false;
}

/* optimizer adam(lr=, betas=(b1, b2), decay=, weight_decay=) / sgd(lr=, momentum=, decay=, weight_decay=) */
static void train_optimizer(Elab *e, const AstSetting *s) {
    const AstExpr *x = s->value;
    IrTrain *t = &e->p->train;
    const char *fn = x->kind == AST_CALL ? x->u.call.fn : x->kind == AST_IDENT ? x->u.ident : NULL;
    bool adam = fn && strcmp(fn, "adam") == 0, sgd = fn && strcmp(fn, "sgd") == 0;
    if (!adam && !sgd) {
        if (fn) diag_error(e->d, x->loc, "unknown optimizer '%s'", fn);
        else diag_error(e->d, x->loc, "expected an optimizer, like adam(lr=0.001)");
        diag_note(e->d, x->loc, "the optimizers are: adam, sgd");
        return;
    }
    t->optimizer = adam ? IR_OPTIM_ADAM : IR_OPTIM_SGD;
    if (x->kind != AST_CALL) return;
    const char *opts = adam ? "lr, betas, decay, weight_decay" : "lr, momentum, decay, weight_decay";
    for (const AstArg *arg = x->u.call.args; arg; arg = arg->next) {
        if (!arg->key) {
            diag_error(e->d, arg->value->loc, "the options of %s are given by name, like lr=0.001", fn);
            continue;
        }
        for (const AstArg *o = x->u.call.args; o != arg; o = o->next) {
            if (o->key && strcmp(o->key, arg->key) == 0) {
                diag_error(e->d, arg->key_loc, "duplicate option '%s' for %s", arg->key, fn);
                diag_note(e->d, o->key_loc, "'%s' was first given here", arg->key);
                goto next;
            }
        }
        if (adam && strcmp(arg->key, "betas") == 0) {
            const AstExpr *tu = arg->value;
            const AstExpr *b1 = tu->kind == AST_TUPLE ? tu->u.tuple.items : NULL;
            const AstExpr *b2 = b1 ? b1->tuple_next : NULL;
            if (!b1 || !b2 || b2->tuple_next) {
                diag_error(e->d, tu->loc, "betas takes two numbers, like betas=(0.9, 0.999)");
                continue;
            }
            double v1, v2;
            if (eval_num(e, b1, &v1) && train_range(e, b1, "beta1", v1, 0, false, 1, true)) t->beta1 = v1;
            if (eval_num(e, b2, &v2) && train_range(e, b2, "beta2", v2, 0, false, 1, true)) t->beta2 = v2;
            continue;
        }
        const char *k = arg->key;
        bool known = strcmp(k, "lr") == 0 || strcmp(k, "decay") == 0 || strcmp(k, "weight_decay") == 0 ||
                     (sgd && strcmp(k, "momentum") == 0);
        if (!known) {
            diag_error(e->d, arg->key_loc, "unknown option '%s' for %s", k, fn);
            diag_note(e->d, arg->key_loc, "the options of %s are: %s", fn, opts);
            continue;
        }
        double v;
        if (!eval_num(e, arg->value, &v)) continue;
        if (strcmp(k, "lr") == 0) {
            if (train_range(e, arg->value, "lr", v, 0, true, INFINITY, true)) t->lr = v;
        } else if (strcmp(k, "decay") == 0) {
            if (train_range(e, arg->value, "decay", v, 0, true, 1, false)) t->decay = v;
        } else if (strcmp(k, "weight_decay") == 0) {
            if (train_range(e, arg->value, "weight_decay", v, 0, false, INFINITY, true)) t->weight_decay = v;
        } else {
            if (train_range(e, arg->value, "momentum", v, 0, false, 1, true)) t->momentum = v;
        }
    next:;
    }
}

static void elab_train(Elab *e) {
    static const char *const keys[] = {"loss", "optimizer", "batch", "epochs", "clip", "augment", NULL};
    IrTrain *t = &e->p->train;
    if (e->ast->train) t->loc = e->ast->train->key.loc;
    for (const AstSetting *s = e->ast->train; s; s = s->next) {
        if (!setting_key_ok(e, s, e->ast->train, "train", keys)) continue;
        const char *k = s->key.name;
        const AstExpr *x = s->value;
        if (strcmp(k, "loss") == 0) {
            train_loss(e, s);
        } else if (strcmp(k, "optimizer") == 0) {
            train_optimizer(e, s);
        } else if (strcmp(k, "batch") == 0 || strcmp(k, "epochs") == 0) {
            int v;
            if (!eval_int(e, x, &v)) continue;
            if (v < 1) {
                diag_error(e->d, x->loc, "%s must be positive, got %d", k, v);
                continue;
            }
            if (k[0] == 'b') t->batch = v;
            else t->epochs = v;
        } else if (strcmp(k, "clip") == 0) {
            double v;
            if (eval_num(e, x, &v) && train_range(e, x, "clip", v, 0, true, INFINITY, true)) t->clip = v;
        } else { /* augment mirror(p) */
            if (x->kind != AST_CALL || strcmp(x->u.call.fn, "mirror") != 0 || !x->u.call.args ||
                x->u.call.args->next || x->u.call.args->key) {
                diag_error(e->d, x->loc, "expected augment mirror(P), P the probability of mirroring a sample");
                continue;
            }
            const AstExpr *px = x->u.call.args->value;
            double v;
            if (eval_num(e, px, &v) && train_range(e, px, "the mirror probability", v, 0, false, 1, false))
                t->mirror = v;
        }
    }
}

/* ---- the program ------------------------------------------------------------------------- */

IrProgram *ir_elaborate(Arena *a, Diag *d, const AstProgram *ast, IrOverride *overrides, int noverrides) {
    sup_assert(ast != NULL);
    Elab e = {.a = a, .d = d, .p = ir_program_new(a, d), .ast = ast, .ov = overrides, .nov = noverrides};
    IrProgram *p = e.p;
    int errors_before = d->nerrors;
    p->file = ast->file;
    /* The train block's defaults: what a file without the key gets. */
    p->train.optimizer = IR_OPTIM_ADAM;
    p->train.lr = 0.001;
    p->train.beta1 = 0.9;
    p->train.beta2 = 0.999;
    p->train.decay = 1.0;
    p->train.batch = 64;
    p->train.epochs = 1;
    SrcLoc top = {ast->file, 1, 1};

    if (ast->model.name) p->model = ast->model.name;
    else diag_error(d, top, "missing 'model' declaration");

    int ns = 0;
    for (const AstSkeleton *s = ast->skeletons; s; s = s->next) ns++;
    p->skeletons = arena_new_array(a, IrSkeleton *, ns);
    for (const AstSkeleton *s = ast->skeletons; s; s = s->next) {
        const AstSkeleton *first = NULL;
        for (const AstSkeleton *o = ast->skeletons; o != s; o = o->next)
            if (!first && strcmp(o->name.name, s->name.name) == 0) first = o;
        if (first) {
            diag_error(d, s->name.loc, "duplicate skeleton '%s'", s->name.name);
            diag_note(d, first->name.loc, "'%s' first declared here", s->name.name);
            continue;
        }
        IrSkeleton *sk = elab_skeleton(&e, s);
        if (sk) p->skeletons[p->nskeletons++] = sk;
    }

    elab_lets(&e);
    elab_decls(&e);
    elab_chirality(&e);
    elab_train(&e);

    if (!ast->has_net) {
        diag_error(d, top, "missing 'net' block");
    } else {
        e.out_assigned = arena_new_array(a, SrcLoc, p->noutputs > 0 ? p->noutputs : 1);
        for (int i = 0; i < p->ninputs; i++) {
            IrDecl *in = p->inputs[i];
            IrNode *n = new_node(&e, IR_INPUT, in->loc);
            n->name = in->name;
            n->a.io = i;
            in->node = n;
            bind(&e, in->name, B_INPUT, tensor(n), in->loc);
        }
        for (int i = 0; i < e.nfailed; i++) bind(&e, e.failed[i], B_NET, v_err, top);
        elab_stmts(&e, ast->net);
        for (int i = 0; i < p->noutputs; i++)
            if (!e.out_assigned[i].file)
                diag_error(d, p->outputs[i]->loc, "output '%s' is never assigned", p->outputs[i]->name);
    }
    if (d->nerrors > errors_before) return NULL;
    ir_renumber(p);
    return p;
}
