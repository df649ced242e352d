/* The host's clocks (clock.h). */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "clock.h"

#define MS_PER_S 1000
#define NS_PER_MS 1000000

static int64_t ms_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / NS_PER_MS;
}

int64_t pc_mono_ms(void)
{
    return ms_of(CLOCK_MONOTONIC);
}

int64_t pc_wall_ms(void)
{
    return ms_of(CLOCK_REALTIME);
}
