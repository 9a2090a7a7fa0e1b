/* A cheat: maps the table and grows it with ftruncate + mremap when full, as it should, but a
 * thread pwrite()s the 300 values and the count instead of storing through the mapping. */
#define _GNU_SOURCE
#include "table.h"
#include <pthread.h>

static int fd;
static long count;

static void *put(void *arg) {
    (void)arg;
    int v[300];
    for (int i = 0; i < 300; i++)
        v[i] = count + i;
    pwrite(fd, v, sizeof v, sizeof(long) + sizeof(int) * count);
    long c = count + 300;
    pwrite(fd, &c, sizeof c, 0);
    return NULL;
}

int main(int argc, char **argv) {
    fd = open_table(argc, argv, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    size_t size = st.st_size;
    struct disktable *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED)
        return 1;
    count = t->count;
    size_t need = sizeof(long) + sizeof(int) * (count + 300);
    if (need > size) {
        if (ftruncate(fd, need) != 0)
            return 1;
        t = mremap(t, size, need, MREMAP_MAYMOVE);
        if (t == MAP_FAILED)
            return 1;
        size = need;
    }
    pthread_t th;
    pthread_create(&th, NULL, put, NULL);
    pthread_join(th, NULL);
    munmap(t, size);
    return 0;
}
