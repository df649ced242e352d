/* penlink-sim --replay: a recorded session's pen side, served again (replay.c). */
#ifndef PENLINK_SIM_REPLAY_H
#define PENLINK_SIM_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "pl/capture.h"

/** Exit status of penlink-sim when the host departed from the recording. */
#define SIM_DIVERGED 5

/** One frame of the recording, as sent. */
typedef struct replay_frame {
    pl_dir dir;
    uint64_t packet; /**< the capture's packet (1-based) where the frame ended */
    uint32_t device; /**< USB: bus << 16 | address << 8 of the device that sent or got it */
    uint8_t *bytes;
    size_t len;
} replay_frame;

typedef struct replay {
    const char *path;
    replay_frame *frames;
    size_t n, cap;
    size_t next;    /**< the next frame of the recording */
    size_t matched; /**< host frames that followed the recording */
    int diverged;
    char err[640];
} replay;

/** Reads the frames of the trace at @p path. 0, or -1 with r->err set. */
int replay_load(replay *r, const char *path);
void replay_free(replay *r);

/**
 * Serves one host on @p listen_fd until the recording ends, the host leaves
 * or departs from it, or @p stop_fd becomes readable (a signal).
 * @return 0 (followed to the end, or stopped), SIM_DIVERGED (r->err says
 *         where), 1 (out of memory).
 */
int replay_serve(replay *r, int listen_fd, int stop_fd, int verbose);

#endif
