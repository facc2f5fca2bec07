// glibc's controls over this process's memory that Swift's Glibc module does not bring in:
// malloc.h's malloc_trim (freed heap pages back to the system once an idle camera dropped its
// encoder), mallopt and the heap statistics (mallinfo2, malloc_info), and prctl's switch for
// transparent huge pages, which Swift cannot call directly (prctl is variadic).
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>

// PR_SET_THP_DISABLE (Linux 3.15): `disabled` 1 means no transparent huge page is ever mapped into
// this process, whatever /sys/kernel/mm/transparent_hugepage/enabled says and whatever is
// madvise(MADV_HUGEPAGE)d; 0 gives the system's policy back. Kept across fork and execve.
// Returns 0, or -1 with errno set.
static inline int rtcam_set_transparent_huge_pages_disabled(int disabled) {
    return prctl(PR_SET_THP_DISABLE, (unsigned long)(disabled != 0), 0UL, 0UL, 0UL);
}

// PR_GET_THP_DISABLE: 1 while the switch above is on, 0 while off, -1 with errno on a kernel
// without it.
static inline int rtcam_transparent_huge_pages_disabled(void) {
    return prctl(PR_GET_THP_DISABLE, 0UL, 0UL, 0UL, 0UL);
}

// malloc_info's XML report (one <heap> element per arena with its free chunks and system bytes,
// then the totals) written into a buffer of malloc's: *text gets it (free it with free()), *length
// its size. Returns 0, or -1 with errno set (open_memstream or malloc_info failed).
static inline int rtcam_malloc_info_text(char **text, size_t *length) {
    *text = NULL;
    *length = 0;
    FILE *stream = open_memstream(text, length);
    if (stream == NULL) return -1;
    int result = malloc_info(0, stream);
    if (fclose(stream) != 0) result = -1;
    if (result != 0) {
        free(*text);
        *text = NULL;
        *length = 0;
    }
    return result;
}
