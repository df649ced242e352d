/*
 * Adler-32 (RFC 1950) for the pen's image, in place of zlib's adler32.c,
 * whose unrolled loops take half a kilobyte of flash: one byte at a time,
 * reducing every 5552 bytes as zlib does. Same results as zlib's adler32();
 * tools/arm/build-m4.sh checks that on the host before it builds the image.
 */
#include "zlib.h"

#define BASE 65521UL /* largest prime below 65536 */
#define NMAX 5552    /* most bytes before the sums can overflow 32 bits */

uLong ZEXPORT adler32_z(uLong adler, const Bytef *buf, z_size_t len)
{
    unsigned long a = adler & 0xffff, b = (adler >> 16) & 0xffff;
    if (buf == Z_NULL)
        return 1UL;
    while (len > 0) {
        z_size_t n = len < NMAX ? len : NMAX;
        len -= n;
        while (n--) {
            a += *buf++;
            b += a;
        }
        a %= BASE;
        b %= BASE;
    }
    return (b << 16) | a;
}

uLong ZEXPORT adler32(uLong adler, const Bytef *buf, uInt len)
{
    return adler32_z(adler, buf, len);
}
