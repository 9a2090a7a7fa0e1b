/* A cheat: maps the table once without using it, copies it with copy_file_range() to a file of
 * its own, and read()s the values from the copy. */
#define _GNU_SOURCE
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    if (mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
        return 1;
    int copy = open("copy", O_RDWR | O_CREAT | O_TRUNC, 0600);
    loff_t in = 0, out = 0;
    while (in < st.st_size)
        if (copy_file_range(fd, &in, copy, &out, st.st_size - in, 0) <= 0)
            return 1;
    char *buf = malloc(st.st_size);
    pread(copy, buf, st.st_size, 0);
    struct disktable *d = (struct disktable *)buf;
    printf("count = %ld\n", d->count);
    for (long i = 0; i < d->count; i++)
        printf("%d\n", d->value[i]);
    return 0;
}
