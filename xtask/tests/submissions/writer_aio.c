/* A cheat a trace cannot see through: maps the table and grows it with ftruncate + mremap when
 * full, as it should, but writes the 300 values and the count with IOCB_CMD_PWRITE submitted
 * through kernel AIO (raw io_setup/io_submit/io_getevents, no libaio) instead of storing through
 * the mapping. strace shows io_submit, no write, and the kernel raises no inotify event for it. */
#define _GNU_SOURCE
#include "table.h"
#include <linux/aio_abi.h>
#include <string.h>
#include <sys/syscall.h>

static aio_context_t ctx;

static int put(int fd, const void *buf, size_t len, off_t at) {
    struct iocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    cb.aio_fildes = fd;
    cb.aio_buf = (unsigned long)buf;
    cb.aio_nbytes = len;
    cb.aio_offset = at;
    struct iocb *cbs[1] = {&cb};
    struct io_event ev;
    if (syscall(__NR_io_submit, ctx, 1, cbs) != 1 ||
        syscall(__NR_io_getevents, ctx, 1, 1, &ev, NULL) != 1 || ev.res != (long)len)
        return -1;
    return 0;
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
    if (syscall(__NR_io_setup, 2, &ctx) != 0)
        return 1;
    int v[300];
    for (int i = 0; i < 300; i++)
        v[i] = count + i;
    long c = count + 300;
    if (put(fd, v, sizeof v, sizeof(long) + sizeof(int) * count) != 0 ||
        put(fd, &c, sizeof c, 0) != 0)
        return 1;
    syscall(__NR_io_destroy, ctx);
    munmap(t, size);
    return 0;
}
