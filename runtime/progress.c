/* runtime/progress.c: what a training run shows and records.
 *
 * On a terminal, a bar redrawn in place (\r) with the running loss and the epoch's ETA;
 * elsewhere (a log file, CI) only one plain line per epoch, since carriage returns make
 * unreadable logs. The CSV log is rewritten whole through a temporary file and rename
 * after every epoch: a run killed at any moment leaves the previous, valid file. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/rt.h"

double rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void rt_progress_begin(RtProgress *p, FILE *out, int tty, int epoch, int epochs, int64_t total) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = tty < 0 ? isatty(fileno(out)) != 0 : tty != 0;
    p->epoch = epoch;
    p->epochs = epochs;
    p->total = total;
    p->t0 = rt_now();
    p->last_draw = -1;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 359999) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void rt_progress_update(RtProgress *p, int64_t done, double loss) {
    p->done = done;
    if (!p->tty) return;
    double now = rt_now();
    if (done < p->total && p->last_draw >= 0 && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    enum { BAR = 24 };
    char bar[BAR + 1];
    int64_t fill = p->total > 0 ? done * BAR / p->total : BAR;
    for (int i = 0; i < BAR; i++) bar[i] = i < fill ? '#' : '.';
    bar[BAR] = 0;
    double el = now - p->t0;
    char eta[32];
    fmt_duration(eta, sizeof eta, done > 0 ? el * (double)(p->total - done) / (double)done : -1);
    char line[256];
    int w = snprintf(line, sizeof line, "epoch %d/%d [%s] %lld/%lld  loss %.6g  eta %s", p->epoch, p->epochs, bar,
                     (long long)done, (long long)p->total, loss, eta);
    if (w < 0) return;
    if (w >= (int)sizeof line) w = (int)sizeof line - 1;
    /* Pad over a longer previous bar so that no stale characters remain. */
    fprintf(p->out, "\r%s%*s", line, p->width > w ? p->width - w : 0, "");
    fflush(p->out);
    p->width = w;
}

void rt_progress_end(RtProgress *p, const char *fmt, ...) {
    if (p->tty && p->width > 0) fprintf(p->out, "\r%*s\r", p->width, "");
    p->width = 0;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
}

/* ---- the CSV log ---------------------------------------------------------------- */

static void csv_append(RtCsvLog *l, const char *s, size_t n) {
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->len + n + 1) cap *= 2;
        char *t = rt_malloc(cap);
        if (l->text) memcpy(t, l->text, l->len);
        rt_free(l->text);
        l->text = t;
        l->cap = cap;
    }
    memcpy(l->text + l->len, s, n);
    l->len += n;
    l->text[l->len] = 0;
}

static bool csv_flush(RtCsvLog *l, RtError *e) {
    RtAtomic a;
    if (!rt_atomic_open(&a, l->path, e)) return false;
    if (fwrite(l->text, 1, l->len, a.f) != l->len) {
        rt_atomic_abort(&a);
        return rt_fail(e, "%s: cannot write the log", l->path);
    }
    return rt_atomic_commit(&a, e);
}

/* The rows of an earlier run's log worth keeping: the header must match and each row
 * must be whole and of an epoch <= keep. */
static void csv_keep_rows(RtCsvLog *l, const char *header, int keep) {
    FILE *f = fopen(l->path, "rb");
    if (!f) return;
    char *old = NULL;
    size_t n = 0, cap = 0;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        if (n + got + 1 > cap) {
            cap = (n + got + 1) * 2;
            char *t = rt_malloc(cap);
            if (old) memcpy(t, old, n);
            rt_free(old);
            old = t;
        }
        memcpy(old + n, buf, got);
        n += got;
    }
    fclose(f);
    size_t hl = strlen(header);
    if (!old || n < hl || memcmp(old, header, hl) != 0) {
        rt_free(old);
        return;
    }
    old[n] = 0;
    for (size_t i = hl; i < n;) {
        char *nl = memchr(old + i, '\n', n - i);
        if (!nl) break; /* a partial last row: dropped */
        char *end;
        long ep = strtol(old + i, &end, 10);
        if (end != old + i && *end == ',' && ep <= keep) csv_append(l, old + i, (size_t)(nl - (old + i)) + 1);
        i = (size_t)(nl - old) + 1;
    }
    rt_free(old);
}

bool rt_csv_open(RtCsvLog *l, const char *path, const char *const *metric_names, int nmetrics, int keep_epochs,
                 RtError *e) {
    memset(l, 0, sizeof *l);
    size_t pn = strlen(path) + 1;
    l->path = rt_malloc(pn);
    memcpy(l->path, path, pn);
    l->nmetrics = nmetrics;
    RtCsvLog h = {0};
    const char *head = "epoch,lr,train_loss,val_loss";
    csv_append(&h, head, strlen(head));
    for (int i = 0; i < nmetrics; i++) {
        csv_append(&h, ",", 1);
        csv_append(&h, metric_names[i], strlen(metric_names[i]));
    }
    csv_append(&h, ",seconds\n", 9);
    csv_append(l, h.text, h.len);
    if (keep_epochs > 0) csv_keep_rows(l, h.text, keep_epochs);
    rt_free(h.text);
    if (!csv_flush(l, e)) {
        rt_csv_close(l);
        return false;
    }
    return true;
}

static void csv_num(RtCsvLog *l, double v, bool seconds) {
    char b[64];
    int n = !isfinite(v) ? 0 : seconds ? snprintf(b, sizeof b, "%.3f", v) : snprintf(b, sizeof b, "%.9g", v);
    csv_append(l, ",", 1);
    if (n > 0) csv_append(l, b, (size_t)n);
}

bool rt_csv_row(RtCsvLog *l, int epoch, double lr, double train_loss, double val_loss, const double *metrics,
                double seconds, RtError *e) {
    char b[32];
    int n = snprintf(b, sizeof b, "%d", epoch);
    csv_append(l, b, (size_t)n);
    csv_num(l, lr, false);
    csv_num(l, train_loss, false);
    csv_num(l, val_loss, false);
    for (int i = 0; i < l->nmetrics; i++) csv_num(l, metrics[i], false);
    csv_num(l, seconds, true);
    csv_append(l, "\n", 1);
    return csv_flush(l, e);
}

void rt_csv_close(RtCsvLog *l) {
    rt_free(l->path);
    rt_free(l->text);
    memset(l, 0, sizeof *l);
}
