/*
 * huge.h: the huge lane. Always compiled in: it serves every size above
 * HAK_ACE_MAX and the range of every lane that is not built, with any
 * power-of-two alignment.
 *
 * Two kinds of mapping, each headed by one page of metadata (struct
 * huge_chunk) at the base of its first chunk:
 *  - shared chunks: one 2 MiB chunk whose pages 1..n-1 are handed out as
 *    page runs (requests below 2 MiB that fit), so that millions of small
 *    blocks need no mapping each;
 *  - own mappings: one block per mapping of whole chunks (requests of
 *    2 MiB and more, or alignments a shared chunk cannot give); realloc
 *    grows them in place or moves their pages with mremap.
 */
#ifndef HAK_HUGE_H
#define HAK_HUGE_H

#include "lane.h"

extern HAK_HIDDEN const struct hak_lane huge_lane;

#endif /* HAK_HUGE_H */
