/*
 * racer.c: the course skeleton's racer in C, sharing `struct RaceCourse` with the Rust `race`.
 *
 * It follows the same protocol as crates/race (see its lib.rs), so a C racer and a Rust racer can
 * share one race in either role; `cargo xtask bench race` times the two loops against each other.
 *   - the first instance creates the file with O_CREAT|O_EXCL under a temporary name, takes a
 *     shared flock (every live participant of this protocol holds one), sizes the file with
 *     lseek + write, maps it MAP_SHARED, sets participants = N, takes its id, and publishes the
 *     file under its name with link(2) (fails if the name exists: still exclusive);
 *   - every instance takes id = participants and decrements it (compare-and-swap, never below 0),
 *     then all wait until participants == 0 (or total != 0: the race already started);
 *   - race: while (total < target) { total++; winnings[id-1]++; } where total++ is a relaxed
 *     atomic load and a separate relaxed store in racy mode (plain movs, but the compiler may not
 *     hoist them out of the loop) and __atomic_fetch_add in atomic mode (see race_racy);
 *   - nobody writes participants after the start. Each leaves (unmaps, closes: its flock goes);
 *     the first waits until it can take the flock exclusively (everyone else left), prints the
 *     sum of the winnings against the total and removes the file.
 * Unlike the Rust racer, this twin tells liveness by the flock alone: it does not look in /proc,
 * so beside the course's lock-free racer use `race`, which does.
 *
 * Build: cc -O2 -o racer racer.c
 * Usage: racer N [--file PATH] [--mode racy|atomic] [--target T] [--join-timeout SECS]
 * Prints one JSON object on stdout: {"id","total","winnings","mode","target","first","seconds",
 * "cpu_seconds","summary"?}; chatter on stderr; errors as "error: ..." with exit 2 (usage) or 1
 * (runtime).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct RaceCourse {
    int participants;
    long total;
    long winnings[10];
};

_Static_assert(sizeof(struct RaceCourse) == 96, "struct RaceCourse must be 96 bytes");

static const char *created_path; /* set while this instance owns the file */
static char temp_path[4096];      /* non-empty while the unpublished temporary file exists */

static void on_signal(int sig) {
    static const char msg[] = "racer: interrupted; removed the race file this instance created\n";
    if (temp_path[0])
        unlink(temp_path);
    if (created_path) {
        unlink(created_path);
        if (write(2, msg, sizeof msg - 1) < 0) {
            /* nothing more to do in a signal handler */
        }
    }
    _exit(128 + sig);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int fail(int status, const char *fmt, const char *arg) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    if (temp_path[0]) {
        unlink(temp_path);
        temp_path[0] = '\0';
    }
    if (created_path) {
        unlink(created_path);
        created_path = NULL;
    }
    return status;
}

/* id = participants; participants -= 1, atomically, only while the race is still gathering. */
static int take_id(struct RaceCourse *rc) {
    int cur = __atomic_load_n(&rc->participants, __ATOMIC_ACQUIRE);
    while (cur > 0 && __atomic_load_n(&rc->total, __ATOMIC_RELAXED) == 0) {
        if (__atomic_compare_exchange_n(&rc->participants, &cur, cur - 1, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return cur;
    }
    return 0;
}

/*
 * The racy loop. `total` is read and written with relaxed atomic loads and stores: plain movs,
 * but the compiler may not keep it in a register (a plain `long` could be hoisted out of the
 * loop at -O2, and then nothing would race). `winnings[id-1]` is the skeleton's plain `++`: only
 * this process writes it, the first instance reads it once everyone else left (flocks gone), and
 * GCC compiles it to one memory-destination `addq $1,(mem)`, the instruction Rust's relaxed
 * load + store of its winnings becomes (`incq (mem)`). Written as a relaxed atomic load and store
 * instead, GCC emits mov/add/mov, which ran the single-racer loop at half the speed on the AMD
 * EPYC this was written on (a longer store-to-load forwarding chain). The loops take the two
 * addresses as arguments, like the Rust ones, so both compilers address them the same way.
 * aligned(64): with the function at a 16-byte boundary GCC's 19-byte loop straddled a 64-byte
 * line and ran at half speed (measured: ~1.5 ns per increment instead of ~0.77); at a 64-byte
 * boundary it sits in one line in every build, whatever code the linker puts before it, as the
 * Rust loops do (crates/race: race_racy starts with a `.p2align 6`). Both loops also lie in
 * one line (race_atomic's is not rotated by GCC: it runs from the function's first byte to its
 * `jmp`). `cargo xtask bench race` prints where each loop lies; xtask's test
 * both_racers_loops_each_lie_in_one_64_byte_line checks it on the binaries the bench builds.
 */
__attribute__((noinline, aligned(64))) static long race_racy(long *total, long *mine, long target) {
    for (;;) {
        long t = __atomic_load_n(total, __ATOMIC_RELAXED);
        if (t >= target)
            return t;
        __atomic_store_n(total, t + 1, __ATOMIC_RELAXED);
        (*mine)++;
    }
}

/* The atomic loop: fetch_add on total; an increment at or past the target is taken back. */
__attribute__((noinline, aligned(64))) static long race_atomic(long *total, long *mine, long target) {
    for (;;) {
        long t = __atomic_fetch_add(total, 1, __ATOMIC_RELAXED);
        if (t >= target) {
            __atomic_fetch_sub(total, 1, __ATOMIC_RELAXED);
            return t;
        }
        (*mine)++; /* one writer: no lock needed (see race_racy) */
    }
}

static long parse_long(const char *s, long lo, long hi, int *ok) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    *ok = errno == 0 && end != s && *end == '\0' && v >= lo && v <= hi;
    return v;
}

int main(int argc, char **argv) {
    const char *path = "racecourse.bin";
    int atomic = 0, ok = 0, n = 0, have_n = 0;
    long target = 1000000000L, join_timeout = 300;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--file") && v) {
            path = v;
            i++;
        } else if (!strcmp(a, "--mode") && v) {
            if (!strcmp(v, "atomic"))
                atomic = 1;
            else if (strcmp(v, "racy"))
                return fail(2, "--mode must be racy or atomic, not %s", v);
            i++;
        } else if (!strcmp(a, "--target") && v) {
            target = parse_long(v, 1, 0x3fffffffffffffffL, &ok);
            if (!ok)
                return fail(2, "--target must be a positive number, not %s", v);
            i++;
        } else if (!strcmp(a, "--join-timeout") && v) {
            join_timeout = parse_long(v, 1, 86400, &ok);
            if (!ok)
                return fail(2, "--join-timeout must be 1 to 86400 seconds, not %s", v);
            i++;
        } else if (!have_n && a[0] != '-') {
            n = (int)parse_long(a, 1, 10, &ok);
            if (!ok)
                return fail(2, "N must be a number from 1 to 10, not %s", a);
            have_n = 1;
        } else {
            return fail(2, "unexpected argument %s; usage: racer N [--file PATH] "
                           "[--mode racy|atomic] [--target T] [--join-timeout SECS]", a);
        }
    }
    if (!have_n)
        return fail(2, "%susage: racer N [--file PATH] [--mode racy|atomic] [--target T]", "");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    int first = 0, id = 0, fd = -1;
    struct RaceCourse *rc = NULL;
    /* Prepare the race under a temporary name in the same directory, then publish it. */
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%.*s.%s.%d.new", dirlen, path, path + dirlen, (int)getpid()) >=
        (int)sizeof tmp)
        return fail(2, "--file %s is too long", path);
    struct stat pst;
    if (stat(path, &pst) != 0 && errno == ENOENT) {
        unlink(tmp); /* a leftover of a crashed run with this pid */
        int tfd = open(tmp, O_RDWR | O_CREAT | O_EXCL, 0644);
        if (tfd < 0)
            return fail(1, "cannot create race file %s", path);
        strcpy(temp_path, tmp);
        if (flock(tfd, LOCK_SH) != 0 || lseek(tfd, sizeof(struct RaceCourse) - 1, SEEK_SET) < 0 ||
            write(tfd, "", 1) != 1)
            return fail(1, "cannot lock or size %s", path);
        rc = mmap(NULL, sizeof(struct RaceCourse), PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
        if (rc == MAP_FAILED)
            return fail(1, "cannot map %s", path);
        __atomic_store_n(&rc->participants, n, __ATOMIC_RELEASE);
        id = take_id(rc);
        sigset_t hold, old;
        sigemptyset(&hold);
        sigaddset(&hold, SIGINT);
        sigaddset(&hold, SIGTERM);
        sigaddset(&hold, SIGHUP);
        sigprocmask(SIG_BLOCK, &hold, &old);
        int linked = link(tmp, path) == 0;
        int link_errno = errno;
        if (linked)
            created_path = path;
        sigprocmask(SIG_SETMASK, &old, NULL);
        unlink(tmp);
        temp_path[0] = '\0';
        if (linked) {
            first = 1;
            fd = tfd;
            fprintf(stderr, "racer: created %s for %d participants; I am id %d\n", path, n, id);
        } else {
            munmap(rc, sizeof(struct RaceCourse));
            close(tfd);
            rc = NULL;
            if (link_errno != EEXIST)
                return fail(1, "cannot publish race file %s", path);
        }
    }
    if (!first) {
        fd = open(path, O_RDWR);
        if (fd < 0)
            return fail(1, "cannot open race file %s", path);
        /* Wait (bounded) for the first instance to size the file. */
        struct stat st;
        double deadline = now_s() + 5.0;
        for (;;) {
            if (fstat(fd, &st) != 0)
                return fail(1, "cannot stat %s", path);
            if (st.st_size == (off_t)sizeof(struct RaceCourse))
                break;
            if (st.st_size > (off_t)sizeof(struct RaceCourse) || now_s() > deadline)
                return fail(1, "%s has the wrong size for a race course; remove it", path);
            sleep_us(1000);
        }
        rc = mmap(NULL, sizeof(struct RaceCourse), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (rc == MAP_FAILED)
            return fail(1, "cannot map %s", path);
    }

    if (!first) {
        double deadline = now_s() + 5.0;
        for (;;) {
            int p = __atomic_load_n(&rc->participants, __ATOMIC_ACQUIRE);
            long t = __atomic_load_n(&rc->total, __ATOMIC_RELAXED);
            if (p < 0 || p > 10)
                return fail(1, "%s is not a race file (participants out of range); remove it",
                            path);
            if (t != 0)
                return fail(1, "a race is already under way (or ended) in %s", path);
            if (p > 0) {
                if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                    return fail(1, "%s is a stale race file: no process holds it; remove it",
                                path);
                if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
                    id = take_id(rc);
                    if (id > 0)
                        break;
                    flock(fd, LOCK_UN);
                }
            }
            if (now_s() > deadline)
                return fail(1, "%s did not become a joinable race; remove it if no race runs",
                            path);
            sleep_us(1000);
        }
        fprintf(stderr, "racer: joined the race in %s; I am id %d\n", path, id);
    }

    /* Wait for everyone: participants == 0, or the race has visibly started. */
    double deadline = now_s() + (double)join_timeout;
    int last = -1;
    for (;;) {
        int p = __atomic_load_n(&rc->participants, __ATOMIC_ACQUIRE);
        if (p <= 0 || __atomic_load_n(&rc->total, __ATOMIC_RELAXED) != 0)
            break;
        if (p != last) {
            fprintf(stderr, "racer: waiting for %d more\n", p);
            last = p;
        }
        if (now_s() > deadline)
            return fail(1, "%s: not everyone arrived in time; start the others sooner", path);
        sleep_us(100);
    }

    double start = now_s(), cpu_start = cpu_s();
    /* Both loops take the two counters' addresses, as the Rust ones do. */
    long *total_p = &rc->total, *mine_p = &rc->winnings[id - 1];
    long seen = atomic ? race_atomic(total_p, mine_p, target)
                       : race_racy(total_p, mine_p, target);
    double seconds = now_s() - start, cpu_seconds = cpu_s() - cpu_start;
    long mine = __atomic_load_n(&rc->winnings[id - 1], __ATOMIC_RELAXED);
    if (!first) {
        /* Leave: the first instance waits for every other participant's flock to go. */
        munmap(rc, sizeof(struct RaceCourse));
        close(fd);
    }

    printf("{\"id\":%d,\"total\":%ld,\"winnings\":%ld,\"mode\":\"%s\",\"target\":%ld,"
           "\"first\":%s,\"seconds\":%.9f,\"cpu_seconds\":%.9f",
           id, seen, mine, atomic ? "atomic" : "racy", target, first ? "true" : "false",
           seconds, cpu_seconds);
    if (first) {
        /* Wait until everyone else left (the flock can be taken exclusively); give up after
         * 2 s without movement in the file. */
        flock(fd, LOCK_UN);
        long lt = -1, lw = -1;
        double moved = now_s();
        int done = 0;
        for (;;) {
            if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                done = 1;
                break;
            }
            long t = __atomic_load_n(&rc->total, __ATOMIC_RELAXED), w = 0;
            for (int i = 0; i < n; i++)
                w += __atomic_load_n(&rc->winnings[i], __ATOMIC_RELAXED);
            if (t != lt || w != lw) {
                lt = t;
                lw = w;
                moved = now_s();
            } else if (now_s() - moved > 2.0) {
                break;
            }
            sleep_us(200);
        }
        if (done) {
            long total = __atomic_load_n(&rc->total, __ATOMIC_RELAXED), sum = 0;
            printf(",\"summary\":{\"participants\":%d,\"total\":%ld,\"winnings\":[", n, total);
            for (int i = 0; i < n; i++) {
                long w = __atomic_load_n(&rc->winnings[i], __ATOMIC_RELAXED);
                sum += w;
                printf("%s%ld", i ? "," : "", w);
            }
            printf("],\"sum_of_winnings\":%ld,\"lost_updates\":%ld,\"still_held_by\":[]}", sum,
                   sum - total);
        } else {
            fprintf(stderr, "racer: others still hold the race file after 2 s without movement; "
                            "no summary\n");
        }
        created_path = NULL;
        unlink(path);
    }
    printf("}\n");
    if (first) {
        munmap(rc, sizeof(struct RaceCourse));
        close(fd);
    }
    return 0;
}
