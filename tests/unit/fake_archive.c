/* The fake archive backend of the host library's unit tests (fake_archive.h). */
#include "fake_archive.h"

#include <stdio.h>
#include <string.h>

/* A callback's non-zero stops a visit with CANCELLED, as the real backends do. */
#define STOPPED PENLINK_ERR_CANCELLED

static fake_archive *fa_of(archive_backend *b)
{
    return (fake_archive *)b;
}

static int fails(archive_backend *b, const char *op)
{
    fake_archive *fa = fa_of(b);
    return fa->fail_op && strcmp(fa->fail_op, op) == 0 && ++fa->fail_calls >= fa->fail_at;
}

/* A failing operation says so on the context, as the real backends do. */
#define FAIL_IF(b, op)                                                                             \
    do {                                                                                           \
        if (fails(b, op))                                                                          \
            return penlink_fail((b)->ctx, fa_of(b)->fail_status, "fake.db: %s failed", op);        \
    } while (0)

static const fake_pen *pen_of(const fake_archive *fa, int64_t device)
{
    for (size_t i = 0; i < fa->n_pens; i++)
        if (fa->pens[i].device == device)
            return &fa->pens[i];
    return NULL;
}

static void f_close(archive_backend *b)
{
    (void)b;
}

static int f_begin(archive_backend *b)
{
    FAIL_IF(b, "begin");
    fa_of(b)->begins++;
    return PENLINK_OK;
}

static int f_commit(archive_backend *b)
{
    FAIL_IF(b, "commit");
    fa_of(b)->commits++;
    return PENLINK_OK;
}

static int f_rollback(archive_backend *b)
{
    fa_of(b)->rollbacks++;
    return PENLINK_OK;
}

static int f_next_seq(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    FAIL_IF(b, "next_seq");
    const fake_archive *fa = fa_of(b);
    *next = 0;
    *have = 0;
    for (size_t i = 0; i < fa->n_records; i++)
        if (fa->records[i].device == device && fa->records[i].r.seq + 1 > *next) {
            *next = fa->records[i].r.seq + 1;
            *have = 1;
        }
    return PENLINK_OK;
}

static int f_alarms(archive_backend *b, const penlink_archive_filter *f,
                    int (*cb)(void *user, const penlink_alarm *a), void *user)
{
    FAIL_IF(b, "alarms");
    const fake_archive *fa = fa_of(b);
    for (size_t i = 0; i < fa->n_alarms; i++) {
        if (f && f->serial && strcmp(f->serial, fa->alarms[i].serial) != 0)
            continue;
        if (cb(user, &fa->alarms[i]) != 0)
            return STOPPED;
    }
    return PENLINK_OK;
}

static int f_pens(archive_backend *b, const char *serial,
                  int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                            uint64_t first_from),
                  void *user)
{
    FAIL_IF(b, "pens");
    const fake_archive *fa = fa_of(b);
    for (size_t i = 0; i < fa->n_pens; i++) {
        const fake_pen *p = &fa->pens[i];
        if (serial && strcmp(serial, p->serial) != 0)
            continue;
        if (cb(user, p->device, p->serial, p->has_key ? p->key : NULL, p->first_from) != 0)
            return STOPPED;
    }
    return PENLINK_OK;
}

static int f_chunks(archive_backend *b, int64_t device,
                    int (*cb)(void *user, const archive_chunk_row *c), void *user)
{
    FAIL_IF(b, "chunks");
    const fake_archive *fa = fa_of(b);
    for (size_t i = 0; i < fa->n_chunks; i++)
        if (fa->chunks[i].device == device && cb(user, &fa->chunks[i].row) != 0)
            return STOPPED;
    return PENLINK_OK;
}

static int f_records(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
                     int (*cb)(void *user, const penlink_record *r), archive_damage_cb bad,
                     void *user)
{
    FAIL_IF(b, "records");
    const fake_archive *fa = fa_of(b);
    const fake_pen *p = pen_of(fa, device);
    for (size_t i = 0; i < fa->n_records; i++) {
        const fake_record *fr = &fa->records[i];
        if (fr->device != device || fr->r.seq < first || fr->r.seq >= end)
            continue;
        int stop;
        if (fr->damage) {
            archive_damage d = { p ? p->serial : "", "records", (int64_t)fr->r.seq, fr->damage };
            stop = bad ? bad(user, &d) : 1;
        } else {
            stop = cb(user, &fr->r);
        }
        if (stop)
            return STOPPED;
    }
    return PENLINK_OK;
}

static int f_record_count(archive_backend *b, int64_t device, uint64_t *n)
{
    FAIL_IF(b, "record_count");
    const fake_archive *fa = fa_of(b);
    *n = 0;
    for (size_t i = 0; i < fa->n_records; i++)
        *n += fa->records[i].device == device;
    return PENLINK_OK;
}

static int f_pulled_to(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    FAIL_IF(b, "pulled_to");
    const fake_pen *p = pen_of(fa_of(b), device);
    *next = p ? p->pulled_to : 0;
    *have = p ? p->have_pulled : 0;
    return PENLINK_OK;
}

static int f_seq_outliers(archive_backend *b, int64_t device, uint64_t *n, int64_t *lowest)
{
    FAIL_IF(b, "seq_outliers");
    const fake_pen *p = pen_of(fa_of(b), device);
    *n = p ? p->outliers : 0;
    *lowest = p ? p->outlier_lowest : 0;
    return PENLINK_OK;
}

static int f_heads(archive_backend *b, int64_t device,
                   int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
                             const uint8_t *sig, size_t sig_len),
                   void *user)
{
    FAIL_IF(b, "heads");
    const fake_archive *fa = fa_of(b);
    for (size_t i = 0; i < fa->n_heads; i++) {
        const fake_head *h = &fa->heads[i];
        if (h->device == device &&
            cb(user, h->next_seq, h->link, h->link_len, h->sig, h->sig_len) != 0)
            return STOPPED;
    }
    return PENLINK_OK;
}

static int f_verification_log(archive_backend *b, const penlink_verify_report *r, int64_t now)
{
    (void)now;
    FAIL_IF(b, "verification_log");
    fake_archive *fa = fa_of(b);
    fa->logs++;
    fa->logged = *r;
    return PENLINK_OK;
}

static int f_verification_last(archive_backend *b, const char *serial, penlink_verification *out)
{
    FAIL_IF(b, "verification_last");
    const fake_archive *fa = fa_of(b);
    memset(out, 0, sizeof *out);
    snprintf(out->serial, sizeof out->serial, "%s", serial);
    out->have = fa->logs > 0 && strcmp(fa->logged.serial, serial) == 0;
    return PENLINK_OK;
}

static int f_key_replacements(archive_backend *b, const char *serial,
                              int (*cb)(void *user, const penlink_key_replacement *r), void *user)
{
    FAIL_IF(b, "key_replacements");
    const fake_archive *fa = fa_of(b);
    for (size_t i = 0; i < fa->n_repl; i++) {
        if (serial && strcmp(serial, fa->repl[i].serial) != 0)
            continue;
        if (cb(user, &fa->repl[i]) != 0)
            return STOPPED;
    }
    return PENLINK_OK;
}

static const fake_pen *pen_by_serial(const fake_archive *fa, const char *serial)
{
    for (size_t i = 0; i < fa->n_pens; i++)
        if (strcmp(fa->pens[i].serial, serial) == 0)
            return &fa->pens[i];
    return NULL;
}

/* The pen's row, made on first contact. */
static int f_device(archive_backend *b, const penlink_info *info, int64_t now, int64_t *id)
{
    (void)now;
    FAIL_IF(b, "device");
    fake_archive *fa = fa_of(b);
    const fake_pen *p = pen_by_serial(fa, info->serial);
    if (!p)
        p = fake_archive_pen(fa, (int64_t)fa->n_pens + 1, info->serial, NULL);
    if (!p)
        return PENLINK_ERR_NO_MEM;
    *id = p->device;
    return PENLINK_OK;
}

static int f_pin_key(archive_backend *b, int64_t device, const uint8_t *key, int *outcome)
{
    FAIL_IF(b, "pin_key");
    fake_pen *p = (fake_pen *)pen_of(fa_of(b), device);
    if (!key || !p) {
        *outcome = KEY_NONE;
    } else if (!p->has_key) {
        p->has_key = 1;
        memcpy(p->key, key, sizeof p->key);
        *outcome = KEY_PINNED;
    } else {
        *outcome = memcmp(p->key, key, sizeof p->key) == 0 ? KEY_SAME : KEY_CHANGED;
    }
    return PENLINK_OK;
}

static int f_pull_begin(archive_backend *b, int64_t device, uint64_t from, int64_t now,
                        int64_t *pull)
{
    (void)device, (void)now;
    FAIL_IF(b, "pull_begin");
    fake_archive *fa = fa_of(b);
    fa->pull_from = from;
    *pull = ++fa->pull_begins;
    return PENLINK_OK;
}

static int f_pull_end(archive_backend *b, int64_t pull, const penlink_archive_pull_result *r,
                      const char *result, const char *message, int64_t now)
{
    (void)pull, (void)r, (void)now;
    FAIL_IF(b, "pull_end");
    fake_archive *fa = fa_of(b);
    fa->pull_ends++;
    snprintf(fa->pull_result, sizeof fa->pull_result, "%s", result);
    snprintf(fa->pull_message, sizeof fa->pull_message, "%s", message ? message : "");
    return PENLINK_OK;
}

static int f_chunk(archive_backend *b, int64_t device, int64_t pull, const penlink_chunk *c,
                   int64_t now, int64_t *chunk, int *stored)
{
    (void)device, (void)pull, (void)c, (void)now;
    FAIL_IF(b, "chunk");
    fake_archive *fa = fa_of(b);
    *chunk = ++fa->chunks_stored;
    if (stored)
        *stored = 1;
    return PENLINK_OK;
}

static int f_record(archive_backend *b, int64_t device, int64_t chunk, const penlink_record *r,
                    int fresh, int *outcome)
{
    (void)chunk, (void)fresh;
    FAIL_IF(b, "record");
    fake_archive *fa = fa_of(b);
    for (size_t i = 0; i < fa->n_records; i++) {
        const fake_record *fr = &fa->records[i];
        if (fr->device == device && fr->r.seq == r->seq) {
            *outcome = archive_record_same(&fr->r, r) ? REC_SAME : REC_CONFLICT;
            return PENLINK_OK;
        }
    }
    if (!fake_archive_record(fa, device, r))
        return PENLINK_ERR_NO_MEM;
    *outcome = REC_NEW;
    return PENLINK_OK;
}

static int f_alarm(archive_backend *b, int64_t device, int64_t pull, const char *kind, uint64_t seq,
                   uint64_t count, const char *detail, int64_t now)
{
    (void)pull, (void)now;
    FAIL_IF(b, "alarm");
    fake_archive *fa = fa_of(b);
    const fake_pen *p = pen_of(fa, device);
    penlink_alarm *a = fake_archive_alarm(fa, p ? p->serial : "", kind, seq, count);
    if (!a)
        return PENLINK_ERR_NO_MEM;
    snprintf(a->detail, sizeof a->detail, "%s", detail);
    return PENLINK_OK;
}

static int f_savepoint(archive_backend *b)
{
    FAIL_IF(b, "savepoint");
    fa_of(b)->savepoints++;
    return PENLINK_OK;
}

static int f_rollback_to_savepoint(archive_backend *b)
{
    FAIL_IF(b, "rollback_to_savepoint");
    fa_of(b)->to_savepoint++;
    return PENLINK_OK;
}

static int f_writable(archive_backend *b)
{
    return fa_of(b)->writable;
}

static const archive_ops fake_ops = {
    .name = "fake",
    .close = f_close,
    .begin = f_begin,
    .commit = f_commit,
    .rollback = f_rollback,
    .next_seq = f_next_seq,
    .alarms = f_alarms,
    .pens = f_pens,
    .chunks = f_chunks,
    .records = f_records,
    .record_count = f_record_count,
    .pulled_to = f_pulled_to,
    .seq_outliers = f_seq_outliers,
    .heads = f_heads,
    .verification_log = f_verification_log,
    .verification_last = f_verification_last,
    .key_replacements = f_key_replacements,
    .writable = f_writable,
    .device = f_device,
    .pin_key = f_pin_key,
    .pull_begin = f_pull_begin,
    .pull_end = f_pull_end,
    .chunk = f_chunk,
    .record = f_record,
    .alarm = f_alarm,
    .savepoint = f_savepoint,
    .rollback_to_savepoint = f_rollback_to_savepoint,
};

void fake_archive_init(fake_archive *fa, penlink_ctx *ctx)
{
    memset(fa, 0, sizeof *fa);
    fa->base.ops = &fake_ops;
    fa->base.ctx = ctx;
    fa->base.name = "fake.db";
    fa->writable = 1;
}

fake_pen *fake_archive_pen(fake_archive *fa, int64_t device, const char *serial, const uint8_t *key)
{
    if (fa->n_pens == FAKE_MAX_PENS)
        return NULL;
    fake_pen *p = &fa->pens[fa->n_pens++];
    memset(p, 0, sizeof *p);
    p->device = device;
    snprintf(p->serial, sizeof p->serial, "%s", serial);
    if (key) {
        p->has_key = 1;
        memcpy(p->key, key, sizeof p->key);
    }
    return p;
}

fake_chunk *fake_archive_chunk(fake_archive *fa, int64_t device, uint64_t first_seq,
                               uint32_t record_count, uint32_t raw_size, const uint8_t *data,
                               size_t len, const uint8_t *prev_link, const uint8_t *link)
{
    if (fa->n_chunks == FAKE_MAX_CHUNKS || len > FAKE_CHUNK_BYTES)
        return NULL;
    fake_chunk *c = &fa->chunks[fa->n_chunks];
    memset(c, 0, sizeof *c);
    c->device = device;
    memcpy(c->data, data, len);
    c->row.id = (int64_t)++fa->n_chunks;
    c->row.first_seq = first_seq;
    c->row.stored_seq = (int64_t)first_seq;
    c->row.record_count = record_count;
    c->row.raw_size = raw_size;
    c->row.data = c->data;
    c->row.len = len;
    if (prev_link) {
        memcpy(c->prev_link, prev_link, FAKE_LINK_BYTES);
        c->row.prev_link = c->prev_link;
    }
    if (link) {
        memcpy(c->link, link, FAKE_LINK_BYTES);
        c->row.link = c->link;
    }
    return c;
}

fake_head *fake_archive_head(fake_archive *fa, int64_t device, uint64_t next_seq,
                             const uint8_t *link, const uint8_t *sig)
{
    if (fa->n_heads == FAKE_MAX_HEADS)
        return NULL;
    fake_head *h = &fa->heads[fa->n_heads++];
    memset(h, 0, sizeof *h);
    h->device = device;
    h->next_seq = next_seq;
    memcpy(h->link, link, FAKE_LINK_BYTES);
    memcpy(h->sig, sig, FAKE_SIG_BYTES);
    h->link_len = FAKE_LINK_BYTES;
    h->sig_len = FAKE_SIG_BYTES;
    return h;
}

fake_record *fake_archive_record(fake_archive *fa, int64_t device, const penlink_record *r)
{
    if (fa->n_records == FAKE_MAX_RECORDS)
        return NULL;
    fake_record *fr = &fa->records[fa->n_records++];
    memset(fr, 0, sizeof *fr);
    fr->device = device;
    fr->r = *r;
    return fr;
}

penlink_alarm *fake_archive_alarm(fake_archive *fa, const char *serial, const char *kind,
                                  uint64_t seq, uint64_t count)
{
    if (fa->n_alarms == FAKE_MAX_ALARMS)
        return NULL;
    penlink_alarm *a = &fa->alarms[fa->n_alarms++];
    memset(a, 0, sizeof *a);
    snprintf(a->serial, sizeof a->serial, "%s", serial);
    snprintf(a->kind, sizeof a->kind, "%s", kind);
    a->seq = seq;
    a->count = count;
    return a;
}
