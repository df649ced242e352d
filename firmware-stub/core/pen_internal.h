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

/* Sends the next frame of the pull in progress. */
void pen_pull_step(pen *p);

#endif
