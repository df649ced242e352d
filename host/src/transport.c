/*
 * The transport backends' table: what penlink_dev_open(), penlink_dev_list()
 * and the context reach them through (transport.h). Each backend's functions
 * are its own file's.
 */
#include <stddef.h>
#include <string.h>

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

int transport_open(penlink_ctx *ctx, const char *uri, transport **out)
{
    const char *colon = strchr(uri, ':');
    size_t scheme_len = colon ? (size_t)(colon - uri) : strlen(uri);
    for (size_t i = 0; i < PENLINK_TRANSPORT_KINDS; i++) {
        const transport_backend *b = backends[i];
        if (!b->open || strlen(b->name) != scheme_len || strncmp(uri, b->name, scheme_len) != 0)
            continue;
        const char *addr = colon ? colon + 1 : NULL;
        if ((addr && !*addr) || (!addr && !b->bare_ok))
            break; /* "usb:", "sim": no address */
        return b->open(ctx, addr, out);
    }
    return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                        "'%s' is not a pen address: use usb, usb:SERIAL, usb:BUS-PORT.PORT (the "
                        "USB port, e.g. usb:1-2.3, as 'penlink list' shows) or sim:PATH",
                        uri);
}

void transport_ctx_cleanup(penlink_ctx *ctx)
{
    for (size_t i = 0; i < PENLINK_TRANSPORT_KINDS; i++)
        if (backends[i]->ctx_cleanup)
            backends[i]->ctx_cleanup(ctx);
}
