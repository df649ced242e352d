/*
 * The audit's cartridges: one small entry per distinct cartridge serial, in
 * a hash table, with the uses beyond the first chained; a reuse can only be
 * told once every pen was read (audit_report_reuses()).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"

/* ---- cartridges ------------------------------------------------------ */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cart_rehash(audit *a)
{
    size_t cap = a->cap_carts ? a->cap_carts * 2 : 1024;
    cart *n = calloc(cap, sizeof *n);
    if (!n)
        return -1;
    for (size_t i = 0; i < a->cap_carts; i++) {
        if (!a->carts[i].used)
            continue;
        size_t j = mix(a->carts[i].serial) & (cap - 1);
        while (n[j].used)
            j = (j + 1) & (cap - 1);
        n[j] = a->carts[i];
    }
    free(a->carts);
    a->carts = n;
    a->cap_carts = cap;
    return 0;
}

/* Notes that a treatment used cartridge @p serial. */
int audit_cart_add(audit *a, uint64_t serial, uint64_t seq, int64_t ms, uint32_t uses, int win)
{
    if ((a->n_carts + 1) * 2 > a->cap_carts && cart_rehash(a) != 0)
        return -1;
    size_t j = mix(serial) & (a->cap_carts - 1);
    while (a->carts[j].used && a->carts[j].serial != serial)
        j = (j + 1) & (a->cap_carts - 1);
    cart *c = &a->carts[j];
    if (!c->used) {
        memset(c, 0, sizeof *c);
        c->used = 1;
        c->serial = serial;
        c->first_pen = a->pen;
        c->first_seq = seq;
        c->first_ms = ms;
        c->count = 1;
        c->max_uses = uses;
        c->in_window = (uint8_t)win;
        a->n_carts++;
        return 0;
    }
    if (pc_grow(&a->uses, &a->cap_uses, a->n_uses + 1, sizeof *a->uses) != 0)
        return -1;
    use *u = &a->uses[a->n_uses++];
    u->pen = a->pen;
    u->seq = seq;
    u->ms = ms;
    u->next = 0;
    if (c->last)
        a->uses[c->last - 1].next = (uint32_t)a->n_uses;
    else
        c->extra = (uint32_t)a->n_uses;
    c->last = (uint32_t)a->n_uses;
    c->count++;
    if (uses > c->max_uses)
        c->max_uses = uses;
    c->in_window |= (uint8_t)win;
    return 0;
}

static int cmp_cart(const void *x, const void *y)
{
    const cart *p = *(const cart *const *)x, *q = *(const cart *const *)y;
    if (p->first_pen != q->first_pen)
        return p->first_pen < q->first_pen ? -1 : 1;
    return p->first_seq < q->first_seq ? -1 : p->first_seq > q->first_seq;
}

/* Reuses can only be told once every pen was read. */
void audit_report_reuses(audit *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->cap_carts; i++) {
        const cart *c = &a->carts[i];
        if (c->used && c->in_window)
            a->sum.cartridges++;
        if (c->used && c->in_window && (c->count > 1 || c->max_uses > 1))
            n++;
    }
    if (n == 0)
        return;
    const cart **list = malloc(n * sizeof *list);
    if (!list) {
        audit_stop(a, PENLINK_ERR_NO_MEM);
        return;
    }
    n = 0;
    for (size_t i = 0; i < a->cap_carts; i++) {
        const cart *c = &a->carts[i];
        if (c->used && c->in_window && (c->count > 1 || c->max_uses > 1))
            list[n++] = c;
    }
    qsort(list, n, sizeof *list, cmp_cart);
    for (size_t i = 0; i < n && a->rc == PENLINK_OK; i++) {
        const cart *c = list[i];
        penlink_evidence *ev = malloc(c->count * sizeof *ev);
        if (!ev) {
            audit_stop(a, PENLINK_ERR_NO_MEM);
            break;
        }
        ev[0].serial = a->pens[c->first_pen];
        ev[0].seq = c->first_seq;
        ev[0].time_ms = c->first_ms;
        size_t k = 1;
        int other_pen = 0;
        for (uint32_t u = c->extra; u && k < c->count; u = a->uses[u - 1].next, k++) {
            ev[k].serial = a->pens[a->uses[u - 1].pen];
            ev[k].seq = a->uses[u - 1].seq;
            ev[k].time_ms = a->uses[u - 1].ms;
            other_pen |= a->uses[u - 1].pen != c->first_pen;
        }
        penlink_finding fi;
        audit_finding_init(a, &fi, PENLINK_FIND_REUSE, "cartridges", 1);
        fi.serial = a->pens[c->first_pen];
        fi.seq = c->first_seq;
        fi.time_ms = c->first_ms;
        for (size_t e = 0; a->others && c->first_pen >= a->n_mine && e < k; e++)
            if (strcmp(ev[e].serial, a->pens[0]) == 0) {
                /* first used on another pen: the finding is the audited pen's */
                fi.serial = ev[e].serial;
                fi.seq = ev[e].seq;
                fi.time_ms = ev[e].time_ms;
                break;
            }
        fi.count = c->count;
        fi.cartridge_serial = c->serial;
        fi.cartridge_uses = c->max_uses;
        fi.evidence = ev;
        fi.n_evidence = k;
        if (c->count > 1)
            snprintf(fi.detail, sizeof fi.detail,
                     "cartridge %llu served %u treatments%s; the pen counted %u uses",
                     (unsigned long long)c->serial, c->count, other_pen ? " on different pens" : "",
                     c->max_uses);
        else
            snprintf(fi.detail, sizeof fi.detail,
                     "cartridge %llu: the pen counted %u uses; the earlier ones are not in this "
                     "archive",
                     (unsigned long long)c->serial, c->max_uses);
        audit_emit(a, &fi);
        free(ev);
    }
    free(list);
}
