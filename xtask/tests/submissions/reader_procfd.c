/* A cheat: maps the table once without using it, then opens it again under another name,
 * /proc/self/fd/N, and read()s the values through that descriptor. */
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    if (mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
        return 1;
    char name[64];
    snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
    int again = open(name, O_RDONLY);
    char *buf = malloc(st.st_size);
    off_t got = 0;
    ssize_t n;
    while (got < st.st_size && (n = read(again, buf + got, st.st_size - got)) > 0)
        got += n;
    struct disktable *d = (struct disktable *)buf;
    printf("count = %ld\n", d->count);
    for (long i = 0; i < d->count; i++)
        printf("%d\n", d->value[i]);
    return 0;
}
