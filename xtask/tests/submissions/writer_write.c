/* Right numbers, wrong way: write() instead of stores through a mapping. */
#include "table.h"

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDWR);
    long count;
    if (read(fd, &count, sizeof count) != sizeof count)
        return 1;
    lseek(fd, sizeof(long) + sizeof(int) * count, SEEK_SET);
    for (int i = 0; i < 300; i++) {
        int v = count + i;
        if (write(fd, &v, sizeof v) != sizeof v)
            return 1;
    }
    count += 300;
    lseek(fd, 0, SEEK_SET);
    return write(fd, &count, sizeof count) == sizeof count ? 0 : 1;
}
