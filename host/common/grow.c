/* Growing arrays (grow.h). */
#include <stdint.h>
#include <stdlib.h>

#include "grow.h"

#define GROW_FIRST 16

int pc_grow(void *pp, size_t *cap, size_t need, size_t size)
{
    void **p = pp;
    if (need <= *cap)
        return 0;
    if (size == 0 || need > SIZE_MAX / 2 / size)
        return -1;
    size_t n = *cap ? *cap * 2 : GROW_FIRST;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}
