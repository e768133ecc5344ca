/* test-dlopen-util.c - jl_dlib_load(): a library that is there (libc), one that is not, a missing symbol
 * (required and optional), and the outcome kept for later calls. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "dlopen-util.h"
#include "tap.h"

static size_t (*sym_strlen)(const char *s);
static int (*sym_missing)(void);
static const jl_dlsym libc_syms[] = {
    {"strlen", &sym_strlen, false},
    {"jl_no_such_function_anywhere", &sym_missing, true},
};
static jl_dlib libc_lib = JL_DLIB_INIT("libc.so.6", libc_syms);

static size_t (*sym_strlen2)(const char *s);
static int (*sym_missing2)(void);
static const jl_dlsym libc_syms_required[] = {
    {"strlen", &sym_strlen2, false},
    {"jl_no_such_function_anywhere", &sym_missing2, false},
};
static jl_dlib libc_lib_required = JL_DLIB_INIT("libc.so.6", libc_syms_required);

static int (*sym_nothing)(void);
static const jl_dlsym none_syms[] = {{"nothing", &sym_nothing, false}};
static jl_dlib none_lib = JL_DLIB_INIT("libjoule-no-such-library.so.0", none_syms);

int main(void)
{
        char why[256] = "";
        is_int(jl_dlib_load(&libc_lib, why, sizeof(why)), 0, "libc.so.6 loads");
        ok(sym_strlen && sym_strlen("joule") == 5, "strlen resolved and callable");
        ok(sym_missing == NULL, "a missing optional symbol is NULL");
        is_int(jl_dlib_load(&libc_lib, NULL, 0), 0, "a second load answers the same");

        is_int(jl_dlib_load(&libc_lib_required, why, sizeof(why)), -ENOSYS, "a missing symbol: -ENOSYS");
        ok(strstr(why, "jl_no_such_function_anywhere") != NULL, "the reason names the symbol: %s", why);
        ok(sym_strlen2 == NULL && sym_missing2 == NULL, "all or none: no pointer is set");

        why[0] = '\0';
        is_int(jl_dlib_load(&none_lib, why, sizeof(why)), -ENOENT, "a missing library: -ENOENT");
        ok(strstr(why, "libjoule-no-such-library.so.0") != NULL, "the reason is the loader's: %s", why);
        why[0] = '\0';
        is_int(jl_dlib_load(&none_lib, why, sizeof(why)), -ENOENT, "tried once: the same answer again");
        ok(why[0] != '\0', "and the same reason");
        ok(sym_nothing == NULL, "nothing resolved");
        return tap_done();
}
