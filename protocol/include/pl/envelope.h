/**
 * @file pl/envelope.h
 * Envelope helpers: pack one Envelope into a complete frame, unpack a frame's
 * payload with a chosen allocator (a fixed arena on the pen), and a bump
 * allocator for that arena.
 */
#ifndef PL_ENVELOPE_H
#define PL_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "penlink.pb-c.h"
#include "pl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef Penlink__V1__Envelope pl_envelope;

/** Size of the frame that pl_envelope_frame() would write. */
size_t pl_envelope_frame_size(const pl_envelope *env);

/**
 * Packs @p env into a frame (header + payload) in @p out.
 * @return frame bytes, or PL_ERR_NO_SPACE.
 */
long pl_envelope_frame(const pl_envelope *env, uint8_t *out, size_t cap);

/**
 * Unpacks a frame payload. @p alloc NULL means malloc. Unknown fields and
 * unknown oneof members are kept out of the way (the body case is then
 * PENLINK__V1__ENVELOPE__BODY__NOT_SET). Returns NULL on malformed input.
 */
pl_envelope *pl_envelope_unpack(ProtobufCAllocator *alloc, const uint8_t *payload, size_t len);
void pl_envelope_free(ProtobufCAllocator *alloc, pl_envelope *env);

/** Bump allocator over a fixed buffer: no free, reset between messages. */
typedef struct pl_arena {
    uint8_t *buf;
    size_t cap, used, peak;
    ProtobufCAllocator alloc; /**< hand this to protobuf-c */
} pl_arena;

void pl_arena_init(pl_arena *a, void *buf, size_t cap);
void pl_arena_reset(pl_arena *a);
void *pl_arena_alloc(pl_arena *a, size_t n);

#ifdef __cplusplus
}
#endif
#endif
