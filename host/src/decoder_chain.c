/*
 * The hash chain of a signing pen, checked as a decoder's messages go: the
 * pens met by serial, the links of their chunks, each LogChunk's link and
 * prev_link, each LogEnd's head and signature.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder_internal.h"

/* The pen of this serial: the one met before, or a new one (NULL when the
 * decoder already follows DEC_MAX_PENS pens). */
static pen_state *pen_for(penlink_decoder *d, const char *serial)
{
    for (int i = 0; i < DEC_MAX_PENS; i++)
        if (d->pens[i].used && strcmp(d->pens[i].serial, serial) == 0)
            return &d->pens[i];
    for (int i = 0; i < DEC_MAX_PENS; i++)
        if (!d->pens[i].used) {
            d->pens[i].used = 1;
            snprintf(d->pens[i].serial, sizeof d->pens[i].serial, "%s", serial);
            return &d->pens[i];
        }
    return NULL;
}

/* A conversation's pen names itself (@p serial, and @p key when it sent
 * one). @p session: a HelloReply or DeviceInfo, which the pen sends at the
 * start of a session: what came before it is another session. */
void dec_meet_pen(penlink_decoder *d, chain_state *cs, const char *serial, const uint8_t *key,
                  int session)
{
    if (session)
        cs->have_last = 0;
    if (!serial || !serial[0] || strlen(serial) > PL_SERIAL_MAX)
        return;
    if (!cs->pen || strcmp(cs->pen->serial, serial) != 0) {
        pen_state *p = pen_for(d, serial);
        if (!p) { /* too many pens: this one's chain is checked on its own */
            free(cs->own.seen);
            memset(&cs->own, 0, sizeof cs->own);
            snprintf(cs->own.serial, sizeof cs->own.serial, "%s", serial);
            p = &cs->own;
        }
        cs->pen = p;
        cs->have_last = 0;
    }
    if (key) {
        cs->pen->have_key = 1;
        memcpy(cs->pen->key, key, PL_KEY_BYTES);
    }
}

/* The pen a conversation is with: the one it named, or (not named yet) its own. */
static pen_state *conv_pen(chain_state *cs)
{
    return cs->pen ? cs->pen : &cs->own;
}

/* What the pen says about itself: its serial and device key, for the chain check. */
void dec_learn_pen(penlink_decoder *d, chain_state *cs, const pl_envelope *env)
{
    if (env->body_case == PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY)
        dec_meet_pen(d, cs, env->hello_reply->serial, NULL, 1);
    if (env->body_case == PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO) {
        const Penlink__V1__DeviceInfo *di = env->device_info;
        int key = di->has_device_key && di->device_key.len == PL_KEY_BYTES;
        dec_meet_pen(d, cs, di->serial, key ? di->device_key.data : NULL, env->request_id != 0);
    }
}

static size_t link_slot(uint64_t end)
{
    return (size_t)((end * 0x9E3779B97F4A7C15ull) >> 54) % DEC_CHAIN_MEMORY;
}

/* The link of the pen's chunk that ended at @p end, if the input showed it. */
static const uint8_t *seen_link(const pen_state *p, uint64_t end)
{
    const chain_link *l = p->seen ? &p->seen[link_slot(end)] : NULL;
    return l && l->used && l->end == end ? l->link : NULL;
}

static void remember_link(pen_state *p, uint64_t end, const uint8_t *link)
{
    if (!p->seen)
        p->seen = calloc(DEC_CHAIN_MEMORY, sizeof *p->seen);
    if (!p->seen)
        return; /* no memory: later chunks are merely not checked against this one */
    chain_link *l = &p->seen[link_slot(end)];
    l->used = 1;
    l->end = end;
    memcpy(l->link, link, PL_LINK_BYTES);
}

/* The chain check of one LogChunk: NULL (not a signing pen's chunk) or the
 * verdict; *problem set when it is broken. In a capture the chunk before it
 * is the one before it in the same reply, else any chunk of the same pen in
 * the input that ended where it starts (a pen's chain is fixed: every pull of
 * it, in any session, shows the same links). In a file (@p file) it is the
 * one right before it in the input, unless records between them are missing
 * (a gap); @p repeat: every record of it came before in the input (a file
 * joined from copies): its own link is checked, and the chain goes on from it. */
const char *dec_check_chunk(chain_state *cs, uint32_t reply, const Penlink__V1__LogChunk *c,
                            int file, int repeat, const char **problem)
{
    if (!c->has_link && !c->has_prev_link)
        return NULL;
    if (!c->has_link || !c->has_prev_link || c->link.len != PL_LINK_BYTES ||
        c->prev_link.len != PL_LINK_BYTES) {
        *problem = "the chunk's link or prev_link is missing or not 32 bytes";
        return "broken";
    }
    pen_state *pen = conv_pen(cs);
    uint8_t pre[PL_AUTH_LINK_PREFIX], link[PL_LINK_BYTES];
    pl_auth_link_prefix(pre, c->prev_link.data, c->first_seq, c->record_count, c->raw_size,
                        (uint32_t)c->data.len);
    penlink_sha256(pre, sizeof pre, c->data.data, c->data.len, link);
    int in_reply = cs->have_last && cs->last_reply == reply;
    const uint8_t *before = in_reply ? cs->last : seen_link(pen, c->first_seq);
    if (file) /* the chunk right before it in the file, unless records are missing */
        before = cs->have_last && c->first_seq <= cs->last_end && !repeat ? cs->last : NULL;
    const char *verdict = "verified";
    int self_ok = memcmp(link, c->link.data, PL_LINK_BYTES) == 0;
    if (!self_ok) {
        *problem = "the chunk's link is not the hash of its bytes and prev_link";
        verdict = "broken";
    } else if (before && memcmp(c->prev_link.data, before, PL_LINK_BYTES) != 0) {
        if (file)
            *problem = c->first_seq < cs->last_end
                           ? "prev_link is not the link of the chunk before it in the input, "
                             "whose records it seals again: the pen's chain forks"
                           : "prev_link is not the link of the chunk before it in the input";
        else
            *problem = in_reply ? "prev_link is not the link of the chunk before it in this reply"
                                : "prev_link is not the link of the pen's chunk that ended where "
                                  "this one starts, seen earlier in the input";
        verdict = "broken";
    } else if (repeat) {
        verdict = "link verified; a second copy of records earlier in the input (counted once)";
    } else if (!before && c->first_seq == 0 && pen->serial[0]) {
        uint8_t g[PL_AUTH_GENESIS_MAX], gl[PL_LINK_BYTES];
        size_t n = pl_auth_genesis_bytes(g, pen->serial);
        penlink_sha256(g, n, NULL, 0, gl);
        if (memcmp(gl, c->prev_link.data, PL_LINK_BYTES) != 0) {
            *problem = "the first chunk's prev_link is not the pen's genesis";
            verdict = "broken";
        }
    } else if (!before && file && cs->have_last) {
        verdict = "link verified; prev_link unchecked (the records before it are not in the input)";
    } else if (!before) {
        verdict = file ? "link verified; prev_link unchecked (no chunk before it in the input)"
                       : "link verified; prev_link unchecked (the input holds no chunk of this pen "
                         "ending where it starts)";
    }
    memcpy(cs->last, c->link.data, PL_LINK_BYTES);
    cs->have_last = 1;
    cs->last_reply = reply;
    cs->last_end = c->first_seq + c->record_count;
    if (self_ok && c->record_count > 0)
        remember_link(pen, c->first_seq + c->record_count, c->link.data);
    return verdict;
}

/* The chain check of a LogEnd: its head against the last chunk, its signature. */
const char *dec_check_head(chain_state *cs, uint32_t reply, const Penlink__V1__LogEnd *e,
                           const char **problem)
{
    if (!e->has_head_link && !e->has_head_signature)
        return NULL;
    if (!e->has_head_link || !e->has_head_signature || e->head_link.len != PL_LINK_BYTES ||
        e->head_signature.len != PL_SIG_BYTES) {
        *problem = "the head's link or signature is missing or of the wrong size";
        return "broken";
    }
    if (cs->have_last && cs->last_reply == reply &&
        memcmp(cs->last, e->head_link.data, PL_LINK_BYTES) != 0) {
        *problem = "head_link is not the link of the last chunk of this reply";
        return "broken";
    }
    const pen_state *pen = conv_pen(cs);
    if (!pen->serial[0])
        return "unchecked: the input does not name the pen (no HelloReply, DeviceInfo or header)";
    if (!pen->have_key)
        return "unchecked: the input does not hold the pen's device key (DeviceInfo or header)";
    uint8_t msg[PL_AUTH_HEAD_MAX];
    size_t n = pl_auth_head_bytes(msg, pen->serial, e->next_seq, e->head_link.data);
    if (n == 0 || penlink_verify(e->head_signature.data, msg, n, pen->key) != 0) {
        *problem = "the head signature does not verify with the pen's device key";
        return "broken";
    }
    return "verified";
}
