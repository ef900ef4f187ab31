/* chiralc/cmd.h: the commands of the chiralc driver. Prefix cmd_.
 * main.c parses the command line, runs the frontend and the pass pipeline,
 * and hands the program to one of these. */
#ifndef CHIRALC_CMD_H
#define CHIRALC_CMD_H

#include <stdint.h>

#include "passes/passes.h"

/* ---- inspect.c -------------------------------------------------------------- */
typedef struct InspectOpts {
    bool ir;            /* print the IR */
    bool table;         /* print the count table */
    const char *dot;    /* write a Graphviz file here */
} InspectOpts;
int cmd_inspect(IrProgram *p, const InspectOpts *o);

/* ---- check.c ------------------------------------------------------------------ */
typedef struct CheckOpts {
    uint64_t seed;
    int batch;          /* samples per batch */
    double tolerance;   /* relative equivariance error allowed (float64) */
} CheckOpts;
int cmd_check(IrProgram *p, const CheckOpts *o);

/* ---- emit.c --------------------------------------------------------------------- */
typedef struct EmitOpts {
    const char *target; /* "c", "kir", "llvm" or "cuda" */
    const char *dir;    /* -o DIR; NULL: stdout */
    bool no_fold;
    bool no_fuse;       /* --no-fuse: CgOptions.no_fuse */
} EmitOpts;
int cmd_emit(IrProgram *p, const EmitOpts *o);

/* ---- build.c -------------------------------------------------------------------- */
typedef struct BuildOpts {
    const char *output; /* -o PROGRAM */
    bool no_fold;
    bool no_fuse;       /* --no-fuse: CgOptions.no_fuse */
    bool verbose;       /* print the compiler's command line */
    const char *opt;    /* the C compiler's optimisation flag, "-O2" by default */
    const char *backend; /* "c" (NULL: the default) or "llvm" (codegen/emit_llvm.c) */
    const char *target; /* "cpu" (NULL: the default) or "cuda" (codegen/emit_cuda.c, nvcc) */
} BuildOpts;
int cmd_build(IrProgram *p, const BuildOpts *o);

#endif
