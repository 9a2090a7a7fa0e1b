/* The course's racer (racer.h), completed with lock incq on total. */
#include "racer.h"

int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    while (rc->total < TARGET) {
        __asm__ volatile("lock incq %0" : "+m"(rc->total));
        rc->winnings[id - 1]++;
    }
    return end_race(rc, id, first);
}
