/* Right numbers, wrong way: read() instead of mmap. */
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDONLY);
    long count;
    if (read(fd, &count, sizeof count) != sizeof count)
        return 1;
    for (long i = 0; i < count; i++) {
        int v;
        if (read(fd, &v, sizeof v) != sizeof v)
            return 1;
        printf("%d\n", v);
    }
    return 0;
}
