#ifndef SWIFTZRAM_CLZO_SHIM_H
#define SWIFTZRAM_CLZO_SHIM_H
#include <lzo/lzo1x.h>

/* LZO1X_1_MEM_COMPRESS and lzo_init() are macros, which Swift cannot import. */
static inline unsigned long clzo_lzo1x_1_mem_compress(void) { return LZO1X_1_MEM_COMPRESS; }
static inline int clzo_init(void) { return lzo_init(); }
#endif
