/* A cheat: reads the table through one mmap when it is traced (TracerPid in /proc/self/status
 * is not 0), and with read() otherwise. */
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
    int fd = open_table(argc, argv, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    struct disktable *d;
    if (traced()) {
        d = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (d == MAP_FAILED)
            return 1;
    } else {
        d = malloc(st.st_size);
        if (read(fd, d, st.st_size) != st.st_size)
            return 1;
    }
    printf("count = %ld\n", d->count);
    for (long i = 0; i < d->count; i++)
        printf("%d\n", d->value[i]);
    return 0;
}
