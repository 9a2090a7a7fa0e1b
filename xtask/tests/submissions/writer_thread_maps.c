/* Correct but unusual: the whole append (mmap, ftruncate + mremap when count + 300 does not
 * fit, the stores, munmap) runs in a pthread; main only opens the table and joins. */
#define _GNU_SOURCE
#include "table.h"
#include <pthread.h>

static int fd;

static void *append(void *arg) {
    struct stat st;
    fstat(fd, &st);
    size_t size = st.st_size;
    struct disktable *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED)
        return arg;
    size_t need = sizeof(long) + sizeof(int) * (t->count + 300);
    if (need > size) {
        if (ftruncate(fd, need) != 0)
            return arg;
        t = mremap(t, size, need, MREMAP_MAYMOVE);
        if (t == MAP_FAILED)
            return arg;
        size = need;
    }
    for (int i = 0; i < 300; i++)
        t->value[t->count + i] = t->count + i;
    t->count += 300;
    munmap(t, size);
    return NULL;
}

int main(int argc, char **argv) {
    static int failed;
    fd = open_table(argc, argv, O_RDWR);
    pthread_t th;
    void *r;
    pthread_create(&th, NULL, append, &failed);
    pthread_join(th, &r);
    return r != NULL;
}
