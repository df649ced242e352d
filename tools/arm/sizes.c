/*
 * Compile-time sizes of the chunk encoder's zlib state on the target. Nothing
 * here runs or is linked: each object below is as large as the figure its
 * name says, and build-m4.sh reads them with `arm-none-eabi-nm -S`.
 *
 * Only zlib's public interface is used: z_stream (zlib.h) and the memory
 * deflate needs for its buffers, (1 << (windowBits + 2)) + (1 << (memLevel +
 * 9)) bytes as zconf.h documents it (window, hash chains, hash heads and
 * pending symbols: blocks of 1 KiB and more, already multiples of 16). The
 * size of deflate's private state is not a public figure: build-m4.sh asks
 * the debug information of zlib's own deflate.c for it (the m4_zlib_debug
 * object) and adds it to the arena need.
 */
#include <zlib.h>

#include "pl/chunk.h"

#define R16(n) (((n) + 15u) & ~15u)
#define DEFLATE_BUFFERS ((1u << (PL_CHUNK_WINDOW_BITS + 2)) + (1u << (PL_CHUNK_MEM_LEVEL + 9)))

#define SIZE_OBJ(name, n) __attribute__((used)) const unsigned char name[n] = { 1 }

SIZE_OBJ(pl_m4_sizeof_z_stream, sizeof(z_stream));
SIZE_OBJ(pl_m4_deflate_buffers, DEFLATE_BUFFERS);
/* Bytes of arena the encoder uses (its peak: deflate allocates only in init),
 * but for deflate's private state: the z_stream at the arena's front, then
 * the buffers. */
SIZE_OBJ(pl_m4_enc_arena_public, R16(sizeof(z_stream)) + DEFLATE_BUFFERS);
/* What chunk.h reserves, PL_CHUNK_ENC_ARENA (up to 15 bytes go to alignment). */
SIZE_OBJ(pl_m4_enc_arena_reserved, PL_CHUNK_ENC_ARENA);
SIZE_OBJ(pl_m4_sizeof_pl_chunk_enc, sizeof(pl_chunk_enc));
SIZE_OBJ(pl_m4_sizeof_pl_record, sizeof(pl_record));
