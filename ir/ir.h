/* ir/ir.h: the graph IR. Prefix ir_.
 *
 * A program is a list of nodes in topological (program) order. Every node is
 * one op of the table in ops.h and produces one tensor, typed by its shape
 * (time axis and feature width; the batch axis is implicit) and by its
 * chirality type (partner and sign per feature, chirality.md 1).
 * Everything of one compilation lives in one arena (IrProgram.arena).
 *
 * Sections below are named after the files that implement them. */
#ifndef CHIRALC_IR_H
#define CHIRALC_IR_H

#include <stdint.h>

#include "frontend/frontend.h"
#include "ir/ops.h"
#include "support/support.h"

typedef enum IrOp {
#define X(e, name, lo, hi, flags) IR_##e,
    IR_OPS(X)
#undef X
    IR_NUM_OPS
} IrOp;

typedef enum IrAct {
#define X(e, name, odd) IR_ACT_##e,
    IR_ACTS(X)
#undef X
    IR_NUM_ACTS
} IrAct;

/* ---- ir.c: op properties, construction, traversal ------------------------ */

typedef struct IrOpInfo {
    const char *name;
    int min_in, max_in;
    unsigned flags;
} IrOpInfo;
extern const IrOpInfo ir_op_info[IR_NUM_OPS];
extern const char *const ir_act_name[IR_NUM_ACTS];
extern const bool ir_act_odd[IR_NUM_ACTS];
#define ir_op_has(op, f) ((ir_op_info[(op)].flags & (f)) != 0)

#define IR_NO_TIME (-1)

/* The largest sizes a model may have: features of one frame (a layer's width, a class
 * count) and frames. Far beyond a pose network; their point is that a size typed by
 * mistake (width = 320647969) gets one error line rather than hours of work on
 * tables of that size, and that products of sizes stay within int. */
#define IR_MAX_WIDTH 65536
#define IR_MAX_FRAMES 1048576

/* Shape of one sample: `time` frames (IR_NO_TIME: no time axis) of `feat`
 * features. feat_written is the width the user wrote, before the chirality
 * pass rounded it (1024 -> 1020): the written network is counted with it. */
typedef struct IrShape {
    int time;
    int feat;
    int feat_written;
} IrShape;

/* A chirality type (chirality.md 1): (T x)_f = sign[f] * x[partner[f]].
 * partner == NULL is the trivial type (T = I), the type of invariant tensors.
 * desc says how the type was made, for the dump ("h36m(x!,y)",
 * "joints h36m 17x60 neg 20", "trivial"). */
typedef struct IrChi {
    int n;
    int *partner;
    signed char *sign;
    const char *desc;
} IrChi;

/* Orbit counts of a type (chirality.md 2):
 * d_even = pairs + centre_p, d_odd = pairs + centre_n. pairs_n counts the
 * pairs whose sign is -1 (needed for the paper's sharing count). */
typedef struct IrChiStats {
    int pairs, pairs_n, centre_p, centre_n;
    int d_even, d_odd;
} IrChiStats;

/* Which numbers a count is of (chirality.md 7). */
typedef enum IrCountKind { IR_WRITTEN, IR_PAPER, IR_FOLDED, IR_NUM_COUNTS } IrCountKind;
typedef struct IrCount {
    long long params, macs; /* macs: multiply-adds for one sample */
} IrCount;

typedef enum IrLoss { IR_LOSS_NONE, IR_LOSS_MSE, IR_LOSS_L1, IR_LOSS_MPJPE, IR_LOSS_CROSS_ENTROPY } IrLoss;

typedef struct IrAttrs {
    int out;           /* requested width (linear, conv1d, invariant, lstm, gru); 0: from the output */
    int kernel, dilation, stride, padding; /* conv1d */
    bool bias;         /* linear, conv1d, invariant */
    bool unconstrained;/* equivariant=false: dense weights, breaks equivariance on purpose */
    double p;          /* dropout probability; lstm/gru: dropout between layers */
    double slope;      /* leaky_relu */
    double eps, momentum; /* batchnorm */
    IrAct act;         /* act: the function on kept (s = +1) features */
    IrAct act_neg;     /* act: the function on negated (s = -1) features */
    IrAct act_written; /* act: what the user wrote */
    bool force;        /* act: force=true, keep the written function even where it breaks equivariance */
    int layers;        /* lstm, gru */
    int crop;          /* crop: frames removed from each end (then every stride-th kept) */
    int frames;        /* repeat: frames produced */
    int io;            /* input, output: index into IrProgram.inputs / outputs; target: the output */
    struct IrNode *fwd;/* grad, pgrad: the forward node differentiated */
    int wrt;           /* grad: which input of fwd */
    IrLoss loss;       /* loss */
} IrAttrs;

typedef struct IrNode IrNode;
struct IrNode {
    IrOp op;
    int id;            /* %id in the dump */
    const char *name;  /* the user's name of the result, or NULL */
    SrcLoc loc;        /* where the op was written */
    IrNode *in[IR_MAX_IN];
    int nin;
    IrAttrs a;
    IrShape shape;     /* of the result: filled by pass_shape */
    IrChi chi;         /* of the result: filled by pass_chirality */
    const char *note;  /* what a pass decided here, shown in the dump */
    IrCount count[IR_NUM_COUNTS]; /* filled by pass_count */
    IrNode *prev, *next;
};

typedef struct IrSkeleton {
    const char *name;
    SrcLoc loc;
    int njoints;
    const char **joints;
    SrcLoc *joint_locs;
    int *partner;      /* partner[j] == j: a centre joint */
} IrSkeleton;

/* A declared input or output. */
typedef struct IrDecl {
    const char *name;
    SrcLoc loc;
    bool seq;           /* has a time axis */
    int frames;         /* 0: not given */
    int feat;
    IrChi chi;
    bool invariant;
    bool is_class;      /* class(N): the features are class scores (logits) */
    const IrSkeleton *skeleton; /* NULL for class(N) / features(N) */
    int ncoords;
    const char **coords;
    bool *coord_negated;
    IrNode *node;       /* the INPUT or OUTPUT node */
} IrDecl;

typedef enum IrLayout { IR_LAYOUT_JOINTS, IR_LAYOUT_PAIRS } IrLayout;
typedef enum IrActPolicy { IR_ACTS_PAPER, IR_ACTS_MIXED } IrActPolicy;
typedef enum IrSharing { IR_SHARING_FULL, IR_SHARING_PAPER } IrSharing;

typedef struct IrChirality {
    IrLayout layout;
    double neg_ratio;   /* 1/3 */
    IrActPolicy activations;
    IrSharing sharing;
    bool baseline;      /* --baseline: the written network, every type trivial */
    SrcLoc loc;         /* of the chirality block, for notes */
} IrChirality;

typedef enum IrOptim { IR_OPTIM_ADAM, IR_OPTIM_SGD } IrOptim;

/* The train block, checked and evaluated (every key known, every value in range). */
typedef struct IrTrain {
    IrLoss loss;
    const IrDecl *loss_output;  /* the output the loss applies to */
    IrOptim optimizer;
    double lr, beta1, beta2, momentum, decay, weight_decay, clip;
    int batch, epochs;
    double mirror;              /* augment mirror(p): probability; 0 = off */
    SrcLoc loc;
} IrTrain;

typedef struct IrProgram {
    Arena *arena;
    Diag *diag;
    const char *model;
    const SrcFile *file;
    IrSkeleton **skeletons;
    int nskeletons;
    IrDecl **inputs, **outputs;
    int ninputs, noutputs;
    IrNode *first, *last;
    int nnodes;
    IrChirality cfg;
    IrTrain train;
    bool training;      /* compiled for training: pass_autodiff adds loss and gradients */
} IrProgram;

IrProgram *ir_program_new(Arena *a, Diag *d);
IrNode *ir_node_new(IrProgram *p, IrOp op, SrcLoc loc);   /* appended at the end */
void ir_insert_before(IrProgram *p, IrNode *before, IrNode *n); /* n must be detached */
void ir_add_input(IrNode *n, IrNode *in);
void ir_renumber(IrProgram *p);                 /* ids 0.. in program order */
/* Replaces every use of `from` among the nodes after `after` by `to`. */
void ir_replace_uses(IrProgram *p, IrNode *from, IrNode *to, IrNode *after);
int ir_num_uses(const IrProgram *p, const IrNode *n);
/* Frames left by crop(x, n, stride=s) of T frames: n removed from each end, then every
 * s-th from the first kept (VideoPose3D's strided residual x[:, :, n::s] when T - 2n
 * is a multiple of s plus one); < 1 when nothing is left. */
int ir_crop_frames(int T, int n, int stride);
#define ir_foreach(p, n) for (IrNode *n = (p)->first; n; n = n->next)

/* ---- chi.c: chirality types -------------------------------------------------- */

IrChi ir_chi_trivial(int n);
bool ir_chi_is_trivial(const IrChi *c);
bool ir_chi_equal(const IrChi *a, const IrChi *b);
bool ir_chi_has_negated(const IrChi *c);
IrChiStats ir_chi_stats(const IrChi *c);
IrChi ir_chi_concat(Arena *a, const IrChi *parts, int nparts);
IrChi ir_chi_tile(Arena *a, const IrChi *c, int times); /* flatten: the same type per frame */
IrChi ir_chi_all_positive(Arena *a, const IrChi *c);    /* lstm/gru gates: partners kept, signs +1 */
/* Numbers the orbits ({f, partner f}) by their first feature into orbit_of[n];
 * returns their count. trivial: every feature its own orbit. */
int ir_chi_orbits(const IrChi *c, bool trivial, int *orbit_of);
/* The type of a skeleton tensor: features (joint, coord), joint-major. */
IrChi ir_chi_skeleton(Arena *a, const IrSkeleton *s, int ncoords, const bool *coord_negated);
/* Checks the type's invariants (partner an involution, signs equal on partners). */
bool ir_chi_valid(const IrChi *c, const char **why);
/* (T x) for `rows` rows of c->n features: y[r][f] = sign[f] * x[r][partner[f]].
 * y must not alias x. */
void ir_chi_apply(const IrChi *c, const double *x, double *y, long rows);

/* The even/odd basis (chirality.md 2). Per orbit: a pair (f, g, s) gives
 * e = x_f + s x_g, o = x_f - s x_g; a centre feature is even (s = +1) or odd
 * (s = -1). synthesise() is the exact inverse of analyse(). */
typedef struct IrBasis {
    int n, d_even, d_odd;
    /* even component k reads features ef[k] and eg[k] (eg[k] == -1 for a centre
     * feature) with sign es[k]; likewise the odd components. */
    int *ef, *eg, *of, *og;
    signed char *es, *os;
} IrBasis;
IrBasis ir_basis(Arena *a, const IrChi *c);
void ir_basis_analyse(const IrBasis *b, const double *x, double *even, double *odd);
void ir_basis_synthesise(const IrBasis *b, const double *even, const double *odd, double *x);

/* ---- print.c: the stable text form --------------------------------------------- */

void ir_print(FILE *out, const IrProgram *p);
void ir_print_node(FILE *out, const IrNode *n);

/* ---- verify.c: the invariants every pass must keep ----------------------------- */

/* `stage` says how far the pipeline has come: after shape inference shapes must
 * be set, after the chirality pass types too. On a broken invariant it reports
 * an internal error naming the pass that broke it. */
typedef enum IrStage { IR_STAGE_BUILT, IR_STAGE_SHAPED, IR_STAGE_TYPED } IrStage;
void ir_verify(const IrProgram *p, IrStage stage, const char *after_pass);

/* ---- elab.c: from the syntax tree to the graph --------------------------------- */

/* A `name=value` given on the command line (--set) overrides a `let`. */
typedef struct IrOverride {
    const char *name;
    double value;
    bool used;
} IrOverride;

/* Evaluates lets and loops, resolves names, checks skeletons, declarations and
 * settings, and builds the graph. Errors go to d; returns NULL if there were any. */
IrProgram *ir_elaborate(Arena *a, Diag *d, const AstProgram *ast, IrOverride *overrides,
                        int noverrides);

/* ---- dot.c: Graphviz picture ----------------------------------------------------- */

void ir_write_dot(FILE *out, const IrProgram *p);

/* ---- params.c: the folded parameters of a program -------------------------------- */

/* Counter-based random numbers (splitmix64 of seed and counter): the same
 * numbers whichever order they are drawn in, so the interpreter, the compiled
 * code and a test can each reproduce a dropout mask or a weight. */
uint64_t ir_rand_u64(uint64_t seed, uint64_t counter);
double ir_rand_uniform(uint64_t seed, uint64_t counter);  /* [0, 1) */
double ir_rand_normal(uint64_t seed, uint64_t counter);   /* N(0, 1) */

/* One named block of parameters, a rows x cols row-major matrix (cols == 1 for
 * a vector) at `offset` in IrParams.data.
 *   linear, conv1d, invariant: per tap "A" (d_even_out x d_even_in) and "B"
 *       (d_odd_out x d_odd_in) in the bases of ir_basis (chirality.md 2); one
 *       "bias" (d_even_out) when a.bias.
 *   batchnorm: "gamma" (one per orbit), "beta" (d_even), "mean" (d_even, running),
 *       "var" (one per orbit, running). Orbits are numbered by their first feature.
 *   lstm, gru: per layer and gate (lstm i f g o, gru r z n, PyTorch's order)
 *       "Wx.A" "Wx.B" (input type -> gate type), "Wh.A" "Wh.B" (hidden type ->
 *       gate type) and "bias" (even part of the gate type). Gates i f o / r z
 *       have the type ir_chi_all_positive(hidden), g / n the hidden type.
 *       PyTorch's two bias vectors add up to one for every gate except gru's n,
 *       where b_hn sits inside r * (...): that gate has a second "bias_h".
 * An `a.unconstrained` layer (equivariant=false) is laid out as if both of its
 * types were trivial: "A" is the whole dense matrix, "B" is empty. */
typedef struct IrParamEntry {
    const IrNode *node;
    const char *name;
    int layer, gate, tap;   /* 0 where they do not apply */
    int rows, cols;
    long offset;
    bool trainable;         /* false for the running statistics of batchnorm */
    /* A/B blocks: the bases they map between; vectors: the basis they live in
     * (out == in). Trivial bases for an unconstrained layer. */
    const IrBasis *basis_out, *basis_in;
} IrParamEntry;

typedef struct IrParams {
    const IrProgram *prog;
    double *data;           /* arena memory, zeroed */
    long size;
    IrParamEntry *entries;
    int nentries;
    int nnodes;
    int *node_first, *node_count; /* by node id: the node's entries */
} IrParams;

/* Lays out the parameters of every node (ids must be renumbered: ir_renumber). */
IrParams *ir_params_new(Arena *a, const IrProgram *p);
/* Deterministic: blocks N(0, 1/fan_in) (fan_in: the dense layer's, taps x
 * width in), biases and beta N(0, 0.01), gamma 1 + N(0, 0.01), running means
 * N(0, 0.01), running variances uniform in [0.5, 1.5). With sharing = paper the
 * held-at-zero block of A stays zero. */
void ir_params_randomize(IrParams *w, uint64_t seed);
/* The entry, or NULL. */
const IrParamEntry *ir_params_find(const IrParams *w, const IrNode *n, const char *name, int layer,
                                   int gate, int tap);
double *ir_params_data(const IrParams *w, const IrParamEntry *e);
/* sharing = paper: true where the paper's layer holds A at zero (negated input
 * pair -> kept centre output, chirality.md 2), in every A block ("A", "Wx.A",
 * "Wh.A"), as pass_count counts it; such weights stay zero in training. */
bool ir_params_fixed_zero(const IrParams *w, const IrParamEntry *e, int row, int col);
/* The dense F_out x F_in matrix of an A/B pair (entries a and b of one tap):
 * W = S_out blockdiag(A, B) Q_in, so that W x equals the folded map. */
void ir_params_dense(const IrParams *w, const IrParamEntry *a, const IrParamEntry *b, double *W);
/* The table: node, name, layer/gate/tap, shape, offset. */
void ir_params_print(FILE *out, const IrParams *w);

/* ---- interp.c: the float64 reference interpreter --------------------------------- */

/* Values are [batch][time][feat] row-major doubles (time = 1 for a tensor
 * without a time axis). Time extents are computed from the inputs' lengths by
 * the op semantics of docs/design.md, so an input declared without frames
 * can run at any length. */
typedef enum IrMode { IR_INFERENCE, IR_TRAINING } IrMode;
typedef struct IrInterpOpts {
    IrMode mode;
    bool dropout;        /* training: apply dropout masks (false: identity, for checks) */
    uint64_t seed;       /* of the dropout masks */
    bool update_running; /* training: update batchnorm's running statistics in the params */
    bool keep_all;       /* keep every node's value (else freed after its last use) */
} IrInterpOpts;

typedef struct IrRun IrRun;
/* A run of `batch` samples. input_time[i]: frames of input i (NULL, or <= 0
 * for an entry: the shape pass's time, else 9). */
IrRun *ir_run_new(const IrProgram *p, IrParams *w, int batch, const int *input_time);
void ir_run_free(IrRun *r);
/* The buffer of input i ([batch][time][feat]), to be filled before ir_run_forward. */
double *ir_run_input(IrRun *r, int i);
int ir_run_input_time(const IrRun *r, int i); /* its frames (1 without a time axis) */
/* Runs the whole graph. Returns false (with a message in *why) when a time
 * extent comes out empty or disagrees with the shape pass. */
bool ir_run_forward(IrRun *r, const IrInterpOpts *o, const char **why);
/* After a run: a node's value (NULL if freed), its frames (1 without a time
 * axis), and the value of output i. */
const double *ir_run_value(const IrRun *r, const IrNode *n);
int ir_run_time(const IrRun *r, const IrNode *n);
const double *ir_run_output(const IrRun *r, int i);
long ir_run_output_size(const IrRun *r, int i); /* batch * time * feat */
/* A whole declaration's T, frame by frame (identity for an invariant output):
 * y = T x for `batch * time` frames. y must not alias x. */
void ir_decl_apply(const IrDecl *d, const double *x, double *y, long frames);

/* Training graphs (interp_grad.c; docs/design.md "Training graph"): the runs
 * above also execute target, loss, grad and pgrad nodes. ir_run_target: the
 * label of output i, [batch][time][feat] like the output (feat 1, the class
 * index, for a class output), filled before ir_run_forward like an input;
 * ir_run_target_time: its frames. ir_run_grad: IrParams.size doubles in the
 * layout of the parameters; every run zeroes it and each pgrad node writes its
 * node's entries (running statistics and held-at-zero weights stay zero).
 * ir_run_loss: the loss of the last run (NaN without a loss node). */
double *ir_run_target(IrRun *r, int i);
int ir_run_target_time(IrRun *r, int i);
const double *ir_run_grad(IrRun *r);
double ir_run_loss(const IrRun *r);

#endif
