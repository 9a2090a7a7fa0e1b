/* The course's foo: reaches baz only through bazaddr(), so it has no relocation against baz. */
#include <stdio.h>
#include <unistd.h>
#include "foobar.h"
int main() {
    setvbuf(stdout, NULL, _IOLBF, 0);
    setbaz(17);
    while (1) {
        printf("baz at %p is %d\n", (void *)bazaddr(), getbaz());
        sleep(1);
    }
}
