/* A correct reader that also creates the file named by $OUTSIDE (outside its directory). */
#include "table.h"

int main(int argc, char **argv) {
    const char *outside = getenv("OUTSIDE");
    if (outside) {
        int o = open(outside, O_CREAT | O_WRONLY, 0644);
        if (o >= 0)
            close(o);
    }
    int fd = open_table(argc, argv, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    struct disktable *t = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    for (long i = 0; i < t->count; i++)
        printf("%d\n", t->value[i]);
    return 0;
}
