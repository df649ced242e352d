/* Planted faults on the way from the pen to the host (tamper.c), for tests
 * of what the host's chain and signature checks catch. */
#ifndef PENLINK_SIM_TAMPER_H
#define PENLINK_SIM_TAMPER_H

#include <stddef.h>
#include <stdint.h>

typedef enum tamper_mode {
    TAMPER_NONE = 0,
    TAMPER_FLIP,   /* one bit of the second chunk's data flipped */
    TAMPER_DROP,   /* the second chunk never sent */
    TAMPER_SWAP,   /* the second and third chunks sent in the other order */
    TAMPER_SPLICE, /* the first chunk sent again in place of the second */
} tamper_mode;

typedef struct tamper {
    tamper_mode mode;
    unsigned chunks; /* LogChunk frames seen */
    uint8_t *held;   /* a frame held back (swap), or the first chunk (splice) */
    size_t held_len;
    int done;
} tamper;

/** Mode from its name (flip, drop, swap, splice); -1 when unknown. */
int tamper_parse(const char *name);

typedef int (*tamper_send_fn)(void *ctx, const uint8_t *data, size_t len);

/** Sends one frame from the pen through @p send, altered as @p t says. */
int tamper_send(tamper *t, const uint8_t *frame, size_t len, tamper_send_fn send, void *ctx);

void tamper_free(tamper *t);

#endif
