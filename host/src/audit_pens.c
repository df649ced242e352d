/*
 * The audit's choice of pen: whether the archive holds the pen a serial
 * names, and, when it does not, the pens it holds and the one closest to
 * the serial (a typo, or the same but for case).
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "audit_internal.h"

#define PEN_LIST_CHARS 300 /* of pen serials named when one is not found */
#define CLOSE_EDITS 2      /* a serial this many edits away is "close" */
#define SERIAL_MAX 32      /* characters of a serial (the API's serial[33]) */
/* ---- selecting a pen ------------------------------------------------ */

/* Edits (insert, delete, change) from @p a to @p b, ignoring case. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[SERIAL_MAX + 1];
    if (la > SERIAL_MAX || lb > SERIAL_MAX)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
            size_t best = diag + !same;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

typedef struct pen_search {
    const char *want;
    int found;
    size_t pens, listed, best;
    char close[SERIAL_MAX + 1];
    char list[PEN_LIST_CHARS + 40];
} pen_search;

/* The archive's pens (all, or the one named), in serial order: the backend's
 * list, which costs no count of their records. */
int audit_each_pen(penlink_archive *ar, const char *serial,
                   int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                             uint64_t first_from),
                   void *user)
{
    return ar->b->ops->pens(ar->b, serial, cb, user);
}

static int on_pen(void *u, int64_t device, const char *serial, const uint8_t *key,
                  uint64_t first_from)
{
    pen_search *ps = u;
    (void)device, (void)key, (void)first_from;
    ps->pens++;
    /* the serial whole, or the first SERIAL_MAX bytes of a longer stored one (an
     * earlier penlink's archive): what the library hands out for it */
    if (strcmp(serial, ps->want) == 0 ||
        (strlen(serial) > SERIAL_MAX && strlen(ps->want) == SERIAL_MAX &&
         strncmp(serial, ps->want, SERIAL_MAX) == 0))
        ps->found = 1;
    size_t dist = edit_distance(serial, ps->want);
    size_t len = strlen(ps->want);
    /* close: the same but for case, or a typo or two in a serial long enough for it */
    if (dist < ps->best && (dist == 0 || (dist <= CLOSE_EDITS && dist * 3 <= len))) {
        ps->best = dist;
        snprintf(ps->close, sizeof ps->close, "%s", serial);
    }
    size_t used = strlen(ps->list);
    if (used + strlen(serial) + 2 <= PEN_LIST_CHARS) {
        snprintf(ps->list + used, sizeof ps->list - used, "%s%s", used ? ", " : "", serial);
        ps->listed++;
    }
    return 0;
}

int penlink_archive_pen_check(penlink_archive *ar, const char *serial, char close[33])
{
    if (close)
        close[0] = '\0';
    if (!ar || !serial)
        return PENLINK_ERR_INVALID_ARG;
    pen_search ps;
    memset(&ps, 0, sizeof ps);
    ps.want = serial;
    ps.best = (size_t)-1;
    int rc = audit_each_pen(ar, NULL, on_pen, &ps);
    if (rc != PENLINK_OK || ps.found)
        return rc;
    if (close)
        snprintf(close, SERIAL_MAX + 1, "%s", ps.close);
    if (ps.pens == 0)
        return penlink_fail(ar->ctx, PENLINK_ERR_NOT_FOUND,
                            "no pen %s in the archive: it holds no pens at all", serial);
    char more[40] = "";
    if (ps.listed < ps.pens)
        snprintf(more, sizeof more, " and %zu more", ps.pens - ps.listed);
    return penlink_fail(ar->ctx, PENLINK_ERR_NOT_FOUND,
                        "no pen %s in the archive%s%s%s; it holds %zu pen%s: %s%s", serial,
                        ps.close[0] ? " (did you mean " : "", ps.close, ps.close[0] ? "?)" : "",
                        ps.pens, ps.pens == 1 ? "" : "s", ps.list, more);
}
