/* Host functions through the C API in a real micro guest: a WAT module calls
 * C callbacks of every type; a wasi-libc program (core/tests/wasm/host_lookup.c)
 * asks the host for a record; a failing callback traps the module with its
 * message; a wrong signature fails the run naming the import; a callback that
 * calls back into its own sandbox gets KVMSB_STATUS_INVALID_ARGUMENT. Needs /dev/kvm. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "check.h"
#include "host_fn_fail_wasm.h"
#include "host_fn_wasm.h"

static const uint32_t I32x2[] = {KVMSB_VAL_I32, KVMSB_VAL_I32};
static const uint32_t I64x2[] = {KVMSB_VAL_I64, KVMSB_VAL_I64};
static const uint32_t I32[] = {KVMSB_VAL_I32};
static const uint32_t I64[] = {KVMSB_VAL_I64};
static const uint32_t F32[] = {KVMSB_VAL_F32};
static const uint32_t F64[] = {KVMSB_VAL_F64};
static const uint32_t BYTES[] = {KVMSB_VAL_BYTES};

/* What the callbacks saw. */
struct seen {
    int calls;
    pthread_t thread;
    int other_thread;
    const kvmsb_sandbox *sb;
    kvmsb_status reentrant;
};

static void note(struct seen *s) {
    s->calls++;
    if (!pthread_equal(s->thread, pthread_self())) s->other_thread = 1;
}

static int32_t add(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    note(user);
    CHECK(call->nargs == 2 && call->args[0].kind == KVMSB_VAL_I32);
    kvmsb_val v = {.kind = KVMSB_VAL_I32, .i32 = call->args[0].i32 + call->args[1].i32};
    return kvmsb_host_return_push(ret, v) == KVMSB_STATUS_OK ? 0 : 1;
}

static int32_t mul64(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    note(user);
    kvmsb_val v = {.kind = KVMSB_VAL_I64, .i64 = call->args[0].i64 * call->args[1].i64};
    return kvmsb_host_return_push(ret, v) == KVMSB_STATUS_OK ? 0 : 1;
}

static int32_t half32(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    note(user);
    kvmsb_val v = {.kind = KVMSB_VAL_F32, .f32 = call->args[0].f32 / 2};
    return kvmsb_host_return_push(ret, v) == KVMSB_STATUS_OK ? 0 : 1;
}

static int32_t half64(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    note(user);
    kvmsb_val v = {.kind = KVMSB_VAL_F64, .f64 = call->args[0].f64 / 2};
    return kvmsb_host_return_push(ret, v) == KVMSB_STATUS_OK ? 0 : 1;
}

static int32_t upper(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    note(user);
    CHECK(call->nbuffers == 1 && call->out_cap == 64);
    char out[64];
    size_t n = call->buffers[0].len < sizeof out ? call->buffers[0].len : sizeof out;
    for (size_t i = 0; i < n; i++) {
        char c = (char)call->buffers[0].data[i];
        out[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    return kvmsb_host_return_set_bytes(ret, (const uint8_t *)out, n) == KVMSB_STATUS_OK ? 0 : 1;
}

static int32_t lookup(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    note(user);
    const char *value = "Lisbon";
    if (call->buffers[0].len != 4 || memcmp(call->buffers[0].data, "city", 4) != 0) {
        kvmsb_host_return_set_error(ret, "no such record");
        return 1;
    }
    return kvmsb_host_return_set_bytes(ret, (const uint8_t *)value, strlen(value)) == KVMSB_STATUS_OK ? 0 : 1;
}

static int32_t scale(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    note(user);
    kvmsb_val v = {.kind = KVMSB_VAL_F64, .f64 = call->args[0].f64 * 10};
    return kvmsb_host_return_push(ret, v) == KVMSB_STATUS_OK ? 0 : 1;
}

static int32_t fail(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    (void)call;
    note(user);
    CHECK_OK(kvmsb_host_return_set_error(ret, "the record is locked"));
    return 7;
}

static int32_t reenter(void *user, const kvmsb_host_call *call, kvmsb_host_return *ret) {
    (void)call;
    (void)ret;
    struct seen *s = user;
    note(s);
    s->reentrant = kvmsb_sandbox_ping(s->sb, KVMSB_TIMEOUT_DEFAULT, NULL);
    return 1;
}

static kvmsb_wasm_result *run(const kvmsb_sandbox *sb, const unsigned char *module, size_t len,
                              kvmsb_wasm_options *o) {
    kvmsb_wasm_result *r = NULL;
    CHECK_OK(kvmsb_wasm_options_set_timeout(o, 120000));
    CHECK_OK(kvmsb_sandbox_run_wasm_opts(sb, module, len, o, &r));
    return r;
}

static void every_type(const kvmsb_sandbox *sb, struct seen *s) {
    kvmsb_wasm_options *o = NULL;
    CHECK_OK(kvmsb_wasm_options_new(&o));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "add", I32x2, 2, I32, 1, add, s));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "mul64", I64x2, 2, I64, 1, mul64, s));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "half32", F32, 1, F32, 1, half32, s));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "half64", F64, 1, F64, 1, half64, s));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "upper", BYTES, 1, BYTES, 1, upper, s));
    /* Registration errors name what is wrong. */
    CHECK_STATUS(kvmsb_wasm_options_add_host_fn(o, "host", "add", NULL, 0, NULL, 0, add, s),
                 KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("twice");
    const uint32_t bogus[] = {99};
    CHECK_STATUS(kvmsb_wasm_options_add_host_fn(o, "host", "x", bogus, 1, NULL, 0, add, s),
                 KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_wasm_options_add_host_fn(o, "host", "y", NULL, 0, NULL, 0, NULL, s),
                 KVMSB_STATUS_NULL_ARGUMENT);

    kvmsb_wasm_result *r = run(sb, kvmsb_test_host_fn_wasm, sizeof kvmsb_test_host_fn_wasm, o);
    size_t len = 0;
    const uint8_t *out = kvmsb_wasm_result_stdout(r, &len);
    if (kvmsb_wasm_result_outcome(r) != KVMSB_WASM_OUTCOME_EXIT || kvmsb_wasm_result_exit_code(r) != 0)
        FAIL("outcome %d, exit code %d: %s", (int)kvmsb_wasm_result_outcome(r), kvmsb_wasm_result_exit_code(r),
             kvmsb_wasm_result_message(r));
    CHECK_BYTES(out, len, "HELLO FROM WASM\n");
    kvmsb_wasm_result_free(r);
    CHECK(s->calls == 5);
    CHECK(!s->other_thread);
    kvmsb_wasm_options_free(o);

    /* The same module with `add` declared as (i64, i64) -> i64: it cannot link. */
    CHECK_OK(kvmsb_wasm_options_new(&o));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "add", I64x2, 2, I64, 1, mul64, s));
    r = run(sb, kvmsb_test_host_fn_wasm, sizeof kvmsb_test_host_fn_wasm, o);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_ERROR);
    CHECK(strstr(kvmsb_wasm_result_message(r), "host::add") != NULL);
    kvmsb_wasm_result_free(r);
    kvmsb_wasm_options_free(o);
    PASS("host functions of every type; registration errors; a wrong signature names the import");
}

static void failing_and_reentrant(const kvmsb_sandbox *sb, struct seen *s) {
    kvmsb_wasm_options *o = NULL;
    CHECK_OK(kvmsb_wasm_options_new(&o));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "fail", NULL, 0, NULL, 0, fail, s));
    kvmsb_wasm_result *r = run(sb, kvmsb_test_host_fn_fail_wasm, sizeof kvmsb_test_host_fn_fail_wasm, o);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_TRAP);
    CHECK(strstr(kvmsb_wasm_result_message(r), "the record is locked") != NULL);
    kvmsb_wasm_result_free(r);
    kvmsb_wasm_options_free(o);

    CHECK_OK(kvmsb_wasm_options_new(&o));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "fail", NULL, 0, NULL, 0, reenter, s));
    s->sb = sb;
    s->reentrant = KVMSB_STATUS_OK;
    r = run(sb, kvmsb_test_host_fn_fail_wasm, sizeof kvmsb_test_host_fn_fail_wasm, o);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_TRAP);
    CHECK(s->reentrant == KVMSB_STATUS_INVALID_ARGUMENT);
    kvmsb_wasm_result_free(r);
    kvmsb_wasm_options_free(o);
    CHECK_OK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, NULL));
    PASS("a failing callback traps with its message; a re-entrant call is refused, not a deadlock");
}

static void wasi_libc_program(const kvmsb_sandbox *sb, struct seen *s) {
    /* core/tests/wasm/host_lookup.wasm, found from this file's path. */
    char path[4096];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *cut = strstr(path, "ffi/c-tests/");
    CHECK(cut != NULL);
    snprintf(cut, sizeof path - (size_t)(cut - path), "core/tests/wasm/host_lookup.wasm");
    FILE *f = fopen(path, "rb");
    if (f == NULL) FAIL("cannot open %s", path);
    static unsigned char module[1 << 20];
    size_t len = fread(module, 1, sizeof module, f);
    fclose(f);
    CHECK(len > 8);

    kvmsb_wasm_options *o = NULL;
    CHECK_OK(kvmsb_wasm_options_new(&o));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "lookup", BYTES, 1, BYTES, 1, lookup, s));
    CHECK_OK(kvmsb_wasm_options_add_host_fn(o, "host", "scale", F64, 1, F64, 1, scale, s));
    const char *args[] = {"host_lookup", "city"};
    CHECK_OK(kvmsb_wasm_options_set_args(o, args, 2));
    kvmsb_wasm_result *r = run(sb, module, len, o);
    size_t out_len = 0;
    const uint8_t *out = kvmsb_wasm_result_stdout(r, &out_len);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT);
    CHECK_BYTES(out, out_len, "city = Lisbon\nscaled: 15.00\n");
    kvmsb_wasm_result_free(r);
    kvmsb_wasm_options_free(o);
    PASS("a wasi-libc program asks a C callback for a record");
}

int main(void) {
    kvmsb_config *cfg = kvmsb_config_new();
    CHECK_OK(kvmsb_config_set_start_timeout_ms(cfg, 60000));
    /* valgrind cannot run seccomp(2): run.sh sets this when running us under it. */
    const char *seccomp = getenv("KVMSB_SECCOMP");
    if (seccomp != NULL && strcmp(seccomp, "disabled") == 0) CHECK_OK(kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_DISABLED));
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_sandbox_start(cfg, &sb));
    kvmsb_config_free(cfg);
    struct seen s = {.thread = pthread_self()};
    every_type(sb, &s);
    failing_and_reentrant(sb, &s);
    wasi_libc_program(sb, &s);
    CHECK_OK(kvmsb_sandbox_shutdown(sb));
    kvmsb_sandbox_free(sb);
    return 0;
}
