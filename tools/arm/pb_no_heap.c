/*
 * protobuf-c falls back to malloc()/free() when it is handed no allocator.
 * The pen always hands it an arena (pl_arena), so on the pen that fallback is
 * dead code that would still link newlib's heap. CMakeLists.txt compiles
 * protobuf-c.c with malloc/free renamed to these traps: a NULL allocator
 * stops the pen instead of growing a heap it does not have.
 */
#include <stddef.h>

void *pl_m4_pb_no_malloc(size_t n);
void pl_m4_pb_no_free(void *p);

void *pl_m4_pb_no_malloc(size_t n)
{
    (void)n;
    for (;;) {
    }
}

void pl_m4_pb_no_free(void *p)
{
    (void)p;
    for (;;) {
    }
}
