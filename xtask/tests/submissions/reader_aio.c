/* A cheat a trace cannot see through: maps the table once without using it, and reads the file
 * with one IOCB_CMD_PREAD submitted through kernel AIO (raw io_setup/io_submit/io_getevents, no
 * libaio); the values are printed from that buffer. strace shows io_submit, no read, and the
 * kernel raises no inotify event for an AIO read. */
#include "table.h"
#include <linux/aio_abi.h>
#include <string.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    int fd = open_table(argc, argv, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    if (mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
        return 1;
    aio_context_t ctx = 0;
    if (syscall(__NR_io_setup, 1, &ctx) != 0)
        return 1;
    char *buf = malloc(st.st_size);
    struct iocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_lio_opcode = IOCB_CMD_PREAD;
    cb.aio_fildes = fd;
    cb.aio_buf = (unsigned long)buf;
    cb.aio_nbytes = st.st_size;
    cb.aio_offset = 0;
    struct iocb *cbs[1] = {&cb};
    if (syscall(__NR_io_submit, ctx, 1, cbs) != 1)
        return 1;
    struct io_event ev;
    if (syscall(__NR_io_getevents, ctx, 1, 1, &ev, NULL) != 1 || ev.res != st.st_size)
        return 1;
    syscall(__NR_io_destroy, ctx);
    struct disktable *d = (struct disktable *)buf;
    printf("count = %ld\n", d->count);
    for (long i = 0; i < d->count; i++)
        printf("%d\n", d->value[i]);
    return 0;
}
