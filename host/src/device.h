/*
 * A session with a pen, shared by the request-reply layer (device.c), the
 * pen's operations (device_ops.c) and the pull (pull.c). Internal to libpenlink.
 */
#ifndef PENLINK_DEVICE_H
#define PENLINK_DEVICE_H

#include "pl/chunk.h"
#include "pl/envelope.h"
#include "pl/frame.h"
#include "transport.h"

#define HOST_MAX_PAYLOAD PL_FRAME_MAX_PAYLOAD
#define DEV_SERIAL_MAX 32 /* bytes of a serial (docs/protocol.md §5) */

/* Sequence numbers are below 2^63 (docs/protocol.md §6): SQL stores them signed. */
#define DEV_SEQ_LIMIT (UINT64_C(1) << 63)

struct penlink_dev {
    penlink_ctx *ctx;
    transport *t;
    pl_frame_decoder fdec;
    uint8_t *fbuf;
    uint8_t rbuf[64 * 1024];
    size_t rlen, rpos;
    int fdec_again; /* the frame decoder's window may hold another frame */
    uint8_t *tx;
    size_t txcap;
    uint32_t next_id;
    int timeout_ms, retries;
    uint32_t pen_max_payload, major, minor, features;
    char serial[DEV_SERIAL_MAX + 1];
    penlink_device_error err;
    pl_chunk_dec cdec;
    pl_record *recs;
    uint64_t frame_errors;
    uint64_t info_acked; /* log_acked_seq of the last DeviceInfo, then of the last ack */
    /* the config keys of the last DeviceInfo: penlink_info.config_keys points here */
    uint8_t config_keys[PENLINK_CONFIG_KEYS_MAX][PENLINK_KEY_SIZE];
    int info_read;
    /* the last AckLog reached the wire: a failure after it leaves the pen's
     * answer unknown (it may have taken it) */
    int ack_sent;
    /* The alarm a failed pull raises (pull.c), for the archive to record: "" when none. */
    char alarm[16];
    uint64_t alarm_seq, alarm_count;
    /* `penlink -v`: every message, as it goes */
    penlink_message_ex_cb on_message;
    void *on_message_user;
    uint64_t messages;
};

/* A session over @p t, a transport already open (penlink_dev_open's choice,
 * or a test's fake): traced when the context traces, drained, then Hello.
 * @p t belongs to the session from here on, and is closed on failure. */
int dev_open_on(penlink_ctx *ctx, transport *t, penlink_dev **out);

void dev_copy_str(char *dst, size_t cap, const char *src);

/* Frames one Envelope and sends it. */
int dev_send(penlink_dev *d, pl_envelope *env);
/* The next intact frame until @p deadline, unpacked (raw: the frame, may be NULL). */
int dev_recv(penlink_dev *d, long long deadline, pl_envelope **env, pl_frame *raw);
/* Sends @p req and waits for the reply with the same request id, @p want its
 * body; idempotent requests are sent again, with a new id, after a timeout. */
int dev_request(penlink_dev *d, pl_envelope *req, int idempotent,
                Penlink__V1__Envelope__BodyCase want, pl_envelope **reply);
/* The name of an Envelope body, for messages. */
const char *dev_body_name(Penlink__V1__Envelope__BodyCase c);
/* Turns the pen's Error into a status and a message saying what to do. */
int dev_pen_error(penlink_dev *d, const Penlink__V1__Error *e, const char *req);
/* PENLINK_OK when the pen announced the feature group of @p body; else a local refusal. */
int dev_supports(penlink_dev *d, Penlink__V1__Envelope__BodyCase body);
/* Tells the context's notice callback (penlink_ctx_set_notice_cb), if any. */
void dev_notice(penlink_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
