/* hello_wasm: start a micro sandbox, run a WASM module in it, print its output.
 *
 *   make -C examples/c run        # builds libkvmsandbox first, then this
 *
 * The module is examples/c/hello.wat, embedded as bytes by hello_wasm.h. Every
 * call returns a kvmsb_status; kvmsb_last_error() says what went wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hello_wasm.h"
#include "kvmsandbox.h"

static int fail(const char *what, kvmsb_status s) {
    fprintf(stderr, "%s failed: %s: %s\n", what, kvmsb_status_name((int32_t)s), kvmsb_last_error());
    return 1;
}

int main(void) {
    printf("libkvmsandbox %s\n", kvmsb_version());

    kvmsb_config *cfg = kvmsb_config_new();
    /* KVMSB_SECCOMP=disabled skips the VMM threads' seccomp filters (needed under
     * valgrind, which makes syscalls of its own on those threads). */
    const char *seccomp = getenv("KVMSB_SECCOMP");
    if (seccomp != NULL && strcmp(seccomp, "disabled") == 0) {
        kvmsb_status s = kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_DISABLED);
        if (s != KVMSB_STATUS_OK) return fail("kvmsb_config_set_seccomp", s);
    }
    kvmsb_config_set_start_timeout_ms(cfg, 120000);

    kvmsb_sandbox *sb = NULL;
    kvmsb_status s = kvmsb_sandbox_start(cfg, &sb);
    kvmsb_config_free(cfg); /* the sandbox does not need it any more */
    if (s != KVMSB_STATUS_OK) return fail("kvmsb_sandbox_start", s);

    kvmsb_timings t;
    if (kvmsb_sandbox_timings(sb, &t) == KVMSB_STATUS_OK)
        printf("sandbox ready in %.3f ms\n", (double)t.agent_ready_ns / 1e6);

    const char *args[] = {"hello"};
    kvmsb_wasm_result *r = NULL;
    s = kvmsb_sandbox_run_wasm(sb, kvmsb_example_hello_wasm, sizeof kvmsb_example_hello_wasm, args, 1, NULL, 0, NULL,
                               0, /* fuel: */ 10000000, /* timeout_ms: */ 60000, &r);
    int rc = 0;
    if (s != KVMSB_STATUS_OK) {
        rc = fail("kvmsb_sandbox_run_wasm", s);
    } else {
        size_t len = 0;
        const uint8_t *out = kvmsb_wasm_result_stdout(r, &len);
        printf("module stdout: %.*s", (int)len, (const char *)out);
        switch (kvmsb_wasm_result_outcome(r)) {
        case KVMSB_WASM_OUTCOME_EXIT:
            printf("module exited with code %d\n", kvmsb_wasm_result_exit_code(r));
            rc = kvmsb_wasm_result_exit_code(r) == 0 ? 0 : 1;
            break;
        case KVMSB_WASM_OUTCOME_TRAP:
            printf("module trapped: %s\n", kvmsb_wasm_result_message(r));
            rc = 1;
            break;
        case KVMSB_WASM_OUTCOME_OUT_OF_FUEL:
            printf("module ran out of fuel\n");
            rc = 1;
            break;
        case KVMSB_WASM_OUTCOME_ERROR:
            printf("module could not run: %s\n", kvmsb_wasm_result_message(r));
            rc = 1;
            break;
        }
        kvmsb_wasm_result_free(r);
    }

    s = kvmsb_sandbox_shutdown(sb);
    if (s != KVMSB_STATUS_OK && rc == 0) rc = fail("kvmsb_sandbox_shutdown", s);
    kvmsb_sandbox_free(sb);
    return rc;
}
