/* Tiny assertion helpers shared by the C tests: each failed check prints where
 * and why (with kvmsb_last_error()) and exits 1. */
#ifndef KVMSB_CHECK_H
#define KVMSB_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvmsandbox.h"

#define FAIL(...)                                                           \
    do {                                                                    \
        fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__);             \
        fprintf(stderr, __VA_ARGS__);                                       \
        fprintf(stderr, "\n  last error: %s\n", kvmsb_last_error());        \
        exit(1);                                                            \
    } while (0)

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) FAIL("%s", #cond);                                     \
    } while (0)

/* The call must return `want`. */
#define CHECK_STATUS(call, want)                                            \
    do {                                                                    \
        kvmsb_status got_ = (call);                                         \
        if (got_ != (want))                                                 \
            FAIL("%s returned %s, wanted %s", #call,                        \
                 kvmsb_status_name((int32_t)got_),                          \
                 kvmsb_status_name((int32_t)(want)));                       \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, KVMSB_STATUS_OK)

/* The last error message must contain `needle`. */
#define CHECK_ERROR_MENTIONS(needle)                                        \
    do {                                                                    \
        if (strstr(kvmsb_last_error(), (needle)) == NULL)                   \
            FAIL("last error does not mention \"%s\"", (needle));           \
    } while (0)

/* `data[0..len]` must equal the C string `want`. */
#define CHECK_BYTES(data, len, want)                                        \
    do {                                                                    \
        size_t wl_ = strlen(want);                                          \
        if ((len) != wl_ || ((len) > 0 && memcmp((data), (want), wl_) != 0)) \
            FAIL("got %zu bytes \"%.*s\", wanted \"%s\"", (size_t)(len),    \
                 (int)(len), (const char *)(data), (want));                 \
    } while (0)

#define PASS(name) printf("ok - %s\n", name)

#endif
