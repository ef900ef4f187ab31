/* ir/interp_run.h: the state of one interpreter run, shared by interp.c (the
 * forward ops) and interp_grad.c (the ops of the training graph: target,
 * loss, grad, pgrad). Private to ir/: nothing outside includes it. */
#ifndef CHIRALC_IR_INTERP_RUN_H
#define CHIRALC_IR_INTERP_RUN_H

#include "ir/ir.h"

typedef struct IrRunTrain IrRunTrain; /* interp_grad.c */

struct IrRun {
    const IrProgram *p;
    IrParams *w;
    int batch;
    int nnodes;
    const IrNode **nodes; /* by id */
    int *time;            /* frames, IR_NO_TIME for none */
    double **val;
    double **hstate, **cstate; /* recurrent nodes: final states [layer][batch][hidden] */
    int *last_use;        /* id of the last node that reads this one */
    double **inputs;
    int *input_time;
    IrRunTrain *train;    /* targets, gradients: NULL until a training op needs them */
};

/* Frames of a node's result by the op semantics (IR_NO_TIME: none); sets *why
 * on error. For the forward ops only. */
int ir_interp_time_of(const IrRun *r, const IrNode *n, const char **why);

/* Inverted dropout in place: the mask of element k of node `id` (recurrent layer
 * output `sub`) is a function of (seed, id, sub, k) only, so the backward pass
 * recomputes the forward's mask. */
void ir_interp_dropout(double *x, long n, double p, uint64_t seed, int id, int sub);
double ir_interp_sigmoid(double x);
/* phi(x) of one activation (slope: leaky_relu's). */
double ir_interp_act(IrAct a, double x, double slope);

/* interp_grad.c: runs one OPF_TRAIN node; frees / resets the training state. */
bool ir_interp_train_node(IrRun *r, const IrNode *n, const IrInterpOpts *o, const char **why);
void ir_interp_train_reset(IrRun *r);
void ir_interp_train_free(IrRun *r);

#endif
