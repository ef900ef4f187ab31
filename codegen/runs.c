/* codegen/runs.c: the runs of a loop kernel's gathers along its innermost variable.
 *
 * Why: the folded network's loop kernels (synthesis, even/odd analysis, their
 * transposes, batchnorm's per-channel parameters) read channels through index
 * tables, x[row + t0[c]] * t2[c]. Element by element that is a gather, which no CPU
 * vectoriser widens well. But the tables come from the chirality layout: along the
 * channel, an index table steps by one for whole runs (20 to 200 channels at the
 * bench's widths). Within such a run the gather is a contiguous load, so a backend can
 * loop over the runs and, inside, over a plain affine loop it vectorises. A coefficient
 * table (t2[c]) is read at the channel itself, a contiguous load already: it does not
 * cut the runs (when it did, as a scalar a run, its value changed every 20 channels
 * and a third of the runs ended in a scalar remainder of 4). The values read are the
 * same, so the results are too, bit for bit. */
#include <string.h>

#include "codegen/codegen.h"

static void add_tab(KirRuns *r, int tab) {
    for (int j = 0; j < r->ntab; j++)
        if (r->tab[j] == tab) return;
    if (r->ntab == KIR_RUNS_MAX_TAB) {
        r->ntab = -1; /* too many: no runs */
        return;
    }
    r->tab[r->ntab++] = tab;
}
static void index_tabs(KirRuns *r, const KirIndex *x) {
    for (int t = 0; t < x->ntab && r->ntab >= 0; t++)
        if (x->tab[t].var == r->var) add_tab(r, x->tab[t].tab);
}
static void expr_tabs(KirRuns *r, const KirExpr *x) {
    if (r->ntab < 0) return;
    if (x->op == KIR_E_LOAD || x->op == KIR_E_DROPMASK) index_tabs(r, &x->idx);
    for (int i = 0; i < kir_eop_arity[x->op]; i++) expr_tabs(r, x->a[i]);
}

/* Whether element i of (int) table t continues the run that element i - 1 is in. */
static bool continues(const KirTab *t, long i) { return t->i[i] == t->i[i - 1] + 1; }

bool kir_loop_runs(const KirProgram *k, const KirLoop *l, long min_len, KirRuns *r) {
    memset(r, 0, sizeof *r);
    r->var = l->ndims - 1;
    if (r->var < 1 || l->ext[r->var].batch) return false;
    long ext = l->ext[r->var].n;
    for (int j = 0; j < l->nst && r->ntab >= 0; j++) {
        index_tabs(r, &l->st[j].idx);
        expr_tabs(r, l->st[j].e);
    }
    if (r->ntab <= 0) return false;
    for (int j = 0; j < r->ntab; j++)
        if (k->tabs[r->tab[j]].n < ext) return false;
    long n = 1;
    for (long i = 1; i < ext; i++)
        for (int j = 0; j < r->ntab; j++)
            if (!continues(&k->tabs[r->tab[j]], i)) {
                n++;
                break;
            }
    if (n * min_len > ext) return false;
    r->n = (int)n;
    r->start = arena_alloc(k->arena, sizeof(long) * (size_t)(n + 1));
    r->base = arena_alloc(k->arena, sizeof(int) * (size_t)(n * r->ntab));
    long q = 0;
    for (long i = 0; i < ext; i++) {
        bool starts = i == 0;
        for (int j = 0; j < r->ntab && !starts; j++) starts = !continues(&k->tabs[r->tab[j]], i);
        if (!starts) continue;
        r->start[q] = i;
        for (int j = 0; j < r->ntab; j++) r->base[q * r->ntab + j] = (int)(k->tabs[r->tab[j]].i[i] - i);
        q++;
    }
    r->start[n] = ext;
    return true;
}
