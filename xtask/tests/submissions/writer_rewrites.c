/* Grows right, but rewrites every value as its index (wrong for writer.c's {3, 6, 1}). */
#define _GNU_SOURCE
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    size_t size = st.st_size;
    struct disktable *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    size_t need = sizeof(long) + sizeof(int) * (t->count + 300);
    if (need > size) {
        ftruncate(fd, need);
        t = mremap(t, size, need, MREMAP_MAYMOVE);
    }
    for (long i = 0; i < t->count + 300; i++)
        t->value[i] = i;
    t->count += 300;
    return 0;
}
