// The racy racer in C++: total++ through a volatile pointer (a load and a separate store).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TARGET
#define TARGET 100000000L
#endif

struct RaceCourse {
    int participants;
    long total;
    long winnings[10];
};

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: racer N\n");
        return 2;
    }
    int n = std::atoi(argv[1]);
    struct stat st;
    bool first = stat("racecourse.bin", &st) != 0;
    int fd = open("racecourse.bin", O_CREAT | O_RDWR, 0755);
    if (first && ftruncate(fd, sizeof(RaceCourse)) != 0)
        return 1;
    auto *rc = static_cast<RaceCourse *>(
        mmap(nullptr, sizeof(RaceCourse), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (rc == MAP_FAILED)
        return 1;
    std::atomic_ref<int> participants(rc->participants);
    volatile long *total = &rc->total;
    if (first)
        participants.store(n, std::memory_order_relaxed);
    int id = participants.load(std::memory_order_relaxed);
    participants.store(id - 1, std::memory_order_relaxed);
    while (participants.load(std::memory_order_relaxed) > 0)
        sched_yield();
    volatile long *mine = &rc->winnings[id - 1];
    while (*total < TARGET) {
        *total = *total + 1;
        *mine = *mine + 1;
    }
    std::printf("id %d: total %ld, winnings %ld, fd %d, left %d\n", id, *total, *mine, fd,
                participants.load());
    if (first)
        unlink("racecourse.bin");
    return 0;
}
