/* Prints the table correctly, but first starts 50 children that sleep forever. */
#include "table.h"

int main(int argc, char **argv) {
    for (int i = 0; i < 50; i++)
        if (fork() == 0)
            for (;;)
                pause();
    int fd = open_table(argc, argv, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    struct disktable *t = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    for (long i = 0; i < t->count; i++)
        printf("%d\n", t->value[i]);
    return 0;
}
