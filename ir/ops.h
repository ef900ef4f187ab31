/* ir/ops.h: the op table. Every property of an op kind lives on its one line;
 * the enum, the names, the arities and the flags are generated from it.
 *
 * X(ENUM, "name", min_inputs, max_inputs, flags) */
#ifndef CHIRALC_IR_OPS_H
#define CHIRALC_IR_OPS_H

#define IR_MAX_IN 8

/* flags */
#define OPF_PARAMS     0x01 /* has trainable parameters */
#define OPF_LINEARMAP  0x02 /* a linear map chi_in -> chi_out, folded into (A, B) blocks */
#define OPF_KEEPS_TYPE 0x04 /* the result has the (first) input's chirality type */
#define OPF_SEQ_IN     0x08 /* the (first) input must have a time axis */
#define OPF_RECURRENT  0x10 /* LSTM/GRU: a recurrence over time */
#define OPF_TRIVIAL_IN 0x20 /* the input must have the trivial (invariant) type */
#define OPF_SOURCE     0x40 /* no inputs: a program input */
#define OPF_SINK       0x80 /* a program output */
#define OPF_TRAIN      0x100 /* made by autodiff for the training graph (docs/design.md "Training graph") */

#define IR_OPS(X)                                                               \
    X(INPUT,     "input",     0, 0,         OPF_SOURCE)                         \
    X(OUTPUT,    "output",    1, 1,         OPF_SINK | OPF_KEEPS_TYPE)          \
    X(LINEAR,    "linear",    1, 1,         OPF_PARAMS | OPF_LINEARMAP)         \
    X(CONV1D,    "conv1d",    1, 1,         OPF_PARAMS | OPF_LINEARMAP | OPF_SEQ_IN) \
    X(INVARIANT, "invariant", 1, 1,         OPF_PARAMS | OPF_LINEARMAP)         \
    X(BATCHNORM, "batchnorm", 1, 1,         OPF_PARAMS | OPF_KEEPS_TYPE)        \
    X(DROPOUT,   "dropout",   1, 1,         OPF_KEEPS_TYPE)                     \
    X(ACT,       "act",       1, 1,         OPF_KEEPS_TYPE)                     \
    X(ADD,       "add",       2, 2,         OPF_KEEPS_TYPE)                     \
    X(SUB,       "sub",       2, 2,         OPF_KEEPS_TYPE)                     \
    X(CONCAT,    "concat",    2, IR_MAX_IN, 0)                                  \
    X(CROP,      "crop",      1, 1,         OPF_KEEPS_TYPE | OPF_SEQ_IN)        \
    X(MEANPOOL,  "meanpool",  1, 1,         OPF_KEEPS_TYPE | OPF_SEQ_IN)        \
    X(LAST,      "last",      1, 1,         OPF_KEEPS_TYPE | OPF_SEQ_IN)        \
    X(REPEAT,    "repeat",    1, 1,         OPF_KEEPS_TYPE)                     \
    X(FLATTEN,   "flatten",   1, 1,         OPF_SEQ_IN)                         \
    X(LSTM,      "lstm",      1, 2,         OPF_PARAMS | OPF_SEQ_IN | OPF_RECURRENT) \
    X(GRU,       "gru",       1, 2,         OPF_PARAMS | OPF_SEQ_IN | OPF_RECURRENT) \
    X(SOFTMAX,   "softmax",   1, 1,         OPF_KEEPS_TYPE | OPF_TRIVIAL_IN) \
    X(TARGET,    "target",    0, 0,         OPF_TRAIN)                          \
    X(LOSS,      "loss",      2, 2,         OPF_TRAIN)                          \
    X(GRAD,      "grad",      1, IR_MAX_IN, OPF_TRAIN)                          \
    X(PGRAD,     "pgrad",     1, IR_MAX_IN, OPF_TRAIN)

/* Elementwise activation functions. X(ENUM, "name", odd): odd means
 * phi(-x) = -phi(x), the only kind allowed on negated (s = -1) features. */
#define IR_ACTS(X)                        \
    X(RELU,       "relu",       0)        \
    X(LEAKY_RELU, "leaky_relu", 0)        \
    X(ELU,        "elu",        0)        \
    X(GELU,       "gelu",       0)        \
    X(SIGMOID,    "sigmoid",    0)        \
    X(TANH,       "tanh",       1)        \
    X(SOFTSIGN,   "softsign",   1)        \
    X(HARDTANH,   "hardtanh",   1)

#endif
