/*
 * The CLI's boundary for strings from a pen or the archive (host/cli/common.c):
 * each class of byte for terminals, JSON that never refuses a string, CSV
 * quoting, the formula guard and long fields, and the file-name alphabet.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli.h"

/* common.c's cli_fail calls the CLI's cli_error and cli_error_status
 * (main.c): not used here. */
int cli_error(const struct cli *c, int code, const char *fmt, ...)
{
    (void)c;
    (void)fmt;
    return code;
}

int cli_error_status(const struct cli *c, int status, const char *fmt, ...)
{
    (void)c;
    (void)fmt;
    return cli_exit_for(status);
}

static void assert_escaped(const char *in, const char *want)
{
    char buf[256];
    assert_string_equal(cli_escape(buf, sizeof buf, in), want);
    assert_string_equal(cli_safe(in), want);
}

static void test_printable_kept(void **state)
{
    (void)state;
    assert_escaped("PEN-000123", "PEN-000123");
    assert_escaped("", "");
    assert_escaped(NULL, "");
    assert_escaped("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", /* é, 日本, an emoji */
                   "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
}

static void test_controls_escaped(void **state)
{
    (void)state;
    assert_escaped("a\x1b[2Jb", "a\\e[2Jb");
    assert_escaped("ok\rFAKE\n", "ok\\rFAKE\\n");
    assert_escaped("\t\x01\x07\x7f", "\\t\\x01\\x07\\x7f");
    assert_escaped("a\\b", "a\\\\b"); /* a backslash is doubled: the escapes read back */
    assert_escaped("\xc2\x9b"
                   "31m",
                   "\\u009b31m"); /* C1 CSI */
    assert_escaped("\xe2\x80\xae"
                   "evil",
                   "\\u202eevil"); /* right-to-left override */
    assert_escaped("A\xe2\x80\x8b"
                   "B",
                   "A\\u200bB"); /* zero-width space */
}

static void test_invalid_utf8_escaped(void **state)
{
    (void)state;
    assert_escaped("\xff\xfe", "\\xff\\xfe");
    assert_escaped("\xc0\xaf", "\\xc0\\xaf");                   /* overlong '/' */
    assert_escaped("\xed\xa0\x80", "\\xed\\xa0\\x80");          /* a surrogate */
    assert_escaped("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
    assert_escaped("ab\xc3", "ab\\xc3");                        /* cut short at the end */
    assert_escaped("\xe6\x97"
                   "x",
                   "\\xe6\\x97x"); /* cut short before ASCII */
}

static void test_cut_short(void **state)
{
    (void)state;
    char buf[12];
    /* never more than cap - 1 bytes, never half an escape, "..." says so */
    assert_string_equal(cli_escape(buf, sizeof buf, "abcdefghijklmnop"), "abcdefgh...");
    assert_string_equal(cli_escape(buf, sizeof buf, "abcdef\x1b\x1b\x1b"), "abcdef\\e...");
    assert_string_equal(cli_escape(buf, sizeof buf, "abcdefgh"), "abcdefgh");
    char tiny[1];
    assert_string_equal(cli_escape(tiny, sizeof tiny, "abc"), "");
    /* cli_safe's buffers rotate: eight at once stay valid */
    const char *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = cli_safe(i % 2 ? "odd\x1b" : "even");
    for (int i = 0; i < 8; i++)
        assert_string_equal(p[i], i % 2 ? "odd\\e" : "even");
}

static void assert_json(const char *in, const char *want_text)
{
    json_t *j = cli_json_str(in);
    assert_non_null(j);
    assert_true(json_is_string(j));
    assert_string_equal(json_string_value(j), want_text);
    json_decref(j);
}

static void test_json_never_refuses(void **state)
{
    (void)state;
    assert_json("PEN-1", "PEN-1");
    assert_json("a\x1b[2J\r\n\\", "a\x1b[2J\r\n\\"); /* valid UTF-8: exactly kept */
    assert_json("caf\xc3\xa9", "caf\xc3\xa9");
    assert_json("P\xff\xfeQ", "P\\xff\\xfeQ"); /* each invalid byte as the text \xNN */
    assert_json("\xed\xa0\x80", "\\xed\\xa0\\x80");
    assert_json(NULL, "");
    /* and what is printed is ASCII: a terminal sees no raw control */
    json_t *o = json_pack("{s:o}", "pen", cli_json_str("a\x1b\xc2\x9b\xe2\x80\xae\xff"));
    char *s = json_dumps(o, CLI_JSON_FLAGS);
    assert_string_equal(s, "{\"pen\":\"a\\u001B\\u009B\\u202E\\\\xff\"}");
    free(s);
    json_decref(o);
}

static void assert_csv(const char *in, const char *want)
{
    char buf[256];
    memset(buf, 0, sizeof buf);
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    cli_csv_text(f, in);
    fclose(f);
    assert_string_equal(buf, want);
}

static void test_csv(void **state)
{
    (void)state;
    assert_csv("PEN-1", "PEN-1");
    assert_csv("a,b", "\"a,b\"");
    assert_csv("say \"hi\"", "\"say \"\"hi\"\"\"");
    assert_csv("line\nbreak\x1b", "line\\nbreak\\e");
    assert_csv("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_csv("+1", "\"'+1\"");
    assert_csv("-1", "\"'-1\"");
    assert_csv("@SUM(A1)", "\"'@SUM(A1)\"");
    assert_csv("", "");
}

/* A long field (notes on a finding run to kilobytes) is written whole:
 * cli_safe's 2 KiB buffers would cut it. */
static void test_csv_long(void **state)
{
    enum { N = 3 * 1024 };
    (void)state;
    char *in = malloc(N + 1), *out = NULL;
    size_t len = 0;
    assert_non_null(in);
    for (size_t i = 0; i < N; i++)
        in[i] = i % 2 ? '\x1b' : 'n'; /* each ESC grows to two bytes: "\e" */
    in[N] = '\0';
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    cli_csv_text(f, in);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(len, N / 2 * 3);
    assert_null(strstr(out, "..."));
    assert_memory_equal(out + len - 3, "n\\e", 3);
    free(out);
    free(in);
}

static void test_filename(void **state)
{
    (void)state;
    assert_true(cli_filename_ok("PEN-000123"));
    assert_true(cli_filename_ok("a.b_c-d"));
    assert_true(
        cli_filename_ok("1234567890123456789012345678901234567890123456789012345678901234"));
    assert_false(
        cli_filename_ok("12345678901234567890123456789012345678901234567890123456789012345"));
    assert_false(cli_filename_ok(""));
    assert_false(cli_filename_ok(NULL));
    assert_false(cli_filename_ok("../../x"));
    assert_false(cli_filename_ok(".."));
    assert_false(cli_filename_ok(".hidden"));
    assert_false(cli_filename_ok("a/b"));
    assert_false(cli_filename_ok("a b"));
    assert_false(cli_filename_ok("a\x1b"));
    assert_false(cli_filename_ok("caf\xc3\xa9"));
    assert_false(cli_filename_ok("a\\b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_kept),
        cmocka_unit_test(test_controls_escaped),
        cmocka_unit_test(test_invalid_utf8_escaped),
        cmocka_unit_test(test_cut_short),
        cmocka_unit_test(test_json_never_refuses),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_csv_long),
        cmocka_unit_test(test_filename),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
