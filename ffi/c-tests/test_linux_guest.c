/* exec and files through the C API against the REAL Linux guest: our kernel with
 * kvmsandbox-agent as PID 1, booted under QEMU TCG with our virtio-vsock device
 * served over vhost-user (docs/linux-tcg.md). run.sh starts the guest with
 * `kvmsandbox-linux-tcg` and passes its hybrid vsock socket as argv[1]; this
 * attaches with kvmsb_sandbox_attach_vsock, as a user of Firecracker or
 * cloud-hypervisor would. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "check.h"

#define PATH_ENV "PATH=/bin:/sbin:/usr/bin:/usr/sbin"

/* `sh -c script` with PATH set, bounded by `timeout_ms`. */
static kvmsb_exec_result *sh(const kvmsb_sandbox *sb, const char *script, const uint8_t *in, size_t in_len,
                             uint64_t timeout_ms) {
    const char *argv[] = {"sh", "-c", script};
    const char *env[] = {PATH_ENV};
    kvmsb_exec_result *r = NULL;
    CHECK_OK(kvmsb_sandbox_exec(sb, argv, 3, env, 1, NULL, in, in_len, timeout_ms, &r));
    CHECK(r != NULL);
    return r;
}

static void exit_codes_and_output(const kvmsb_sandbox *sb) {
    kvmsb_exec_result *r = sh(sb, "echo out; printf 'e\\000rr' >&2; exit 42", NULL, 0, 60000);
    size_t len = 0;
    const uint8_t *out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "out\n");
    out = kvmsb_exec_result_stderr(r, &len);
    CHECK(len == 4 && memcmp(out, "e\0rr", 4) == 0);
    CHECK(kvmsb_exec_result_exit_code(r) == 42);
    CHECK(kvmsb_exec_result_signal(r) == 0);
    CHECK(!kvmsb_exec_result_timed_out(r));
    CHECK(kvmsb_exec_result_pid(r) > 1);
    kvmsb_exec_result_free(r);

    r = sh(sb, "kill -TERM $$; sleep 5", NULL, 0, 60000);
    CHECK(kvmsb_exec_result_signal(r) == 15);
    CHECK(kvmsb_exec_result_exit_code(r) == -1);
    kvmsb_exec_result_free(r);

    /* The guest's own identity: PID 1 is the agent, the kernel is Linux. */
    r = sh(sb, "cat /proc/1/comm; uname -s", NULL, 0, 60000);
    out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "init\nLinux\n");
    kvmsb_exec_result_free(r);
    PASS("exec in the guest: exit code 42, stdout and binary stderr apart, SIGTERM");
}

static void stdin_round_trip(const kvmsb_sandbox *sb) {
    static uint8_t data[1 << 20];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + (i >> 9));
    const char *cat[] = {"cat"};
    const char *env[] = {PATH_ENV};
    kvmsb_exec_result *r = NULL;
    CHECK_OK(kvmsb_sandbox_exec(sb, cat, 1, env, 1, NULL, data, sizeof data, 60000, &r));
    size_t len = 0;
    const uint8_t *out = kvmsb_exec_result_stdout(r, &len);
    CHECK(len == sizeof data && memcmp(out, data, len) == 0);
    CHECK(kvmsb_exec_result_exit_code(r) == 0);
    kvmsb_exec_result_free(r);
    PASS("1 MiB of binary stdin back through cat");
}

static void files(const kvmsb_sandbox *sb) {
    static uint8_t data[300000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i % 251);
    uint64_t written = 0;
    CHECK_OK(kvmsb_sandbox_write_file(sb, "/tmp/c-test.bin", data, sizeof data, 0640, KVMSB_TIMEOUT_DEFAULT, &written));
    CHECK(written == sizeof data);
    kvmsb_bytes b = {0};
    CHECK_OK(kvmsb_sandbox_read_file(sb, "/tmp/c-test.bin", KVMSB_TIMEOUT_DEFAULT, &b));
    CHECK(b.len == sizeof data && memcmp(b.data, data, sizeof data) == 0);
    kvmsb_bytes_free(&b);

    /* The guest sees the same file, with the mode asked for. */
    kvmsb_exec_result *r = sh(sb, "stat -c '%a %s' /tmp/c-test.bin", NULL, 0, 60000);
    size_t len = 0;
    const uint8_t *out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "640 300000\n");
    kvmsb_exec_result_free(r);

    CHECK_STATUS(kvmsb_sandbox_read_file(sb, "/tmp/no-such-file", KVMSB_TIMEOUT_DEFAULT, &b), KVMSB_STATUS_NOT_FOUND);
    CHECK_ERROR_MENTIONS("/tmp/no-such-file");
    PASS("write_file / read_file round trip (300 kB, mode 640), NOT_FOUND");
}

static void timeout_kills(const kvmsb_sandbox *sb) {
    kvmsb_exec_result *r = sh(sb, "sleep 1000 & sleep 1000", NULL, 0, 1000);
    CHECK(kvmsb_exec_result_timed_out(r));
    CHECK(kvmsb_exec_result_signal(r) != 0);
    kvmsb_exec_result_free(r);
    /* The whole process group went, the background sleeper too. */
    r = sh(sb, "ps -o comm | grep -c '^sleep$' || true", NULL, 0, 60000);
    size_t len = 0;
    const uint8_t *out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "0\n");
    kvmsb_exec_result_free(r);
    PASS("a timeout kills the command and its process group");
}

static void command_not_found(const kvmsb_sandbox *sb) {
    const char *argv[] = {"no-such-command"};
    const char *env[] = {PATH_ENV};
    kvmsb_exec_result *r = NULL;
    CHECK_STATUS(kvmsb_sandbox_exec(sb, argv, 1, env, 1, NULL, NULL, 0, 60000, &r), KVMSB_STATUS_NOT_FOUND);
    CHECK_ERROR_MENTIONS("no-such-command");
    CHECK(r == NULL);
    r = sh(sb, "no-such-command", NULL, 0, 60000);
    CHECK(kvmsb_exec_result_exit_code(r) == 127);
    kvmsb_exec_result_free(r);
    PASS("command not found: NOT_FOUND naming it; 127 from a shell");
}

int main(int argc, char **argv) {
    if (argc != 2) FAIL("usage: %s VSOCK_SOCKET (run.sh passes the path kvmsandbox-linux-tcg prints)", argv[0]);
    kvmsb_sandbox *sb = NULL;
    CHECK_STATUS(kvmsb_sandbox_attach_vsock(NULL, 1000, &sb), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_attach_vsock("/nonexistent/vsock.sock", 1000, &sb), KVMSB_STATUS_AGENT);
    CHECK(sb == NULL);
    CHECK_OK(kvmsb_sandbox_attach_vsock(argv[1], 60000, &sb));
    uint64_t rtt = 0;
    CHECK_OK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, &rtt));
    CHECK(rtt > 0);
    PASS("attached to the Linux guest's agent through the hybrid vsock socket");

    exit_codes_and_output(sb);
    stdin_round_trip(sb);
    files(sb);
    timeout_kills(sb);
    command_not_found(sb);
    kvmsb_sandbox_free(sb);
    return 0;
}
