/* A correct writer: adds 300 values equal to their index, growing the file with ftruncate and
 * the mapping with mremap when count + 300 does not fit. */
#define _GNU_SOURCE
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    size_t size = st.st_size;
    struct disktable *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED)
        return 1;
    size_t need = sizeof(long) + sizeof(int) * (t->count + 300);
    if (need > size) {
        if (ftruncate(fd, need) != 0)
            return 1;
        t = mremap(t, size, need, MREMAP_MAYMOVE);
        if (t == MAP_FAILED)
            return 1;
        size = need;
    }
    for (int i = 0; i < 300; i++)
        t->value[t->count + i] = t->count + i;
    t->count += 300;
    munmap(t, size);
    return 0;
}
