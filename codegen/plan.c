/* codegen/plan.c: the static memory plan.
 *
 * Every temporary lives in one function, from the first to the last step that
 * touches it (inclusive, so a step's operands never share memory). Temporaries
 * whose lifetimes overlap get disjoint ranges of the arena; the others may
 * reuse memory. A backward continues its forward's timeline, so what the
 * forward leaves for it stays untouched until the backward has read it. The arena has two regions: per-sample buffers first (their
 * offsets scale with the batch, so one plan serves every batch size), then
 * fixed-size ones. Placement is first-fit, largest buffer first: simple,
 * deterministic, and close to the liveness bound on chains of layers. */
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"

typedef struct Use {
    KirProgram *k;
    int fn, step;
} Use;

static void touch(Use *u, int b) {
    if (b < 0) return;
    KirBuf *x = &u->k->bufs[b];
    if (x->kind != KIR_BUF_TEMP) return;
    if (x->func >= 0 && x->func != u->fn)
        sup_bug("memory plan: temporary %s is used by %s and %s", x->name, kir_fn_name[x->func], kir_fn_name[u->fn]);
    x->func = u->fn; /* the forward of a backward: they share one timeline */
    if (x->first < 0) x->first = u->step;
    x->last = u->step;
}

static void touch_expr(Use *u, const KirExpr *e) {
    if (!e) return;
    if (e->op == KIR_E_LOAD) touch(u, e->idx.buf);
    for (int i = 0; i < kir_eop_arity[e->op]; i++) touch_expr(u, e->a[i]);
}

static const KirProgram *sort_k;
static int by_size(const void *a, const void *b) {
    const KirBuf *x = &sort_k->bufs[*(const int *)a], *y = &sort_k->bufs[*(const int *)b];
    long sx = x->per_sample + x->fixed, sy = y->per_sample + y->fixed;
    if (sx != sy) return sx > sy ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

void cg_plan(KirProgram *k) {
    for (int b = 0; b < k->nbufs; b++) {
        KirBuf *x = &k->bufs[b];
        x->func = x->first = x->last = -1;
        x->offset = 0;
        if (x->kind == KIR_BUF_TEMP && x->per_sample && x->fixed)
            sup_bug("memory plan: temporary %s is both per-sample and fixed", x->name);
    }
    for (int f = 0; f < KIR_NUM_FNS; f++)
        for (int i = 0; i < k->fn[f].nsteps; i++) {
            /* a backward's steps continue its forward's numbering */
            KirFn fw = kir_fn_forward_of((KirFn)f);
            Use u = {k, (int)fw, i + (fw != (KirFn)f ? k->fn[fw].nsteps : 0)};
            const KirStep *s = &k->fn[f].steps[i];
            if (s->kind == KIR_STEP_GEMM) {
                touch(&u, s->g.a.buf), touch(&u, s->g.b.buf), touch(&u, s->g.c.buf);
                continue;
            }
            for (int j = 0; j < s->l.nst; j++) {
                touch_expr(&u, s->l.st[j].e);
                touch(&u, s->l.st[j].idx.buf);
            }
        }
    int *order = sup_malloc(sizeof(int) * (size_t)(k->nbufs + 1));
    int n = 0;
    for (int b = 0; b < k->nbufs; b++)
        if (k->bufs[b].kind == KIR_BUF_TEMP && k->bufs[b].func >= 0) order[n++] = b;
    sort_k = k;
    qsort(order, (size_t)n, sizeof *order, by_size);
    int *placed = sup_malloc(sizeof(int) * (size_t)(n + 1));
    long end[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        KirBuf *x = &k->bufs[order[i]];
        bool ps = x->per_sample > 0;
        long size = ps ? x->per_sample : x->fixed;
        /* the conflicting buffers, by offset; try the gaps from the bottom */
        int nc = 0;
        for (int j = 0; j < i; j++) {
            const KirBuf *y = &k->bufs[order[j]];
            if (y->func == x->func && (y->per_sample > 0) == ps && y->first <= x->last && x->first <= y->last)
                placed[nc++] = order[j];
        }
        long off = 0;
        for (bool moved = true; moved;) {
            moved = false;
            for (int j = 0; j < nc; j++) {
                const KirBuf *y = &k->bufs[placed[j]];
                long ys = ps ? y->per_sample : y->fixed;
                if (off < y->offset + ys && y->offset < off + size) {
                    off = y->offset + ys;
                    moved = true;
                }
            }
        }
        x->offset = off;
        if (off + size > end[ps ? 0 : 1]) end[ps ? 0 : 1] = off + size;
    }
    k->arena_per_sample = end[0];
    k->arena_fixed = end[1];
    sup_free(order);
    sup_free(placed);
}

long cg_plan_address(const KirProgram *k, int b, long batch) {
    const KirBuf *x = &k->bufs[b];
    sup_assert(x->kind == KIR_BUF_TEMP);
    return x->per_sample ? x->offset * batch : k->arena_per_sample * batch + x->offset;
}
