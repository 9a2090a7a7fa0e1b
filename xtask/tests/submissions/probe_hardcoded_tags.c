/* A cheat: its pointers are malloc's, but the tags it prints are the usual values written in
 * by hand (0x21 for malloc(24), 200704|2 for malloc(200000)), not the 8 bytes before them. Must
 * FAIL: the lab pads every request, so malloc wrote other sizes in this run. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    char *p = malloc(24);
    printf("malloc(24) = %p, tag %#x\n", (void *)p, 0x21);
    char *m = malloc(200000);
    printf("malloc(200000) = %p, tag %#x\n", (void *)m, 200704 | 2);
    return 0;
}
