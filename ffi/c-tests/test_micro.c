/* A real micro guest through the C API: start, ping from two threads, timings,
 * WASM (exit, trap, args/env), the echo port through a raw fd, disk I/O
 * through the agent checked against the image file, and the operations a
 * micro guest refuses. Needs /dev/kvm. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "args_env_wasm.h"
#include "check.h"
#include "hello_wasm.h"
#include "trap_wasm.h"

#define DISK_SIZE (1024 * 1024)

static void *ping_thread(void *arg) {
    const kvmsb_sandbox *sb = arg;
    for (int i = 0; i < 5; i++) {
        uint64_t rtt = 0;
        CHECK_OK(kvmsb_sandbox_ping(sb, &rtt));
        CHECK(rtt > 0);
    }
    return NULL;
}

static void ping_and_timings(const kvmsb_sandbox *sb) {
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, ping_thread, (void *)sb) == 0);
    CHECK(pthread_create(&b, NULL, ping_thread, (void *)sb) == 0);
    CHECK(pthread_join(a, NULL) == 0 && pthread_join(b, NULL) == 0);
    CHECK_OK(kvmsb_sandbox_ping(sb, NULL));

    kvmsb_timings t;
    memset(&t, 0xff, sizeof t);
    CHECK_OK(kvmsb_sandbox_timings(sb, &t));
    CHECK(t.vm_created_ns > 0);
    CHECK(t.first_vcpu_entry_ns >= t.vm_created_ns);
    CHECK(t.agent_ready_ns >= t.first_vcpu_entry_ns);
    kvmsb_bytes console = {0};
    CHECK_OK(kvmsb_sandbox_console_output(sb, &console));
    CHECK(console.len > 0 && console.data != NULL);
    kvmsb_bytes_free(&console);
    PASS("ping from two threads, timings, console");
}

/* Runs `module` in the guest; any status but OK fails the test. */
static void run(const kvmsb_sandbox *sb, const unsigned char *module, size_t len, const char **args, size_t argc,
                const char **env, size_t envc, kvmsb_wasm_result **r) {
    kvmsb_status s = kvmsb_sandbox_run_wasm(sb, module, len, args, argc, env, envc, NULL, 0, 0, 60000, r);
    if (s != KVMSB_STATUS_OK) FAIL("run_wasm returned %s", kvmsb_status_name((int32_t)s));
}

static void wasm(const kvmsb_sandbox *sb) {
    kvmsb_wasm_result *r = NULL;
    /* Argument checks happen before anything reaches the guest. */
    CHECK_STATUS(kvmsb_sandbox_run_wasm(sb, NULL, 10, NULL, 0, NULL, 0, NULL, 0, 0, 0, &r), KVMSB_STATUS_NULL_ARGUMENT);
    const char *bad_args[] = {"prog", NULL};
    CHECK_STATUS(kvmsb_sandbox_run_wasm(sb, kvmsb_example_hello_wasm, sizeof kvmsb_example_hello_wasm, bad_args, 2,
                                        NULL, 0, NULL, 0, 0, 0, &r),
                 KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("args[1]");
    CHECK(r == NULL);

    run(sb, kvmsb_example_hello_wasm, sizeof kvmsb_example_hello_wasm, NULL, 0, NULL, 0, &r);
    size_t len = 0;
    const uint8_t *out = kvmsb_wasm_result_stdout(r, &len);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT);
    CHECK(kvmsb_wasm_result_exit_code(r) == 0);
    CHECK_BYTES(out, len, "hello, world\n");
    kvmsb_wasm_result_free(r);

    run(sb, kvmsb_test_trap_wasm, sizeof kvmsb_test_trap_wasm, NULL, 0, NULL, 0, &r);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_TRAP);
    CHECK(kvmsb_wasm_result_exit_code(r) == -1);
    CHECK(strlen(kvmsb_wasm_result_message(r)) > 0);
    out = kvmsb_wasm_result_stderr(r, &len);
    CHECK_BYTES(out, len, "before\n");
    kvmsb_wasm_result_free(r);

    const char *args[] = {"prog", "first arg"};
    const char *env[] = {"KEY=value=with=equals"};
    run(sb, kvmsb_test_args_env_wasm, sizeof kvmsb_test_args_env_wasm, args, 2, env, 1, &r);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT);
    out = kvmsb_wasm_result_stdout(r, &len);
    CHECK_BYTES(out, len, "prog\nfirst arg\nKEY=value=with=equals\n");
    kvmsb_wasm_result_free(r);

    const unsigned char garbage[] = {0, 'a', 's', 'm', 9, 9, 9, 9};
    run(sb, garbage, sizeof garbage, NULL, 0, NULL, 0, &r);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_ERROR);
    CHECK(strlen(kvmsb_wasm_result_message(r)) > 0);
    kvmsb_wasm_result_free(r);
    PASS("run_wasm: exit + stdout, trap + stderr, args/env, invalid module");
}

static void echo_port(const kvmsb_sandbox *sb) {
    int fd = -1;
    CHECK_OK(kvmsb_sandbox_connect(sb, 1025, &fd));
    CHECK(fd >= 0);
    const char msg[] = "bytes through the guest and back";
    CHECK(write(fd, msg, sizeof msg) == (ssize_t)sizeof msg);
    char buf[sizeof msg];
    size_t got = 0;
    while (got < sizeof msg) {
        ssize_t n = read(fd, buf + got, sizeof msg - got);
        if (n <= 0) FAIL("read from the echo port returned %zd (errno %d)", n, errno);
        got += (size_t)n;
    }
    CHECK(memcmp(buf, msg, sizeof msg) == 0);
    CHECK(close(fd) == 0);
    PASS("connect to the echo port: the fd echoes bytes");
}

static void disk(const kvmsb_sandbox *sb, const char *image) {
    unsigned char pattern[1024];
    for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (unsigned char)(i * 7 + 3);
    CHECK_OK(kvmsb_sandbox_disk_write(sb, 0, 8192, pattern, sizeof pattern));
    CHECK_OK(kvmsb_sandbox_disk_flush(sb, 0));

    kvmsb_bytes b = {0};
    CHECK_OK(kvmsb_sandbox_disk_read(sb, 0, 8192, sizeof pattern, &b));
    CHECK(b.len == sizeof pattern && memcmp(b.data, pattern, sizeof pattern) == 0);
    kvmsb_bytes_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    CHECK_OK(kvmsb_sandbox_disk_read(sb, 0, DISK_SIZE - 512, 512, &b));
    CHECK(b.len == 512 && b.data[0] == 0 && b.data[511] == 0);
    kvmsb_bytes_free(&b);

    /* The flushed bytes are in the host image file. */
    int fd = open(image, O_RDONLY);
    CHECK(fd >= 0);
    unsigned char host[sizeof pattern];
    CHECK(pread(fd, host, sizeof host, 8192) == (ssize_t)sizeof host);
    CHECK(memcmp(host, pattern, sizeof pattern) == 0);
    close(fd);

    CHECK_STATUS(kvmsb_sandbox_disk_read(sb, 7, 0, 512, &b), KVMSB_STATUS_NOT_FOUND);
    CHECK_ERROR_MENTIONS("disk 7");
    CHECK_STATUS(kvmsb_sandbox_disk_read(sb, 0, DISK_SIZE, 512, &b), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_disk_write(sb, 0, 0, NULL, 512), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK(b.data == NULL);
    PASS("disk write/flush/read through the agent, checked in the image file");
}

static void refused(const kvmsb_sandbox *sb) {
    const char *argv[] = {"/bin/true"};
    kvmsb_exec_result *r = NULL;
    CHECK_STATUS(kvmsb_sandbox_exec(sb, argv, 1, NULL, 0, NULL, NULL, 0, 0, &r), KVMSB_STATUS_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("exec");
    CHECK_ERROR_MENTIONS("micro guest");
    CHECK(r == NULL);
    const char *bad[] = {"/bin/echo", NULL};
    CHECK_STATUS(kvmsb_sandbox_exec(sb, bad, 2, NULL, 0, NULL, NULL, 0, 0, &r), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("argv[1]");
    CHECK_STATUS(kvmsb_sandbox_write_file(sb, "/x", (const uint8_t *)"x", 1, 0644, NULL), KVMSB_STATUS_UNSUPPORTED);
    kvmsb_bytes b = {0};
    CHECK_STATUS(kvmsb_sandbox_read_file(sb, "/x", &b), KVMSB_STATUS_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("read_file");
    PASS("exec and files on a micro guest give UNSUPPORTED; bad argv gives INVALID_ARGUMENT");
}

int main(void) {
    /* run.sh points KVMSB_TEST_TMP at a directory it removes, even if we fail. */
    const char *tmp = getenv("KVMSB_TEST_TMP");
    char image[512];
    snprintf(image, sizeof image, "%s/kvmsb-c-test-disk-XXXXXX", tmp ? tmp : "/tmp");
    int fd = mkstemp(image);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, DISK_SIZE) == 0);
    close(fd);

    kvmsb_config *cfg = kvmsb_config_new();
    CHECK_OK(kvmsb_config_add_disk(cfg, image, false));
    CHECK_OK(kvmsb_config_set_start_timeout_ms(cfg, 60000));
    /* valgrind cannot run seccomp(2): run.sh sets this when running us under it. */
    const char *seccomp = getenv("KVMSB_SECCOMP");
    if (seccomp != NULL && strcmp(seccomp, "disabled") == 0) CHECK_OK(kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_DISABLED));
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_sandbox_start(cfg, &sb));
    CHECK(sb != NULL);
    kvmsb_config_free(cfg);
    PASS("micro sandbox started");

    ping_and_timings(sb);
    wasm(sb);
    echo_port(sb);
    disk(sb, image);
    refused(sb);

    CHECK_OK(kvmsb_sandbox_shutdown(sb));
    CHECK(kvmsb_sandbox_ping(sb, NULL) != KVMSB_STATUS_OK);
    CHECK_OK(kvmsb_sandbox_kill(sb));
    kvmsb_sandbox_free(sb);
    unlink(image);
    PASS("shutdown, then ping fails; free");
    return 0;
}
