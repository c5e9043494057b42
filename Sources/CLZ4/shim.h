#ifndef SWIFTZRAM_CLZ4_SHIM_H
#define SWIFTZRAM_CLZ4_SHIM_H
/* LZ4_attach_dictionary and the HC equivalents live in the static-linking section. */
#define LZ4_STATIC_LINKING_ONLY
#define LZ4_HC_STATIC_LINKING_ONLY
#include <lz4.h>
#include <lz4hc.h>
#endif
