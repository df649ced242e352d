/**
 * @file calendar.h
 * Calendar arithmetic shared by the library (the audit's usage periods) and
 * the CLI (its --since/--until dates): host/common is compiled into both,
 * as neither may call the other's internals.
 */
#ifndef PENLINK_COMMON_CALENDAR_H
#define PENLINK_COMMON_CALENDAR_H

#include <stdint.h>

/** @p x / @p d rounded towards minus infinity (@p d > 0): -1 / 1000 is -1, not 0. */
int64_t pc_floor_div(int64_t x, int64_t d);

/**
 * Days since 1970-01-01 of the proleptic Gregorian date @p y - @p m - @p d
 * (month 1..12, day 1..31, not checked), negative before 1970.
 */
int64_t pc_days_from_civil(int64_t y, int m, int d);

#endif
