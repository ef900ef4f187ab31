/* Tests of ir/elab.c (with the real parser): the examples elaborate to the
 * graphs their source describes (node counts and attributes counted by hand
 * from the examples), loops unroll, --set overrides lets, and semantic
 * errors come with their exact messages and locations. Also the verifier's
 * acceptance of what elaboration builds, and the printer's determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ir/ir.h"

typedef struct Result {
    Arena *arena;
    IrProgram *prog;
    char *diag;      /* everything reported, malloc'd */
    int nerrors;
} Result;

/* Parses and elaborates f; everything lives in arena a, freed by done(). */
static Result elab_file(Arena *a, const SrcFile *f, IrOverride *ov, int nov) {
    Result r = {0};
    r.arena = a;
    size_t len = 0;
    FILE *out = open_memstream(&r.diag, &len);
    Diag d;
    diag_init(&d, out);
    AstProgram *ast = fe_parse(r.arena, &d, f);
    if (ast) r.prog = ir_elaborate(r.arena, &d, ast, ov, nov);
    fclose(out);
    r.nerrors = d.nerrors;
    return r;
}

static Result elab_src(const char *src) {
    Arena *a = arena_new();
    return elab_file(a, diag_string_file(a, "t.net", src, strlen(src)), NULL, 0);
}

static Result elab_example(const char *name, IrOverride *ov, int nov) {
    const char *dir = getenv("CHIRALC_SOURCE_DIR");
    assert_non_null(dir);
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    SrcFile *f = diag_read_file(a, &d, arena_printf(a, "%s/examples/%s.net", dir, name));
    assert_non_null(f);
    return elab_file(a, f, ov, nov);
}

static void done(Result *r) {
    free(r->diag);
    arena_free(r->arena);
}

static int count_op(const IrProgram *p, IrOp op) {
    int n = 0;
    ir_foreach(p, x) if (x->op == op) n++;
    return n;
}

/* The k-th node (0-based) of kind op in program order. */
static IrNode *nth(const IrProgram *p, IrOp op, int k) {
    ir_foreach(p, x) if (x->op == op && k-- == 0) return x;
    return NULL;
}

static int count_nodes(const IrProgram *p) {
    int n = 0;
    ir_foreach(p, x) n++;
    return n;
}

/* ---- the examples -------------------------------------------------------- */

static void test_videopose3d(void **state) {
    Result r = elab_example("videopose3d", NULL, 0);
    assert_string_equal(r.diag, "");
    IrProgram *p = r.prog;
    assert_non_null(p);
    ir_verify(p, IR_STAGE_BUILT, "test");
    assert_string_equal(p->model, "videopose3d");
    /* input; conv bn relu dropout; 4 x (crop, 2 x (conv bn relu dropout), add); conv; output */
    assert_int_equal(count_nodes(p), 1 + 4 + 4 * 10 + 2);
    assert_int_equal(p->nnodes, 47);
    assert_int_equal(count_op(p, IR_CONV1D), 1 + 8 + 1);
    assert_int_equal(count_op(p, IR_CROP), 4);
    assert_int_equal(count_op(p, IR_ADD), 4);
    assert_int_equal(count_op(p, IR_ACT), 9);
    /* block i: crop 3^i and a conv of dilation 3^i; the loop variable is a constant */
    int pow3 = 1;
    for (int i = 0; i < 4; i++) {
        pow3 *= 3;
        assert_int_equal(nth(p, IR_CROP, i)->a.crop, pow3);
        IrNode *c = nth(p, IR_CONV1D, 1 + 2 * i);
        assert_int_equal(c->a.dilation, pow3);
        assert_int_equal(c->a.kernel, 3);
        assert_int_equal(c->a.out, 1024);
        assert_false(c->a.bias);
        assert_int_equal(nth(p, IR_CONV1D, 2 + 2 * i)->a.kernel, 1);
    }
    /* the residual: add(h, r) with r the crop of the block's input */
    IrNode *add = nth(p, IR_ADD, 0);
    assert_ptr_equal(add->in[1], nth(p, IR_CROP, 0));
    assert_int_equal(add->in[0]->op, IR_DROPOUT);
    /* the last conv: width from the output, default bias */
    IrNode *last = nth(p, IR_CONV1D, 9);
    assert_int_equal(last->a.out, 0);
    assert_true(last->a.bias);
    assert_int_equal(last->a.dilation, 1);
    assert_int_equal(p->last->op, IR_OUTPUT);
    assert_ptr_equal(p->last->in[0], last);
    assert_ptr_equal(p->outputs[0]->node, p->last);
    /* activations as written */
    IrNode *act = nth(p, IR_ACT, 0);
    assert_int_equal(act->a.act, IR_ACT_RELU);
    assert_int_equal(act->a.act_neg, IR_ACT_RELU);
    assert_int_equal(act->a.act_written, IR_ACT_RELU);
    assert_true(nth(p, IR_DROPOUT, 0)->a.p == 0.25);
    assert_true(nth(p, IR_BATCHNORM, 0)->a.eps == 1e-5);
    assert_true(nth(p, IR_BATCHNORM, 0)->a.momentum == 0.1);
    /* declarations: 17 joints x 2 / x 3, 243 = 3^(4+1) frames */
    assert_int_equal(p->ninputs, 1);
    assert_int_equal(p->noutputs, 1);
    IrDecl *in = p->inputs[0];
    assert_string_equal(in->name, "pose2d");
    assert_true(in->seq);
    assert_int_equal(in->frames, 243);
    assert_int_equal(in->feat, 34);
    assert_int_equal(in->chi.n, 34);
    assert_true(in->coord_negated[0]);
    assert_false(in->coord_negated[1]);
    assert_int_equal(p->outputs[0]->feat, 51);
    assert_int_equal(p->outputs[0]->frames, 0);
    /* the skeleton: lhip (4) <-> rhip (1), hip a centre joint, 6 pairs */
    assert_int_equal(p->nskeletons, 1);
    IrSkeleton *s = p->skeletons[0];
    assert_int_equal(s->njoints, 17);
    assert_int_equal(s->partner[4], 1);
    assert_int_equal(s->partner[1], 4);
    assert_int_equal(s->partner[0], 0);
    int pairs = 0;
    for (int j = 0; j < 17; j++) pairs += s->partner[j] > j;
    assert_int_equal(pairs, 6);
    /* the x coordinate of lhip is the negated x of rhip */
    assert_int_equal(in->chi.partner[4 * 2], 1 * 2);
    assert_int_equal(in->chi.sign[4 * 2], -1);
    assert_int_equal(in->chi.sign[4 * 2 + 1], 1);
    /* settings */
    assert_int_equal(p->cfg.layout, IR_LAYOUT_JOINTS);
    assert_true(p->cfg.neg_ratio == 1.0 / 3.0);
    assert_int_equal(p->train.loss, IR_LOSS_MPJPE);
    assert_ptr_equal(p->train.loss_output, p->outputs[0]);
    assert_int_equal(p->train.optimizer, IR_OPTIM_ADAM);
    assert_true(p->train.lr == 0.001 && p->train.beta1 == 0.9 && p->train.beta2 == 0.999);
    assert_true(p->train.decay == 0.95);
    assert_int_equal(p->train.batch, 1024);
    assert_int_equal(p->train.epochs, 80);
    assert_true(p->train.mirror == 0.5);
    done(&r);
}

static void test_martinez(void **state) {
    Result r = elab_example("martinez", NULL, 0);
    assert_string_equal(r.diag, "");
    IrProgram *p = r.prog;
    assert_non_null(p);
    ir_verify(p, IR_STAGE_BUILT, "test");
    /* input; linear bn relu dropout; 2 x (2 x 4 + add); linear; output */
    assert_int_equal(count_nodes(p), 1 + 4 + 2 * 9 + 2);
    assert_int_equal(count_op(p, IR_LINEAR), 6);
    assert_false(p->inputs[0]->seq);
    assert_int_equal(p->inputs[0]->feat, 34);
    /* r = h aliases the block's input: the add reads the dropout before the block */
    IrNode *add0 = nth(p, IR_ADD, 0);
    assert_ptr_equal(add0->in[1], nth(p, IR_DROPOUT, 0));
    assert_ptr_equal(nth(p, IR_ADD, 1)->in[1], add0);
    assert_true(nth(p, IR_DROPOUT, 4)->a.p == 0.5);
    assert_int_equal(p->cfg.activations, IR_ACTS_PAPER);
    assert_int_equal(p->train.loss, IR_LOSS_MSE);
    assert_true(p->train.decay == 0.96);
    done(&r);
}

static void test_forecast_lstm(void **state) {
    Result r = elab_example("forecast_lstm", NULL, 0);
    assert_string_equal(r.diag, "");
    IrProgram *p = r.prog;
    assert_non_null(p);
    ir_verify(p, IR_STAGE_BUILT, "test");
    /* input, lstm, last, repeat, lstm, linear, add, output */
    assert_int_equal(count_nodes(p), 8);
    IrNode *enc = nth(p, IR_LSTM, 0), *dec = nth(p, IR_LSTM, 1);
    assert_int_equal(enc->nin, 1);
    assert_int_equal(dec->nin, 2);
    assert_ptr_equal(dec->in[1], enc);
    assert_int_equal(dec->in[0]->op, IR_REPEAT);
    assert_int_equal(dec->in[0]->a.frames, 10);
    assert_int_equal(dec->in[0]->in[0]->op, IR_LAST);
    assert_int_equal(enc->a.out, 1040);
    assert_int_equal(enc->a.layers, 2);
    assert_true(enc->a.p == 0.1);
    assert_string_equal(enc->name, "enc");
    assert_string_equal(dec->name, "dec");
    IrNode *add = nth(p, IR_ADD, 0);
    assert_int_equal(add->in[0]->op, IR_LINEAR);
    assert_int_equal(add->in[0]->a.out, 0);
    assert_ptr_equal(add->in[1], dec->in[0]);
    assert_int_equal(p->skeletons[0]->njoints, 13);
    assert_int_equal(p->inputs[0]->frames, 10);
    assert_int_equal(p->outputs[0]->frames, 10);
    assert_int_equal(p->outputs[0]->feat, 26);
    assert_int_equal(p->train.loss, IR_LOSS_L1);
    done(&r);
}

static void test_action_stconv(void **state) {
    Result r = elab_example("action_stconv", NULL, 0);
    assert_string_equal(r.diag, "");
    IrProgram *p = r.prog;
    assert_non_null(p);
    ir_verify(p, IR_STAGE_BUILT, "test");
    /* input; conv bn relu; 4 x 5; invariant; 6 x 5; meanpool, linear, output */
    assert_int_equal(count_nodes(p), 1 + 3 + 20 + 1 + 30 + 3);
    assert_int_equal(count_op(p, IR_CONV1D), 11);
    assert_int_equal(nth(p, IR_CONV1D, 5)->a.padding, 1);
    IrNode *inv = nth(p, IR_INVARIANT, 0);
    assert_int_equal(inv->a.out, 256);
    assert_int_equal(inv->in[0]->op, IR_ADD);
    IrDecl *out = p->outputs[0];
    assert_null(out->skeleton);
    assert_int_equal(out->feat, 8);
    assert_true(out->invariant);
    assert_null(out->chi.partner);
    assert_int_equal(nth(p, IR_LINEAR, 0)->a.out, 8);
    assert_int_equal(p->train.optimizer, IR_OPTIM_SGD);
    assert_true(p->train.momentum == 0.9 && p->train.lr == 0.01);
    assert_int_equal(p->train.loss, IR_LOSS_CROSS_ENTROPY);
    assert_int_equal(p->train.batch, 64);
    assert_int_equal(p->inputs[0]->frames, 32);
    done(&r);
}

/* --set blocks=2: two blocks, and frames = 3^(2+1) follows the override. */
static void test_override(void **state) {
    IrOverride ov[2] = {{"blocks", 2, false}, {"nosuch", 1, false}};
    Result r = elab_example("videopose3d", ov, 2);
    assert_string_equal(r.diag, "");
    assert_non_null(r.prog);
    assert_true(ov[0].used);
    assert_false(ov[1].used);
    assert_int_equal(count_nodes(r.prog), 1 + 4 + 2 * 10 + 2);
    assert_int_equal(r.prog->inputs[0]->frames, 27);
    done(&r);
}

/* ---- small programs ------------------------------------------------------- */

#define HEAD                          \
    "model m\n"                       \
    "skeleton s {\n"                  \
    "  joints c l r\n"                \
    "  mirror l:r\n"                  \
    "}\n"                             \
    "input  x : seq(9) s (x!, y)\n"   \
    "output y : seq s (x!, y)\n"
/* HEAD is 7 lines: the net block starts on line 8. */

static void test_loop_and_constants(void **state) {
    Result r = elab_src(HEAD "let n = 2 * 3 - 4, k = n ^ 2 + 1\n"
                             "net {\n"
                             "  h = x\n"
                             "  for i in n..k - 1 {\n"     /* 2..4 */
                             "    for j in 1..i {\n"       /* 2 + 3 + 4 */
                             "      h = tanh(h)\n"
                             "    }\n"
                             "  }\n"
                             "  y = conv1d(h, kernel=k)\n"
                             "}\n");
    assert_string_equal(r.diag, "");
    assert_non_null(r.prog);
    assert_int_equal(count_op(r.prog, IR_ACT), 9);
    assert_int_equal(nth(r.prog, IR_CONV1D, 0)->a.kernel, 5);
    assert_int_equal(nth(r.prog, IR_ACT, 0)->a.act, IR_ACT_TANH);
    done(&r);
}

static void test_options(void **state) {
    Result r = elab_src(HEAD "net {\n"
                             "  a = conv1d(x, 6, 3, dilation=2, stride=2, padding=1, bias=false, equivariant=false)\n"
                             "  b = leaky_relu(a, slope=0.2, force=true)\n"
                             "  c = batchnorm(b, eps=0.001, momentum=0.5)\n"
                             "  d = concat(c, c, x)\n"
                             "  y = linear(d)\n"
                             "}\n");
    assert_string_equal(r.diag, "");
    assert_non_null(r.prog);
    IrNode *a = nth(r.prog, IR_CONV1D, 0);
    assert_int_equal(a->a.out, 6);
    assert_int_equal(a->a.kernel, 3);
    assert_int_equal(a->a.dilation, 2);
    assert_int_equal(a->a.stride, 2);
    assert_int_equal(a->a.padding, 1);
    assert_false(a->a.bias);
    assert_true(a->a.unconstrained);
    IrNode *b = nth(r.prog, IR_ACT, 0);
    assert_int_equal(b->a.act, IR_ACT_LEAKY_RELU);
    assert_true(b->a.slope == 0.2);
    assert_true(b->a.force);
    IrNode *c = nth(r.prog, IR_BATCHNORM, 0);
    assert_true(c->a.eps == 0.001 && c->a.momentum == 0.5);
    IrNode *d = nth(r.prog, IR_CONCAT, 0);
    assert_int_equal(d->nin, 3);
    assert_ptr_equal(d->in[2], r.prog->inputs[0]->node);
    assert_false(nth(r.prog, IR_LINEAR, 0)->a.unconstrained);
    done(&r);
}

/* Each case: a net body (after HEAD) and the whole expected first diagnostic line. */
typedef struct ErrCase {
    const char *src;
    const char *first;
} ErrCase;

static const ErrCase err_cases[] = {
    {HEAD "net {\n  y = conv1d(q, kernel=1)\n}\n", "t.net:9:14: error: unknown name 'q'"},
    {HEAD "net {\n  y = conv1d(x, kernal=1)\n}\n", "t.net:9:17: error: unknown option 'kernal' for conv1d"},
    {HEAD "net {\n  y = conv1d(x, kernel=1, kernel=2)\n}\n",
     "t.net:9:27: error: duplicate option 'kernel' for conv1d"},
    {HEAD "net {\n  y = conv1d(x)\n}\n", "t.net:9:7: error: missing argument 'kernel' of conv1d"},
    {HEAD "net {\n  y = conv1d(x, 0.5, kernel=1)\n}\n", "t.net:9:17: error: expected an integer, got 0.5"},
    {HEAD "net {\n  y = conv1d(x, kernel=0)\n}\n", "t.net:9:17: error: kernel must be at least 1, got 0"},
    {HEAD "net {\n  y = conv1d(dropout(x, 1.5), kernel=1)\n}\n",
     "t.net:9:25: error: the dropout probability must be in [0, 1), got 1.5"},
    {HEAD "net {\n  y = conv1d(x, kernel=1) + 2\n}\n", "t.net:9:27: error: cannot add a tensor and a constant"},
    {HEAD "net {\n  for i in 1..x {\n  }\n  y = conv1d(x, kernel=1)\n}\n",
     "t.net:9:15: error: loop bound is not a constant: 'x' is a tensor"},
    {HEAD "net {\n}\n", "t.net:7:8: error: output 'y' is never assigned"},
    {HEAD "net {\n  y = x\n  y = x\n}\n", "t.net:10:3: error: output 'y' is assigned twice"},
    {HEAD "let a = 1 / (2 - 2)\nnet {\n  y = x\n}\n", "t.net:8:11: error: division by zero"},
    {HEAD "net {\n  y = x\n}\ntrain {\n  lrate 1\n}\n", "t.net:12:3: error: unknown train setting 'lrate'"},
    {HEAD "net {\n  y = x\n}\ntrain {\n  loss mse(x)\n}\n",
     "t.net:12:12: error: loss target 'x' is not a declared output"},
    {HEAD "net {\n  y = x\n}\nchirality { layout joint }\n", "t.net:11:20: error: unknown layout 'joint'"},
    {HEAD "net {\n  y = x\n}\nchirality { neg_ratio 1 }\n",
     "t.net:11:23: error: neg_ratio must be in (0, 1), got 1"},
    {HEAD "net {\n  s = relu(x)\n  y = lstm(x, 4, init=s)\n}\n",
     "t.net:10:23: error: init= must name an lstm result: 's' is a relu"},
    {"model m\nskeleton s {\n  joints c l r\n  mirror l:q\n}\n", "t.net:4:12: error: unknown joint 'q' in skeleton 's'"},
    {"model m\nskeleton s {\n  joints c l r\n  mirror l:r r:c\n}\n",
     "t.net:4:14: error: joint 'r' is already mirrored with 'l'"},
    {"model m\nskeleton s {\n  joints c l r c\n}\n", "t.net:3:16: error: duplicate joint 'c' in skeleton 's'"},
    {"net {\n}\n", "t.net:1:1: error: missing 'model' declaration"},
    {HEAD, "t.net:1:1: error: missing 'net' block"},
    {HEAD "input z : seq(9) t (x)\nnet {\n  y = x\n}\n", "t.net:8:18: error: unknown skeleton 't'"},
};

static void test_errors(void **state) {
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        Result r = elab_src(err_cases[i].src);
        if (r.prog || !r.diag || strncmp(r.diag, err_cases[i].first, strlen(err_cases[i].first)) != 0 ||
            r.diag[strlen(err_cases[i].first)] != '\n')
            fail_msg("case %zu: expected\n%s\ngot\n%s", i, err_cases[i].first, r.diag ? r.diag : "(null)");
        done(&r);
    }
}

/* Errors are collected: three independent mistakes, three errors. */
static void test_many_errors(void **state) {
    Result r = elab_src(HEAD "let a = b\n"
                             "net {\n"
                             "  h = relu(q)\n"
                             "  y = conv1d(x, kernal=1)\n"
                             "}\n");
    assert_null(r.prog);
    assert_int_equal(r.nerrors, 3);
    assert_non_null(strstr(r.diag, "unknown name 'b'"));
    assert_non_null(strstr(r.diag, "unknown name 'q'"));
    assert_non_null(strstr(r.diag, "unknown option 'kernal'"));
    assert_non_null(strstr(r.diag, "note: the options of conv1d are: out, kernel, dilation, stride, padding, bias, equivariant"));
    done(&r);
}

/* A mistake inside a loop is reported once, not once per iteration. */
static void test_loop_error_once(void **state) {
    Result r = elab_src(HEAD "net {\n  h = x\n  for i in 1..5 {\n    h = relu(q)\n  }\n  y = x\n}\n");
    assert_null(r.prog);
    assert_int_equal(r.nerrors, 1);
    done(&r);
}

/* The dump is deterministic and shows what the source says. */
static void test_print(void **state) {
    Result r = elab_src(HEAD "net {\n  h = conv1d(x, 8, kernel=3, dilation=2, bias=false)\n  y = conv1d(relu(h), kernel=1)\n}\n");
    assert_non_null(r.prog);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    ir_print(out, r.prog);
    fclose(out);
    assert_non_null(strstr(buf, "model m\n"));
    assert_non_null(strstr(buf, "  mirror l:r\n"));
    assert_non_null(strstr(buf, "%0 x = input\n"));
    assert_non_null(strstr(buf, "%1 h = conv1d %0 out=8 k=3 d=2 nobias\n"));
    assert_non_null(strstr(buf, "%2 = act %1 fn=relu\n"));
    assert_non_null(strstr(buf, "%3 = conv1d %2 out=from-output k=1\n"));
    assert_non_null(strstr(buf, "%4 y = output %3\n"));
    assert_null(strstr(buf, "0x"));
    free(buf);
    buf = NULL;
    out = open_memstream(&buf, &len);
    ir_write_dot(out, r.prog);
    fclose(out);
    assert_non_null(strstr(buf, "digraph"));
    assert_non_null(strstr(buf, "n1 -> n2;"));
    free(buf);
    done(&r);
}

/* The verifier accepts what elaboration builds and aborts, naming the pass,
 * on each kind of broken invariant. */
typedef void (*Breaker)(IrProgram *p);
static void break_order(IrProgram *p) { p->last->in[0] = p->last; }       /* reads itself */
static void break_arity(IrProgram *p) { p->last->nin = 0; }
static void break_ids(IrProgram *p) { p->first->next->id = 7; }
static void break_links(IrProgram *p) { p->last->prev = p->first; }
static void break_shape(IrProgram *p) {
    ir_foreach(p, n) { n->shape.time = 9; n->shape.feat = 6; n->shape.feat_written = 6; }
    p->last->in[0]->a.kernel = 3; /* a kernel-3 conv cannot keep 9 frames */
}

static void expect_verifier_abort(Breaker brk, IrStage stage, const char *what) {
    Result r = elab_src(HEAD "net {\n  h = conv1d(x, 6, kernel=1)\n  y = conv1d(h, kernel=1)\n}\n");
    assert_non_null(r.prog);
    ir_verify(r.prog, IR_STAGE_BUILT, "test");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        brk(r.prog);
        ir_verify(r.prog, stage, "breaker");
        _exit(0);
    }
    close(fds[1]);
    char buf[1024] = {0};
    ssize_t got = 0, k;
    while ((k = read(fds[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += k;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status) || !strstr(buf, "IR verifier after pass 'breaker'") || !strstr(buf, what))
        fail_msg("%s: status %d, stderr: %s", what, status, buf);
    done(&r);
}

static void test_verifier(void **state) {
    expect_verifier_abort(break_order, IR_STAGE_BUILT, "not a node defined before it");
    expect_verifier_abort(break_arity, IR_STAGE_BUILT, "0 inputs, expected 1 to 1");
    expect_verifier_abort(break_ids, IR_STAGE_BUILT, "ids must be 0..");
    expect_verifier_abort(break_links, IR_STAGE_BUILT, "prev does not point");
    expect_verifier_abort(break_shape, IR_STAGE_SHAPED, "the convolution of 9 frames gives 7");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_videopose3d),    cmocka_unit_test(test_martinez),
        cmocka_unit_test(test_forecast_lstm),  cmocka_unit_test(test_action_stconv),
        cmocka_unit_test(test_override),       cmocka_unit_test(test_loop_and_constants),
        cmocka_unit_test(test_options),        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_many_errors),    cmocka_unit_test(test_loop_error_once),
        cmocka_unit_test(test_print),          cmocka_unit_test(test_verifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
