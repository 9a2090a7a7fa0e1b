/* A correct reader with a summary line after the values. */
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
    for (long i = 0; i < t->count; i++)
        printf("%d\n", t->value[i]);
    printf("Done. %ld values printed from table.bin (%ld bytes)\n", t->count, (long)st.st_size);
    return 0;
}
