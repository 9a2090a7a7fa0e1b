/* A cheat: builds the new table with write() in a file of its own, "next", and rename()s it over
 * table.bin; the ftruncate + mremap on the real table are for show. */
#define _GNU_SOURCE
#include "table.h"
#include <string.h>

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
    size_t room = need > size ? need : size;
    if (need > size) {
        if (ftruncate(fd, need) != 0)
            return 1;
        t = mremap(t, size, need, MREMAP_MAYMOVE);
        if (t == MAP_FAILED)
            return 1;
    }
    char *copy = malloc(room);
    memcpy(copy, t, need > size ? size : room);
    memset(copy + (need > size ? size : room), 0, room - (need > size ? size : room));
    struct disktable *c = (struct disktable *)copy;
    for (int i = 0; i < 300; i++)
        c->value[count + i] = count + i;
    c->count = count + 300;
    int next = open("next", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (write(next, copy, room) != (ssize_t)room)
        return 1;
    close(next);
    return rename("next", argc > 1 ? argv[1] : "table.bin") != 0;
}
