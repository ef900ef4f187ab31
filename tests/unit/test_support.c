/* Tests of support/: the diagnostic format, the arena, the allocation hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/support.h"

/* Runs fn with a Diag that writes into a string; returns that string (malloc'd). */
static char *capture(void (*fn)(Diag *, const SrcFile *), const SrcFile *f) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    Diag d;
    diag_init(&d, out);
    fn(&d, f);
    fclose(out);
    char *copy = strdup(buf); /* (a copy keeps gcc's dangling-pointer analysis quiet) */
    free(buf);
    return copy;
}

static void error_at_2_5(Diag *d, const SrcFile *f) {
    diag_error(d, (SrcLoc){f, 2, 5}, "unknown name '%s'", "q");
    diag_note(d, (SrcLoc){f, 1, 1}, "declared here");
}

static void test_error_format(void **state) {
    Arena *a = arena_new();
    const char *src = "net {\n  h = q + 1\n}\n";
    SrcFile *f = diag_string_file(a, "m.net", src, strlen(src));
    char *out = capture(error_at_2_5, f);
    assert_string_equal(out,
                        "m.net:2:5: error: unknown name 'q'\n"
                        "  h = q + 1\n"
                        "    ^\n"
                        "m.net:1:1: note: declared here\n"
                        "net {\n"
                        "^\n");
    free(out);
    arena_free(a);
}

static void error_far_right(Diag *d, const SrcFile *f) { diag_error(d, (SrcLoc){f, 1, 1000}, "bad"); }

static void test_long_line_is_clipped(void **state) {
    Arena *a = arena_new();
    char *src = malloc(2001);
    memset(src, 'a', 2000);
    src[2000] = 0;
    SrcFile *f = diag_string_file(a, "long.net", src, 2000);
    char *out = capture(error_far_right, f);
    /* header, clipped line, caret: three lines, none of them near 2000 bytes */
    char *l2 = strchr(out, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    assert_true(strncmp(l2, "...", 3) == 0);
    assert_true(strchr(l2, '\n') - l2 < 200);
    assert_true(strlen(l3) < 200 && strchr(l3, '^') != NULL);
    /* the caret is under column 1000: the window starts at byte 920 */
    assert_int_equal((int)(strchr(l3, '^') - l3), 3 + (999 - 919));
    free(out);
    free(src);
    arena_free(a);
}

static void many_errors(Diag *d, const SrcFile *f) {
    for (int i = 0; i < 50; i++) diag_error(d, (SrcLoc){f, 1, 1}, "e%d", i);
    assert_int_equal(d->nerrors, 50);
}

static void test_error_limit(void **state) {
    Arena *a = arena_new();
    SrcFile *f = diag_string_file(a, "x.net", "x", 1);
    char *out = capture(many_errors, f);
    int lines = 0;
    for (char *s = out; *s; s++) lines += *s == '\n';
    assert_int_equal(lines, 20 * 3 + 1);
    assert_non_null(strstr(out, "too many errors"));
    free(out);
    arena_free(a);
}

static void test_arena(void **state) {
    Arena *a = arena_new();
    for (int i = 0; i < 1000; i++) {
        char *p = arena_alloc(a, (size_t)i * 37 + 1);
        assert_true(((uintptr_t)p & 15) == 0);
        for (int k = 0; k < i * 37 + 1; k++) assert_int_equal(p[k], 0);
        memset(p, 0xab, (size_t)i * 37 + 1);
    }
    assert_string_equal(arena_printf(a, "%d-%s", 42, "x"), "42-x");
    arena_free(a);
}

static int fail_countdown;
static void *failing_malloc(size_t n) { return --fail_countdown < 0 ? NULL : malloc(n); }

static void test_allocation_hook(void **state) {
    sup_alloc_hook = failing_malloc;
    fail_countdown = 1;
    void *p = sup_malloc(16); /* the first one succeeds */
    assert_non_null(p);
    assert_int_equal(fail_countdown, 0); /* it went through the hook */
    free(p);
    /* the next one fails: one line on stderr and exit status 1, never a crash */
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        sup_malloc(16);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    sup_alloc_hook = NULL;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_format),
        cmocka_unit_test(test_long_line_is_clipped),
        cmocka_unit_test(test_error_limit),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_allocation_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
