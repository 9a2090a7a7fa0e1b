/* The naive writer: stores past the mapping when the file is full. */
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    struct disktable *t = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    for (int i = 0; i < 300; i++)
        t->value[t->count + i] = t->count + i;
    t->count += 300;
    return 0;
}
