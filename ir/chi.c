/* ir/chi.c: chirality types (chirality.md 1) and the even/odd basis (chirality.md 2).
 *
 * A type is a signed involution of the feature axis, stored as partner and
 * sign arrays; partner == NULL is the trivial type. Every function here treats
 * an explicit identity with all signs +1 exactly like NULL, so that two ways of
 * writing the same type always compare equal. */
#include <string.h>

#include "ir/ir.h"

static int partner_of(const IrChi *c, int f) { return c->partner ? c->partner[f] : f; }
static int sign_of(const IrChi *c, int f) { return c->sign ? c->sign[f] : 1; }

IrChi ir_chi_trivial(int n) {
    IrChi c = {.n = n, .partner = NULL, .sign = NULL, .desc = "trivial"};
    return c;
}

bool ir_chi_is_trivial(const IrChi *c) {
    if (!c->partner && !c->sign) return true;
    for (int f = 0; f < c->n; f++)
        if (partner_of(c, f) != f || sign_of(c, f) != 1) return false;
    return true;
}

bool ir_chi_equal(const IrChi *a, const IrChi *b) {
    if (a->n != b->n) return false;
    for (int f = 0; f < a->n; f++)
        if (partner_of(a, f) != partner_of(b, f) || sign_of(a, f) != sign_of(b, f)) return false;
    return true;
}

bool ir_chi_has_negated(const IrChi *c) {
    for (int f = 0; f < c->n; f++)
        if (sign_of(c, f) < 0) return true;
    return false;
}

IrChiStats ir_chi_stats(const IrChi *c) {
    IrChiStats s = {0};
    for (int f = 0; f < c->n; f++) {
        int g = partner_of(c, f);
        if (g == f) {
            if (sign_of(c, f) > 0) s.centre_p++;
            else s.centre_n++;
        } else if (f < g) {
            s.pairs++;
            if (sign_of(c, f) < 0) s.pairs_n++;
        }
    }
    s.d_even = s.pairs + s.centre_p;
    s.d_odd = s.pairs + s.centre_n;
    return s;
}

/* Fresh arrays holding c's partner and sign explicitly (identity for trivial). */
static void alloc_explicit(Arena *a, int n, IrChi *out) {
    out->n = n;
    out->partner = arena_new_array(a, int, n > 0 ? n : 1);
    out->sign = arena_new_array(a, signed char, n > 0 ? n : 1);
}

IrChi ir_chi_concat(Arena *a, const IrChi *parts, int nparts) {
    int n = 0;
    bool trivial = true;
    for (int i = 0; i < nparts; i++) {
        n += parts[i].n;
        if (!ir_chi_is_trivial(&parts[i])) trivial = false;
    }
    if (trivial) return ir_chi_trivial(n);
    IrChi c;
    alloc_explicit(a, n, &c);
    int off = 0;
    size_t desc_len = 16;
    for (int i = 0; i < nparts; i++) {
        for (int f = 0; f < parts[i].n; f++) {
            c.partner[off + f] = off + partner_of(&parts[i], f);
            c.sign[off + f] = (signed char)sign_of(&parts[i], f);
        }
        off += parts[i].n;
        desc_len += strlen(parts[i].desc ? parts[i].desc : "?") + 2;
    }
    char *d = arena_alloc(a, desc_len);
    strcpy(d, "concat(");
    for (int i = 0; i < nparts; i++) {
        if (i) strcat(d, ", ");
        strcat(d, parts[i].desc ? parts[i].desc : "?");
    }
    strcat(d, ")");
    c.desc = d;
    return c;
}

IrChi ir_chi_tile(Arena *a, const IrChi *c, int times) {
    sup_assert(times >= 0);
    if (ir_chi_is_trivial(c)) return ir_chi_trivial(c->n * times);
    IrChi t;
    alloc_explicit(a, c->n * times, &t);
    for (int r = 0; r < times; r++)
        for (int f = 0; f < c->n; f++) {
            t.partner[r * c->n + f] = r * c->n + partner_of(c, f);
            t.sign[r * c->n + f] = (signed char)sign_of(c, f);
        }
    t.desc = arena_printf(a, "%d x %s", times, c->desc ? c->desc : "?");
    return t;
}

IrChi ir_chi_all_positive(Arena *a, const IrChi *c) {
    if (!ir_chi_has_negated(c)) return *c;
    IrChi t;
    alloc_explicit(a, c->n, &t);
    for (int f = 0; f < c->n; f++) {
        t.partner[f] = partner_of(c, f);
        t.sign[f] = 1;
    }
    t.desc = arena_printf(a, "positive(%s)", c->desc ? c->desc : "?");
    if (ir_chi_is_trivial(&t)) return ir_chi_trivial(c->n);
    return t;
}

/* The type's description names the coordinates; the elaborator, which knows the
 * names the user wrote, may replace desc. Without names we use x, y, z, w. */
IrChi ir_chi_skeleton(Arena *a, const IrSkeleton *s, int ncoords, const bool *coord_negated) {
    static const char *const default_names[] = {"x", "y", "z", "w"};
    IrChi c;
    alloc_explicit(a, s->njoints * ncoords, &c);
    for (int j = 0; j < s->njoints; j++)
        for (int k = 0; k < ncoords; k++) {
            int f = j * ncoords + k;
            c.partner[f] = s->partner[j] * ncoords + k;
            c.sign[f] = (signed char)(coord_negated[k] ? -1 : 1);
        }
    size_t len = strlen(s->name) + 3 + (size_t)ncoords * 16;
    char *d = arena_alloc(a, len);
    strcpy(d, s->name);
    strcat(d, "(");
    for (int k = 0; k < ncoords; k++) {
        char buf[16];
        if (k < 4) snprintf(buf, sizeof buf, "%s", default_names[k]);
        else snprintf(buf, sizeof buf, "c%d", k);
        if (k) strcat(d, ",");
        strcat(d, buf);
        if (coord_negated[k]) strcat(d, "!");
    }
    strcat(d, ")");
    c.desc = d;
    return c;
}

bool ir_chi_valid(const IrChi *c, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    if (c->n < 0) { *why = "negative width"; return false; }
    if ((c->partner == NULL) != (c->sign == NULL)) {
        *why = "partner and sign must both be present or both be absent";
        return false;
    }
    for (int f = 0; f < c->n; f++) {
        int g = partner_of(c, f);
        if (g < 0 || g >= c->n) { *why = "partner out of range"; return false; }
        if (partner_of(c, g) != f) { *why = "partner is not an involution"; return false; }
        int s = sign_of(c, f);
        if (s != 1 && s != -1) { *why = "sign is neither +1 nor -1"; return false; }
        if (sign_of(c, g) != s) { *why = "partners have different signs"; return false; }
    }
    *why = NULL;
    return true;
}

void ir_chi_apply(const IrChi *c, const double *x, double *y, long rows) {
    int n = c->n;
    for (long r = 0; r < rows; r++) {
        const double *xr = x + r * n;
        double *yr = y + r * n;
        for (int f = 0; f < n; f++) yr[f] = sign_of(c, f) * xr[partner_of(c, f)];
    }
}

/* Components follow the first feature of their orbit, so a type's basis is a
 * pure function of the type and every consumer (params, interpreter, codegen)
 * agrees on it. For a pair (f, g, s) both components record f, g and s:
 * e = x_f + s x_g, o = x_f - s x_g. A centre feature records g = -1. */
IrBasis ir_basis(Arena *a, const IrChi *c) {
    IrChiStats st = ir_chi_stats(c);
    IrBasis b = {.n = c->n, .d_even = st.d_even, .d_odd = st.d_odd};
    b.ef = arena_new_array(a, int, st.d_even + 1);
    b.eg = arena_new_array(a, int, st.d_even + 1);
    b.es = arena_new_array(a, signed char, st.d_even + 1);
    b.of = arena_new_array(a, int, st.d_odd + 1);
    b.og = arena_new_array(a, int, st.d_odd + 1);
    b.os = arena_new_array(a, signed char, st.d_odd + 1);
    int ke = 0, ko = 0;
    for (int f = 0; f < c->n; f++) {
        int g = partner_of(c, f);
        signed char s = (signed char)sign_of(c, f);
        if (g == f) {
            if (s > 0) { b.ef[ke] = f; b.eg[ke] = -1; b.es[ke] = s; ke++; }
            else { b.of[ko] = f; b.og[ko] = -1; b.os[ko] = s; ko++; }
        } else if (f < g) {
            b.ef[ke] = f; b.eg[ke] = g; b.es[ke] = s; ke++;
            b.of[ko] = f; b.og[ko] = g; b.os[ko] = s; ko++;
        }
    }
    sup_assert(ke == st.d_even && ko == st.d_odd);
    return b;
}

void ir_basis_analyse(const IrBasis *b, const double *x, double *even, double *odd) {
    for (int k = 0; k < b->d_even; k++)
        even[k] = b->eg[k] < 0 ? x[b->ef[k]] : x[b->ef[k]] + b->es[k] * x[b->eg[k]];
    for (int k = 0; k < b->d_odd; k++)
        odd[k] = b->og[k] < 0 ? x[b->of[k]] : x[b->of[k]] - b->os[k] * x[b->og[k]];
}

/* Every pair has its even and its odd component at the same rank among the
 * pairs, so one walk over both lists pairs them up again. */
void ir_basis_synthesise(const IrBasis *b, const double *even, const double *odd, double *x) {
    int ko = 0;
    for (int k = 0; k < b->d_even; k++) {
        if (b->eg[k] < 0) {
            x[b->ef[k]] = even[k];
            continue;
        }
        while (b->og[ko] < 0) { /* odd centre features before this pair */
            x[b->of[ko]] = odd[ko];
            ko++;
        }
        sup_assert(b->of[ko] == b->ef[k]);
        double e = even[k], o = odd[ko];
        x[b->ef[k]] = 0.5 * (e + o);
        x[b->eg[k]] = b->es[k] * 0.5 * (e - o);
        ko++;
    }
    for (; ko < b->d_odd; ko++) {
        sup_assert(b->og[ko] < 0);
        x[b->of[ko]] = odd[ko];
    }
}

int ir_chi_orbits(const IrChi *c, bool trivial, int *orbit_of) {
    int k = 0;
    for (int f = 0; f < c->n; f++) {
        int g = trivial || !c->partner ? f : c->partner[f];
        orbit_of[f] = g < f ? orbit_of[g] : k++;
    }
    return k;
}
