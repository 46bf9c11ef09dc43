/* host_functions: a WASM module asks this program for data through a host
 * function, `host.lookup(key) -> bytes`, answered by a C callback with a
 * user-data pointer (here: a tiny table of records).
 *
 *   make -C examples/c host-functions
 *
 * The module is examples/c/ask_host.wat, embedded as bytes by ask_host_wasm.h.
 * The callback runs on the thread that called kvmsb_sandbox_run_wasm_opts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ask_host_wasm.h"
#include "kvmsandbox.h"

struct record {
    const char *key;
    const char *value;
};

static int fail(const char *what, kvmsb_status s) {
    fprintf(stderr, "%s failed: %s: %s\n", what, kvmsb_status_name((int32_t)s), kvmsb_last_error());
    return 1;
}

/* host.lookup: the key arrives as call->buffers[0]; the value goes back as bytes. */
static int32_t lookup(void *user_data, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    const struct record *r = user_data;
    const kvmsb_buffer key = call->buffers[0];
    printf("[host] the module asks for '%.*s'\n", (int)key.len, (const char *)key.data);
    for (; r->key != NULL; r++) {
        if (strlen(r->key) == key.len && memcmp(r->key, key.data, key.len) == 0)
            return kvmsb_host_return_set_bytes(ret, (const uint8_t *)r->value, strlen(r->value)) == KVMSB_STATUS_OK ? 0 : 1;
    }
    kvmsb_host_return_set_error(ret, "no such record");
    return 1;
}

int main(void) {
    static const struct record records[] = {{"weather:lisbon", "sunny, 21 C"}, {NULL, NULL}};
    kvmsb_config *cfg = kvmsb_config_new();
    const char *seccomp = getenv("KVMSB_SECCOMP");
    if (seccomp != NULL && strcmp(seccomp, "disabled") == 0) kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_DISABLED);
    kvmsb_config_set_start_timeout_ms(cfg, 120000);
    kvmsb_sandbox *sb = NULL;
    kvmsb_status s = kvmsb_sandbox_start(cfg, &sb);
    kvmsb_config_free(cfg);
    if (s != KVMSB_STATUS_OK) return fail("kvmsb_sandbox_start", s);

    kvmsb_wasm_options *opts = NULL;
    if ((s = kvmsb_wasm_options_new(&opts)) != KVMSB_STATUS_OK) return fail("kvmsb_wasm_options_new", s);
    const uint32_t bytes[] = {KVMSB_VAL_BYTES};
    s = kvmsb_wasm_options_add_host_fn(opts, "host", "lookup", bytes, 1, bytes, 1, lookup, (void *)records);
    if (s != KVMSB_STATUS_OK) return fail("kvmsb_wasm_options_add_host_fn", s);
    kvmsb_wasm_options_set_fuel(opts, 1000000);
    kvmsb_wasm_options_set_timeout(opts, 60000);

    kvmsb_wasm_result *r = NULL;
    s = kvmsb_sandbox_run_wasm_opts(sb, kvmsb_example_ask_host_wasm, sizeof kvmsb_example_ask_host_wasm, opts, &r);
    kvmsb_wasm_options_free(opts);
    if (s != KVMSB_STATUS_OK) return fail("kvmsb_sandbox_run_wasm_opts", s);
    size_t len = 0;
    const uint8_t *out = kvmsb_wasm_result_stdout(r, &len);
    printf("outcome %d, stdout: %.*s", (int)kvmsb_wasm_result_outcome(r), (int)len, (const char *)out);
    int code = kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT ? 0 : 1;
    kvmsb_wasm_result_free(r);
    kvmsb_sandbox_free(sb);
    return code;
}
