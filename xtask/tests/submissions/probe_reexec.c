/* A cheat (review 31): it re-executes itself without LD_PRELOAD, so no malloc of the run that
 * prints reaches the lab's recorder, then prints the usual tags typed in by hand. Must FAIL: it
 * is dynamically linked, so its run without the recorder is not a static binary's. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    (void)argc;
    if (getenv("LD_PRELOAD")) {
        unsetenv("LD_PRELOAD");
        execv("/proc/self/exe", argv);
    }
    char *p = malloc(24);
    printf("malloc(24) = %p, tag %#x\n", (void *)p, 0x21);
    char *m = malloc(200000);
    printf("malloc(200000) = %p, tag %#x\n", (void *)m, 200704 | 2);
    return 0;
}
