/*
 * CRC-32 (the zlib/IEEE 802.3 one: reflected polynomial 0xEDB88320) for the
 * pen's image, in place of zlib's crc32.c: a 16-entry table (64 bytes)
 * instead of zlib's kilobyte of tables, at two lookups a byte, which the
 * pen's ~1 KB frames and chunks afford. Same results as zlib's crc32();
 * tools/arm/build-m4.sh checks that on the host before it builds the image.
 */
#include "zlib.h"

static const unsigned long nibble[16] = {
    0x00000000UL, 0x1DB71064UL, 0x3B6E20C8UL, 0x26D930ACUL, 0x76DC4190UL, 0x6B6B51F4UL,
    0x4DB26158UL, 0x5005713CUL, 0xEDB88320UL, 0xF00F9344UL, 0xD6D6A3E8UL, 0xCB61B38CUL,
    0x9B64C2B0UL, 0x86D3D2D4UL, 0xA00AE278UL, 0xBDBDF21CUL,
};

uLong ZEXPORT crc32_z(uLong crc, const Bytef *buf, z_size_t len)
{
    if (buf == Z_NULL)
        return 0UL;
    crc = ~crc & 0xFFFFFFFFUL;
    while (len--) {
        crc ^= *buf++;
        crc = (crc >> 4) ^ nibble[crc & 15];
        crc = (crc >> 4) ^ nibble[crc & 15];
    }
    return ~crc & 0xFFFFFFFFUL;
}

uLong ZEXPORT crc32(uLong crc, const Bytef *buf, uInt len)
{
    return crc32_z(crc, buf, len);
}
