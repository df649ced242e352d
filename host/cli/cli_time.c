/*
 * Dates in and out of the archive commands (audit, export), in one time
 * zone: the one --tz names, else the local zone (TZ, /etc/localtime). The
 * zone is the process's (TZ set, then tzset()), so that localtime_r() and
 * mktime() -- and the library's usage periods, which use them -- all agree.
 *
 * In: ISO 8601 calendar dates and times, "YYYY-MM-DD" or
 * "YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|+HH[:MM]|-HH[:MM]]": with an offset the
 * instant is exact, without one it is the zone's local time. Every field is
 * checked (no 30 February, no 24:00). Out: "2026-03-02T10:00:00.000+01:00"
 * ("Z" when the zone is UTC), or "2026-03-02 10:00:00" for tables.
 */
#define _DEFAULT_SOURCE /* struct tm's tm_gmtoff and tm_zone */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "calendar.h"
#include "cli_time.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define MS_PER_S 1000ll
#define S_PER_DAY 86400ll
#define FRAC_DIGITS_MAX 3    /* milliseconds: what the archive holds */
#define S_PER_HALF_DAY 43200 /* a DST change is searched for this far around a time */

static char zone_name[128] = "UTC";
static int zone_utc = 1;

static int days_in_month(int y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Exactly @p n decimal digits at *@p p, advanced past them. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* A zone that the tz database has, or UTC. A POSIX TZ rule ("UTC+5",
 * "CET-1CEST,...") is refused: its offset is west-positive, the opposite
 * of ISO 8601's, so "UTC+5" would mean five hours *behind* UTC while the
 * output would be headed "UTC+5". 1 known, 0 unknown, -1 a POSIX rule. */
static int zone_known(const char *z)
{
    if (!*z || strlen(z) >= sizeof zone_name)
        return 0;
    if (strcmp(z, "UTC") == 0 || strcmp(z, "GMT") == 0)
        return 1;
    if (z[0] == '/' || strstr(z, ".."))
        return 0;
    const char *dir = getenv("TZDIR");
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ZONEINFO_DIR, z);
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        return 1; /* a tz database name (Etc/GMT-5 included: its files mean what they say) */
    size_t alpha = 0;
    while (isalpha((unsigned char)z[alpha]))
        alpha++;
    if ((alpha >= 3 && (z[alpha] == '+' || z[alpha] == '-' || isdigit((unsigned char)z[alpha]))) ||
        z[0] == '<' || strchr(z, ','))
        return -1; /* a POSIX rule: STD offset [DST [offset] [,rule]] */
    return 0;
}

/* The name of the local zone when TZ is not set: /etc/localtime's target. */
static void local_zone_name(char *buf, size_t cap)
{
    char link[256];
    ssize_t n = readlink("/etc/localtime", link, sizeof link - 1);
    const char *z = NULL;
    if (n > 0) {
        link[n] = '\0';
        z = strstr(link, "zoneinfo/");
        if (z)
            z += strlen("zoneinfo/");
    }
    if (z && *z) {
        snprintf(buf, cap, "%s", z);
        return;
    }
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm) && tm.tm_zone)
        snprintf(buf, cap, "local time (%s)", tm.tm_zone);
    else
        snprintf(buf, cap, "local time");
}

int cli_tz_set(const char *zone, char *err, size_t cap)
{
    if (zone) {
        int known = zone_known(zone);
        if (known < 0) {
            snprintf(err, cap,
                     "time zone '%s' is a POSIX TZ rule, whose offset counts west (UTC+5 there "
                     "means 5 hours behind UTC): use a tz database name, e.g. Asia/Karachi, or "
                     "Etc/GMT-5 for a fixed UTC+05:00 (the Etc names keep POSIX's sign too: "
                     "Etc/GMT-5 is 5 hours ahead); dates take ISO offsets (+05:00) themselves",
                     zone);
            return -1;
        }
        if (!known) {
            snprintf(err, cap,
                     "unknown time zone '%s': use a name of the tz database (Europe/Berlin, "
                     "America/New_York, UTC)",
                     zone);
            return -1;
        }
        setenv("TZ", zone, 1);
    }
    tzset();
    const char *tz = getenv("TZ");
    if (tz && *tz == ':')
        tz++;
    if (tz && *tz)
        snprintf(zone_name, sizeof zone_name, "%s", tz);
    else
        local_zone_name(zone_name, sizeof zone_name);
    zone_utc = strcmp(zone_name, "UTC") == 0 || strcmp(zone_name, "Etc/UTC") == 0 ||
               strcmp(zone_name, "UTC0") == 0 || strcmp(zone_name, "Zulu") == 0 ||
               strcmp(zone_name, "Etc/Zulu") == 0 || strcmp(zone_name, "Universal") == 0;
    return 0;
}

const char *cli_tz_name(void)
{
    return zone_name;
}

/* @p t as "HH:MM" at UTC offset @p off_s. */
static void hhmm(time_t t, long off_s, char *buf, size_t cap)
{
    struct tm tm;
    time_t local = t + off_s;
    if (gmtime_r(&local, &tm))
        strftime(buf, cap, "%H:%M", &tm);
    else
        snprintf(buf, cap, "?");
}

/* The instant of the zone's UTC offset change between @p lo and @p hi (their
 * offsets differ), to the second. */
static time_t offset_change(time_t lo, time_t hi)
{
    struct tm a;
    localtime_r(&lo, &a);
    long off = a.tm_gmtoff;
    while (hi - lo > 1) {
        time_t mid = lo + (hi - lo) / 2;
        struct tm m;
        localtime_r(&mid, &m);
        if (m.tm_gmtoff == off)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

/*
 * A local time without an offset must name exactly one instant: one that the
 * clocks skip at a DST change (spring) is refused, naming the skipped hours;
 * one they pass twice (autumn) is refused too, naming both offsets: either
 * would be a guess. *@p t: mktime()'s instant, checked.
 */
static int local_check(const char *s, int y, int mo, int d, int h, int mi, int sec, time_t *t,
                       char *err, size_t cap)
{
    time_t found[2];
    int n = 0;
    for (int dst = 0; dst <= 1; dst++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        tm.tm_isdst = dst;
        time_t c = mktime(&tm);
        if (c == (time_t)-1 || tm.tm_year != y - 1900 || tm.tm_mon != mo - 1 || tm.tm_mday != d ||
            tm.tm_hour != h || tm.tm_min != mi || tm.tm_sec != sec)
            continue; /* not this local time under that flag */
        if (n == 0 || found[0] != c)
            found[n++] = c;
    }
    if (n == 1) {
        *t = found[0];
        return 0;
    }
    if (n == 2) {
        struct tm a, b;
        time_t first = found[0] < found[1] ? found[0] : found[1];
        time_t second = found[0] < found[1] ? found[1] : found[0];
        localtime_r(&first, &a);
        localtime_r(&second, &b);
        snprintf(err, cap,
                 "'%s' is ambiguous in %s: the clocks pass that local time twice (a DST "
                 "change), at UTC%+03ld:%02ld and then at UTC%+03ld:%02ld: add the offset you "
                 "mean, e.g. %04d-%02d-%02dT%02d:%02d%+03ld:%02ld",
                 s, cli_tz_name(), a.tm_gmtoff / 3600, labs(a.tm_gmtoff % 3600) / 60,
                 b.tm_gmtoff / 3600, labs(b.tm_gmtoff % 3600) / 60, y, mo, d, h, mi,
                 a.tm_gmtoff / 3600, labs(a.tm_gmtoff % 3600) / 60);
        return -1;
    }
    /* no instant has this local time: a gap, around mktime()'s guess */
    time_t lo = *t - S_PER_HALF_DAY, hi = *t + S_PER_HALF_DAY;
    struct tm a, b;
    localtime_r(&lo, &a);
    localtime_r(&hi, &b);
    if (a.tm_gmtoff == b.tm_gmtoff)
        return 0; /* no change nearby: the zone's own normalisation */
    time_t at = offset_change(lo, hi);
    char from[8], to[8];
    hhmm(at, a.tm_gmtoff, from, sizeof from);
    hhmm(at, b.tm_gmtoff, to, sizeof to);
    snprintf(err, cap,
             "'%s' does not exist in %s: on %04d-%02d-%02d the clocks jump from %s to %s (a DST "
             "change), so no instant has that local time: give a time outside the gap or a UTC "
             "offset",
             s, cli_tz_name(), y, mo, d, from, to);
    return -1;
}

/* What follows the date: the time of day and its offset. */
struct clock_part {
    int h, mi, sec, frac_ms, has_off, off_min;
};

/* PARSE_BAD: not the form at all (the caller says which forms are); -1: said in @p err. */
enum { PARSE_OK = 0, PARSE_SAID = -1, PARSE_BAD = 1 };

/* ".fff" or ",fff" after the seconds, into milliseconds. */
static int parse_fraction(const char **pp, const char *s, int *frac_ms, char *err, size_t cap)
{
    const char *p = *pp;
    int n = 0;
    if (!isdigit((unsigned char)*p))
        return PARSE_BAD;
    for (; isdigit((unsigned char)*p); p++, n++)
        if (n < FRAC_DIGITS_MAX)
            *frac_ms = *frac_ms * 10 + (*p - '0');
    if (n > FRAC_DIGITS_MAX) {
        snprintf(err, cap,
                 "bad time in '%s': at most %d digits after the second "
                 "(milliseconds, the archive's resolution)",
                 s, FRAC_DIGITS_MAX);
        return PARSE_SAID;
    }
    for (; n < FRAC_DIGITS_MAX; n++)
        *frac_ms *= 10;
    *pp = p;
    return PARSE_OK;
}

/* "Z", "+HH[:MM]" or "-HHMM" after the time, if any. */
static int parse_offset(const char **pp, const char *s, struct clock_part *k, char *err, size_t cap)
{
    const char *p = *pp;
    if (*p == 'Z' || *p == 'z') {
        p++;
        k->has_off = 1;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (digits(&p, 2, &oh))
            return PARSE_BAD;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char)*p) && digits(&p, 2, &om))
            return PARSE_BAD;
        if (oh > 23 || om > 59) {
            snprintf(err, cap, "bad UTC offset in '%s'", s);
            return PARSE_SAID;
        }
        k->has_off = 1;
        k->off_min = sign * (oh * 60 + om);
    }
    *pp = p;
    return PARSE_OK;
}

/* "HH:MM[:SS[.fff]]" and its offset, after the date's 'T' (or space). */
static int parse_clock(const char **pp, const char *s, struct clock_part *k, char *err, size_t cap)
{
    const char *p = *pp;
    if (digits(&p, 2, &k->h) || *p++ != ':' || digits(&p, 2, &k->mi))
        return PARSE_BAD;
    if (*p == ':') {
        p++;
        if (digits(&p, 2, &k->sec))
            return PARSE_BAD;
        if (*p == '.' || *p == ',') {
            p++;
            int rc = parse_fraction(&p, s, &k->frac_ms, err, cap);
            if (rc != PARSE_OK)
                return rc;
        }
    }
    if (k->h > 23 || k->mi > 59 || k->sec > 59) {
        snprintf(err, cap, "bad time in '%s': %02d:%02d:%02d is not a time of day", s, k->h, k->mi,
                 k->sec);
        return PARSE_SAID;
    }
    *pp = p;
    return parse_offset(pp, s, k, err, cap);
}

/* A local time of the zone, in ms; a bare --until date takes in that whole day. */
static int local_ms(const char *s, int y, int mo, int d, const struct clock_part *k, int has_time,
                    int until, int64_t *ms, char *err, size_t cap)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d + (until && !has_time);
    tm.tm_hour = k->h;
    tm.tm_min = k->mi;
    tm.tm_sec = k->sec;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1) {
        snprintf(err, cap, "date '%s' is out of range", s);
        return -1;
    }
    if (has_time && local_check(s, y, mo, d, k->h, k->mi, k->sec, &t, err, cap) != 0)
        return -1;
    *ms = (int64_t)t * MS_PER_S + k->frac_ms;
    return 0;
}

int cli_parse_time(const char *s, int until, int64_t *ms, char *err, size_t cap)
{
    const char *p = s;
    int y, mo, d, has_time = 0;
    struct clock_part k = { 0 };
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
        snprintf(err, cap, "bad date '%s': %04d-%02d has no day %d", s, y, mo < 1 ? 1 : mo, d);
        if (mo < 1 || mo > 12)
            snprintf(err, cap, "bad date '%s': there is no month %d", s, mo);
        return -1;
    }
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        has_time = 1;
        int rc = parse_clock(&p, s, &k, err, cap);
        if (rc == PARSE_SAID)
            return -1;
        if (rc == PARSE_BAD)
            goto bad;
    }
    if (*p)
        goto bad;
    if (k.has_off) {
        *ms = (((pc_days_from_civil(y, mo, d) * 24 + k.h) * 60 + k.mi - k.off_min) * 60 + k.sec) *
                  MS_PER_S +
              k.frac_ms;
        return 0;
    }
    return local_ms(s, y, mo, d, &k, has_time, until, ms, err, cap);
bad:
    snprintf(err, cap,
             "bad date '%s': use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fff]] with an optional UTC "
             "offset (Z, +01:00, -0500)",
             s);
    return -1;
}

/* Breaks @p ms down in the zone; *@p off_s gets its UTC offset then. */
static int breakdown(int64_t ms, struct tm *tm, long *off_s, int *frac)
{
    int64_t s = pc_floor_div(ms, MS_PER_S);
    int64_t r = ms % MS_PER_S; /* not ms - s * 1000: that overflows near INT64_MIN */
    *frac = (int)(r < 0 ? r + MS_PER_S : r);
    time_t t = (time_t)s;
    if (zone_utc) {
        *off_s = 0;
        return gmtime_r(&t, tm) ? 0 : -1;
    }
    if (!localtime_r(&t, tm))
        return -1;
    *off_s = tm->tm_gmtoff;
    return 0;
}

void cli_time_iso(int64_t ms, char *buf, size_t cap)
{
    struct tm tm;
    long off;
    int frac;
    /* strftime() says 0 when the date does not fit (a year of nine digits from a
     * pen's clock), and leaves @p buf undefined: the ms then, like a time that
     * has no calendar date */
    size_t n =
        breakdown(ms, &tm, &off, &frac) == 0 ? strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
    if (n == 0) {
        snprintf(buf, cap, "%lld", (long long)ms);
        return;
    }
    if (zone_utc) {
        snprintf(buf + n, cap - n, ".%03dZ", frac);
        return;
    }
    long a = off < 0 ? -off : off;
    snprintf(buf + n, cap - n, ".%03d%c%02ld:%02ld", frac, off < 0 ? '-' : '+', a / 3600,
             a % 3600 / 60);
}

void cli_time_short(int64_t ms, char *buf, size_t cap)
{
    struct tm tm;
    long off;
    int frac;
    /* as cli_time_iso: the ms when the date has none or does not fit */
    if (breakdown(ms, &tm, &off, &frac) != 0 || strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, cap, "%lld", (long long)ms);
}

void cli_time_offset(int64_t ms, char *buf, size_t cap)
{
    struct tm tm;
    long off;
    int frac;
    if (breakdown(ms, &tm, &off, &frac) != 0)
        off = 0;
    long a = off < 0 ? -off : off;
    snprintf(buf, cap, "UTC%c%02ld:%02ld", off < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
}
