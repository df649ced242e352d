/*
 * The archive commands' dates (host/cli/cli_time.c): what --since and
 * --until accept and refuse, UTC offsets, local time of a --tz zone
 * (daylight saving time included), and how times are written back.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli_time.h"

static int64_t parse(const char *s, int until)
{
    int64_t ms = 0;
    char err[300];
    if (cli_parse_time(s, until, &ms, err, sizeof err) != 0)
        fail_msg("'%s' refused: %s", s, err);
    return ms;
}

static void refused(const char *s, const char *why)
{
    int64_t ms = 0;
    char err[300] = "";
    if (cli_parse_time(s, 0, &ms, err, sizeof err) == 0)
        fail_msg("'%s' accepted as %lld", s, (long long)ms);
    if (!strstr(err, why))
        fail_msg("'%s' refused with '%s', not for '%s'", s, err, why);
}

static void test_utc(void **state)
{
    (void)state;
    char err[300];
    assert_int_equal(cli_tz_set("UTC", err, sizeof err), 0);
    assert_string_equal(cli_tz_name(), "UTC");
    assert_int_equal(parse("2026-03-02", 0), 1772409600000ll);
    assert_int_equal(parse("2026-03-02", 1), 1772409600000ll + 86400000);
    assert_int_equal(parse("2026-03-02T09:30", 0), 1772409600000ll + 34200000);
    assert_int_equal(parse("2026-03-02T09:30", 1), 1772409600000ll + 34200000);
    assert_int_equal(parse("2026-03-02 09:30:15.25", 0), 1772409600000ll + 34215250);
    assert_int_equal(parse("2026-03-02T09:30:15Z", 0), 1772409600000ll + 34215000);
    assert_int_equal(parse("2028-02-29", 0), 1835395200000ll); /* a leap day */
    assert_int_equal(parse("2000-02-29", 0), 951782400000ll);  /* divisible by 400 */
    char b[64];
    cli_time_iso(1772409600000ll + 34215250, b, sizeof b);
    assert_string_equal(b, "2026-03-02T09:30:15.250Z");
    cli_time_short(1772409600000ll + 34215250, b, sizeof b);
    assert_string_equal(b, "2026-03-02 09:30:15");
    cli_time_iso(-1, b, sizeof b);
    assert_string_equal(b, "1969-12-31T23:59:59.999Z");
    /* a pen's clock far out: a date that does not fit its buffer is the ms,
     * never a string left unterminated (the audit table's 24 bytes) */
    char s24[24];
    memset(s24, 'x', sizeof s24);
    cli_time_short(INT64_MAX, s24, sizeof s24);
    assert_string_equal(s24, "9223372036854775807");
    memset(s24, 'x', sizeof s24);
    cli_time_iso(INT64_MAX, s24, sizeof s24);
    assert_string_equal(s24, "9223372036854775807");
    cli_time_iso(INT64_MAX, b, sizeof b); /* room enough: the date itself */
    assert_string_equal(b, "292278994-08-17T07:12:55.807Z");
}

static void test_offsets(void **state)
{
    (void)state;
    char err[300];
    assert_int_equal(cli_tz_set("UTC", err, sizeof err), 0);
    int64_t z = parse("2026-03-02T09:00:00Z", 0);
    assert_int_equal(parse("2026-03-02T10:00:00+01:00", 0), z);
    assert_int_equal(parse("2026-03-02T10:00:00+0100", 0), z);
    assert_int_equal(parse("2026-03-02T10:00+01", 0), z);
    assert_int_equal(parse("2026-03-02T04:00:00-05:00", 0), z);
    assert_int_equal(parse("2026-03-02T14:30:00+05:30", 0), z);
    assert_int_equal(parse("2026-03-01T23:00:00-10:00", 0), z); /* across a day */
}

static void test_refused(void **state)
{
    (void)state;
    char err[300];
    assert_int_equal(cli_tz_set("UTC", err, sizeof err), 0);
    refused("2026-02-30", "has no day 30");
    refused("2026-02-29", "has no day 29"); /* 2026 is not a leap year */
    refused("1900-02-29", "has no day 29");
    refused("2026-04-31", "has no day 31");
    refused("2026-13-01", "no month 13");
    refused("2026-00-10", "no month 0");
    refused("2026-01-00", "has no day 0");
    refused("2026-03-02T24:00", "not a time of day");
    refused("2026-03-02T12:60", "not a time of day");
    refused("2026-03-02T12:00:60", "not a time of day");
    refused("2026-03-02T12:00+25:00", "bad UTC offset");
    refused("2026-03-02T12:00+01:60", "bad UTC offset");
    refused("yesterday", "use YYYY-MM-DD");
    refused("2026-3-2", "use YYYY-MM-DD");
    refused("26-03-02", "use YYYY-MM-DD");
    refused("2026-03-02T", "use YYYY-MM-DD");
    refused("2026-03-02T9:00", "use YYYY-MM-DD");
    refused("2026-03-02Z", "use YYYY-MM-DD");
    refused("2026-03-02T09:00:00.", "use YYYY-MM-DD");
    refused("2026-03-02T09:00:00+1", "use YYYY-MM-DD");
    refused("2026-03-02T09:00 junk", "use YYYY-MM-DD");
    refused("", "use YYYY-MM-DD");
}

static void test_zone(void **state)
{
    (void)state;
    char err[300], b[64];
    assert_int_equal(cli_tz_set("Europe/Berlin", err, sizeof err), 0);
    assert_string_equal(cli_tz_name(), "Europe/Berlin");
    /* winter: UTC+01:00; a bare date is local midnight */
    assert_int_equal(parse("2026-03-02", 0), 1772409600000ll - 3600000);
    assert_int_equal(parse("2026-03-02", 1), 1772409600000ll - 3600000 + 86400000);
    cli_time_iso(1772409600000ll, b, sizeof b);
    assert_string_equal(b, "2026-03-02T01:00:00.000+01:00");
    cli_time_offset(1772409600000ll, b, sizeof b);
    assert_string_equal(b, "UTC+01:00");
    /* an offset given wins over the zone */
    assert_int_equal(parse("2026-03-02T00:00:00Z", 0), 1772409600000ll);
    /* the day clocks go forward (2026-03-29) has 23 hours; summer is UTC+02:00 */
    int64_t d = parse("2026-03-29", 0), e = parse("2026-03-29", 1);
    assert_int_equal(e - d, 23 * 3600000ll);
    cli_time_iso(e, b, sizeof b);
    assert_string_equal(b, "2026-03-30T00:00:00.000+02:00");
    cli_time_short(e, b, sizeof b);
    assert_string_equal(b, "2026-03-30 00:00:00");

    assert_int_equal(cli_tz_set("America/New_York", err, sizeof err), 0);
    cli_time_iso(1772409600000ll, b, sizeof b);
    assert_string_equal(b, "2026-03-01T19:00:00.000-05:00");
    assert_int_equal(cli_tz_set("Etc/GMT-1", err, sizeof err), 0); /* UTC+01:00 */
    assert_int_equal(parse("2026-03-02", 0), 1772409600000ll - 3600000);
    /* POSIX rules count west: "UTC+5" is 5 hours behind UTC, the opposite of what it reads */
    assert_int_equal(cli_tz_set("UTC+5", err, sizeof err), -1);
    assert_non_null(strstr(err, "POSIX TZ rule"));
    assert_non_null(strstr(err, "Etc/GMT-5"));
    assert_int_equal(cli_tz_set("CET-1CEST,M3.5.0,M10.5.0/3", err, sizeof err), -1);

    assert_int_equal(cli_tz_set("Nowhere/Atlantis", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown time zone 'Nowhere/Atlantis'"));
    assert_int_equal(cli_tz_set("../../etc/passwd", err, sizeof err), -1);
    assert_int_equal(cli_tz_set("", err, sizeof err), -1);
    assert_string_equal(cli_tz_name(), "Etc/GMT-1"); /* unchanged */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_zone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
