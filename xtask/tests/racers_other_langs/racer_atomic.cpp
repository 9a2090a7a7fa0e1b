// The atomic racer in C++20: std::atomic_ref<long> over total, fetch_add in the loop. g++ -O2
// keeps &rc->total in %rbp (`lock addq $0x1,0x0(%rbp)`, no frame pointer); at -O0 the loop
// calls the out-of-line std::__atomic_ref<long>::fetch_add, which holds the `lock xadd`.
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
    std::atomic_ref<long> total(rc->total);
    if (first)
        participants.store(n, std::memory_order_relaxed);
    int id = participants.load(std::memory_order_relaxed);
    participants.store(id - 1, std::memory_order_relaxed);
    while (participants.load(std::memory_order_relaxed) > 0)
        sched_yield();
    volatile long *mine = &rc->winnings[id - 1];
    while (total.load(std::memory_order_relaxed) < TARGET) {
        total.fetch_add(1, std::memory_order_relaxed);
        *mine = *mine + 1;
    }
    std::printf("id %d: total %ld, winnings %ld, fd %d, left %d\n", id, total.load(), *mine, fd,
                participants.load());
    if (first)
        unlink("racecourse.bin");
    return 0;
}
