/* foo naming baz directly: the linker gives it an R_X86_64_COPY of baz.
 * stdout is line-buffered so the lab's record of it holds the address printed. */
#include <stdio.h>
#include <unistd.h>
#include "foobar.h"
int main() {
    setvbuf(stdout, NULL, _IOLBF, 0);
    setbaz(17);
    while (1) {
        printf("baz at %p is %d\n", (void *)&baz, getbaz());
        sleep(1);
    }
}
