/*
 * The configuration log: each change of a pen's configuration recorded in
 * the archive (who, where, when, old and new), and its history read back.
 */
#define _POSIX_C_SOURCE 200809L
#include "archive.h"
#include "clock.h"

int penlink_archive_log_config(penlink_archive *ar, const char *serial, const char *source,
                               const penlink_config *old_cfg, const penlink_config *new_cfg)
{
    if (!ar || !serial || !source || !new_cfg || new_cfg->size < PL_CONFIG_SIZE_V1 ||
        (old_cfg && old_cfg->size < PL_CONFIG_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    char user[64], host[256];
    archive_who(user, sizeof user, host, sizeof host);
    archive_backend *b = ar->b;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->config_log(b, serial, source, user, host, old_cfg, new_cfg, pc_wall_ms());
    if (rc == PENLINK_OK)
        return b->ops->commit(b);
    b->ops->rollback(b);
    return rc;
}

int penlink_archive_log_config_write(penlink_archive *ar, const penlink_info *info,
                                     const penlink_config *old_cfg, const penlink_config *new_cfg)
{
    if (!ar || !info || info->size < PL_INFO_SIZE_V1 || !new_cfg ||
        new_cfg->size < PL_CONFIG_SIZE_V1 || (old_cfg && old_cfg->size < PL_CONFIG_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    archive_backend *b = ar->b;
    int64_t device;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->device(b, info, pc_wall_ms(), &device);
    rc = archive_end_txn(b, rc);
    if (rc != PENLINK_OK)
        return rc;
    return penlink_archive_log_config(ar, info->serial, "written", old_cfg, new_cfg);
}

int penlink_archive_config_history(penlink_archive *ar, const char *serial,
                                   int (*cb)(void *user, const penlink_config_entry *e), void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->config_history(ar->b, serial, cb, user);
}
