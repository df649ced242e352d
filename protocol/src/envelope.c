/* Envelope <-> frame, and the bump arena the pen unpacks messages into. */
#include <string.h>

#include "pl/envelope.h"
#include "pl/frame.h"

size_t pl_envelope_frame_size(const pl_envelope *env)
{
    return PL_FRAME_HEADER_SIZE + penlink__v1__envelope__get_packed_size(env);
}

long pl_envelope_frame(const pl_envelope *env, uint8_t *out, size_t cap)
{
    size_t len = penlink__v1__envelope__get_packed_size(env);
    if (len > PL_FRAME_MAX_PAYLOAD || cap < PL_FRAME_HEADER_SIZE ||
        len > cap - PL_FRAME_HEADER_SIZE)
        return PL_ERR_NO_SPACE;
    size_t got = penlink__v1__envelope__pack(env, out + PL_FRAME_HEADER_SIZE);
    pl_frame_header(out, out + PL_FRAME_HEADER_SIZE, (uint32_t)got);
    return (long)(PL_FRAME_HEADER_SIZE + got);
}

pl_envelope *pl_envelope_unpack(ProtobufCAllocator *alloc, const uint8_t *payload, size_t len)
{
    if (len > PL_FRAME_MAX_PAYLOAD)
        return NULL;
    return penlink__v1__envelope__unpack(alloc, len, payload);
}

void pl_envelope_free(ProtobufCAllocator *alloc, pl_envelope *env)
{
    if (env)
        penlink__v1__envelope__free_unpacked(env, alloc);
}

static void *arena_pb_alloc(void *data, size_t n)
{
    return pl_arena_alloc(data, n);
}

static void arena_pb_free(void *data, void *p)
{
    (void)data; /* freed as a whole by pl_arena_reset() */
    (void)p;
}

void pl_arena_init(pl_arena *a, void *buf, size_t cap)
{
    a->buf = buf;
    a->cap = cap;
    a->used = a->peak = 0;
    a->alloc.alloc = arena_pb_alloc;
    a->alloc.free = arena_pb_free;
    a->alloc.allocator_data = a;
}

void pl_arena_reset(pl_arena *a)
{
    a->used = 0;
}

void *pl_arena_alloc(pl_arena *a, size_t n)
{
    size_t need = (n + 7u) & ~(size_t)7u;
    size_t off = (a->used + 7u) & ~(size_t)7u;
    if (need < n || off > a->cap || need > a->cap - off)
        return NULL;
    a->used = off + need;
    if (a->used > a->peak)
        a->peak = a->used;
    return a->buf + off;
}
