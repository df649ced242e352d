/*
 * Helpers shared by the device core: CRC, erased-flash test and the message
 * builder that stands in for snprintf (no stdio on the pen).
 */
#include <zlib.h>

#include "pen_util.h"

uint32_t pen_crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    /* zlib takes uInt lengths; feed large buffers in pieces */
    while (len > 0) {
        uInt n = len > 0x40000000u ? 0x40000000u : (uInt)len;
        crc = (uint32_t)crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

int pen_is_erased(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0xFF)
            return 0;
    return 1;
}

void pen_msg_init(pen_msg *m, char *buf, size_t cap)
{
    m->buf = buf;
    m->cap = cap;
    m->len = 0;
    if (cap)
        buf[0] = '\0';
}

void pen_msg_str(pen_msg *m, const char *s)
{
    while (s && *s && m->len + 1 < m->cap)
        m->buf[m->len++] = *s++;
    if (m->cap)
        m->buf[m->len] = '\0';
}

/* Decimal digits with 32-bit division only (a Cortex-M4 does 64-bit division
 * in a library routine): the number is divided by 10 as four 16-bit limbs. */
void pen_msg_u64(pen_msg *m, uint64_t v)
{
    uint32_t limb[4] = { (uint32_t)(v >> 48) & 0xFFFFu, (uint32_t)(v >> 32) & 0xFFFFu,
                         (uint32_t)(v >> 16) & 0xFFFFu, (uint32_t)v & 0xFFFFu };
    char tmp[21];
    int i = 20;
    tmp[i] = '\0';
    do {
        uint32_t r = 0, any = 0;
        for (int k = 0; k < 4; k++) {
            uint32_t cur = (r << 16) | limb[k]; /* < 10 * 2^16 */
            limb[k] = cur / 10u;
            r = cur % 10u;
            any |= limb[k];
        }
        tmp[--i] = (char)('0' + r);
        if (!any)
            break;
    } while (i > 0);
    pen_msg_str(m, tmp + i);
}

void pen_msg_i64(pen_msg *m, int64_t v)
{
    if (v < 0) {
        pen_msg_str(m, "-");
        pen_msg_u64(m, (uint64_t)0 - (uint64_t)v);
    } else {
        pen_msg_u64(m, (uint64_t)v);
    }
}
