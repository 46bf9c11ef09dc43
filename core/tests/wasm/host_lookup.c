/* A wasi-libc program that asks the host for data through host functions
 * (module "host"): lookup(key) -> bytes, and scale(f64) -> f64. See
 * docs/host-functions.md for how a Bytes parameter and result lower to
 * (pointer, length) and (output pointer, capacity) -> length. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

__attribute__((import_module("host"), import_name("lookup")))
int32_t host_lookup(const char *key, int32_t key_len, char *out, int32_t out_cap);

__attribute__((import_module("host"), import_name("scale")))
double host_scale(double x);

int main(int argc, char **argv) {
    const char *key = argc > 1 ? argv[1] : "answer";
    char value[64];
    int32_t n = host_lookup(key, (int32_t)strlen(key), value, (int32_t)sizeof value);
    if (n < 0)
        return 2;
    if (n > (int32_t)sizeof value)
        n = (int32_t)sizeof value;
    printf("%s = %.*s\n", key, (int)n, value);
    printf("scaled: %.2f\n", host_scale(1.5));
    return 0;
}
