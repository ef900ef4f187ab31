/* passes/passes.h: the passes over the graph IR, one file each, and the
 * pipeline that runs them in order (pipeline.c). Prefix pass_.
 * A pass returns false when it reported a user error through p->diag. */
#ifndef CHIRALC_PASSES_H
#define CHIRALC_PASSES_H

#include "ir/ir.h"

typedef bool (*PassFn)(IrProgram *p);
typedef struct Pass {
    const char *name;  /* for --after NAME */
    PassFn run;
    IrStage stage;     /* what the verifier may expect after it */
} Pass;

/* ---- shape.c: time and feature extents of every tensor ------------------------ */
bool pass_shape(IrProgram *p);
/* The output whose declaration n's result reaches through type-keeping ops
 * alone, with one consumer at each step (docs/design.md, the chirality pass
 * rule 3), or NULL. A layer of width 0 takes its width and type from it. */
IrDecl *pass_output_reached(const IrProgram *p, const IrNode *n);
/* ---- chirality.c: a chirality type for every tensor (chirality.md 6) ----------- */
bool pass_chirality(IrProgram *p);
/* Types one node from its inputs' types (and refreshes its width, which a
 * rounded layer upstream may have changed). Used again by passes that insert
 * nodes. Returns false after reporting an error. */
bool pass_chirality_node(IrProgram *p, IrNode *n);
/* ---- legalize.c: odd activations where the mirror negates (chirality.md 4) ------ */
bool pass_legalize(IrProgram *p);
/* ---- invariance.c: invariance layers before ops that need trivial types --------- */
bool pass_invariance(IrProgram *p);
/* Whether n is an invariance layer this pass inserted (not in the written network). */
bool pass_invariance_inserted(const IrNode *n);
/* ---- count.c: parameters and multiply-adds, written / paper / folded ------------ */
bool pass_count(IrProgram *p);
/* The per-layer table of `chiralc inspect`, with totals and ratios. */
void pass_print_counts(FILE *out, const IrProgram *p);
typedef struct PassTotals { IrCount total[IR_NUM_COUNTS]; } PassTotals;
PassTotals pass_totals(const IrProgram *p);

/* ---- autodiff.c: the training graph (docs/design.md "Training graph") ------------ */
/* When p->training: the loss's target and loss nodes, and in reverse order the
 * grad nodes of every tensor the loss depends on through parameters and the
 * pgrad nodes of every layer's folded parameters. Otherwise nothing. */
bool pass_autodiff(IrProgram *p);

/* ---- pipeline.c: the passes in order ---------------------------------------------- */
extern const Pass pass_list[];
extern const int pass_count_of_list;
typedef struct PipelineOpts {
    const char *dump_after; /* a pass name: print the IR after it to dump */
    FILE *dump;
} PipelineOpts;
/* Runs every pass in order, verifying the IR between passes. */
bool pass_pipeline(IrProgram *p, const PipelineOpts *opts);
const Pass *pass_find(const char *name);

#endif
