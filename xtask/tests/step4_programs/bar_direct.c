/* bar naming baz directly: the linker gives it an R_X86_64_COPY of baz. */
#include <stdio.h>
#include <unistd.h>
#include "foobar.h"
int main() {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0;; i++) {
        setbaz(i);
        printf("baz at %p is %d\n", (void *)&baz, getbaz());
        sleep(1);
    }
}
