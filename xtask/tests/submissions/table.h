/* The course's table: struct disktable { long count; int value[]; }, opened as table.bin. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct disktable {
    long count;
    int value[];
};

static int open_table(int argc, char **argv, int flags) {
    int fd = open(argc > 1 ? argv[1] : "table.bin", flags);
    if (fd < 0) {
        perror("open");
        exit(1);
    }
    return fd;
}
