/* A step-1 probe: allocations of growing size, each printed with %p and its boundary tag
 * (but it prints the 8 bytes before the tag: the wrong word) with %lx. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    for (size_t size = 16; size <= (1 << 20); size *= 2) {
        char *p = malloc(size);
        printf("malloc(%zu) = %p, tag %lx\n", size, (void *)p, ((unsigned long *)p)[-2]);
    }
    return 0;
}
