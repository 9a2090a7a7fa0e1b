/* Correct but unusual: the parent opens the table; a fork()ed child maps it through the
 * inherited descriptor and prints value[0..count); the parent waits. */
#include "table.h"
#include <sys/wait.h>

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDONLY);
    pid_t pid = fork();
    if (pid == 0) {
        struct stat st;
        fstat(fd, &st);
        struct disktable *t = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (t == MAP_FAILED)
            _exit(1);
        printf("count = %ld\n", t->count);
        for (long i = 0; i < t->count; i++)
            printf("%d\n", t->value[i]);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
