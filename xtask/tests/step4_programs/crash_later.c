/* A foo that sets baz, sleeps in its loop for 0.3 s, then crashes (SIGSEGV). */
#include <unistd.h>
#include "foobar.h"
int main() {
    setbaz(17);
    usleep(300000);
    *(volatile int *)0 = 1;
    return 0;
}
