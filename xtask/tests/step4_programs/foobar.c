/* The course's library: gcc -g -shared -fPIC foobar.c -o foobar.so */
#include "foobar.h"
int baz;
int getbaz() { return baz; }
int setbaz(int newbaz) { baz = newbaz; return baz; }
int* bazaddr() { return &baz; }
