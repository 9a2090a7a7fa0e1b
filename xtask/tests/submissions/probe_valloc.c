/* A genuine probe (review 31) whose heap chunks come from valloc and pvalloc, which glibc serves
 * without calling malloc or memalign by their symbols. Must PASS with its tags read. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

static void show(const char *how, size_t size, void *p) {
    printf("%s(%zu) = %p, tag %#lx\n", how, size, p, ((unsigned long *)p)[-1]);
}

int main(void) {
    show("valloc", 24, valloc(24));
    show("pvalloc", 100, pvalloc(100));
    show("malloc", 200000, malloc(200000));
    return 0;
}
