/* A step-1 probe (bits): allocations of growing size, each printed with its boundary tag. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    for (size_t size = 16; size <= (1 << 20); size *= 2) {
        char *p = malloc(size);
        printf("%p tag=%#lx prev_inuse=%lu is_mmapped=%lu\n", (void *)p, ((unsigned long *)p)[-1], ((unsigned long *)p)[-1] & 1, (((unsigned long *)p)[-1] >> 1) & 1);
    }
    return 0;
}
