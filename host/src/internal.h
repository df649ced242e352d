/* libpenlink internals shared between its source files; not installed. */
#ifndef PENLINK_INTERNAL_H
#define PENLINK_INTERNAL_H

#include "penlink/penlink.h"
#include "pl/status.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

/* The protocol version this library speaks (docs/protocol.md). */
#define PENLINK_PROTOCOL_MAJOR 1
#define PENLINK_PROTOCOL_MINOR 1

/* Kinds of transport (transport.h's backend table: USB, sim). */
#define PENLINK_TRANSPORT_KINDS 2

struct penlink_ctx {
    char errmsg[512];
    atomic_int cancelled; /* set from signal handlers and other threads (lock-free) */
    /* what each transport backend keeps on the context (transport.h), its own */
    void *transport_state[PENLINK_TRANSPORT_KINDS];
    int timeout_ms, retries;          /* for pens opened from now on; 0 / -1: the defaults */
    struct trace_file *trace;         /* --trace: sessions opened from now on are recorded */
    penlink_message_ex_cb on_message; /* -v: every message of the sessions opened from now on */
    void *on_message_user;
    void (*on_notice)(void *user, const char *text); /* a wait in vain, a request asked again */
    void *on_notice_user;
    penlink_work_progress_cb on_work; /* long archive work's progress (work_progress.h) */
    void *on_work_user;
};

#define PENLINK_DEFAULT_TIMEOUT_MS 2000
#define PENLINK_DEFAULT_RETRIES 2

/* Releases what the transport backends keep on @p ctx (transport.c). */
void transport_ctx_cleanup(penlink_ctx *ctx);

/*
 * Every public function that can fail starts with this, so the detail of an
 * earlier failure never outlives the next call (curl resets its error buffer
 * at the start of every transfer).
 */
static inline void penlink_enter(penlink_ctx *ctx)
{
    if (ctx)
        ctx->errmsg[0] = '\0';
}

/*
 * Structs that carry their size (penlink_xxx.size, set by the caller): the
 * size of each one's first released layout, below which the library refuses
 * it (PENLINK_ERR_INVALID_ARG). A caller built against a later header passes
 * a larger size; one built against this header, this size.
 */
#define PL_DECODER_STATS_SIZE_V1 sizeof(penlink_decoder_stats)
#define PL_INFO_SIZE_V1 sizeof(penlink_info)
#define PL_PULL_CB_SIZE_V1 sizeof(penlink_pull_cb)
#define PL_PULL_RESULT_SIZE_V1 sizeof(penlink_pull_result)
#define PL_ARCHIVE_PULL_RESULT_SIZE_V1 sizeof(penlink_archive_pull_result)
#define PL_CONFIG_SIZE_V1 sizeof(penlink_config)
#define PL_FILE_HEADER_SIZE_V1 sizeof(penlink_file_header)
#define PL_AUDIT_CB_SIZE_V1 sizeof(penlink_audit_cb)
#define PL_ARCHIVE_FILTER_SIZE_V1 sizeof(penlink_archive_filter)
#define PL_LIMITS_SIZE_V1 sizeof(penlink_limits)
#define PL_KEY_SIZE_V1 sizeof(penlink_key)
#define PL_KEY_REPLACEMENT_SIZE_V1 sizeof(penlink_key_replacement)
#define PL_VERIFICATION_SIZE_V1 sizeof(penlink_verification)
#define PL_AUDIT_SUMMARY_SIZE_V1 sizeof(penlink_audit_summary)

/* A sized struct the caller may pass as NULL: NULL, or one at least @p v1 bytes. */
#define PL_SIZED_OK(s, v1) (!(s) || (s)->size >= (v1))

/* Whether a sized struct @p s of type @p type, whose caller said it is
 * s->size bytes, holds @p member: an older caller's struct ends before the
 * fields added after its release. */
#define PL_SIZED_HAS(s, type, member)                                                              \
    ((s)->size >= offsetof(type, member) + sizeof(((type *)0)->member))

/* Copies a struct the library filled whole (@p all, @p all_size bytes) into
 * the caller's @p out, whose first member is its size: only the bytes the
 * caller's size covers, and never the size itself. */
static inline void pl_sized_copy(void *out, const void *all, size_t all_size)
{
    size_t n = *(const size_t *)out;
    if (n > all_size)
        n = all_size;
    if (n > sizeof(size_t))
        memcpy((char *)out + sizeof(size_t), (const char *)all + sizeof(size_t),
               n - sizeof(size_t));
}

/** Records @p status with a printf-style detail on @p ctx (NULL is fine); returns @p status. */
int penlink_fail(penlink_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Maps a protocol-library status to the public enum. */
int penlink_from_pl(int pl_status);

/* 1 when a key replacement recorded after the key_changed alarm @p al (of
 * the same pen, to the key the alarm says the pen presented) explains it;
 * @p note then says when, by whom and why (archive_keys.c). */
int audit_key_change_explained(penlink_archive *ar, const penlink_alarm *al, char *note,
                               size_t cap);

/* Crypto (keys.c, libsodium). sign/verify return 0 or -1. */
int penlink_sign(const penlink_key *key, const uint8_t *msg, size_t len, uint8_t sig[64]);
int penlink_verify(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t pk[32]);
void penlink_sha256(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[32]);

#endif
