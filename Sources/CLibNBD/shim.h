#ifndef SWIFTZRAM_CLIBNBD_SHIM_H
#define SWIFTZRAM_CLIBNBD_SHIM_H
#include <libnbd.h>
#endif
