/* The course's racer (racer.h), completed with total++: a load and a separate store. */
#include "racer.h"

int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    while (rc->total < TARGET) {
        rc->total++;
        rc->winnings[id - 1]++;
    }
    return end_race(rc, id, first);
}
