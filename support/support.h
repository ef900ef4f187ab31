/* support/support.h: what every layer of the compiler leans on.
 * Prefixes: arena_ (arena.c), diag_ (diag.c), sup_ (bug.c).
 * Nothing here knows about models, graphs or chirality. */
#ifndef CHIRALC_SUPPORT_H
#define CHIRALC_SUPPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ---- bug.c: internal errors and the allocation hook ---------------------- */

/* An internal error is the compiler's fault, never the user's: it names the
 * compiler's own file and line and aborts. */
#define sup_bug(...) sup_bug_at(__FILE__, __LINE__, __VA_ARGS__)
#define sup_assert(c) ((c) ? (void)0 : sup_bug("assertion failed: %s", #c))
_Noreturn void sup_bug_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every heap allocation of the compiler goes through sup_malloc, so a test can
 * make the n-th allocation fail (sup_fail_after). Out of memory is reported
 * as one line and exit(1): a compiler has nothing sensible to recover. */
void *sup_malloc(size_t n);
void *sup_realloc(void *p, size_t n);
void sup_free(void *p);
extern void *(*sup_alloc_hook)(size_t n); /* NULL: malloc */

/* ---- arena.c: one arena per compilation ------------------------------------ */

typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n); /* zeroed, 16-byte aligned */
#define arena_new_array(a, T, n) ((T *)arena_alloc((a), sizeof(T) * (size_t)(n)))
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- diag.c: source files, locations and diagnostics ------------------------ */

/* A source file held in memory for the whole compilation, so that any later
 * pass can still print the line a location points at. */
typedef struct SrcFile {
    const char *name;
    const char *text; /* may contain NUL bytes; len is authoritative */
    size_t len;
} SrcFile;

/* line and col are 1-based; col counts bytes. file == NULL: no location. */
typedef struct SrcLoc {
    const SrcFile *file;
    int line, col;
} SrcLoc;

typedef struct Diag {
    FILE *out;        /* stderr unless a test redirects it */
    int nerrors, nwarnings;
    int max_errors;   /* after this many errors: "too many errors", and stop printing */
    bool quiet;       /* the last error was not shown, so neither are its notes */
} Diag;

void diag_init(Diag *d, FILE *out);
/* file:line:col: error: message, then the source line and a caret. */
void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A note belongs to the diagnostic before it (a second location, a hint how to fix). */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
/* An error about a file as a whole (unreadable, not found): "file: error: ..." */
void diag_file_error(Diag *d, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole file into the arena. On failure reports through d and returns NULL. */
SrcFile *diag_read_file(Arena *a, Diag *d, const char *path);
SrcFile *diag_string_file(Arena *a, const char *name, const char *text, size_t len);

/* ---- atomic.c: files that appear whole or not at all ---------------------------- */

/* Write through sup_atomic_open's FILE, then sup_atomic_commit: flushed, synced and
 * renamed into place; on failure (false / NULL, errno set) the temporary file is gone. */
typedef struct SupAtomic {
    FILE *f;
    char *tmp;
    const char *path;
} SupAtomic;
FILE *sup_atomic_open(SupAtomic *w, Arena *a, const char *path);
bool sup_atomic_commit(SupAtomic *w);
/* For tools that write a file by name (a linker, LLVM): an empty temporary file beside
 * path, to be filled and then moved into place with sup_atomic_rename. */
char *sup_atomic_temp(Arena *a, const char *path);
bool sup_atomic_rename(const char *tmp, const char *path);

#endif
