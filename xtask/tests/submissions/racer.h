/* The course's racer protocol, shared by the racer fixtures: the first instance (stat fails)
 * creates racecourse.bin with O_CREAT|O_RDWR 0755, ftruncate 96, MAP_SHARED, participants = N;
 * every instance takes id = participants, participants -= 1 plainly, spins while
 * participants > 0; the leader unlinks the file. Each fixture writes only its race loop. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TARGET
#define TARGET 1000000000L
#endif

struct RaceCourse {
    int participants;
    long total;
    long winnings[10];
};

/* Joins (or creates) the race and waits for the start; sets *id and *first. */
static volatile struct RaceCourse *start_race(int argc, char **argv, int *id, int *first) {
    if (argc < 2) {
        fprintf(stderr, "usage: racer N\n");
        exit(2);
    }
    int n = atoi(argv[1]);
    struct stat st;
    *first = stat("racecourse.bin", &st) != 0;
    int fd = open("racecourse.bin", O_CREAT | O_RDWR, 0755);
    if (*first)
        ftruncate(fd, sizeof(struct RaceCourse));
    volatile struct RaceCourse *rc =
        mmap(NULL, sizeof(struct RaceCourse), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (*first)
        rc->participants = n;
    *id = rc->participants;
#ifdef ARRIVAL_DELAY_US
    /* A test's slow arrival: the load and the store ARRIVAL_DELAY_US apart. */
    usleep(ARRIVAL_DELAY_US);
    rc->participants = *id - 1;
#else
    rc->participants -= 1;
#endif
    while (rc->participants > 0)
        ;
    return rc;
}

/* Prints what this instance saw; the leader unlinks the file. */
static int end_race(volatile struct RaceCourse *rc, int id, int first) {
    printf("id %d: total %ld, winnings %ld\n", id, rc->total, rc->winnings[id - 1]);
    if (first)
        unlink("racecourse.bin");
    return 0;
}
