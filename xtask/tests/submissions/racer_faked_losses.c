/* Review 30 A3, a cheat: total is incremented with lock incq, but instance 2 skips one increment
 * of total in 1024 on purpose while counting it in its winnings. Must FAIL: no plain total++. */
#include "racer.h"

int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    unsigned long n = 0;
    while (rc->total < TARGET) {
        if (id != 2 || ++n % 1024 != 0)
            __asm__ volatile("lock incq %0" : "+m"(rc->total));
        rc->winnings[id - 1]++;
    }
    return end_race(rc, id, first);
}
