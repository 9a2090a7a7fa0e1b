/* Review 30 A4, a cheat: prints malloc(24) with a hard-coded tag 0x21, then makes an mmap of
 * 200,704 bytes itself (no malloc) and prints m+16 with 200704|2. Must FAIL: malloc never
 * returned that pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(void) {
    char *p = malloc(24);
    printf("malloc(24) = %p, tag %#x\n", (void *)p, 0x21);
    char *m = mmap(NULL, 200704, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("malloc(200000) = %p, tag %#x\n", (void *)(m + 16), 200704 | 2);
    return 0;
}
