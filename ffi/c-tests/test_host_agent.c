/* exec and files through the C API against the Linux agent running as a host
 * process (KVMSB_AGENT_SOCK names its socket; run.sh starts it). Linux user
 * space cannot run in a guest on the PVM test machines, so this is where the
 * Linux-guest operations are exercised end to end. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "check.h"
#include "hello_wasm.h"

static kvmsb_exec_result *run(const kvmsb_sandbox *sb, const char **argv, size_t argc, const char **env, size_t envc,
                              const char *cwd, const char *stdin_text, uint64_t timeout_ms) {
    kvmsb_exec_result *r = NULL;
    const uint8_t *in = (const uint8_t *)stdin_text;
    size_t in_len = stdin_text ? strlen(stdin_text) : 0;
    CHECK_OK(kvmsb_sandbox_exec(sb, argv, argc, env, envc, cwd, in, in_len, timeout_ms, &r));
    CHECK(r != NULL);
    return r;
}

static void exec_basics(const kvmsb_sandbox *sb) {
    const char *echo[] = {"/bin/echo", "hello", "from C"};
    kvmsb_exec_result *r = run(sb, echo, 3, NULL, 0, NULL, NULL, 10000);
    size_t len = 0;
    const uint8_t *out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "hello from C\n");
    CHECK(kvmsb_exec_result_exit_code(r) == 0);
    CHECK(kvmsb_exec_result_signal(r) == 0);
    CHECK(!kvmsb_exec_result_timed_out(r));
    CHECK(kvmsb_exec_result_pid(r) > 0);
    out = kvmsb_exec_result_stderr(r, &len);
    CHECK(out == NULL && len == 0);
    kvmsb_exec_result_free(r);

    const char *sh_env[] = {"/bin/sh", "-c", "echo \"$GREETING\" >&2; exit 7"};
    const char *env[] = {"GREETING=hi there", "PATH=/bin:/usr/bin"};
    r = run(sb, sh_env, 3, env, 2, NULL, NULL, 10000);
    CHECK(kvmsb_exec_result_exit_code(r) == 7);
    out = kvmsb_exec_result_stderr(r, &len);
    CHECK_BYTES(out, len, "hi there\n");
    kvmsb_exec_result_free(r);

    const char *cat[] = {"/bin/cat"};
    r = run(sb, cat, 1, NULL, 0, NULL, "stdin goes through", 10000);
    out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "stdin goes through");
    kvmsb_exec_result_free(r);

    const char *pwd[] = {"/bin/pwd"};
    r = run(sb, pwd, 1, NULL, 0, "/tmp", NULL, 10000);
    out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "/tmp\n");
    kvmsb_exec_result_free(r);
    PASS("exec: stdout, stderr, exit code, env, stdin, cwd");
}

static void exec_endings(const kvmsb_sandbox *sb) {
    const char *killself[] = {"/bin/sh", "-c", "kill -9 $$"};
    kvmsb_exec_result *r = run(sb, killself, 3, NULL, 0, NULL, NULL, 10000);
    CHECK(kvmsb_exec_result_signal(r) == 9);
    CHECK(kvmsb_exec_result_exit_code(r) == -1);
    kvmsb_exec_result_free(r);

    const char *slow[] = {"/bin/sleep", "10"};
    r = run(sb, slow, 2, NULL, 0, NULL, NULL, 300);
    CHECK(kvmsb_exec_result_timed_out(r));
    CHECK(kvmsb_exec_result_exit_code(r) != 0);
    kvmsb_exec_result_free(r);
    PASS("exec: killed by a signal, timed out");
}

static void exec_errors(const kvmsb_sandbox *sb) {
    kvmsb_exec_result *r = NULL;
    const char *bad[] = {"/bin/echo", NULL};
    CHECK_STATUS(kvmsb_sandbox_exec(sb, bad, 2, NULL, 0, NULL, NULL, 0, 0, &r), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("`argv[1]` is NULL");
    CHECK_STATUS(kvmsb_sandbox_exec(sb, bad, 0, NULL, 0, NULL, NULL, 0, 0, &r), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("argc is 0");
    CHECK_STATUS(kvmsb_sandbox_exec(sb, NULL, 1, NULL, 0, NULL, NULL, 0, 0, &r), KVMSB_STATUS_NULL_ARGUMENT);
    const char *ok[] = {"/bin/true"};
    const char *noeq[] = {"JUSTAKEY"};
    CHECK_STATUS(kvmsb_sandbox_exec(sb, ok, 1, noeq, 1, NULL, NULL, 0, 0, &r), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("JUSTAKEY");
    const char *bad_utf8[] = {"/bin/echo", "\xc3\x28"};
    CHECK_STATUS(kvmsb_sandbox_exec(sb, bad_utf8, 2, NULL, 0, NULL, NULL, 0, 0, &r), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("UTF-8");
    CHECK_STATUS(kvmsb_sandbox_exec(sb, ok, 1, NULL, 0, NULL, NULL, 0, 0, NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_exec(sb, ok, 1, NULL, 0, NULL, NULL, 5, 0, &r), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK(r == NULL);

    const char *missing[] = {"/nonexistent/program"};
    kvmsb_status s = kvmsb_sandbox_exec(sb, missing, 1, NULL, 0, NULL, NULL, 0, 0, &r);
    CHECK(s == KVMSB_STATUS_NOT_FOUND);
    CHECK_ERROR_MENTIONS("/nonexistent/program");
    PASS("exec errors: NULL/empty argv, bad env, bad UTF-8, missing program");
}

static void files(const kvmsb_sandbox *sb) {
    char dir[] = "/tmp/kvmsb-c-test-files-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/data.bin", dir);

    unsigned char data[300000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i % 251);
    uint64_t written = 0;
    CHECK_OK(kvmsb_sandbox_write_file(sb, path, data, sizeof data, 0600, &written));
    CHECK(written == sizeof data);

    kvmsb_bytes b = {0};
    CHECK_OK(kvmsb_sandbox_read_file(sb, path, &b));
    CHECK(b.len == sizeof data && memcmp(b.data, data, sizeof data) == 0);
    kvmsb_bytes_free(&b);

    CHECK_OK(kvmsb_sandbox_write_file(sb, path, NULL, 0, 0600, NULL));
    CHECK_OK(kvmsb_sandbox_read_file(sb, path, &b));
    CHECK(b.len == 0 && b.data == NULL);

    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    CHECK_STATUS(kvmsb_sandbox_read_file(sb, missing, &b), KVMSB_STATUS_NOT_FOUND);
    CHECK_ERROR_MENTIONS("missing");
    CHECK_STATUS(kvmsb_sandbox_read_file(sb, NULL, &b), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_write_file(sb, path, NULL, 3, 0600, NULL), KVMSB_STATUS_NULL_ARGUMENT);

    unlink(path);
    rmdir(dir);
    PASS("write_file / read_file round trip (300 kB, empty), NOT_FOUND");
}

static void refused(const kvmsb_sandbox *sb) {
    kvmsb_wasm_result *r = NULL;
    CHECK_STATUS(kvmsb_sandbox_run_wasm(sb, kvmsb_example_hello_wasm, sizeof kvmsb_example_hello_wasm, NULL, 0, NULL,
                                        0, NULL, 0, 0, 0, &r),
                 KVMSB_STATUS_UNSUPPORTED);
    CHECK(r == NULL);
    int fd = -1;
    CHECK_STATUS(kvmsb_sandbox_connect(sb, 1025, &fd), KVMSB_STATUS_UNSUPPORTED);
    kvmsb_timings t;
    CHECK_OK(kvmsb_sandbox_timings(sb, &t));
    CHECK(t.vm_created_ns == 0 && t.agent_ready_ns == 0);
    PASS("run_wasm / connect on a host agent give UNSUPPORTED; timings are zero");
}

int main(void) {
    const char *sock = getenv("KVMSB_AGENT_SOCK");
    if (sock == NULL) FAIL("set KVMSB_AGENT_SOCK to the socket of `kvmsandbox-agent --unix PATH`");
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_sandbox_attach_host_agent(sock, 10000, &sb));
    uint64_t rtt = 0;
    CHECK_OK(kvmsb_sandbox_ping(sb, &rtt));
    CHECK(rtt > 0);
    PASS("attached to the host agent");

    exec_basics(sb);
    exec_endings(sb);
    exec_errors(sb);
    files(sb);
    refused(sb);
    kvmsb_sandbox_free(sb);
    return 0;
}
