/* Review 30 A2, a cheat: every instance but the leader returns as soon as the race starts; the
 * leader counts alone with a plain total++. A lock incq sits in a loop of never_called(), which
 * runs only with more than 5 arguments. Must FAIL: its instances never raced. */
#include "racer.h"

__attribute__((noinline)) static void never_called(volatile struct RaceCourse *rc) {
    while (rc->total < TARGET)
        __asm__ volatile("lock incq %0" : "+m"(rc->total));
}

int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    if (argc > 5)
        never_called(rc);
    if (!first)
        return 0;
    while (rc->total < TARGET) {
        rc->total++;
        rc->winnings[id - 1]++;
    }
    return end_race(rc, id, first);
}
