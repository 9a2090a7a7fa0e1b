/* A foo that sets baz, sleeps for 0.3 s, then returns 3 from main. */
#include <unistd.h>
#include "foobar.h"
int main() {
    setbaz(17);
    usleep(300000);
    return 3;
}
