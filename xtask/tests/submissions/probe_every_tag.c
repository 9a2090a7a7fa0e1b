/* A cheat (review 31): each pointer is malloc's, but its line lists every plausible tag (every
 * heap size from 0x21 in steps of 0x10, every mmapped length from 0x1002 in pages), so that
 * whatever malloc wrote is among them. Must FAIL: a chunk's line gives ONE tag. */
#include <stdio.h>
#include <stdlib.h>

static void every(void *p, size_t size, unsigned long from, unsigned long to, unsigned long step) {
    printf("malloc(%zu) = %p, tag", size, p);
    for (unsigned long t = from; t < to; t += step)
        printf(" %#lx", t);
    printf("\n");
}

int main(void) {
    every(malloc(24), 24, 0x21, 0x2000, 0x10);
    every(malloc(200000), 200000, 0x1002, 0x200000, 0x1000);
    return 0;
}
