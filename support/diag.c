/* support/diag.c: diagnostics in the form compilers share:
 *   file:line:col: error: message
 *   the source line
 *         ^
 * Errors are counted so a stage can collect several before the driver stops. */
#include <errno.h>
#include <string.h>

#include "support/support.h"

enum { LINE_WINDOW = 160 }; /* longer source lines are shown clipped around the caret */

void diag_init(Diag *d, FILE *out) {
    memset(d, 0, sizeof *d);
    d->out = out ? out : stderr;
    d->max_errors = 20;
}

/* Shows the line `loc` points into, and a caret under its column. Bytes that
 * would garble a terminal are shown as '?'; tabs are kept in both lines so the
 * caret lines up whatever the tab width. */
static void show_line(FILE *out, SrcLoc loc) {
    const SrcFile *f = loc.file;
    if (!f || loc.line <= 0) return;
    size_t pos = 0;
    for (int line = 1; line < loc.line && pos < f->len; pos++)
        if (f->text[pos] == '\n') line++;
    size_t end = pos;
    while (end < f->len && f->text[end] != '\n') end++;
    size_t len = end - pos;
    size_t col = loc.col > 0 ? (size_t)loc.col - 1 : 0;
    if (col > len) col = len;
    size_t from = 0, to = len;
    if (len > LINE_WINDOW) {
        from = col > LINE_WINDOW / 2 ? col - LINE_WINDOW / 2 : 0;
        to = from + LINE_WINDOW < len ? from + LINE_WINDOW : len;
    }
    const char *pre = from > 0 ? "..." : "", *post = to < len ? "..." : "";
    fputs(pre, out);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)f->text[pos + i];
        fputc(c == '\t' || (c >= 32 && c < 127) ? c : '?', out);
    }
    fprintf(out, "%s\n%*s", post, (int)strlen(pre), "");
    for (size_t i = from; i < col; i++) fputc(f->text[pos + i] == '\t' ? '\t' : ' ', out);
    fputs("^\n", out);
}

__attribute__((format(printf, 4, 0)))
static void report(Diag *d, const char *kind, SrcLoc loc, const char *fmt, va_list ap) {
    if (loc.file)
        fprintf(d->out, "%s:%d:%d: %s: ", loc.file->name, loc.line, loc.col, kind);
    else
        fprintf(d->out, "chiralc: %s: ", kind);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    show_line(d->out, loc);
}

void diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap) {
    d->nerrors++;
    d->quiet = d->max_errors > 0 && d->nerrors > d->max_errors;
    if (d->quiet) {
        if (d->nerrors == d->max_errors + 1)
            fprintf(d->out, "%s: error: too many errors, stopping here\n",
                    loc.file ? loc.file->name : "chiralc");
        return;
    }
    report(d, "error", loc, fmt, ap);
}

void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    d->nwarnings++;
    d->quiet = false;
    va_start(ap, fmt);
    report(d, "warning", loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) {
    if (d->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    report(d, "note", loc, fmt, ap);
    va_end(ap);
}

void diag_file_error(Diag *d, const char *file, const char *fmt, ...) {
    va_list ap;
    d->nerrors++;
    fprintf(d->out, "%s: error: ", file);
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
}

SrcFile *diag_string_file(Arena *a, const char *name, const char *text, size_t len) {
    SrcFile *f = arena_alloc(a, sizeof *f);
    f->name = arena_strdup(a, name);
    f->text = arena_strndup(a, text, len);
    f->len = len;
    return f;
}

SrcFile *diag_read_file(Arena *a, Diag *d, const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        diag_file_error(d, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = sup_malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += n;
        if (len == cap) buf = sup_realloc(buf, cap *= 2);
    }
    bool failed = ferror(fp);
    int err = errno;
    fclose(fp);
    if (failed) {
        sup_free(buf);
        diag_file_error(d, path, "cannot read: %s", strerror(err));
        return NULL;
    }
    SrcFile *f = diag_string_file(a, path, buf, len);
    sup_free(buf);
    return f;
}
