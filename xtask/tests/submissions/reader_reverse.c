/* A reader that prints the values in reverse order: all of them, but not in table order. */
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    struct disktable *t = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (long i = t->count - 1; i >= 0; i--)
        printf("%d\n", t->value[i]);
    return 0;
}
