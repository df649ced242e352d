/*
 * The pens' device keys in the archive: which other pen, if any, holds a
 * key (a clone), the key in force after deliberate replacements (penlink
 * keys replace), recording a replacement, and whether a replacement
 * explains a key_changed alarm for the audit.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "archive.h"
#include "clock.h"
#include "pl/auth.h"

typedef struct key_owner {
    int64_t device;
    const char *serial_self; /* the pen being checked */
    const uint8_t *key;
    char serial[65];
} key_owner;

static int find_key_owner(void *u, int64_t device, const char *serial, const uint8_t *key,
                          uint64_t first_from)
{
    key_owner *k = u;
    (void)first_from;
    if (device != k->device && key && memcmp(key, k->key, PL_KEY_BYTES) == 0) {
        snprintf(k->serial, sizeof k->serial, "%s", serial);
        return 1;
    }
    return 0;
}

/* A replaced key of another pen, old or new, is that pen's as much as its pinned one. */
static int find_replaced_owner(void *u, const penlink_key_replacement *r)
{
    key_owner *k = u;
    if (strcmp(r->serial, k->serial_self) != 0 && (memcmp(r->old_key, k->key, PL_KEY_BYTES) == 0 ||
                                                   memcmp(r->new_key, k->key, PL_KEY_BYTES) == 0)) {
        snprintf(k->serial, sizeof k->serial, "%s", r->serial);
        return 1;
    }
    return 0;
}

int archive_key_owner(archive_backend *b, int64_t device, const char *self_serial,
                      const uint8_t *key, char *serial, size_t cap)
{
    key_owner k = { .device = device, .serial_self = self_serial, .key = key };
    serial[0] = '\0';
    if (!key)
        return PENLINK_OK;
    int rc = b->ops->pens(b, NULL, find_key_owner, &k);
    if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED)
        return rc;
    if (!k.serial[0]) {
        rc = b->ops->key_replacements(b, NULL, find_replaced_owner, &k);
        if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED)
            return rc;
    }
    snprintf(serial, cap, "%s", k.serial);
    return PENLINK_OK;
}

int archive_take_replacement(void *u, const penlink_key_replacement *r)
{
    archive_key_history *h = u;
    h->n++;
    memcpy(h->current, r->new_key, PL_KEY_BYTES);
    if (h->probe && memcmp(h->probe, r->old_key, PL_KEY_BYTES) == 0) {
        h->probe_was_replaced = 1;
        h->probe_replaced_ms = r->at_ms;
    }
    return 0;
}

/* ---- replaced device keys --------------------------------------------------- */

typedef struct pen_row {
    int found;
    int64_t device;
    int pinned;
    uint8_t key[32];
} pen_row;

static int take_pen(void *u, int64_t device, const char *serial, const uint8_t *key,
                    uint64_t first_from)
{
    pen_row *p = u;
    (void)serial, (void)first_from;
    p->found = 1;
    p->device = device;
    p->pinned = key != NULL;
    if (key)
        memcpy(p->key, key, PL_KEY_BYTES);
    return 1;
}

/* The pen's row and the key in force (pinned, or its last replacement's). */
static int pen_key_now(penlink_archive *ar, const char *serial, pen_row *p, archive_key_history *h)
{
    archive_backend *b = ar->b;
    memset(p, 0, sizeof *p);
    int rc = b->ops->pens(b, serial, take_pen, p);
    if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED)
        return rc;
    if (!p->found)
        return penlink_fail(ar->ctx, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", serial);
    rc = b->ops->key_replacements(b, serial, archive_take_replacement, h);
    if (rc != PENLINK_OK)
        return rc;
    if (h->n > 0)
        memcpy(p->key, h->current, PL_KEY_BYTES);
    return PENLINK_OK;
}

int penlink_archive_pen_key(penlink_archive *ar, const char *serial, uint8_t key[32], int *have)
{
    if (!ar || !serial || !key || !have)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ar->ctx);
    pen_row p;
    archive_key_history h = { 0 };
    int rc = pen_key_now(ar, serial, &p, &h);
    if (rc != PENLINK_OK)
        return rc;
    *have = p.pinned;
    memcpy(key, p.key, PL_KEY_BYTES);
    return PENLINK_OK;
}

static int count_head(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                      const uint8_t *sig, size_t sig_len)
{
    (void)next_seq, (void)link, (void)link_len, (void)sig, (void)sig_len;
    (*(uint64_t *)u)++;
    return 0;
}

/* Checks a replacement before it is recorded; fills r's keys. */
static int check_replacement(penlink_archive *ar, const penlink_info *info, const pen_row *p,
                             const archive_key_history *h, penlink_key_replacement *r)
{
    char hex[65];
    if (!p->pinned)
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "the archive pinned no device key for pen %s (it never signed its "
                            "log here): there is no key to replace; pull it instead",
                            info->serial);
    if (!info->has_device_key)
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "pen %s presents no device key: a replacement needs the new key",
                            info->serial);
    penlink_key_to_hex(info->device_key, hex);
    if (memcmp(info->device_key, p->key, PL_KEY_BYTES) == 0)
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "pen %s presents device key %s, the key already in force: nothing "
                            "to replace",
                            info->serial, hex);
    if (h->probe_was_replaced)
        return penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                            "pen %s presents device key %s, a key it had before and that was "
                            "replaced: a replaced key is never taken back (the old board, or a "
                            "copy of it)",
                            info->serial, hex);
    char owner[65];
    int rc =
        archive_key_owner(ar->b, p->device, info->serial, info->device_key, owner, sizeof owner);
    if (rc != PENLINK_OK)
        return rc;
    if (owner[0])
        return penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                            "pen %s presents device key %s, which the archive holds for pen %s: "
                            "one of them is a clone; nothing was recorded",
                            info->serial, hex, owner);
    memcpy(r->old_key, p->key, PL_KEY_BYTES);
    memcpy(r->new_key, info->device_key, PL_KEY_BYTES);
    return PENLINK_OK;
}

int penlink_archive_key_replace(penlink_archive *ar, const penlink_info *info, const char *reason,
                                penlink_key_replacement *out)
{
    if (!ar || !info || info->size < PL_INFO_SIZE_V1 ||
        !PL_SIZED_OK(out, PL_KEY_REPLACEMENT_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ar->ctx);
    if (!reason || !*reason || strlen(reason) > PENLINK_KEY_REASON_MAX)
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "a key replacement needs a reason of 1 to %d bytes",
                            PENLINK_KEY_REASON_MAX);
    archive_backend *b = ar->b;
    penlink_key_replacement r = PENLINK_KEY_REPLACEMENT_INIT;
    snprintf(r.serial, sizeof r.serial, "%s", info->serial);
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    archive_who(r.user, sizeof r.user, r.host, sizeof r.host);
    int rc = b->ops->begin(b);
    if (rc != PENLINK_OK)
        return rc;
    pen_row p;
    archive_key_history h = { .probe = info->has_device_key ? info->device_key : NULL };
    uint64_t next = 0;
    int have = 0;
    rc = pen_key_now(ar, info->serial, &p, &h);
    if (rc == PENLINK_OK)
        rc = check_replacement(ar, info, &p, &h, &r);
    if (rc == PENLINK_OK)
        rc = b->ops->next_seq(b, p.device, &next, &have);
    if (rc == PENLINK_OK && have && info->log_next_seq < next)
        rc = penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                          "pen %s says its log ends before seq %llu, but the archive holds its "
                          "records up to seq %llu: its log was reset, or it is another pen. A key "
                          "replacement is for a pen that kept its log; nothing was recorded",
                          info->serial, (unsigned long long)info->log_next_seq,
                          (unsigned long long)next - 1);
    if (rc == PENLINK_OK)
        rc = b->ops->heads(b, p.device, count_head, &r.heads_before);
    r.from_seq = have ? next : 0;
    r.at_ms = pc_wall_ms();
    if (rc == PENLINK_OK)
        rc = b->ops->key_replace(b, &r);
    rc = archive_end_txn(b, rc);
    if (rc == PENLINK_OK && out)
        pl_sized_copy(out, &r, sizeof r);
    return rc;
}

int penlink_archive_key_replacements(penlink_archive *ar, const char *serial,
                                     int (*cb)(void *user, const penlink_key_replacement *r),
                                     void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ar->ctx);
    return ar->b->ops->key_replacements(ar->b, serial, cb, user);
}

int audit_key_change_explained(penlink_archive *ar, const penlink_alarm *al, char *note, size_t cap)
{
    for (size_t i = 0; i < ar->n_repl; i++) {
        const penlink_key_replacement *r = &ar->repl[i];
        char hex[65], when[40];
        penlink_key_to_hex(r->new_key, hex);
        /* the alarm names the key the pen presented; the replacement came after it */
        if (strcmp(r->serial, al->serial) != 0 || r->at_ms < al->at_ms || !strstr(al->detail, hex))
            continue;
        time_t t = (time_t)(r->at_ms / 1000);
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", gmtime_r(&t, &tm));
        snprintf(note, cap, " [explained: the new key was recorded on %s UTC by %.40s: %.60s]",
                 when, r->user, r->reason);
        return 1;
    }
    return 0;
}
