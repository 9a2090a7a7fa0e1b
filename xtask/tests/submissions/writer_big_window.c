/* A correct writer that maps a 1 GiB window once and grows the file inside it with ftruncate:
 * every store lands in the mapping, on a page the file covers by then. */
#include "table.h"

#define WINDOW (1L << 30)

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDWR);
    struct disktable *t = mmap(NULL, WINDOW, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED)
        return 1;
    struct stat st;
    fstat(fd, &st);
    size_t need = sizeof(long) + sizeof(int) * (t->count + 300);
    if (need > (size_t)st.st_size && ftruncate(fd, need) != 0)
        return 1;
    for (int i = 0; i < 300; i++)
        t->value[t->count + i] = t->count + i;
    t->count += 300;
    munmap(t, WINDOW);
    return 0;
}
