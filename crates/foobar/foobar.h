/* foobar.h: the C interface of libfoobar.so (crates/foobar in mmap-lab), declared exactly as
 * the course's own foobar.h declares it, so the course's foo.c and bar.c (and any program
 * written against that header) compile and link unchanged.
 *
 * Build and run a client:
 *     cc prog.c -I crates/foobar -L target/release -lfoobar -o prog
 *     LD_LIBRARY_PATH=target/release ./prog
 * (or add -Wl,-rpath,"$PWD/target/release" to find the library without LD_LIBRARY_PATH).
 *
 * getbaz() and bazaddr() are declared without a parameter list, as in the course's header: the
 * course's bar.c calls getbaz(i), which a (void) prototype would reject. The library's
 * functions take no argument and ignore any that is passed.
 */
#ifndef FOOBAR_H
#define FOOBAR_H

#ifdef __cplusplus
extern "C" {
#endif

/* The library's one global variable. Each process that loads libfoobar.so gets its own
 * copy-on-write copy: setting it in one process never changes it in another. A program that
 * names baz directly gets its own copy of it in its .bss (a COPY relocation), which the
 * library then uses too: bazaddr() tells where it is. */
extern int baz;

/* Returns the current value of baz. */
int getbaz();

/* Sets baz to newbaz; returns the new value. */
int setbaz(int newbaz);

/* Returns the address of baz, as the library's code reaches it. */
int* bazaddr();

#ifdef __cplusplus
}
#endif

#endif /* FOOBAR_H */
