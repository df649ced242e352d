/*
 * The flash log store's flash access: reads and programs through the HAL,
 * whether a region reads as erased, a sector erased only when it does not,
 * and the CRC of a region read a block at a time.
 */
#include "logstore_internal.h"
#include "pen_util.h"

#define BLOCK 64u /* bytes read at a time when checking or summing flash */

pen_status ls_flash_read(pen_log *l, uint32_t addr, void *buf, uint32_t len)
{
    return l->hal->flash_read(l->hal->ctx, addr, buf, len) == 0 ? PEN_OK : PEN_ERR_FLASH;
}

pen_status ls_flash_program(pen_log *l, uint32_t addr, const void *buf, uint32_t len)
{
    return l->hal->flash_program(l->hal->ctx, addr, buf, len) == 0 ? PEN_OK : PEN_ERR_FLASH;
}

pen_status ls_region_erased(pen_log *l, uint32_t addr, uint32_t len, bool *erased)
{
    uint8_t b[BLOCK];
    *erased = true;
    while (len > 0) {
        uint32_t n = len < BLOCK ? len : BLOCK;
        pen_status st = ls_flash_read(l, addr, b, n);
        if (st != PEN_OK)
            return st;
        if (!pen_is_erased(b, n)) {
            *erased = false;
            return PEN_OK;
        }
        addr += n;
        len -= n;
    }
    return PEN_OK;
}

/* Erases @p sector unless it already reads as erased (saves wear and time). */
pen_status ls_erase_if_needed(pen_log *l, uint32_t sector, uint64_t *counter)
{
    bool erased;
    pen_status st = ls_region_erased(l, sector * l->ssize, l->ssize, &erased);
    if (st != PEN_OK || erased)
        return st;
    if (l->hal->flash_erase(l->hal->ctx, sector) != 0)
        return PEN_ERR_FLASH;
    (*counter)++;
    return PEN_OK;
}

pen_status ls_region_crc(pen_log *l, uint32_t addr, uint32_t len, uint32_t *crc)
{
    uint8_t b[BLOCK];
    uint32_t c = 0;
    while (len > 0) {
        uint32_t n = len < BLOCK ? len : BLOCK;
        pen_status st = ls_flash_read(l, addr, b, n);
        if (st != PEN_OK)
            return st;
        c = pen_crc32(c, b, n);
        addr += n;
        len -= n;
    }
    *crc = c;
    return PEN_OK;
}
