/* tests/unit/test_parser.c: the lexer and parser (frontend/). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend/frontend.h"

/* One parse with its diagnostics captured in memory. */
typedef struct Parse {
    Arena *arena;
    Diag diag;
    char *msgs;
    size_t msgs_len;
    FILE *out;
    AstProgram *prog;
} Parse;

static void parse_text_n(Parse *p, const char *name, const char *text, size_t len) {
    memset(p, 0, sizeof *p);
    p->arena = arena_new();
    p->out = open_memstream(&p->msgs, &p->msgs_len);
    assert_non_null(p->out);
    diag_init(&p->diag, p->out);
    const SrcFile *f = diag_string_file(p->arena, name, text, len);
    p->prog = fe_parse(p->arena, &p->diag, f);
    fflush(p->out);
}

static void parse_text(Parse *p, const char *text) { parse_text_n(p, "t.net", text, strlen(text)); }

static void parse_example(Parse *p, const char *example) {
    const char *dir = getenv("CHIRALC_SOURCE_DIR");
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/%s.net", dir, example);
    memset(p, 0, sizeof *p);
    p->arena = arena_new();
    p->out = open_memstream(&p->msgs, &p->msgs_len);
    diag_init(&p->diag, p->out);
    const SrcFile *f = diag_read_file(p->arena, &p->diag, path);
    assert_non_null(f);
    p->prog = fe_parse(p->arena, &p->diag, f);
    fflush(p->out);
}

static void parse_done(Parse *p) {
    fclose(p->out);
    free(p->msgs);
    arena_free(p->arena);
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)); s += strlen(needle)) n++;
    return n;
}

static char *print_to_string(const AstProgram *prog) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ast_print(f, prog);
    fclose(f);
    return buf;
}

static int list_len_names(const AstName *n) { int k = 0; for (; n; n = n->next) k++; return k; }
static int list_len_stmts(const AstStmt *s) { int k = 0; for (; s; s = s->next) k++; return k; }
static int list_len_settings(const AstSetting *s) { int k = 0; for (; s; s = s->next) k++; return k; }
static int list_len_lets(const AstLet *l) { int k = 0; for (; l; l = l->next) k++; return k; }

static const AstLet *find_let(const AstProgram *prog, const char *name) {
    for (const AstLet *l = prog->lets; l; l = l->next)
        if (strcmp(l->name.name, name) == 0) return l;
    fail_msg("no let %s", name);
    return NULL;
}

/* A reference evaluator for constant expressions, written here so that the
 * tree's shape is checked by its value (-2^2 must be -4, not 4). */
static double eval(const AstExpr *e) {
    switch (e->kind) {
    case AST_NUM: return e->u.num;
    case AST_NEG: return -eval(e->u.neg);
    case AST_BINARY: {
        double a = eval(e->u.bin.lhs), b = eval(e->u.bin.rhs);
        switch (e->u.bin.op) {
        case '+': return a + b;
        case '-': return a - b;
        case '*': return a * b;
        case '/': return a / b;
        case '^': return pow(a, b);
        }
    }
    /* fall through */
    default: fail_msg("not a constant expression"); return 0;
    }
}

static const char *const examples[] = {"videopose3d", "martinez", "forecast_lstm", "action_stconv"};

static void test_examples_parse(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        Parse p;
        parse_example(&p, examples[i]);
        if (!p.prog) fail_msg("%s: %s", examples[i], p.msgs);
        assert_int_equal(p.diag.nerrors, 0);
        assert_string_equal(p.prog->model.name, examples[i]);
        assert_true(p.prog->has_net);
        assert_non_null(p.prog->train);
        parse_done(&p);
    }
}

/* The tree of videopose3d.net, checked against the file by hand. */
static void test_videopose3d_tree(void **state) {
    (void)state;
    Parse p;
    parse_example(&p, "videopose3d");
    const AstProgram *prog = p.prog;
    assert_non_null(prog);
    assert_int_equal(prog->model.loc.line, 7);
    assert_int_equal(prog->model.loc.col, 7);

    const AstSkeleton *s = prog->skeletons;
    assert_non_null(s);
    assert_null(s->next);
    assert_string_equal(s->name.name, "h36m");
    assert_int_equal(list_len_names(s->joints), 17);
    assert_string_equal(s->joints->name, "hip");
    int nm = 0;
    for (const AstMirror *m = s->mirrors; m; m = m->next) nm++;
    assert_int_equal(nm, 6);
    assert_string_equal(s->mirrors->a.name, "lhip");
    assert_string_equal(s->mirrors->b.name, "rhip");
    assert_int_equal(s->mirrors->b.loc.line, 12);
    assert_int_equal(s->mirrors->b.loc.col, 15);

    assert_int_equal(list_len_lets(prog->lets), 4);
    assert_true(eval(find_let(prog, "blocks")->value) == 4);
    assert_true(eval(find_let(prog, "drop")->value) == 0.25);
    const AstExpr *frames = find_let(prog, "frames")->value;
    assert_int_equal(frames->kind, AST_BINARY);
    assert_int_equal(frames->u.bin.op, '^');

    const AstIo *in = prog->inputs, *out = prog->outputs;
    assert_non_null(in);
    assert_null(in->next);
    assert_string_equal(in->name.name, "pose2d");
    assert_true(in->type.seq);
    assert_int_equal(in->type.kind, AST_TYPE_SKELETON);
    assert_string_equal(in->type.frames->u.ident, "frames");
    assert_string_equal(in->type.skeleton.name, "h36m");
    assert_string_equal(in->type.coords->name, "x");
    assert_true(in->type.coords->negated);
    assert_string_equal(in->type.coords->next->name, "y");
    assert_false(in->type.coords->next->negated);
    assert_null(in->type.coords->next->next);
    assert_true(out->type.seq);
    assert_null(out->type.frames);
    assert_false(out->type.invariant);

    const AstStmt *st = prog->net;
    assert_int_equal(list_len_stmts(st), 4);
    assert_int_equal(st->kind, AST_ASSIGN);
    assert_string_equal(st->u.assign.name, "h");
    const AstExpr *conv = st->u.assign.value;
    assert_int_equal(conv->kind, AST_CALL);
    assert_string_equal(conv->u.call.fn, "conv1d");
    const AstArg *a = conv->u.call.args;
    assert_null(a->key);
    assert_string_equal(a->next->next->key, "kernel");
    assert_string_equal(a->next->next->next->key, "bias");
    assert_int_equal(a->next->next->next->key_loc.line, 22);
    assert_int_equal(a->next->next->next->key_loc.col, 39);
    const AstStmt *loop = st->next->next;
    assert_int_equal(loop->kind, AST_FOR);
    assert_string_equal(loop->u.loop.var, "i");
    assert_true(eval(loop->u.loop.lo) == 1);
    assert_string_equal(loop->u.loop.hi->u.ident, "blocks");
    assert_int_equal(list_len_stmts(loop->u.loop.body), 4);
    assert_int_equal(loop->loc.line, 24);
    assert_int_equal(loop->loc.col, 3);

    assert_int_equal(list_len_settings(prog->train), 5);
    const AstSetting *opt = prog->train->next;
    assert_string_equal(opt->key.name, "optimizer");
    const AstExpr *betas = opt->value->u.call.args->next->value;
    assert_int_equal(betas->kind, AST_TUPLE);
    assert_true(eval(betas->u.tuple.items) == 0.9);
    assert_true(eval(betas->u.tuple.items->tuple_next) == 0.999);
    assert_null(betas->u.tuple.items->tuple_next->tuple_next);
    /* `augment mirror(0.5)`: the keyword `mirror` used as a function name. */
    assert_string_equal(prog->train->next->next->next->next->value->u.call.fn, "mirror");

    const AstSetting *c = prog->chirality;
    assert_int_equal(list_len_settings(c), 4);
    assert_string_equal(c->value->u.ident, "joints");
    assert_true(fabs(eval(c->next->value) - 1.0 / 3.0) < 1e-15);
    parse_done(&p);
}

static void test_invariant_output(void **state) {
    (void)state;
    Parse p;
    parse_example(&p, "action_stconv");
    assert_non_null(p.prog);
    const AstType *t = &p.prog->outputs->type;
    assert_int_equal(t->kind, AST_TYPE_CLASS);
    assert_true(t->invariant);
    assert_false(t->seq);
    assert_string_equal(t->width->u.ident, "classes");
    parse_done(&p);
}

/* Print, parse the printout, print again: the two printouts are equal, and
 * the second parse has as many statements as the first. */
static void test_round_trip(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        Parse p, q;
        parse_example(&p, examples[i]);
        assert_non_null(p.prog);
        char *first = print_to_string(p.prog);
        parse_text(&q, first);
        if (!q.prog) fail_msg("%s reprinted does not parse: %s\n%s", examples[i], q.msgs, first);
        char *second = print_to_string(q.prog);
        assert_string_equal(first, second);
        assert_int_equal(list_len_stmts(p.prog->net), list_len_stmts(q.prog->net));
        assert_int_equal(list_len_lets(p.prog->lets), list_len_lets(q.prog->lets));
        free(first);
        free(second);
        parse_done(&p);
        parse_done(&q);
    }
}

/* The canonical form of expressions: the parentheses the precedence needs
 * and no others (hand-written expectation). */
static void test_print_parentheses(void **state) {
    (void)state;
    Parse p;
    parse_text(&p, "let a = -2^2, b = (1 - 2) - 3, c = 1 - (2 - 3), d = (2^3)^2, e = 2^(3^2)\n"
                   "let f = (-2)^2, g = -(1 + 2), h = 2^-1, i = (1, 2, -3), j = ((1 * 2)) / (3 * 4)\n"
                   "let k = --1, l = 0.001, m = 80, n = 1e-05, o = f(x, key=(1 + 2) * 3)\n");
    assert_non_null(p.prog);
    char *s = print_to_string(p.prog);
    assert_string_equal(s, "let a = -2^2\n"
                           "let b = 1 - 2 - 3\n"
                           "let c = 1 - (2 - 3)\n"
                           "let d = (2^3)^2\n"
                           "let e = 2^3^2\n"
                           "let f = (-2)^2\n"
                           "let g = -(1 + 2)\n"
                           "let h = 2^-1\n"
                           "let i = (1, 2, -3)\n"
                           "let j = 1 * 2 / (3 * 4)\n"
                           "let k = -(-1)\n"
                           "let l = 0.001\n"
                           "let m = 80\n"
                           "let n = 1e-05\n"
                           "let o = f(x, key=(1 + 2) * 3)\n");
    free(s);
    parse_done(&p);
}

/* An empty train or chirality block is still a declaration: it is printed,
 * so that the printout of a file holding only one parses again (a fuzzer
 * finding: `chirality { }` alone printed as an empty file). */
static void test_print_empty_blocks(void **state) {
    (void)state;
    Parse p, q;
    parse_text(&p, "# comment\nchirality {  }\n");
    assert_non_null(p.prog);
    assert_true(p.prog->has_chirality);
    assert_false(p.prog->has_train);
    char *s = print_to_string(p.prog);
    assert_string_equal(s, "chirality {\n}\n");
    free(s);
    parse_done(&p);

    parse_text(&p, "train {}\nchirality { layout joints }\n");
    assert_non_null(p.prog);
    char *first = print_to_string(p.prog);
    assert_string_equal(first, "train {\n}\n\nchirality {\n  layout joints\n}\n");
    parse_text(&q, first);
    assert_non_null(q.prog);
    assert_true(q.prog->has_train);
    char *second = print_to_string(q.prog);
    assert_string_equal(first, second);
    free(first);
    free(second);
    parse_done(&p);
    parse_done(&q);
}

static void test_precedence(void **state) {
    (void)state;
    Parse p;
    parse_text(&p, "let a = -2^2, b = 1/3, c = 3^(1+1), d = 2^3^2, e = 1-2-3\n"
                   "let f = -2*3, g = 1+2*3, h = 2*-3, i = 8/2/2, j = -(2)^2, k = 2^-1\n");
    assert_non_null(p.prog);
    const AstExpr *a = find_let(p.prog, "a")->value;
    assert_int_equal(a->kind, AST_NEG);
    assert_int_equal(a->u.neg->kind, AST_BINARY);
    assert_int_equal(a->u.neg->u.bin.op, '^');
    assert_true(eval(a) == -4);
    const AstExpr *b = find_let(p.prog, "b")->value;
    assert_int_equal(b->kind, AST_BINARY);
    assert_int_equal(b->u.bin.op, '/');
    assert_true(eval(b) == 1.0 / 3.0);
    const AstExpr *c = find_let(p.prog, "c")->value;
    assert_int_equal(c->u.bin.op, '^');
    assert_int_equal(c->u.bin.rhs->u.bin.op, '+');
    assert_true(eval(c) == 9);
    assert_true(eval(find_let(p.prog, "d")->value) == 512); /* right-associative */
    assert_true(eval(find_let(p.prog, "e")->value) == -4);  /* left-associative */
    assert_true(eval(find_let(p.prog, "f")->value) == -6);
    assert_true(eval(find_let(p.prog, "g")->value) == 7);
    assert_true(eval(find_let(p.prog, "h")->value) == -6);
    assert_true(eval(find_let(p.prog, "i")->value) == 2);
    assert_true(eval(find_let(p.prog, "j")->value) == -4);
    assert_true(eval(find_let(p.prog, "k")->value) == 0.5);
    /* A binary node is located at its operator: the "/" of "b = 1/3" is at 1:20. */
    assert_int_equal(b->loc.line, 1);
    assert_int_equal(b->loc.col, 20);
    parse_done(&p);
}

/* Several syntax errors in one file are all reported, once each. */
static void test_several_errors(void **state) {
    (void)state;
    Parse p;
    parse_text(&p, "model m\n"
                   "input x : features(8)\n"
                   "output y features(2)\n"       /* 1: missing ':' */
                   "net {\n"
                   "  h = relu(linear(x, 16)))\n" /* 2: one ')' too many */
                   "  h = dropout(h, 0.5)\n"
                   "  y = linear(h, )\n"          /* 3: missing argument */
                   "}\n"
                   "train {\n"
                   "  batch 64\n"
                   "  epochs = 10\n"              /* 4: '=' in a setting */
                   "  loss mse(y)\n"
                   "}\n");
    assert_null(p.prog);
    assert_int_equal(p.diag.nerrors, 4);
    assert_int_equal(count_of(p.msgs, ": error: "), 4);
    assert_non_null(strstr(p.msgs, "t.net:3:10: error: syntax error, unexpected 'features', expecting ':'\n"));
    assert_non_null(strstr(p.msgs, "t.net:5:26: error: syntax error, unexpected ')'"));
    assert_non_null(strstr(p.msgs, "t.net:7:17: error: syntax error, unexpected ')', expecting an expression\n"));
    assert_non_null(strstr(p.msgs, "t.net:11:10: error: syntax error, unexpected '=', expecting an expression\n"));
    parse_done(&p);
}

/* The exact form of one syntax error: location, message, line, caret. */
static void test_error_location(void **state) {
    (void)state;
    Parse p;
    parse_text(&p, "model m\nnet {\n\th = relu(x,, y)\n}\n");
    assert_null(p.prog);
    assert_string_equal(p.msgs, "t.net:3:13: error: syntax error, unexpected ',', expecting an expression\n"
                                "\th = relu(x,, y)\n"
                                "\t           ^\n");
    parse_done(&p);
}

static void test_missing_brace_at_eof(void **state) {
    (void)state;
    Parse p;
    /* The end of the file is shown at the end of the last line. */
    parse_text(&p, "net {\n  h = x\n");
    assert_null(p.prog);
    assert_string_equal(p.msgs,
                        "t.net:2:8: error: syntax error, unexpected end of file, expecting identifier, 'for' or '}'\n"
                        "  h = x\n"
                        "       ^\n");
    parse_done(&p);
}

static void test_empty_files(void **state) {
    (void)state;
    const char *texts[] = {"", "   \n\n\t\n", "# nothing\n# but comments"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        Parse p;
        parse_text(&p, texts[i]);
        assert_null(p.prog);
        assert_int_equal(p.diag.nerrors, 1);
        assert_non_null(strstr(p.msgs, "t.net:1:1: error: empty model file\n"));
        parse_done(&p);
    }
    /* A file with declarations but no net block is the elaborator's business. */
    Parse p;
    parse_text(&p, "model m\n");
    assert_non_null(p.prog);
    assert_false(p.prog->has_net);
    parse_done(&p);
}

static void test_identifier_length(void **state) {
    (void)state;
    char text[600];
    Parse p;
    snprintf(text, sizeof text, "let %.*s = 1\n", FE_MAX_IDENT, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    parse_text(&p, text);
    assert_non_null(p.prog);
    assert_int_equal(strlen(p.prog->lets->name.name), FE_MAX_IDENT);
    parse_done(&p);

    memset(text, 'b', sizeof text);
    memcpy(text, "let ", 4);
    memcpy(text + 4 + 256, " = 1\n", 6);
    parse_text(&p, text);
    assert_null(p.prog);
    assert_int_equal(p.diag.nerrors, 1);
    assert_non_null(strstr(p.msgs, "t.net:1:5: error: identifier is too long (256 characters; at most 255)\n"));
    parse_done(&p);
}

static void test_lexical_errors(void **state) {
    (void)state;
    Parse p;
    parse_text(&p, "let a = 1.2.3, b = 12ab, c = 1e+, d = 1e999\n");
    assert_null(p.prog);
    assert_int_equal(p.diag.nerrors, 4);
    assert_non_null(strstr(p.msgs, "t.net:1:9: error: malformed number '1.2.3'\n"));
    assert_non_null(strstr(p.msgs, "t.net:1:20: error: malformed number '12ab'\n"));
    assert_non_null(strstr(p.msgs, "t.net:1:30: error: malformed number '1e+'\n"));
    assert_non_null(strstr(p.msgs, "t.net:1:39: error: number '1e999' is out of range\n"));
    parse_done(&p);

    /* `1..4` is a range, not a malformed number; exponents are numbers. */
    parse_text(&p, "net { for i in 1..4 { h = 1.5e-3 + 2E2 } }\n");
    assert_non_null(p.prog);
    const AstExpr *sum = p.prog->net->u.loop.body->u.assign.value;
    assert_true(eval(sum) == 1.5e-3 + 200);
    parse_done(&p);

    /* One error for a run of bad bytes; the tokens around them still count. */
    static const char nul_text[] = "model m\nlet a = 1 \x01\x02\x03 $$ + 2, b = \0 3\n";
    parse_text_n(&p, "t.net", nul_text, sizeof nul_text - 1);
    assert_null(p.prog);
    assert_int_equal(p.diag.nerrors, 3);
    assert_non_null(strstr(p.msgs, "t.net:2:11: error: unexpected byte 0x01\n"
                                   "let a = 1 ??? $$ + 2, b = ? 3\n"
                                   "          ^\n"));
    assert_non_null(strstr(p.msgs, "t.net:2:15: error: unexpected character '$'\n"));
    assert_non_null(strstr(p.msgs, "t.net:2:27: error: unexpected byte 0x00\n"));
    parse_done(&p);
}

/* Columns count bytes, a tab included; every kind of node has the location
 * of its first token. */
static void test_locations(void **state) {
    (void)state;
    Parse p;
    parse_text(&p, "model m\n\nnet {\n\tfor i in 1..2 {\n\t\tr = f(h, k=3)\n\t}\n}\n"
                   "input x : seq(4) features(3) invariant\n");
    assert_non_null(p.prog);
    const AstStmt *loop = p.prog->net;
    assert_int_equal(loop->loc.line, 4);
    assert_int_equal(loop->loc.col, 2);
    assert_int_equal(loop->u.loop.var_loc.col, 6);
    const AstStmt *r = loop->u.loop.body;
    assert_int_equal(r->loc.line, 5);
    assert_int_equal(r->loc.col, 3);
    const AstExpr *call = r->u.assign.value;
    assert_int_equal(call->loc.col, 7);
    assert_int_equal(call->u.call.args->value->loc.col, 9);
    assert_int_equal(call->u.call.args->next->key_loc.col, 12);
    const AstType *t = &p.prog->inputs->type;
    assert_int_equal(t->kind, AST_TYPE_FEATURES);
    assert_true(t->seq);
    assert_true(t->invariant);
    assert_int_equal(t->loc.line, 8);
    assert_int_equal(t->loc.col, 11);
    assert_true(eval(t->frames) == 4);
    assert_true(eval(t->width) == 3);
    parse_done(&p);
}

/* A second model line or block is an error that points at the first. */
static void test_duplicates(void **state) {
    (void)state;
    Parse p;
    parse_text(&p, "model a\nmodel b\nchirality { layout pairs }\nchirality { }\n");
    assert_null(p.prog);
    assert_int_equal(p.diag.nerrors, 2);
    assert_non_null(strstr(p.msgs, "t.net:2:1: error: a second 'model' line\n"));
    assert_non_null(strstr(p.msgs, "t.net:1:7: note: the model is already named 'a' here\n"));
    assert_non_null(strstr(p.msgs, "t.net:4:1: error: a second 'chirality' block\n"));
    parse_done(&p);
}

/* Garbage stops at the Diag's limit: max_errors errors, then one line. */
static void test_error_limit(void **state) {
    (void)state;
    char text[100 * 4 + 1];
    for (int i = 0; i < 100; i++) memcpy(text + 4 * i, "\x80 \n\n", 4);
    text[400] = '\0';
    Parse p;
    parse_text(&p, text);
    assert_null(p.prog);
    assert_int_equal(count_of(p.msgs, ": error: unexpected byte 0x80\n"), p.diag.max_errors);
    assert_int_equal(count_of(p.msgs, "too many errors"), 1);
    /* The scanner stops at the first error past the limit. */
    assert_int_equal(p.diag.nerrors, p.diag.max_errors + 1);
    parse_done(&p);
}

/* A `for` with a broken header: the body is still parsed, nothing cascades. */
static void test_recovery_in_loop_header(void **state) {
    (void)state;
    Parse p;
    parse_text(&p, "net {\n  for i 1..4 {\n    h = relu(h)\n  }\n  y = linear(h)\n}\nmodel m\n");
    assert_null(p.prog);
    assert_int_equal(p.diag.nerrors, 1);
    assert_non_null(strstr(p.msgs, "t.net:2:9: error: syntax error, unexpected number, expecting 'in'\n"));
    parse_done(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_parse),
        cmocka_unit_test(test_videopose3d_tree),
        cmocka_unit_test(test_invariant_output),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_print_parentheses),
        cmocka_unit_test(test_print_empty_blocks),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_several_errors),
        cmocka_unit_test(test_error_location),
        cmocka_unit_test(test_missing_brace_at_eof),
        cmocka_unit_test(test_empty_files),
        cmocka_unit_test(test_identifier_length),
        cmocka_unit_test(test_lexical_errors),
        cmocka_unit_test(test_locations),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_error_limit),
        cmocka_unit_test(test_recovery_in_loop_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
