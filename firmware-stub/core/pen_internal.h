/*
 * What pen.c and handler.c share inside the device core (not for callers).
 */
#ifndef PEN_INTERNAL_H
#define PEN_INTERNAL_H

#include "pen.h"

/* Logs @p r now (time from the RTC, seq assigned). */
pen_status pen_log_now(pen *p, pl_record *r);

/* Writes @p merged as the next revision and logs CONFIG_CHANGED. */
pen_status pen_apply_config(pen *p, const pen_config *merged);

/* Config-signing keys in use (the HAL's, at most PEN_CONFIG_KEYS_MAX). */
static inline uint32_t pen_config_key_count(const pen *p)
{
    if (!p->has_key)
        return 0;
    return p->hal->config_key_count < PEN_CONFIG_KEYS_MAX ? p->hal->config_key_count
                                                          : PEN_CONFIG_KEYS_MAX;
}

/* Sends the next frame of the pull in progress. */
void pen_pull_step(pen *p);

#endif
