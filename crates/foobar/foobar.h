/* foobar.h: the C interface of libfoobar.so (crates/foobar in mmap-lab).
 *
 * Link with:  cc prog.c -I crates/foobar -L target/release -lfoobar \
 *                 -Wl,-rpath,"$PWD/target/release"
 */
#ifndef FOOBAR_H
#define FOOBAR_H

#ifdef __cplusplus
extern "C" {
#endif

/* The library's one global variable. Each process that loads libfoobar.so gets its own
 * copy-on-write copy: setting it in one process never changes it in another. */
extern int baz;

/* Sets baz to value. */
void setbaz(int value);

/* Returns the current value of baz. */
int getbaz(void);

#ifdef __cplusplus
}
#endif

#endif /* FOOBAR_H */
