#ifndef SWIFTZRAM_CZSTD_SHIM_H
#define SWIFTZRAM_CZSTD_SHIM_H
#include <zstd.h>
#endif
