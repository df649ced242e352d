/**
 * @file clock.h
 * The host's two clocks, in milliseconds, shared by the library and the CLI
 * (host/common is compiled into both).
 */
#ifndef PENLINK_COMMON_CLOCK_H
#define PENLINK_COMMON_CLOCK_H

#include <stdint.h>

/** Monotonic milliseconds (CLOCK_MONOTONIC), for timeouts and durations. */
int64_t pc_mono_ms(void);

/** Wall-clock milliseconds since the epoch (CLOCK_REALTIME), for timestamps. */
int64_t pc_wall_ms(void);

#endif
