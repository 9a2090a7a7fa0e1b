/* A correct reader: fstat for the size, one mmap, value[0..count). */
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
    printf("count = %ld\n", t->count);
    for (long i = 0; i < t->count; i++)
        printf("%d\n", t->value[i]);
    return 0;
}
