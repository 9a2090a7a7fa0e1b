/* A correct writer that grows the file BEFORE its only mapping: it reads count with pread,
 * ftruncates the file to hold count + 300 values when it must, then maps the grown file once. */
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDWR);
    long count;
    if (pread(fd, &count, sizeof count, 0) != sizeof count)
        return 1;
    size_t need = sizeof(long) + sizeof(int) * (count + 300);
    struct stat st;
    fstat(fd, &st);
    if ((size_t)st.st_size < need && ftruncate(fd, need) != 0)
        return 1;
    if ((size_t)st.st_size > need)
        need = st.st_size;
    struct disktable *t = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED)
        return 1;
    for (int i = 0; i < 300; i++)
        t->value[t->count + i] = t->count + i;
    t->count += 300;
    munmap(t, need);
    return 0;
}
