// glibc's malloc extensions (malloc.h), which Swift's Glibc module does not bring in:
// malloc_trim, to give freed heap pages back to the system once an idle camera dropped its encoder.
#include <malloc.h>
