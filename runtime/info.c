/* runtime/info.c: `MODEL info`: what the program was compiled from and what it expects. */
#include <inttypes.h>
#include <string.h>

#include "runtime/rt.h"

static void shape_str(const RtModelIo *io, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[N");
    if (io->frames > 0 && k < n) k += (size_t)snprintf(buf + k, n - k, ", %d", io->frames);
    if (io->joints > 0 && k < n) k += (size_t)snprintf(buf + k, n - k, ", %d, %d", io->joints, io->coords);
    else if (k < n) k += (size_t)snprintf(buf + k, n - k, ", %d", io->features);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* The chirality transform of a tensor in numbers: features swapped in pairs, negated, fixed. */
static void chirality_str(const RtModelIo *io, char *buf, size_t n) {
    if (!io->partner) {
        snprintf(buf, n, "trivial%s%s", io->invariant ? " (invariant)" : "", io->is_class ? ", class scores" : "");
        return;
    }
    int pairs = 0, neg = 0, fixed = 0;
    for (int f = 0; f < io->features; f++) {
        if (io->partner[f] > f) pairs++;
        if (io->partner[f] == f) fixed++;
        if (io->sign[f] < 0) neg++;
    }
    snprintf(buf, n, "%d pairs swapped, %d fixed, %d negated of %d features", pairs, fixed, neg, io->features);
}

static void io_lines(const char *kind, const RtModelIo *io, int n) {
    printf("%s:\n", kind);
    for (int i = 0; i < n; i++) {
        char sh[96], ch[160];
        shape_str(&io[i], sh, sizeof sh);
        chirality_str(&io[i], ch, sizeof ch);
        printf("  %-12s %-18s %s\n", io[i].name, sh, io[i].is_class ? "int64 labels as targets" : "float32");
        printf("  %-12s %-18s chirality: %s\n", "", "", ch);
    }
}

int rt_cmd_info(const RtModel *m, const RtOpts *o) {
    (void)o;
    printf("model        %s\n", m->name);
    printf("options      %s\n", m->options);
    printf("fingerprint  %s\n", m->fingerprint);
    printf("runtime ABI  %d\n", m->abi);
    const RtBackend *be = rt_backend();
    RtError e;
    if (be->host_memory) printf("runs on      %s\n", be->device());
    else if (be->init(&e)) printf("runs on      %s: %s\n", be->name, be->device());
    else printf("runs on      %s: %s\n", be->name, e.msg);
    io_lines("inputs", m->inputs, m->ninputs);
    io_lines("outputs", m->outputs, m->noutputs);
    printf("parameters   %" PRId64 " (folded, trainable) in %d tensors\n", m->params_size, m->nparams);
    printf("state        %" PRId64 " (batchnorm running statistics) in %d tensors\n", m->state_size, m->nstate);
    printf("prepared     %" PRId64 " (inference weights derived by prepare)\n", m->prep_size);
    const int64_t b = m->train.batch > 0 ? m->train.batch : 64;
    const double mb = (double)(m->arena_per_sample * b + m->arena_fixed) * 4.0 / (1024.0 * 1024.0);
    printf("arena        %" PRId64 " floats per sample + %" PRId64 " fixed (%.1f MiB at batch %" PRId64 ")\n",
           m->arena_per_sample, m->arena_fixed, mb, b);
    const RtModelTrain *t = &m->train;
    if (t->loss_output >= 0)
        printf("train        loss %s(%s), %s lr %g decay %g, batch %d, epochs %d, mirror %g, clip %g\n", t->loss,
               m->outputs[t->loss_output].name, t->optimizer, t->lr, t->decay, t->batch, t->epochs, t->mirror,
               t->clip);
    else
        printf("train        no loss: inference only\n");
    printf("backward     %s\n", m->backward ? "yes" : "no (this program cannot train)");
    return RT_EXIT_OK;
}
