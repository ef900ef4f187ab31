/* runtime/cli.c: the command line of a produced program.
 *
 *   MODEL train | eval | predict | bench | export | info  [options]   (--help for each)
 *
 * A bad flag or value is one line on stderr and exit status 2; everything about files
 * and data is reported by the subcommand (exit status 1). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


#include "runtime/rt.h"

enum { DEFAULT_THREADS = 2 };

typedef struct Cmd {
    const char *name, *summary, *usage, *options;
    int (*run)(const RtModel *m, const RtOpts *o);
} Cmd;

static const char data_help[] =
    "  --array NAME=ARRAY   read the model's array NAME from the file's ARRAY (repeatable;\n"
    "                       NAME may also be clip_start)\n"
    "  --batch B            samples per batch (default: the model's train block)\n"
    "  --threads N          OpenBLAS threads (default 2; results do not depend on it)\n";

static const Cmd cmds[] = {
    {"train", "train the model on an .npz of its inputs and targets",
     "train --data train.npz [--val val.npz] [--epochs N] [--batch B] [--lr X] [--seed S]\n"
     "             [--save ckpt.safetensors] [--resume ckpt.safetensors] [--log run.csv] [options]",
     "  --data FILE          training data (.npz): arrays named after the model's input and\n"
     "                       output; a clip_start array means frame sequences cut into windows\n"
     "  --val FILE           validation data: loss and the task's metrics after every epoch\n"
     "  --epochs N           epochs in all (a resumed run continues up to N)\n"
     "  --lr X               initial learning rate\n"
     "  --seed S             seeds the initial weights, the shuffle, the mirror and dropout\n"
     "  --save FILE          checkpoint (safetensors), written atomically after every epoch\n"
     "  --resume FILE        continue the run saved in FILE (bit-identical to an unbroken run)\n"
     "  --log FILE           CSV log, one row per epoch\n"
     "  --optimizer adam|sgd --decay D --clip C --mirror P   override the train block\n"
     "  --bn-momentum schedule|layer|M   batchnorm momentum: VideoPose3D's schedule (0.1\n"
     "                       decaying towards 0.001 over the run; the default), each layer's\n"
     "                       own, or M for every layer\n"
     "  --no-progress        plain lines even on a terminal\n"
     "  --subsample K        every K-th sample only (VideoPose3D's --downsample)\n",
     rt_cmd_train},
    {"eval", "the loss and the task's metrics on a data set",
     "eval --data test.npz --load ckpt.safetensors [options]",
     "  --data FILE          evaluation data (.npz), as for train\n"
     "  --load FILE          the checkpoint to evaluate\n"
     "  --subsample K        every K-th sample only\n",
     rt_cmd_eval},
    {"predict", "run the model on inputs", "predict --load ckpt.safetensors --in x.npy --out y.npy [options]",
     "  --load FILE          the checkpoint\n"
     "  --in FILE            inputs [N, frames, joints, coords] or [N, frames, features]\n"
     "                       (no frames axis for an input without time)\n"
     "  --out FILE           the outputs, shaped the same way (written atomically)\n",
     rt_cmd_predict},
    {"bench", "forward and training-step timings on random data", "bench [--batch B] [--steps N] [options]",
     "  --steps N            timed batches of each kind (default 20)\n"
     "  --seed S             the random weights and inputs\n",
     rt_cmd_bench},
    {"export", "dense weights under PyTorch's parameter names",
     "export --load ckpt.safetensors --dense out.safetensors",
     "  --load FILE          the checkpoint\n"
     "  --dense FILE         the dense weights (safetensors), written atomically\n",
     rt_cmd_export},
    {"info", "the model: inputs, outputs, chirality, parameters, memory", "info", "", rt_cmd_info},
    {"grad", "one batch's outputs, loss and gradients, to compare two builds of the model",
     "grad --load ckpt.safetensors --data d.npz --out g.safetensors [--batch B] [--seed S]",
     "  --load FILE          the checkpoint\n"
     "  --data FILE          the batch: its first B samples, in order, unmirrored\n"
     "  --out FILE           train/output, train/loss, train/grad, train/state, infer/output and\n"
     "                       infer/mirror (T f(T x)) as safetensors\n"
     "  --seed S             the dropout masks (of optimiser step 0)\n",
     rt_cmd_grad},
};
enum { NCMDS = sizeof cmds / sizeof cmds[0] };

static void program_help(const RtModel *m, const char *prog, FILE *out) {
    fprintf(out, "usage: %s COMMAND [options]\n\n%s: model '%s' compiled by chiralc (%s)\n\ncommands:\n", prog, prog,
            m->name, m->options);
    for (int i = 0; i < NCMDS; i++) fprintf(out, "  %-9s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(out, "\n%s COMMAND --help describes each.\n", prog);
}

static void cmd_help(const Cmd *c, const char *prog, FILE *out) {
    fprintf(out, "usage: %s %s\n\n%s.\n", prog, c->usage, c->summary);
    bool data = strcmp(c->name, "export") != 0 && strcmp(c->name, "info") != 0;
    if (*c->options || data) fputs("\noptions:\n", out);
    fputs(c->options, out);
    if (data) fputs(data_help, out);
    fputs("  --help               this text\n", out);
}

__attribute__((format(printf, 2, 3)))
static int usage(const char *prog, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (%s --help lists the options)\n", prog);
    return RT_EXIT_USAGE;
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo) || v > 1e300) return false;
    *out = v;
    return true;
}

/* Which options each command takes: a flag is accepted only where it means something. */
static bool takes(const char *cmd, const char *flag) {
    static const struct {
        const char *cmd, *flags;
    } t[] = {
        {"train", " --data --val --epochs --batch --lr --seed --save --resume --log --threads --array --optimizer "
                  "--decay --clip --mirror --bn-momentum --no-progress --subsample "},
        {"eval", " --data --load --batch --threads --array --subsample "},
        {"predict", " --load --in --out --batch --threads "},
        {"bench", " --batch --steps --threads --seed "},
        {"export", " --load --dense "},
        {"info", " "},
        {"grad", " --load --data --out --batch --seed --threads --array "},
    };
    char key[64];
    snprintf(key, sizeof key, " %s ", flag);
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (strcmp(t[i].cmd, cmd) == 0) return strstr(t[i].flags, key) != NULL;
    return false;
}

static int parse(const char *prog, const Cmd *c, int argc, char **argv, RtOpts *o) {
    memset(o, 0, sizeof *o);
    o->cmd = c->name;
    o->epochs = -1;
    o->lr = o->decay = o->clip = o->mirror = o->bn_momentum = -1;
    o->threads = DEFAULT_THREADS;
    o->steps = 20;
    o->subsample = 1;
    o->progress = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cmd_help(c, prog, stdout);
            return -1;
        }
        if (a[0] != '-' || !takes(c->name, a)) {
            if (a[0] != '-') return usage(prog, "unexpected argument '%s' for '%s'", a, c->name);
            return usage(prog, "unknown option '%s' for '%s'", a, c->name);
        }
        if (strcmp(a, "--no-progress") == 0) {
            o->progress = 0;
            continue;
        }
        if (i + 1 >= argc) return usage(prog, "option '%s' needs a value", a);
        const char *v = argv[++i];
        long n;
        const char **str = NULL;
        if (strcmp(a, "--data") == 0) str = &o->data;
        else if (strcmp(a, "--val") == 0) str = &o->val;
        else if (strcmp(a, "--save") == 0) str = &o->save;
        else if (strcmp(a, "--resume") == 0) str = &o->resume;
        else if (strcmp(a, "--load") == 0) str = &o->load;
        else if (strcmp(a, "--log") == 0) str = &o->log;
        else if (strcmp(a, "--in") == 0) str = &o->in;
        else if (strcmp(a, "--out") == 0) str = &o->out;
        else if (strcmp(a, "--dense") == 0) str = &o->dense;
        if (str) {
            if (!*v) return usage(prog, "option '%s' needs a file name", a);
            *str = v;
        } else if (strcmp(a, "--epochs") == 0) {
            if (!parse_int(v, 0, 1000000, &n)) return usage(prog, "--epochs expects an integer from 0 to 1000000, got '%s'", v);
            o->epochs = (int)n;
        } else if (strcmp(a, "--batch") == 0) {
            if (!parse_int(v, 1, 1 << 20, &n)) return usage(prog, "--batch expects an integer from 1 to 1048576, got '%s'", v);
            o->batch = n;
        } else if (strcmp(a, "--subsample") == 0) {
            if (!parse_int(v, 1, 1 << 30, &n)) return usage(prog, "--subsample expects a positive integer, got '%s'", v);
            o->subsample = n;
        } else if (strcmp(a, "--steps") == 0) {
            if (!parse_int(v, 1, 1000000, &n)) return usage(prog, "--steps expects an integer from 1 to 1000000, got '%s'", v);
            o->steps = (int)n;
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_int(v, 1, 1024, &n)) return usage(prog, "--threads expects an integer from 1 to 1024, got '%s'", v);
            o->threads = (int)n;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || errno || v[0] == '-')
                return usage(prog, "--seed expects a non-negative integer, got '%s'", v);
            o->seed = s;
            o->seed_given = true;
        } else if (strcmp(a, "--lr") == 0) {
            if (!parse_double(v, 0, &o->lr) || o->lr <= 0) return usage(prog, "--lr expects a positive number, got '%s'", v);
        } else if (strcmp(a, "--decay") == 0) {
            if (!parse_double(v, 0, &o->decay) || o->decay <= 0 || o->decay > 1)
                return usage(prog, "--decay expects a number in (0, 1], got '%s'", v);
        } else if (strcmp(a, "--clip") == 0) {
            if (!parse_double(v, 0, &o->clip)) return usage(prog, "--clip expects a number >= 0 (0: off), got '%s'", v);
        } else if (strcmp(a, "--mirror") == 0) {
            if (!parse_double(v, 0, &o->mirror) || o->mirror > 1)
                return usage(prog, "--mirror expects a probability in [0, 1], got '%s'", v);
        } else if (strcmp(a, "--bn-momentum") == 0) {
            if (strcmp(v, "schedule") == 0) o->bn_momentum = -1;
            else if (strcmp(v, "layer") == 0) o->bn_momentum = -2;
            else if (!parse_double(v, 0, &o->bn_momentum) || o->bn_momentum > 1)
                return usage(prog, "--bn-momentum expects schedule, layer or a number in [0, 1], got '%s'", v);
        } else if (strcmp(a, "--optimizer") == 0) {
            if (strcmp(v, "adam") != 0 && strcmp(v, "sgd") != 0)
                return usage(prog, "--optimizer expects adam or sgd, got '%s'", v);
            o->optimizer = v;
        } else if (strcmp(a, "--array") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) return usage(prog, "--array expects NAME=ARRAY, got '%s'", v);
            if (o->narrays == RT_MAX_ARRAY_MAPS) return usage(prog, "too many --array options (at most %d)", RT_MAX_ARRAY_MAPS);
            argv[i][eq - v] = 0; /* argv's strings are the program's to modify (C11 5.1.2.2.1) */
            o->array_from[o->narrays] = argv[i];
            o->array_to[o->narrays++] = eq + 1;
        }
    }
    /* what each command cannot do without */
    static const struct {
        const char *cmd, *flag;
        size_t off;
    } req[] = {
        {"train", "--data", offsetof(RtOpts, data)},    {"eval", "--data", offsetof(RtOpts, data)},
        {"eval", "--load", offsetof(RtOpts, load)},     {"predict", "--load", offsetof(RtOpts, load)},
        {"predict", "--in", offsetof(RtOpts, in)},      {"predict", "--out", offsetof(RtOpts, out)},
        {"export", "--load", offsetof(RtOpts, load)},   {"export", "--dense", offsetof(RtOpts, dense)},
        {"grad", "--load", offsetof(RtOpts, load)},     {"grad", "--data", offsetof(RtOpts, data)},
        {"grad", "--out", offsetof(RtOpts, out)},
    };
    for (size_t k = 0; k < sizeof req / sizeof *req; k++)
        if (strcmp(req[k].cmd, c->name) == 0 && !*(const char *const *)((const char *)o + req[k].off))
            return usage(prog, "'%s' needs %s", c->name, req[k].flag);
    return 0;
}

/* The pool runs loop kernels and GEMMs alike (runtime/parallel.c). */
void rt_set_threads(int n) { rt_parallel_set_threads(n > 0 ? n : DEFAULT_THREADS); }

int rt_report(const RtModel *m, const RtError *e) {
    fprintf(stderr, "%s: error: %s\n", m->name, e->msg);
    return RT_EXIT_USER;
}

int rt_main(const RtModel *m, int argc, char **argv) {
    const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
    const char *prog = argc > 0 ? (slash ? slash + 1 : argv[0]) : m->name;
    if (m->abi != RT_MODEL_ABI) {
        fprintf(stderr, "%s: error: the model was compiled for runtime ABI %d, this runtime is ABI %d\n", prog, m->abi,
                RT_MODEL_ABI);
        return RT_EXIT_USER;
    }
    if (argc < 2) {
        program_help(m, prog, stderr);
        return RT_EXIT_USAGE;
    }
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 || strcmp(c, "help") == 0) {
        program_help(m, prog, stdout);
        return RT_EXIT_OK;
    }
    for (int i = 0; i < NCMDS; i++) {
        if (strcmp(c, cmds[i].name) != 0) continue;
        RtOpts o;
        int st = parse(prog, &cmds[i], argc - 2, argv + 2, &o);
        if (st) return st < 0 ? RT_EXIT_OK : st;
        rt_set_threads(o.threads);
        /* the device (a CUDA program's GPU) is needed by every command but info */
        RtError e;
        if (strcmp(c, "info") != 0 && !rt_backend()->init(&e)) return rt_report(m, &e);
        return cmds[i].run(m, &o);
    }
    return usage(prog, "unknown command '%s' (train, eval, predict, bench, export, info, grad)", c);
}
