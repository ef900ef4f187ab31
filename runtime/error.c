/* runtime/error.c: one-line errors about user data. */
#include <stdarg.h>

#include "runtime/rt.h"

bool rt_fail(RtError *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return false;
}
