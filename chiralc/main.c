/* chiralc/main.c: the command line of the compiler.
 *
 *   chiralc inspect MODEL.net [--after PASS] [--ir] [--table] [--dot FILE]
 *   chiralc check   MODEL.net [--seed S] [--batch B] [--tolerance T]
 *   chiralc emit c|kir|llvm|cuda MODEL.net [-o DIR] [--no-fold] [--no-fuse]
 *   chiralc build   MODEL.net -o PROGRAM [--no-fold] [--no-fuse] [--verbose] [-O0|-O1|-O2|-O3]
 *                   [--backend llvm|c] [--target cpu|cuda]
 * and, for both, the compilation options
 *   [--baseline] [--layout joints|pairs] [--neg-ratio R] [--activations paper|mixed]
 *   [--sharing full|paper] [--set NAME=VALUE]... [--train]
 *
 * A bad flag is one line on stderr and exit status 2; a bad model is its
 * diagnostics and exit status 1. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "chiralc/cmd.h"

enum { EXIT_USER = 1, EXIT_USAGE = 2, MAX_SETS = 64 };

static const char usage_text[] =
    "usage: chiralc COMMAND MODEL.net [options]\n"
    "\n"
    "commands:\n"
    "  inspect   the IR after any pass and the parameters and multiply-adds of the\n"
    "            written network, the paper's sharing and the folded network\n"
    "  check     random folded weights and inputs: the equivariance error (float64)\n"
    "  emit c|kir|llvm|cuda  the generated C source (DIR/MODEL.c), the kernel IR as\n"
    "            text, the LLVM module as text (DIR/MODEL.ll), or the CUDA source\n"
    "            (DIR/MODEL.cu)\n"
    "  build     a standalone program that trains, evaluates, predicts and exports\n"
    "            (compiled for training; PROGRAM --help lists its commands)\n"
    "\n"
    "compilation options (both commands):\n"
    "  --baseline               the written network, without chirality\n"
    "  --layout joints|pairs    how hidden widths get their chirality type\n"
    "  --neg-ratio R            fraction of negated channels (default 1/3)\n"
    "  --activations paper|mixed  tanh everywhere, or only on negated features\n"
    "  --sharing full|paper     all equivariant weights, or the paper's subset\n"
    "  --set NAME=VALUE         override a `let` constant of the model\n"
    "  --train                  compile for training: the loss and the gradients\n"
    "                           (the training graph: inspect --after autodiff)\n"
    "\n"
    "inspect options:\n"
    "  --after PASS   print the IR after PASS (elab, shape, chirality, legalize,\n"
    "                 invariance, count, autodiff) and nothing else\n"
    "  --ir           print the IR after the last pass\n"
    "  --table        print the count table (default: the IR and the table)\n"
    "  --dot FILE     write a Graphviz picture of the graph with every tensor's type\n"
    "\n"
    "emit options:\n"
    "  -o DIR       write DIR/MODEL.c (emit kir: DIR/MODEL.kir, emit llvm: DIR/MODEL.ll,\n"
    "               emit cuda: DIR/MODEL.cu);\n"
    "               default: stdout\n"
    "  --no-fold    dense masked weights instead of the folded blocks (the control)\n"
    "  --no-fuse    keep every loop kernel as lowered (no fusion pass)\n"
    "\n"
    "build options:\n"
    "  -o PROGRAM   the executable to write (atomically)\n"
    "  --no-fold    dense masked weights (the control)\n"
    "  --no-fuse    keep every loop kernel as lowered (benchmarks of the fusion pass)\n"
    "  --verbose    print the C compiler's command line\n"
    "  --backend llvm|c  the code generator: LLVM for the host CPU (default where\n"
    "               chiralc has LLVM; linked by the C compiler), or the C printer and\n"
    "               the system C compiler\n"
    "  --target cpu|cuda  where the program runs: the host CPU (default), or an NVIDIA\n"
    "               GPU (the CUDA printer and nvcc; sm_90 code plus PTX)\n"
    "  -O0 ... -O3  LLVM's pipeline, or the C compiler's (default -O2; the results are the\n"
    "               same at every level, -O0 compiles large models much faster)\n"
    "  (environment: CHIRALC_CC, CHIRALC_CFLAGS, CHIRALC_INCLUDE, CHIRALC_RUNTIME,\n"
    "   CHIRALC_LIBS override the compiler, its extra flags, the include directories,\n"
    "   libchiralrt.a and the link libraries)\n"
    "\n"
    "check options:\n"
    "  --seed S  --batch B  --tolerance T (default 1e-12)\n";

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("chiralc: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (chiralc --help lists the options)\n", stderr);
    return EXIT_USAGE;
}

typedef struct Cli {
    const char *cmd, *model;
    const char *after, *layout, *activations, *sharing, *neg_ratio;
    bool baseline, train;
    IrOverride sets[MAX_SETS];
    int nsets;
    InspectOpts inspect;
    CheckOpts check;
    EmitOpts emit;      /* emit: the target word follows the command */
    BuildOpts build;
} Cli;

static bool parse_number(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno) {
        /* a fraction like 1/3 is the natural way to write a ratio */
        long num, den;
        char c;
        if (sscanf(s, "%ld/%ld%c", &num, &den, &c) != 2 || den == 0) return false;
        v = (double)num / (double)den;
    }
    *out = v;
    return true;
}

/* Returns 0, or the exit status for a bad command line. */
static int parse_args(Cli *c, int argc, char **argv) {
    c->check = (CheckOpts){.seed = 1, .batch = 4, .tolerance = 1e-12};
    c->cmd = argv[1];
    bool inspect = strcmp(c->cmd, "inspect") == 0, check = strcmp(c->cmd, "check") == 0;
    bool emit = strcmp(c->cmd, "emit") == 0, build = strcmp(c->cmd, "build") == 0;
    if (!inspect && !check && !emit && !build) return usage_error("unknown command '%s'", c->cmd);
    c->train = build; /* a program trains: the training graph is part of it */
    int first = 2;
    if (emit) {
        if (argc < 3 || (strcmp(argv[2], "c") != 0 && strcmp(argv[2], "kir") != 0 && strcmp(argv[2], "llvm") != 0 &&
                         strcmp(argv[2], "cuda") != 0))
            return usage_error("emit expects a target, c, kir, llvm or cuda (chiralc emit c MODEL.net -o DIR)");
        c->emit.target = argv[2];
        first = 3;
    }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        /* options that take a value */
        const char **val = NULL;
        const char *v = NULL;
        static const char *const with_value[] = {"--after", "--dot", "--layout", "--activations",
                                                 "--sharing", "--neg-ratio", "--set", "--seed",
                                                 "--batch", "--tolerance", "--backend", "--target"};
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++)
            if (strcmp(a, with_value[k]) == 0) {
                if (i + 1 >= argc) return usage_error("option '%s' needs a value", a);
                v = argv[++i];
            }
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (c->model) return usage_error("more than one model file given ('%s')", a);
            c->model = a;
        } else if (strcmp(a, "--baseline") == 0) {
            c->baseline = true;
        } else if (strcmp(a, "--train") == 0) {
            c->train = true;
        } else if (emit && strcmp(a, "-o") == 0) {
            if (i + 1 >= argc) return usage_error("option '-o' needs a value");
            c->emit.dir = argv[++i];
        } else if (emit && strcmp(a, "--no-fold") == 0) {
            c->emit.no_fold = true;
        } else if (emit && strcmp(a, "--no-fuse") == 0) {
            c->emit.no_fuse = true;
        } else if (build && strcmp(a, "-o") == 0) {
            if (i + 1 >= argc) return usage_error("option '-o' needs a value");
            c->build.output = argv[++i];
        } else if (build && strcmp(a, "--no-fold") == 0) {
            c->build.no_fold = true;
        } else if (build && strcmp(a, "--no-fuse") == 0) {
            c->build.no_fuse = true;
        } else if (build && strcmp(a, "--backend") == 0) {
            if (strcmp(v, "c") != 0 && strcmp(v, "llvm") != 0)
                return usage_error("--backend expects c or llvm, got '%s'", v);
            c->build.backend = v;
        } else if (build && strcmp(a, "--target") == 0) {
            if (strcmp(v, "cpu") != 0 && strcmp(v, "cuda") != 0)
                return usage_error("--target expects cpu or cuda, got '%s'", v);
            c->build.target = v;
        } else if (build && strcmp(a, "--verbose") == 0) {
            c->build.verbose = true;
        } else if (build && (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0 ||
                             strcmp(a, "-O3") == 0)) {
            c->build.opt = a;
        } else if (inspect && strcmp(a, "--ir") == 0) {
            c->inspect.ir = true;
        } else if (inspect && strcmp(a, "--table") == 0) {
            c->inspect.table = true;
        } else if (inspect && strcmp(a, "--after") == 0) {
            if (strcmp(v, "elab") != 0 && !pass_find(v))
                return usage_error("unknown pass '%s' for --after (elab, shape, chirality, "
                                   "legalize, invariance, count, autodiff)", v);
            c->after = v;
        } else if (inspect && strcmp(a, "--dot") == 0) {
            c->inspect.dot = v;
        } else if (strcmp(a, "--layout") == 0) {
            val = &c->layout;
        } else if (strcmp(a, "--activations") == 0) {
            val = &c->activations;
        } else if (strcmp(a, "--sharing") == 0) {
            val = &c->sharing;
        } else if (strcmp(a, "--neg-ratio") == 0) {
            val = &c->neg_ratio;
        } else if (strcmp(a, "--set") == 0) {
            const char *eq = strchr(v, '=');
            double num;
            if (!eq || eq == v || !parse_number(eq + 1, &num))
                return usage_error("--set expects NAME=NUMBER, got '%s'", v);
            if (c->nsets == MAX_SETS) return usage_error("too many --set options (at most %d)", MAX_SETS);
            c->sets[c->nsets++] = (IrOverride){.name = strndup(v, (size_t)(eq - v)), .value = num};
        } else if (check && strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            c->check.seed = strtoull(v, &end, 10);
            if (*end || errno || v[0] == '-') return usage_error("--seed expects a non-negative integer, got '%s'", v);
        } else if (check && strcmp(a, "--batch") == 0) {
            char *end;
            long b = strtol(v, &end, 10);
            if (*end || b < 1 || b > 4096) return usage_error("--batch expects an integer from 1 to 4096, got '%s'", v);
            c->check.batch = (int)b;
        } else if (check && strcmp(a, "--tolerance") == 0) {
            if (!parse_number(v, &c->check.tolerance) || !(c->check.tolerance > 0))
                return usage_error("--tolerance expects a positive number, got '%s'", v);
        } else {
            fprintf(stderr, "chiralc: error: unknown option '%s' for '%s'", a, c->cmd);
            fputs(" (chiralc --help lists the options)\n", stderr);
            return EXIT_USAGE;
        }
        if (val) *val = v;
    }
    if (!c->model) return usage_error("no model file given");
    if (build && (!c->build.output || !*c->build.output)) return usage_error("build needs -o PROGRAM");
    if (!c->inspect.ir && !c->inspect.table && !c->after) c->inspect.ir = c->inspect.table = true;
    return 0;
}

/* The command line overrides the model's chirality block. */
static int apply_cli_config(const Cli *c, IrChirality *cfg) {
    cfg->baseline = c->baseline;
    if (c->layout) {
        if (strcmp(c->layout, "joints") == 0) cfg->layout = IR_LAYOUT_JOINTS;
        else if (strcmp(c->layout, "pairs") == 0) cfg->layout = IR_LAYOUT_PAIRS;
        else return usage_error("--layout expects joints or pairs, got '%s'", c->layout);
    }
    if (c->activations) {
        if (strcmp(c->activations, "paper") == 0) cfg->activations = IR_ACTS_PAPER;
        else if (strcmp(c->activations, "mixed") == 0) cfg->activations = IR_ACTS_MIXED;
        else return usage_error("--activations expects paper or mixed, got '%s'", c->activations);
    }
    if (c->sharing) {
        if (strcmp(c->sharing, "full") == 0) cfg->sharing = IR_SHARING_FULL;
        else if (strcmp(c->sharing, "paper") == 0) cfg->sharing = IR_SHARING_PAPER;
        else return usage_error("--sharing expects full or paper, got '%s'", c->sharing);
    }
    if (c->neg_ratio) {
        double r;
        if (!parse_number(c->neg_ratio, &r) || !(r > 0 && r < 1))
            return usage_error("--neg-ratio expects a number between 0 and 1, got '%s'", c->neg_ratio);
        cfg->neg_ratio = r;
    }
    return 0;
}

/* The front half: source -> tree -> graph -> passes. */
static int compile_and_run(Cli *c) {
    Arena *arena = arena_new();
    Diag diag;
    diag_init(&diag, stderr);
    int status = EXIT_USER;
    const SrcFile *file = diag_read_file(arena, &diag, c->model);
    AstProgram *ast = file ? fe_parse(arena, &diag, file) : NULL;
    IrProgram *prog = ast ? ir_elaborate(arena, &diag, ast, c->sets, c->nsets) : NULL;
    if (!prog) goto done;
    for (int i = 0; i < c->nsets; i++)
        if (!c->sets[i].used) {
            fprintf(stderr, "chiralc: error: --set %s: %s has no 'let %s'\n", c->sets[i].name,
                    c->model, c->sets[i].name);
            status = EXIT_USAGE;
            goto done;
        }
    if ((status = apply_cli_config(c, &prog->cfg)) != 0) goto done;
    prog->training = c->train;
    status = EXIT_USER;
    PipelineOpts popts = {.dump_after = c->after, .dump = stdout};
    if (!pass_pipeline(prog, &popts)) goto done;
    if (strcmp(c->cmd, "inspect") == 0)
        status = c->after && !c->inspect.table && !c->inspect.dot ? 0 : cmd_inspect(prog, &c->inspect);
    else if (strcmp(c->cmd, "emit") == 0)
        status = cmd_emit(prog, &c->emit);
    else if (strcmp(c->cmd, "build") == 0)
        status = cmd_build(prog, &c->build);
    else
        status = cmd_check(prog, &c->check);
done:
    arena_free(arena);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        puts("chiralc 0.1");
        return 0;
    }
    Cli cli = {0};
    int status = parse_args(&cli, argc, argv);
    if (status) return status;
    status = compile_and_run(&cli);
    for (int i = 0; i < cli.nsets; i++) free((char *)cli.sets[i].name);
    return status;
}
