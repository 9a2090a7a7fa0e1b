/* The course's library interface, with baz declared for programs that name it directly. */
extern int baz;
int getbaz();
int setbaz(int newbaz);
int* bazaddr();
