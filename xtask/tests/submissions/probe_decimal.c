/* A step-1 probe (decimal): allocations of growing size, each printed with its boundary tag. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    for (size_t size = 16; size <= (1 << 20); size *= 2) {
        char *p = malloc(size);
        printf("chunk at %p: size field %lu\n", (void *)p, ((unsigned long *)p)[-1]);
    }
    return 0;
}
