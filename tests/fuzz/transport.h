/*
 * transport.h - the fuzz input as the network (transport.c).
 */
#ifndef EKMFS_FUZZ_TRANSPORT_H
#define EKMFS_FUZZ_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

/* Answer the requests from now on with the responses in data. */
void fuzz_transport_set(const uint8_t *data, size_t size);
/* Requests made since the last fuzz_transport_set(). */
unsigned fuzz_transport_requests(void);

#endif
