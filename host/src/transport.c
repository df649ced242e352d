/*
 * The transport backends' table: what penlink_dev_list() and the context reach
 * them through (transport.h). Each backend's functions are its own file's.
 */
#include <stddef.h>

#include "transport.h"

static const transport_backend *const backends[] = {
    [TRANSPORT_USB] = &transport_usb_backend,
    [TRANSPORT_SIM] = &transport_sim_backend,
};

_Static_assert(sizeof backends / sizeof backends[0] == PENLINK_TRANSPORT_KINDS,
               "penlink_ctx has a state slot for every transport backend");

int transport_list(penlink_ctx *ctx, penlink_found *out, size_t cap, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < PENLINK_TRANSPORT_KINDS; i++) {
        size_t k = 0, used = total < cap ? total : cap;
        if (!backends[i]->list)
            continue;
        int rc = backends[i]->list(ctx, out ? out + used : NULL, cap - used, &k);
        if (rc != PENLINK_OK)
            return rc;
        total += k;
    }
    *n = total;
    return PENLINK_OK;
}

void transport_ctx_cleanup(penlink_ctx *ctx)
{
    for (size_t i = 0; i < PENLINK_TRANSPORT_KINDS; i++)
        if (backends[i]->ctx_cleanup)
            backends[i]->ctx_cleanup(ctx);
}
