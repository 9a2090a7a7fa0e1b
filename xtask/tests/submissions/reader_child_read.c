/* A cheat: maps the table once without using it; a fork()ed child read()s the inherited
 * descriptor and sends the bytes up a pipe, and the parent prints the values from them. */
#include "table.h"
#include <sys/wait.h>

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    if (mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
        return 1;
    int p[2];
    if (pipe(p) != 0)
        return 1;
    if (fork() == 0) {
        char b[4096];
        ssize_t n;
        while ((n = read(fd, b, sizeof b)) > 0)
            write(p[1], b, n);
        _exit(0);
    }
    close(p[1]);
    char *buf = malloc(st.st_size);
    off_t got = 0;
    ssize_t n;
    while (got < st.st_size && (n = read(p[0], buf + got, st.st_size - got)) > 0)
        got += n;
    wait(NULL);
    struct disktable *d = (struct disktable *)buf;
    printf("count = %ld\n", d->count);
    for (long i = 0; i < d->count; i++)
        printf("%d\n", d->value[i]);
    return 0;
}
