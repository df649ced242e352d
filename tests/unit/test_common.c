/* What the library and the CLI share (host/common): the calendar, mkdir -p,
 * the clocks, at their edges. */
#define _DEFAULT_SOURCE /* timegm, mkdtemp */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "calendar.h"
#include "clock.h"
#include "fs.h"
#include "grow.h"

static void t_floor_div(void **state)
{
    (void)state;
    assert_int_equal(pc_floor_div(0, 1000), 0);
    assert_int_equal(pc_floor_div(999, 1000), 0);
    assert_int_equal(pc_floor_div(1000, 1000), 1);
    assert_int_equal(pc_floor_div(-1, 1000), -1);
    assert_int_equal(pc_floor_div(-1000, 1000), -1);
    assert_int_equal(pc_floor_div(-1001, 1000), -2);
    assert_true(pc_floor_div(INT64_MIN, 1000) == INT64_MIN / 1000 - 1);
}

static void t_days_from_civil(void **state)
{
    (void)state;
    static const struct {
        int64_t y;
        int m, d;
        int64_t days;
    } v[] = {
        { 1970, 1, 1, 0 },         { 1969, 12, 31, -1 },     { 1970, 3, 1, 59 },
        { 1972, 2, 29, 789 },      { 1972, 3, 1, 790 },      { 2000, 2, 29, 11016 },
        { 2000, 3, 1, 11017 },     { 2100, 3, 1, 47541 },    { 1900, 3, 1, -25508 },
        { 1900, 2, 28, -25509 },   { 1600, 2, 29, -135081 }, { 1, 1, 1, -719162 },
        { 0, 3, 1, -719468 },      { -1, 12, 31, -719529 },  { 2026, 11, 29, 20786 },
        { 9999, 12, 31, 2932896 },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int64_t got = pc_days_from_civil(v[i].y, v[i].m, v[i].d);
        if (got != v[i].days)
            fail_msg("%lld-%02d-%02d: %lld, not %lld", (long long)v[i].y, v[i].m, v[i].d,
                     (long long)got, (long long)v[i].days);
    }
    /* every day of 1600..2400 (leap years of each kind, before and after 1970), as libc
     * counts them */
    for (int y = 1600; y <= 2400; y++)
        for (int m = 1; m <= 12; m++) {
            struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = 1 };
            time_t t = timegm(&tm);
            assert_true(pc_days_from_civil(y, m, 1) * 86400 == (int64_t)t);
        }
}

/* A fresh directory under the temporary directory, for mkdir -p. */
static char *scratch(char *buf, size_t cap)
{
    const char *base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(buf, cap, "%s/penlink-common-XXXXXX", base);
    assert_non_null(mkdtemp(buf));
    return buf;
}

static int is_dir(const char *path, mode_t *mode)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return 0;
    *mode = sb.st_mode & 07777;
    return 1;
}

static void t_mkdir_parents(void **state)
{
    (void)state;
    char top[PATH_MAX], p[PATH_MAX + 64], failed[PATH_MAX];
    mode_t mode = 0;
    scratch(top, sizeof top);
    mode_t old = umask(022);

    /* a/b/c made, the file name itself not */
    snprintf(p, sizeof p, "%s/a/b/c/file.key", top);
    assert_int_equal(pc_mkdir_parents(p, 0700, failed, sizeof failed), 0);
    snprintf(p, sizeof p, "%s/a/b/c", top);
    assert_true(is_dir(p, &mode));
    assert_int_equal(mode, 0700);
    snprintf(p, sizeof p, "%s/a/b/c/file.key", top);
    assert_int_equal(access(p, F_OK), -1);

    /* again: everything exists, nothing to do; a doubled slash is one */
    assert_int_equal(pc_mkdir_parents(p, 0700, failed, sizeof failed), 0);
    snprintf(p, sizeof p, "%s/a//b/d/file", top);
    assert_int_equal(pc_mkdir_parents(p, 0755, failed, sizeof failed), 0);
    snprintf(p, sizeof p, "%s/a/b/d", top);
    assert_true(is_dir(p, &mode));
    assert_int_equal(mode, 0755);

    /* no directory part, or only the root: nothing made */
    assert_int_equal(pc_mkdir_parents("file.key", 0700, failed, sizeof failed), 0);
    assert_int_equal(pc_mkdir_parents("/file.key", 0700, failed, sizeof failed), 0);

    /* a file where a directory should be: ENOTDIR, naming it */
    snprintf(p, sizeof p, "%s/plain", top);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/plain/x/file.key", top);
    errno = 0;
    assert_int_equal(pc_mkdir_parents(p, 0700, failed, sizeof failed), -1);
    assert_int_equal(errno, ENOTDIR);
    snprintf(p, sizeof p, "%s/plain", top);
    assert_string_equal(failed, p);
    /* ... also as the last directory of the path */
    snprintf(p, sizeof p, "%s/plain/file.key", top);
    errno = 0;
    assert_int_equal(pc_mkdir_parents(p, 0700, failed, sizeof failed), -1);
    assert_int_equal(errno, ENOTDIR);

    /* a path longer than any the system takes */
    char *longp = malloc(PATH_MAX + 16);
    assert_non_null(longp);
    memset(longp, 'a', PATH_MAX + 15);
    longp[0] = '/';
    longp[PATH_MAX + 15] = '\0';
    errno = 0;
    assert_int_equal(pc_mkdir_parents(longp, 0700, failed, sizeof failed), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    free(longp);

    umask(old);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    assert_int_equal(system(cmd), 0);
}

static void t_grow(void **state)
{
    (void)state;
    int *a = NULL;
    size_t cap = 0;
    assert_int_equal(pc_grow(&a, &cap, 0, sizeof *a), 0); /* nothing needed: nothing made */
    assert_null(a);
    assert_int_equal(pc_grow(&a, &cap, 1, sizeof *a), 0);
    assert_non_null(a);
    assert_int_equal(cap, 16);
    for (int i = 0; i < 16; i++)
        a[i] = i;
    int *before = a;
    assert_int_equal(pc_grow(&a, &cap, 16, sizeof *a), 0); /* room enough: untouched */
    assert_ptr_equal(a, before);
    assert_int_equal(cap, 16);
    assert_int_equal(pc_grow(&a, &cap, 17, sizeof *a), 0);
    assert_int_equal(cap, 32);
    assert_int_equal(pc_grow(&a, &cap, 1000, sizeof *a), 0);
    assert_int_equal(cap, 1024);
    for (int i = 0; i < 16; i++)
        assert_int_equal(a[i], i); /* kept through each move */
    /* more than can be counted: refused, the array as it was */
    before = a;
    assert_int_equal(pc_grow(&a, &cap, SIZE_MAX / 2, sizeof *a), -1);
    assert_int_equal(pc_grow(&a, &cap, SIZE_MAX, 1), -1);
    assert_ptr_equal(a, before);
    assert_int_equal(cap, 1024);
    free(a);
}

static void t_clocks(void **state)
{
    (void)state;
    int64_t a = pc_mono_ms(), b = pc_mono_ms();
    assert_true(b >= a);
    /* the wall clock is the epoch's, in ms: within a second of time()'s seconds */
    time_t before = time(NULL);
    int64_t w = pc_wall_ms();
    time_t after = time(NULL);
    assert_true(w / 1000 >= (int64_t)before - 1 && w / 1000 <= (int64_t)after + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_floor_div),     cmocka_unit_test(t_days_from_civil),
        cmocka_unit_test(t_mkdir_parents), cmocka_unit_test(t_grow),
        cmocka_unit_test(t_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
