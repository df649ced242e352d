/* Dates in and out of the archive commands, in one time zone (cli_time.c). */
#ifndef PENLINK_CLI_TIME_H
#define PENLINK_CLI_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Makes @p zone (NULL: TZ, else the system's local zone) the zone of every
 * date read and written from now on, by setting TZ. -1 with a sentence in
 * @p err when the zone is not known (glibc would take it silently as UTC). */
int cli_tz_set(const char *zone, char *err, size_t cap);
/* The zone's name: "Europe/Berlin", "UTC", "local time (CET)". */
const char *cli_tz_name(void);

/* Reads an ISO 8601 date or date and time (see cli_time.c) into ms since the
 * epoch; with @p until, a bare date means the end of that day (the start of
 * the next). -1 with a sentence in @p err when it is not a valid date. */
int cli_parse_time(const char *s, int until, int64_t *ms, char *err, size_t cap);

/* "2026-03-02T10:00:00.000+01:00" ("...Z" in UTC). */
void cli_time_iso(int64_t ms, char *buf, size_t cap);
/* "2026-03-02 10:00:00" in the zone, for tables. */
void cli_time_short(int64_t ms, char *buf, size_t cap);
/* The zone's offset at @p ms: "UTC+01:00". */
void cli_time_offset(int64_t ms, char *buf, size_t cap);

#endif
