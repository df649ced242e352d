/*
 * Planted faults between the pen and the host: the frames the pen sends are
 * decoded and, for the LogChunks of the first pull, altered, dropped,
 * reordered or replaced before they reach the socket. The pen itself is
 * untouched; the host's checks of the hash chain must catch each one.
 */
#include <stdlib.h>
#include <string.h>

#include "pl/envelope.h"
#include "pl/frame.h"
#include "tamper.h"

int tamper_parse(const char *name)
{
    static const char *const names[] = { "flip", "drop", "swap", "splice" };
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return TAMPER_FLIP + i;
    return -1;
}

static uint8_t *copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n);
    if (c)
        memcpy(c, p, n);
    return c;
}

/* Re-frames @p env after a change and sends it. */
static int resend(pl_envelope *env, tamper_send_fn send, void *ctx)
{
    size_t need = pl_envelope_frame_size(env);
    uint8_t *buf = malloc(need);
    long n = buf ? pl_envelope_frame(env, buf, need) : -1;
    int rc = n > 0 ? send(ctx, buf, (size_t)n) : -1;
    free(buf);
    return rc;
}

int tamper_send(tamper *t, const uint8_t *frame, size_t len, tamper_send_fn send, void *ctx)
{
    if (t->mode == TAMPER_NONE || t->done || len < PL_FRAME_HEADER_SIZE)
        return send(ctx, frame, len);
    pl_envelope *env =
        pl_envelope_unpack(NULL, frame + PL_FRAME_HEADER_SIZE, len - PL_FRAME_HEADER_SIZE);
    if (!env || env->body_case != PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK) {
        pl_envelope_free(NULL, env);
        return send(ctx, frame, len);
    }
    unsigned k = ++t->chunks;
    Penlink__V1__LogChunk *c = env->log_chunk;
    int rc;
    if (k == 1 && t->mode == TAMPER_SPLICE) {
        t->held = copy(frame, len);
        t->held_len = len;
        rc = send(ctx, frame, len);
    } else if (k == 2 && t->mode == TAMPER_FLIP && c->data.len > 0) {
        c->data.data[c->data.len / 2] ^= 0x10;
        rc = resend(env, send, ctx);
        t->done = 1;
    } else if (k == 2 && t->mode == TAMPER_DROP) {
        rc = 0;
        t->done = 1;
    } else if (k == 2 && t->mode == TAMPER_SWAP) {
        t->held = copy(frame, len);
        t->held_len = len;
        rc = 0;
    } else if (k == 3 && t->mode == TAMPER_SWAP && t->held) {
        rc = send(ctx, frame, len);
        if (rc == 0)
            rc = send(ctx, t->held, t->held_len);
        t->done = 1;
    } else if (k == 2 && t->mode == TAMPER_SPLICE && t->held) {
        rc = send(ctx, t->held, t->held_len);
        t->done = 1;
    } else {
        rc = send(ctx, frame, len);
    }
    pl_envelope_free(NULL, env);
    return rc;
}

void tamper_free(tamper *t)
{
    free(t->held);
    t->held = NULL;
}
