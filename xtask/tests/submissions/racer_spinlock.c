/* Review 30 C3: atomic by an xchg spin lock around a plain total++ (loses nothing), not the
 * lock incq the course asks for. Must FAIL naming the spin lock. The lock word is participants
 * (0 once the race has begun). */
#include "racer.h"

int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    for (;;) {
        while (__atomic_exchange_n((int *)&rc->participants, 1, __ATOMIC_ACQUIRE))
            ;
        int done = rc->total >= TARGET;
        if (!done)
            rc->total++;
        __atomic_store_n((int *)&rc->participants, 0, __ATOMIC_RELEASE);
        if (done)
            break;
        rc->winnings[id - 1]++;
    }
    return end_race(rc, id, first);
}
