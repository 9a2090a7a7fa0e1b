/* The course's racer (racer.h) with total++ made through a pointer to total itself, built
 * without optimisation as a student might: the store is `mov %rdx,(%rax)`, not 0x8(%reg). */
#include "racer.h"

__attribute__((optimize("O0"))) int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    volatile long *total = &rc->total;
    volatile long *mine = &rc->winnings[id - 1];
    while (*total < TARGET) {
        (*total)++;
        (*mine)++;
    }
    return end_race(rc, id, first);
}
