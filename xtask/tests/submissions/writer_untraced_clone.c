/* A cheat a trace cannot see: maps the table and, when it must grow, grows it with ftruncate +
 * mremap as it should, then starts a child with clone(CLONE_UNTRACED), which `strace -f` does not
 * follow; the child pwrite()s the 300 values and the count instead of storing through the
 * mapping. The trace shows the ftruncate (which explains inotify's write event) and no write.
 * When the table has room it stores through the mapping like a correct writer. */
#define _GNU_SOURCE
#include "table.h"
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    size_t size = st.st_size;
    struct disktable *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED)
        return 1;
    long count = t->count;
    size_t need = sizeof(long) + sizeof(int) * (count + 300);
    if (need <= size) {
        for (int i = 0; i < 300; i++)
            t->value[count + i] = count + i;
        t->count = count + 300;
        munmap(t, size);
        return 0;
    }
    if (ftruncate(fd, need) != 0)
        return 1;
    t = mremap(t, size, need, MREMAP_MAYMOVE);
    if (t == MAP_FAILED)
        return 1;
    size = need;
    /* No CLONE_VM and no stack: the child runs on a copy of this stack, like fork(). */
    long pid = syscall(SYS_clone, CLONE_UNTRACED | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        return 1;
    if (pid == 0) {
        int v[300];
        for (int i = 0; i < 300; i++)
            v[i] = count + i;
        long c = count + 300;
        if (pwrite(fd, v, sizeof v, sizeof(long) + sizeof(int) * count) != sizeof v ||
            pwrite(fd, &c, sizeof c, 0) != sizeof c)
            _exit(1);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    munmap(t, size);
    return 0;
}
