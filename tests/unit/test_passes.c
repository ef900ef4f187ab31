/* Tests of passes/: shapes, chirality types, legalisation, invariance
 * insertion and counting, on programs built node by node (so that they depend
 * on the passes alone, not on the parser or the elaborator). Every expected
 * count is a hand count, written out next to the assertion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "passes/passes.h"

static const char *h36m_joints[17] = {"hip", "rhip", "rknee", "rfoot", "lhip", "lknee",
                                      "lfoot", "spine", "thorax", "neck", "head", "lshoulder",
                                      "lelbow", "lwrist", "rshoulder", "relbow", "rwrist"};
static int h36m_partner[17] = {0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13};
static const IrSkeleton h36m = {.name = "h36m", .njoints = 17, .joints = h36m_joints,
                                .partner = h36m_partner};
/* Penn Action's 13 joints (examples/forecast_lstm.net): head, then 6 pairs. */
static const char *penn_joints[13] = {"head", "lshoulder", "rshoulder", "lelbow", "relbow",
                                      "lwrist", "rwrist", "lhip", "rhip", "lknee", "rknee",
                                      "lfoot", "rfoot"};
static int penn_partner[13] = {0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11};
static const IrSkeleton penn13 = {.name = "penn13", .njoints = 13, .joints = penn_joints,
                                  .partner = penn_partner};

static const bool XY[2] = {true, false};    /* (x!, y) */
static const bool YX[2] = {false, true};    /* (x, y!) */
static const bool XYZ[3] = {true, false, false};

/* A program under construction, its diagnostics captured in a string. */
typedef struct Fix {
    Arena *a;
    Diag d;
    FILE *out;
    char *buf;
    size_t len;
    IrProgram *p;
    SrcFile *file;
    int line;
} Fix;

static Fix *fix_new(void) {
    Fix *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->out = open_memstream(&f->buf, &f->len);
    diag_init(&f->d, f->out);
    f->p = ir_program_new(f->a, &f->d);
    f->p->inputs = arena_new_array(f->a, IrDecl *, 8);
    f->p->outputs = arena_new_array(f->a, IrDecl *, 8);
    char text[2048] = "";
    for (int i = 1; i <= 60; i++) {
        char l[32];
        snprintf(l, sizeof l, "line%d\n", i);
        strcat(text, l);
    }
    f->file = diag_string_file(f->a, "t.net", text, strlen(text));
    return f;
}

static const char *fix_diags(Fix *f) {
    fflush(f->out);
    return f->buf ? f->buf : "";
}

static void fix_free(Fix *f) {
    fclose(f->out);
    free(f->buf);
    arena_free(f->a);
    free(f);
}

/* Each node on its own source line, so that diagnostics can be told apart. */
static IrNode *node(Fix *f, IrOp op, IrNode *x) {
    IrNode *n = ir_node_new(f->p, op, (SrcLoc){f->file, ++f->line, 1});
    if (x) ir_add_input(n, x);
    return n;
}

/* A declaration: a skeleton type (neg != NULL) or features(width). */
static IrDecl *decl(Fix *f, bool output, const char *name, int frames, const IrSkeleton *s,
                    int ncoords, const bool *neg, int width) {
    IrDecl *d = arena_alloc(f->a, sizeof *d);
    d->name = name;
    d->loc = (SrcLoc){f->file, ++f->line, 1};
    d->seq = frames != 0;
    d->frames = frames > 0 ? frames : 0;
    if (neg) {
        d->skeleton = s;
        d->ncoords = ncoords;
        d->coord_negated = (bool *)neg;
        d->chi = ir_chi_skeleton(f->a, s, ncoords, neg);
        d->feat = s->njoints * ncoords;
    } else {
        d->feat = width;
        d->chi = ir_chi_trivial(width);
        d->invariant = true;
    }
    IrNode *n;
    if (output) {
        n = ir_node_new(f->p, IR_OUTPUT, d->loc);
        n->a.io = f->p->noutputs;
        f->p->outputs[f->p->noutputs++] = d;
    } else {
        n = ir_node_new(f->p, IR_INPUT, d->loc);
        n->a.io = f->p->ninputs;
        f->p->inputs[f->p->ninputs++] = d;
    }
    d->node = n;
    return d;
}

static IrNode *input(Fix *f, const char *name, int frames, const IrSkeleton *s, int nc,
                     const bool *neg, int width) {
    return decl(f, false, name, frames, s, nc, neg, width)->node;
}

/* The output node is appended last: call it after building the net. */
static IrNode *output(Fix *f, const char *name, int frames, const IrSkeleton *s, int nc,
                      const bool *neg, int width, IrNode *x) {
    IrNode *n = decl(f, true, name, frames, s, nc, neg, width)->node;
    ir_add_input(n, x);
    return n;
}

static IrNode *conv(Fix *f, IrNode *x, int out, int k, int dil, bool bias) {
    IrNode *n = node(f, IR_CONV1D, x);
    n->a.out = out, n->a.kernel = k, n->a.dilation = dil, n->a.stride = 1, n->a.bias = bias;
    return n;
}

static IrNode *linear(Fix *f, IrNode *x, int out) {
    IrNode *n = node(f, IR_LINEAR, x);
    n->a.out = out, n->a.bias = true;
    return n;
}

static IrNode *act(Fix *f, IrNode *x, IrAct fn) {
    IrNode *n = node(f, IR_ACT, x);
    n->a.act = n->a.act_neg = n->a.act_written = fn;
    return n;
}

static IrNode *binary(Fix *f, IrOp op, IrNode *x, IrNode *y) {
    IrNode *n = node(f, op, x);
    ir_add_input(n, y);
    return n;
}

static IrNode *bn_relu_drop(Fix *f, IrNode *x) {
    IrNode *n = node(f, IR_BATCHNORM, x);
    n = act(f, n, IR_ACT_RELU);
    n = node(f, IR_DROPOUT, n);
    n->a.p = 0.25;
    return n;
}

/* Runs the passes in order, verifying between them, as the pipeline does. */
static bool run_passes(Fix *f) {
    ir_renumber(f->p);
    ir_verify(f->p, IR_STAGE_BUILT, "test");
    PipelineOpts o = {0};
    bool ok = pass_pipeline(f->p, &o);
    fflush(f->out);
    return ok;
}

/* VideoPose3D, 243 frames, 4 blocks (examples/videopose3d.net). Returns the
 * 1x1 convolution of the first block in *tap. */
static Fix *videopose(bool baseline, IrNode **tap) {
    Fix *f = fix_new();
    f->p->cfg.baseline = baseline;
    IrNode *x = input(f, "pose2d", 243, &h36m, 2, XY, 0);
    IrNode *h = bn_relu_drop(f, conv(f, x, 1024, 3, 1, false));
    int dil = 1;
    for (int i = 1; i <= 4; i++) {
        dil *= 3;
        IrNode *r = node(f, IR_CROP, h);
        r->a.crop = dil;
        h = bn_relu_drop(f, conv(f, h, 1024, 3, dil, false));
        IrNode *c1 = conv(f, h, 1024, 1, 1, false);
        if (i == 1 && tap) *tap = c1;
        h = bn_relu_drop(f, c1);
        h = binary(f, IR_ADD, h, r);
    }
    IrNode *y = conv(f, h, 0, 1, 1, true); /* width from the output */
    output(f, "pose3d", -1, &h36m, 3, XYZ, 0, y);
    return f;
}

static void test_videopose_counts(void **state) {
    (void)state;
    IrNode *tap = NULL;
    Fix *f = videopose(false, &tap);
    assert_true(run_passes(f));
    PassTotals t = pass_totals(f->p);
    /* Written, PyTorch's count:
     *   expanding conv 34*1024*3 = 104,448, its BN 2*1024 = 2,048;
     *   per block 1024*1024*3 + 1024*1024 + 2 BN of 2,048 = 4,198,400, x4 = 16,793,600;
     *   final conv 1024*51 + 51 = 52,275.  Sum 16,952,371. */
    assert_int_equal(t.total[IR_WRITTEN].params, 16952371LL);
    /* Written MACs: frames 241 after the first conv, then 235, 217, 163, 1. */
    long long T[4] = {235, 217, 163, 1};
    long long macs = 34LL * 1024 * 3 * 241 + 51LL * 1024 * 1;
    for (int i = 0; i < 4; i++) macs += (1024LL * 1024 * 3 + 1024LL * 1024) * T[i];
    assert_int_equal(t.total[IR_WRITTEN].macs, macs);
    /* The hidden 1x1 conv: 1020 = 17 x 60, d_even 560, d_odd 460, no bias. */
    assert_non_null(tap);
    assert_int_equal(tap->shape.feat, 1020);
    assert_int_equal(tap->shape.feat_written, 1024);
    assert_int_equal(tap->count[IR_FOLDED].params, 560LL * 560 + 460LL * 460);
    assert_int_equal(tap->count[IR_FOLDED].params, 525200);
    assert_int_equal(tap->count[IR_FOLDED].macs, 525200LL * 235);
    /* paper: the block from the 120 negated pairs to the 200 kept centre
     * outputs held at zero; its MACs 1020 * (360 pairs + 300 centre) */
    assert_int_equal(tap->count[IR_PAPER].params, 525200 - 200 * 120);
    assert_int_equal(tap->count[IR_PAPER].macs, 1020LL * 660 * 235);
    assert_int_equal(tap->count[IR_WRITTEN].params, 1024 * 1024);
    /* The net halves: at most 0.52 of the written network, params and MACs. */
    assert_true((double)t.total[IR_FOLDED].params <= 0.52 * (double)t.total[IR_WRITTEN].params);
    assert_true((double)t.total[IR_FOLDED].macs <= 0.52 * (double)t.total[IR_WRITTEN].macs);
    assert_true(t.total[IR_PAPER].params < t.total[IR_FOLDED].params);
    /* The last conv took the output's type and width, 51 = 17 x 3. */
    IrNode *last = f->p->last->in[0];
    assert_int_equal(last->op, IR_CONV1D);
    assert_int_equal(last->shape.feat, 51);
    assert_string_equal(last->chi.desc, "h36m(x!,y,z)");
    assert_int_equal(f->p->last->shape.time, 1);
    /* The rounding is noted once per layer (3 layers written, 9 nodes). */
    const char *out = fix_diags(f);
    const char *msg = "note: width 1024 rounded down to 1020: a multiple of the 17 joints of skeleton 'h36m'";
    int notes = 0;
    for (const char *s = strstr(out, msg); s; s = strstr(s + 1, msg)) notes++;
    assert_int_equal(notes, 9);
    assert_string_equal(tap->note, msg + strlen("note: "));
    assert_string_equal(tap->chi.desc, "joints h36m 17x60 neg 20");
    /* the count table shows the totals with separators */
    char *tbuf = NULL;
    size_t tlen = 0;
    FILE *tf = open_memstream(&tbuf, &tlen);
    pass_print_counts(tf, f->p);
    fclose(tf);
    assert_non_null(strstr(tbuf, "16,952,371"));
    assert_non_null(strstr(tbuf, "folded / written"));
    assert_non_null(strstr(tbuf, "t.net:"));
    free(tbuf);
    fix_free(f);
}

static void test_videopose_baseline(void **state) {
    (void)state;
    Fix *f = videopose(true, NULL);
    assert_true(run_passes(f));
    PassTotals t = pass_totals(f->p);
    assert_int_equal(t.total[IR_WRITTEN].params, 16952371LL);
    /* every type trivial: folding changes nothing, nothing is rounded */
    assert_int_equal(t.total[IR_FOLDED].params, t.total[IR_WRITTEN].params);
    assert_int_equal(t.total[IR_FOLDED].macs, t.total[IR_WRITTEN].macs);
    ir_foreach(f->p, n) assert_true(ir_chi_is_trivial(&n->chi));
    assert_null(strstr(fix_diags(f), "rounded"));
    fix_free(f);
}

/* One lstm layer over penn13 (x!, y), hidden 1040 = 13 x 80, 27 of 80 negated. */
static void test_lstm_counts(void **state) {
    (void)state;
    Fix *f = fix_new();
    IrNode *x = input(f, "observed", 10, &penn13, 2, XY, 0);
    IrNode *l = node(f, IR_LSTM, x);
    l->a.out = 1040, l->a.layers = 2;
    IrNode *y = linear(f, l, 0);
    output(f, "predicted", 10, &penn13, 2, XY, 0, y);
    assert_true(run_passes(f));
    assert_string_equal(l->chi.desc, "joints penn13 13x80 neg 27");
    /* written: per layer 4H(in + H) + 8H:
     *   4*1040*(26 + 1040) + 8*1040 = 4,442,880; 4*1040*2080 + 8*1040 = 8,661,120 */
    assert_int_equal(l->count[IR_WRITTEN].params, 4442880LL + 8661120LL);
    assert_int_equal(l->count[IR_WRITTEN].macs, (4LL * 1040 * 1066 + 4LL * 1040 * 2080) * 10);
    /* folded: hidden H: 480 pairs, centre 53 kept + 27 negated: d_even 533, d_odd 507;
     * gates G (all +1): d_even 560, d_odd 480; input: d_even 13, d_odd 13.
     * layer 0: 3 x (560*13 + 480*13 + 560*533 + 480*507 + 560)
     *          + (533*13 + 507*13 + 533*533 + 507*507 + 533) = 1,667,760 + 555,191
     * layer 1: 3 x (2*(560*533 + 480*507) + 560) + (2*(533^2 + 507^2) + 533)
     *          = 3,252,720 + 1,082,809 */
    assert_int_equal(l->count[IR_FOLDED].params, 1667760LL + 555191LL + 3252720LL + 1082809LL);
    fix_free(f);
}

static void test_gru_written(void **state) {
    (void)state;
    Fix *f = fix_new();
    IrNode *x = input(f, "x", 5, &h36m, 2, XY, 0);
    IrNode *g = node(f, IR_GRU, x);
    g->a.out = 68, g->a.layers = 1;
    IrNode *y = linear(f, node(f, IR_LAST, g), 0);
    output(f, "y", 0, &h36m, 2, XY, 0, y);
    assert_true(run_passes(f));
    /* nn.GRU: 3H(in + H) + 6H = 3*68*(34 + 68) + 6*68 */
    assert_int_equal(g->count[IR_WRITTEN].params, 3 * 68 * 102 + 6 * 68);
    /* 68 = 17 x 4, 1 of 4 negated: H pairs 24 (6 neg), centre 15 kept + 5 neg:
     * d_even 39, d_odd 29; gates: d_even 44, d_odd 24; input 17/17.
     * r, z: 44*17 + 24*17 + 44*39 + 24*29 + 44 = 748+408+1716+696+44 = 3,612 each
     * n: 39*17 + 29*17 + 39*39 + 29*29 + 2*39 = 663+493+1521+841+78 = 3,596 */
    assert_int_equal(g->count[IR_FOLDED].params, 2 * 3612 + 3596);
    fix_free(f);
}

static void test_shape_errors(void **state) {
    (void)state;
    struct {
        int which;
        const char *msg;
    } cases[] = {
        {0, "t.net:2:1: error: conv1d output would have 0 frames: input has 5 frames, kernel 3, dilation 3\n"},
        {1, "t.net:2:1: error: crop of 10 frames from each end leaves none of 15\n"},
        {2, "error: cannot add tensors of different shapes: [241 x 1024] and [243 x 1024]\n"},
        {3, "error: output 'pose3d' is declared with 51 features, the net produces 34\n"},
        {4, "t.net:2:1: error: meanpool needs a tensor with a time axis, but its input [34] has none\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Fix *f = fix_new();
        switch (cases[i].which) {
        case 0: {
            IrNode *x = input(f, "x", 5, &h36m, 2, XY, 0);
            output(f, "y", -1, &h36m, 2, XY, 0, conv(f, x, 0, 3, 3, true));
            break;
        }
        case 1: {
            IrNode *x = input(f, "x", 15, &h36m, 2, XY, 0);
            IrNode *c = node(f, IR_CROP, x);
            c->a.crop = 10;
            output(f, "y", -1, &h36m, 2, XY, 0, c);
            break;
        }
        case 2: {
            IrNode *x = input(f, "x", 243, NULL, 0, NULL, 1024);
            IrNode *c = conv(f, x, 1024, 3, 1, true);
            output(f, "y", -1, NULL, 0, NULL, 1024, binary(f, IR_ADD, c, x));
            break;
        }
        case 3: {
            IrNode *x = input(f, "x", 0, &h36m, 2, XY, 0);
            output(f, "pose3d", 0, &h36m, 3, XYZ, 0, linear(f, x, 34));
            break;
        }
        case 4: {
            IrNode *x = input(f, "x", 0, &h36m, 2, XY, 0);
            output(f, "y", 0, &h36m, 2, XY, 0, node(f, IR_MEANPOOL, x));
            break;
        }
        }
        ir_renumber(f->p);
        assert_false(pass_shape(f->p));
        const char *out = fix_diags(f);
        if (!strstr(out, cases[i].msg)) fail_msg("case %d: got\n%s", cases[i].which, out);
        /* one mistake, one error */
        assert_int_equal(f->d.nerrors, 1);
        fix_free(f);
    }
}

static void test_add_of_two_types(void **state) {
    (void)state;
    Fix *f = fix_new();
    IrNode *a = input(f, "a", 0, &h36m, 2, XY, 0);
    IrNode *b = input(f, "b", 0, &h36m, 2, YX, 0);
    output(f, "y", 0, &h36m, 2, XY, 0, binary(f, IR_ADD, a, b));
    assert_false(run_passes(f));
    assert_string_equal(fix_diags(f),
                        "t.net:3:1: error: cannot add tensors of different chirality types: "
                        "'h36m(x!,y)' and 'h36m(x,y!)'\n"
                        "line3\n^\n"
                        "t.net:1:1: note: the left operand, of type 'h36m(x!,y)', is made here\n"
                        "line1\n^\n"
                        "t.net:2:1: note: the right operand, of type 'h36m(x,y!)', is made here\n"
                        "line2\n^\n");
    fix_free(f);

    /* a hidden type against an invariant one of the same width */
    f = fix_new();
    IrNode *x = input(f, "x", 0, &h36m, 2, XY, 0);
    IrNode *z = input(f, "z", 0, NULL, 0, NULL, 1020);
    IrNode *h = linear(f, x, 1020);
    IrNode *s = binary(f, IR_SUB, h, z);
    output(f, "y", 0, &h36m, 2, XY, 0, linear(f, s, 0));
    assert_false(run_passes(f));
    assert_non_null(strstr(fix_diags(f), "error: cannot subtract tensors of different chirality types: "
                                         "'joints h36m 17x60 neg 20' and 'trivial'"));
    assert_int_equal(f->d.nerrors, 1);
    fix_free(f);
}

static void test_width_too_small(void **state) {
    (void)state;
    Fix *f = fix_new();
    IrNode *x = input(f, "x", 0, &h36m, 2, XY, 0);
    IrNode *h = act(f, linear(f, x, 10), IR_ACT_RELU);
    output(f, "y", 0, &h36m, 2, XY, 0, linear(f, h, 0));
    assert_false(run_passes(f));
    const char *out = fix_diags(f);
    assert_non_null(strstr(out, "t.net:2:1: error: width 10 is too small for layout joints: "
                                "skeleton 'h36m' has 17 joints\n"));
    assert_non_null(strstr(out, "note: use a width that is a multiple of 17, or `layout pairs`"));
    assert_int_equal(f->d.nerrors, 1);
    fix_free(f);

    /* layout pairs fits any width: 10 * 5/17 = 2.94 -> 3 centre, made 2 for parity
     * (the nearer of 2 and 4), 4 pairs, round(4/3) = 1 of them and round(2/3) = 1
     * centre feature negated */
    f = fix_new();
    f->p->cfg.layout = IR_LAYOUT_PAIRS;
    x = input(f, "x", 0, &h36m, 2, XY, 0);
    IrNode *l = linear(f, x, 10);
    h = act(f, l, IR_ACT_RELU);
    output(f, "y", 0, &h36m, 2, XY, 0, linear(f, h, 0));
    assert_true(run_passes(f));
    assert_string_equal(l->chi.desc, "pairs h36m 2x4+2 neg 1+1");
    IrChiStats s = ir_chi_stats(&l->chi);
    assert_int_equal(s.pairs, 4);
    assert_int_equal(s.pairs_n, 1);
    assert_int_equal(s.centre_p, 1);
    assert_int_equal(s.centre_n, 1);
    /* [left | right | centre], negated first */
    assert_int_equal(l->chi.partner[0], 4);
    assert_int_equal(l->chi.sign[0], -1);
    assert_int_equal(l->chi.sign[4], -1);
    assert_int_equal(l->chi.sign[1], 1);
    assert_int_equal(l->chi.partner[8], 8);
    assert_int_equal(l->chi.sign[8], -1);
    assert_int_equal(l->chi.sign[9], 1);
    fix_free(f);
}

/* A relu on the hidden joints type (340 of 1020 features negated). */
static Fix *relu_net(IrActPolicy policy, bool force, IrNode **actp) {
    Fix *f = fix_new();
    f->p->cfg.activations = policy;
    IrNode *x = input(f, "x", 0, &h36m, 2, XY, 0);
    IrNode *a = act(f, linear(f, x, 1024), IR_ACT_RELU);
    a->a.force = force;
    output(f, "y", 0, &h36m, 3, XYZ, 0, linear(f, a, 0));
    *actp = a;
    return f;
}

static void test_legalize(void **state) {
    (void)state;
    IrNode *a;
    Fix *f = relu_net(IR_ACTS_PAPER, false, &a);
    assert_true(run_passes(f));
    assert_int_equal(a->a.act, IR_ACT_TANH);
    assert_int_equal(a->a.act_neg, IR_ACT_TANH);
    assert_int_equal(a->a.act_written, IR_ACT_RELU);
    assert_string_equal(a->note, "relu -> tanh on all 1020 features (activations paper)");
    fix_free(f);

    f = relu_net(IR_ACTS_MIXED, false, &a);
    assert_true(run_passes(f));
    assert_int_equal(a->a.act, IR_ACT_RELU);
    assert_int_equal(a->a.act_neg, IR_ACT_TANH);
    assert_string_equal(a->note, "relu -> tanh on 340 negated features (activations mixed)");
    assert_int_equal(f->d.nwarnings, 0);
    fix_free(f);

    f = relu_net(IR_ACTS_MIXED, true, &a);
    assert_true(run_passes(f));
    assert_int_equal(a->a.act, IR_ACT_RELU);
    assert_int_equal(a->a.act_neg, IR_ACT_RELU);
    assert_int_equal(f->d.nwarnings, 1);
    assert_non_null(strstr(fix_diags(f), "warning: relu forced on 340 negated features: the network "
                                         "is not equivariant"));
    fix_free(f);

    /* an odd function, or a relu on an invariant tensor, is left alone */
    f = fix_new();
    IrNode *x = input(f, "x", 0, NULL, 0, NULL, 8);
    a = act(f, x, IR_ACT_RELU);
    IrNode *t = act(f, linear(f, x, 8), IR_ACT_SOFTSIGN);
    output(f, "y", 0, NULL, 0, NULL, 8, binary(f, IR_ADD, a, t));
    assert_true(run_passes(f));
    assert_int_equal(a->a.act, IR_ACT_RELU);
    assert_null(a->note);
    assert_int_equal(t->a.act, IR_ACT_SOFTSIGN);
    fix_free(f);
}

static void test_invariance_insertion(void **state) {
    (void)state;
    /* softmax of a chiral tensor: an invariance layer of the same width before it */
    Fix *f = fix_new();
    IrNode *x = input(f, "x", 0, &h36m, 2, XY, 0);
    IrNode *sm = node(f, IR_SOFTMAX, x);
    output(f, "p", 0, NULL, 0, NULL, 34, sm);
    assert_true(run_passes(f));
    IrNode *inv = sm->in[0];
    assert_int_equal(inv->op, IR_INVARIANT);
    assert_ptr_equal(inv->in[0], x);
    assert_ptr_equal(inv->next, sm);
    assert_ptr_equal(inv->prev, x);
    assert_true(pass_invariance_inserted(inv));
    assert_string_equal(inv->note, "inserted: softmax needs an invariant input");
    assert_int_equal(inv->shape.feat, 34);
    assert_true(ir_chi_is_trivial(&sm->chi));
    assert_true(ir_chi_is_trivial(&f->p->last->chi));
    assert_int_equal(f->p->nnodes, 4);
    /* not in the written network; folded: y = A x_even + b, 34 x 17 + 34 */
    assert_int_equal(inv->count[IR_WRITTEN].params, 0);
    assert_int_equal(inv->count[IR_FOLDED].params, 34 * 17 + 34);
    fix_free(f);

    /* an output declared invariant fed a chiral tensor */
    f = fix_new();
    x = input(f, "x", 0, &h36m, 2, XY, 0);
    IrNode *o = output(f, "feat", 0, NULL, 0, NULL, 34, node(f, IR_DROPOUT, x));
    assert_true(run_passes(f));
    inv = o->in[0];
    assert_int_equal(inv->op, IR_INVARIANT);
    assert_string_equal(inv->note, "inserted: output 'feat' is declared invariant");
    assert_true(ir_chi_is_trivial(&o->chi));
    assert_false(ir_chi_is_trivial(&inv->in[0]->chi));
    fix_free(f);

    /* a trivial tensor needs none; nor does a baseline network */
    f = fix_new();
    f->p->cfg.baseline = true;
    x = input(f, "x", 0, &h36m, 2, XY, 0);
    sm = node(f, IR_SOFTMAX, x);
    output(f, "p", 0, NULL, 0, NULL, 34, sm);
    assert_true(run_passes(f));
    assert_ptr_equal(sm->in[0], x);
    fix_free(f);
}

static void test_output_type_mismatch(void **state) {
    (void)state;
    /* a chiral output fed an invariant tensor of the right width */
    Fix *f = fix_new();
    IrNode *z = input(f, "z", 0, NULL, 0, NULL, 34);
    output(f, "y", 0, &h36m, 2, XY, 0, node(f, IR_DROPOUT, z));
    assert_false(run_passes(f));
    assert_non_null(strstr(fix_diags(f), "error: output 'y' is declared with chirality type "
                                         "'h36m(x!,y)', the net produces 'trivial'"));
    fix_free(f);
}

static void test_concat_flatten_types(void **state) {
    (void)state;
    Fix *f = fix_new();
    IrNode *x = input(f, "x", 4, &h36m, 2, XY, 0);
    IrNode *c = binary(f, IR_CONCAT, x, x);
    IrNode *fl = node(f, IR_FLATTEN, c);
    output(f, "y", 0, NULL, 0, NULL, 4 * 68, fl);
    assert_true(run_passes(f));
    assert_int_equal(c->shape.feat, 68);
    assert_int_equal(ir_chi_stats(&c->chi).pairs, 24);
    assert_int_equal(fl->shape.feat, 272);
    assert_int_equal(fl->shape.time, IR_NO_TIME);
    assert_int_equal(ir_chi_stats(&fl->chi).pairs, 96);
    /* the output is invariant: an invariance layer after the flatten */
    assert_int_equal(f->p->last->in[0]->op, IR_INVARIANT);
    fix_free(f);
}

/* ---- the examples, from source ---------------------------------------------- */

static PassTotals example_totals(const char *name, bool baseline, bool *ok) {
    PassTotals t;
    memset(&t, 0, sizeof t);
    *ok = false;
    const char *dir = getenv("CHIRALC_SOURCE_DIR");
    if (!dir) return t;
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/%s.net", dir, name);
    Arena *a = arena_new();
    Diag d;
    FILE *sink = fopen("/dev/null", "w");
    diag_init(&d, sink);
    SrcFile *f = diag_read_file(a, &d, path);
    AstProgram *ast = f ? fe_parse(a, &d, f) : NULL;
    IrProgram *p = ast ? ir_elaborate(a, &d, ast, NULL, 0) : NULL;
    if (p) {
        p->cfg.baseline = baseline;
        *ok = pass_pipeline(p, NULL);
        t = pass_totals(p);
    }
    fclose(sink);
    arena_free(a);
    return t;
}

static void test_examples_from_source(void **state) {
    (void)state;
    if (!getenv("CHIRALC_SOURCE_DIR")) skip();
    bool ok;
    /* videopose3d: the hand count of test_videopose_counts */
    PassTotals t = example_totals("videopose3d", false, &ok);
    assert_true(ok);
    assert_int_equal(t.total[IR_WRITTEN].params, 16952371LL);
    assert_true((double)t.total[IR_FOLDED].params <= 0.52 * (double)t.total[IR_WRITTEN].params);
    assert_true((double)t.total[IR_FOLDED].macs <= 0.52 * (double)t.total[IR_WRITTEN].macs);
    t = example_totals("videopose3d", true, &ok);
    assert_true(ok);
    assert_int_equal(t.total[IR_FOLDED].params, 16952371LL);
    /* martinez: 34*1024 + 1024 = 35,840; 5 BN of 2,048; 4 linears 1024*1024 + 1024;
     * 1024*51 + 51 = 52,275 */
    t = example_totals("martinez", false, &ok);
    assert_true(ok);
    assert_int_equal(t.total[IR_WRITTEN].params, 35840LL + 5 * 2048LL + 4 * 1049600LL + 52275LL);
    /* forecast_lstm: two 2-layer lstms of 13,104,000 (test_lstm_counts), 1040*26 + 26;
     * folded: 2 x 6,558,480 and 533*13 + 507*13 + 13 */
    t = example_totals("forecast_lstm", false, &ok);
    assert_true(ok);
    assert_int_equal(t.total[IR_WRITTEN].params, 2 * 13104000LL + 27066LL);
    assert_int_equal(t.total[IR_FOLDED].params, 2 * 6558480LL + 13520LL + 13LL);
    /* action_stconv: 34*256*3 + 256; 10 convs 256*256*3 + 256; 11 BN of 512;
     * invariant 256*256 + 256; linear 256*8 + 8 */
    t = example_totals("action_stconv", false, &ok);
    assert_true(ok);
    assert_int_equal(t.total[IR_WRITTEN].params,
                     26368LL + 10 * 196864LL + 11 * 512LL + 65792LL + 2056LL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_videopose_counts),    cmocka_unit_test(test_videopose_baseline),
        cmocka_unit_test(test_lstm_counts),         cmocka_unit_test(test_gru_written),
        cmocka_unit_test(test_shape_errors),        cmocka_unit_test(test_add_of_two_types),
        cmocka_unit_test(test_width_too_small),     cmocka_unit_test(test_legalize),
        cmocka_unit_test(test_invariance_insertion), cmocka_unit_test(test_output_type_mismatch),
        cmocka_unit_test(test_concat_flatten_types), cmocka_unit_test(test_examples_from_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
