/* A step-1 probe that grows one buffer with realloc, printing it and its boundary tag (the 8
 * bytes before the pointer) after each step: past the mmap threshold glibc moves the chunk to
 * a mapping of its own, then grows that mapping with mremap. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    char *p = NULL;
    for (size_t size = 16; size <= (4 << 20); size *= 2) {
        char *q = realloc(p, size);
        if (q == NULL)
            return 1;
        p = q;
        printf("realloc to %zu: %p, tag %#lx\n", size, (void *)p, ((unsigned long *)p)[-1]);
    }
    free(p);
    return 0;
}
