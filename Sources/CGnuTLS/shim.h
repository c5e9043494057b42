#ifndef SWIFTZRAM_CGNUTLS_SHIM_H
#define SWIFTZRAM_CGNUTLS_SHIM_H
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

/* gnutls_transport_set_int is a macro; Swift cannot call it. */
static inline void cgnutls_transport_set_fd(gnutls_session_t session, int fd) {
    gnutls_transport_set_int2(session, fd, fd);
}

/* Fills a datum GnuTLS will free itself (PSK callbacks hand over ownership),
   so it must come from gnutls_malloc, a function pointer variable. */
static inline int cgnutls_set_owned_datum(gnutls_datum_t *datum, const void *data, unsigned int size) {
    datum->data = gnutls_malloc(size > 0 ? size : 1);
    if (datum->data == NULL) return GNUTLS_E_MEMORY_ERROR;
    if (size > 0) memcpy(datum->data, data, size);
    datum->size = size;
    return 0;
}

/* gnutls_free is a function pointer variable; Swift 6 will not read a global var. */
static inline void cgnutls_free(void *p) {
    gnutls_free(p);
}
#endif
