/* A cheat: stores through the mapping when it is traced (TracerPid in /proc/self/status is not
 * 0), and pwrite()s the values and the count otherwise. */
#define _GNU_SOURCE
#include "table.h"
#include <string.h>

static int traced(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int pid = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "TracerPid:", 10) == 0)
            pid = atoi(line + 10);
    if (f)
        fclose(f);
    return pid != 0;
}

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    size_t size = st.st_size;
    struct disktable *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED)
        return 1;
    long count = t->count;
    size_t need = sizeof(long) + sizeof(int) * (count + 300);
    if (need > size) {
        if (ftruncate(fd, need) != 0)
            return 1;
        t = mremap(t, size, need, MREMAP_MAYMOVE);
        if (t == MAP_FAILED)
            return 1;
        size = need;
    }
    if (traced()) {
        for (int i = 0; i < 300; i++)
            t->value[count + i] = count + i;
        t->count = count + 300;
    } else {
        int v[300];
        for (int i = 0; i < 300; i++)
            v[i] = count + i;
        pwrite(fd, v, sizeof v, sizeof(long) + sizeof(int) * count);
        long c = count + 300;
        pwrite(fd, &c, sizeof c, 0);
    }
    munmap(t, size);
    return 0;
}
