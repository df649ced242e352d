/* Prints the test vectors as the Markdown blocks docs/protocol.md holds. */
#include <stdio.h>

#include "vectors.h"

int main(void)
{
    uint8_t buf[VEC_MAX];
    for (size_t v = 0; v < n_vectors; v++) {
        size_t n = vectors[v].build(buf);
        printf("<!-- vector: %s -->\n```hex\n", vectors[v].name);
        for (size_t i = 0; i < n; i++)
            printf("%02x%s", buf[i], (i % 16 == 15 || i + 1 == n) ? "\n" : " ");
        printf("```\n\n");
    }
    return 0;
}
