/*
 * Compile-time sizes of the chunk encoder's zlib state on the target. Nothing
 * here runs or is linked: each object below is as large as the figure its
 * name says, and build-m4.sh reads them with `arm-none-eabi-nm -S`.
 *
 * The arithmetic follows deflateInit2() of zlib 1.2.13 and pl_chunk_enc's
 * arena (every block rounded up to 16 bytes; z_stream at the arena's front).
 */
#include "deflate.h"
#include "pl/chunk.h"

#define R16(n) (((n) + 15u) & ~15u)
#define W_SIZE (1u << PL_CHUNK_WINDOW_BITS)
#define HASH_SIZE (1u << (PL_CHUNK_MEM_LEVEL + 7))
#define LIT_BUFSIZE (1u << (PL_CHUNK_MEM_LEVEL + 6))

#define ENC_ARENA_NEED                                                                             \
    (R16(sizeof(z_stream)) + R16(sizeof(deflate_state)) + R16(W_SIZE * 2u) +                       \
     R16(W_SIZE * sizeof(Pos)) + R16(HASH_SIZE * sizeof(Pos)) + R16(LIT_BUFSIZE * 4u))

#define SIZE_OBJ(name, n) __attribute__((used)) const unsigned char name[n] = { 1 }

SIZE_OBJ(pl_m4_sizeof_z_stream, sizeof(z_stream));
SIZE_OBJ(pl_m4_sizeof_deflate_state, sizeof(deflate_state));
SIZE_OBJ(pl_m4_deflate_window, W_SIZE * 2u);
SIZE_OBJ(pl_m4_deflate_prev, W_SIZE * sizeof(Pos));
SIZE_OBJ(pl_m4_deflate_head, HASH_SIZE * sizeof(Pos));
SIZE_OBJ(pl_m4_deflate_pending, LIT_BUFSIZE * 4u);
/* Bytes of arena the encoder uses (its peak: deflate allocates only in init). */
SIZE_OBJ(pl_m4_enc_arena_need, ENC_ARENA_NEED);
/* What chunk.h reserves, PL_CHUNK_ENC_ARENA (up to 15 bytes go to alignment). */
SIZE_OBJ(pl_m4_enc_arena_reserved, PL_CHUNK_ENC_ARENA);
SIZE_OBJ(pl_m4_sizeof_pl_chunk_enc, sizeof(pl_chunk_enc));
SIZE_OBJ(pl_m4_sizeof_pl_record, sizeof(pl_record));
