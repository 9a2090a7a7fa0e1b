/* A foo that crashes (SIGSEGV) right after setbaz(17). */
#include "foobar.h"
int main() {
    setbaz(17);
    *(volatile int *)0 = 1;
    return 0;
}
