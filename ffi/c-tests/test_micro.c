/* A real micro guest through the C API: start, ping from two threads, timings,
 * WASM (exit, trap, args/env), prepared WASM templates, the echo port through a raw fd, disk I/O
 * through the agent checked against the image file, and the operations a
 * micro guest refuses. Needs /dev/kvm. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args_env_wasm.h"
#include "check.h"
#include "files_wasm.h"
#include "hello_wasm.h"
#include "trap_wasm.h"

#define DISK_SIZE (1024 * 1024)

static void *ping_thread(void *arg) {
    const kvmsb_sandbox *sb = arg;
    for (int i = 0; i < 5; i++) {
        uint64_t rtt = 0;
        CHECK_OK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, &rtt));
        CHECK(rtt > 0);
    }
    return NULL;
}

static void ping_and_timings(const kvmsb_sandbox *sb) {
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, ping_thread, (void *)sb) == 0);
    CHECK(pthread_create(&b, NULL, ping_thread, (void *)sb) == 0);
    CHECK(pthread_join(a, NULL) == 0 && pthread_join(b, NULL) == 0);
    CHECK_OK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, NULL));

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
    kvmsb_wasm_options *o = NULL;
    CHECK_OK(kvmsb_wasm_options_new(&o));
    CHECK_OK(kvmsb_wasm_options_set_args(o, args, argc));
    CHECK_OK(kvmsb_wasm_options_set_env(o, env, envc));
    CHECK_OK(kvmsb_wasm_options_set_timeout(o, 60000));
    kvmsb_status s = kvmsb_sandbox_run_wasm_opts(sb, module, len, o, r);
    kvmsb_wasm_options_free(o);
    if (s != KVMSB_STATUS_OK) FAIL("run_wasm_opts returned %s", kvmsb_status_name((int32_t)s));
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

/* A template prepared once runs with each call's own options; a run that
 * traps does not spoil the next; an invalid module fails at prepare. */
static void templates(const kvmsb_sandbox *sb) {
    kvmsb_wasm_template *t = NULL;
    CHECK_STATUS(kvmsb_sandbox_prepare_wasm(sb, NULL, 10, NULL, &t), KVMSB_STATUS_NULL_ARGUMENT);
    const unsigned char garbage[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 9, 9};
    CHECK_STATUS(kvmsb_sandbox_prepare_wasm(sb, garbage, sizeof garbage, NULL, &t), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("InvalidModule");
    CHECK(t == NULL);

    CHECK_OK(kvmsb_sandbox_prepare_wasm(sb, kvmsb_test_args_env_wasm, sizeof kvmsb_test_args_env_wasm, NULL, &t));
    kvmsb_wasm_template *trap = NULL;
    CHECK_OK(kvmsb_sandbox_prepare_wasm(sb, kvmsb_test_trap_wasm, sizeof kvmsb_test_trap_wasm, NULL, &trap));
    for (int i = 0; i < 3; i++) {
        char arg[32], env[32], want[96];
        snprintf(arg, sizeof arg, "run %d", i);
        snprintf(env, sizeof env, "N=%d", i * 11);
        snprintf(want, sizeof want, "prog\n%s\n%s\n", arg, env);
        const char *args[] = {"prog", arg};
        const char *envp[] = {env};
        kvmsb_wasm_options *o = NULL;
        CHECK_OK(kvmsb_wasm_options_new(&o));
        CHECK_OK(kvmsb_wasm_options_set_args(o, args, 2));
        CHECK_OK(kvmsb_wasm_options_set_env(o, envp, 1));
        CHECK_OK(kvmsb_wasm_options_set_timeout(o, 60000));
        kvmsb_wasm_result *r = NULL;
        CHECK_OK(kvmsb_wasm_template_run(t, sb, o, &r));
        kvmsb_wasm_options_free(o);
        CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT);
        size_t len = 0;
        const uint8_t *out = kvmsb_wasm_result_stdout(r, &len);
        CHECK_BYTES(out, len, want);
        kvmsb_wasm_result_free(r);

        CHECK_OK(kvmsb_wasm_template_run(trap, sb, NULL, &r));
        CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_TRAP);
        out = kvmsb_wasm_result_stderr(r, &len);
        CHECK_BYTES(out, len, "before\n");
        kvmsb_wasm_result_free(r);
    }
    kvmsb_wasm_template_free(trap);
    kvmsb_wasm_template_free(t);
    kvmsb_wasm_template_free(NULL);
    PASS("templates: prepare once, runs with their own args/env, a trap does not spoil the next, invalid module");
}

static void write_host_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

/* Files in (a host directory copied in, bytes), files out (as bytes and
 * written to a host directory), a read-only directory refusing writes
 * (files.wat exits with the errno: 69, EROFS), and the copy's byte cap. */
static void wasm_dirs(const kvmsb_sandbox *sb, const char *tmp) {
    char in_dir[512], in_file[600], out_dir[512], copied[600];
    snprintf(in_dir, sizeof in_dir, "%s/kvmsb-c-test-in-%d", tmp, (int)getpid());
    snprintf(in_file, sizeof in_file, "%s/in.txt", in_dir);
    snprintf(out_dir, sizeof out_dir, "%s/kvmsb-c-test-out-%d", tmp, (int)getpid());
    snprintf(copied, sizeof copied, "%s/copy.txt", out_dir);
    CHECK(mkdir(in_dir, 0755) == 0);
    write_host_file(in_file, "from the host\n");

    kvmsb_wasm_options *o = NULL;
    CHECK_OK(kvmsb_wasm_options_new(&o));
    CHECK_OK(kvmsb_wasm_options_set_timeout(o, 60000));
    CHECK_OK(kvmsb_wasm_options_add_dir(o, "/in", in_dir, 1));
    CHECK_OK(kvmsb_wasm_options_add_dir(o, "/out", NULL, 0));
    CHECK_OK(kvmsb_wasm_options_add_file(o, "/out", "keep.txt", (const uint8_t *)"kept", 4));
    CHECK_STATUS(kvmsb_wasm_options_add_dir(o, "/out", NULL, 0), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_wasm_options_add_file(o, "/nope", "f", NULL, 0), KVMSB_STATUS_NOT_FOUND);
    kvmsb_wasm_result *r = NULL;
    CHECK_OK(kvmsb_sandbox_run_wasm_opts(sb, kvmsb_test_files_wasm, sizeof kvmsb_test_files_wasm, o, &r));
    kvmsb_wasm_options_free(o);
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT);
    CHECK(kvmsb_wasm_result_exit_code(r) == 69);
    const uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(kvmsb_wasm_result_file(r, "/out", "copy.txt", &data, &len));
    CHECK_BYTES(data, len, "from the host\n");
    CHECK_OK(kvmsb_wasm_result_file(r, "/out", "keep.txt", &data, &len));
    CHECK_BYTES(data, len, "kept");
    CHECK_STATUS(kvmsb_wasm_result_file(r, "/in", "in.txt", &data, &len), KVMSB_STATUS_NOT_FOUND);
    CHECK_OK(kvmsb_wasm_result_write_dir(r, "/out", out_dir));
    CHECK_STATUS(kvmsb_wasm_result_write_dir(r, "/in", out_dir), KVMSB_STATUS_NOT_FOUND);
    kvmsb_wasm_result_free(r);
    char back[64] = {0};
    int fd = open(copied, O_RDONLY);
    CHECK(fd >= 0);
    CHECK(read(fd, back, sizeof back) == 14);
    close(fd);
    CHECK(strcmp(back, "from the host\n") == 0);

    /* The host copy is bounded by the tree's byte cap. */
    CHECK_OK(kvmsb_wasm_options_new(&o));
    CHECK_OK(kvmsb_wasm_options_set_fs_limits(o, 5, 0));
    CHECK_STATUS(kvmsb_wasm_options_add_dir(o, "/in", in_dir, 1), KVMSB_STATUS_IO);
    CHECK_ERROR_MENTIONS("5 bytes");
    kvmsb_wasm_options_free(o);

    unlink(copied);
    char kept[600];
    snprintf(kept, sizeof kept, "%s/keep.txt", out_dir);
    unlink(kept);
    char made[600];
    snprintf(made, sizeof made, "%s/made", out_dir);
    rmdir(made);
    rmdir(out_dir);
    unlink(in_file);
    rmdir(in_dir);
    PASS("run_wasm with directories: files in and out, read-only EROFS, write back, copy cap");
}

static void echo_port(const kvmsb_sandbox *sb) {
    int fd = -1;
    CHECK_STATUS(kvmsb_sandbox_connect(sb, 1025, 0, &fd), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK(fd == -1);
    CHECK_OK(kvmsb_sandbox_connect(sb, 1025, 5000, &fd));
    CHECK(fd >= 0);
    CHECK(close(fd) == 0);
    fd = -1;
    CHECK_OK(kvmsb_sandbox_connect(sb, 1025, KVMSB_TIMEOUT_DEFAULT, &fd));
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
    PASS("connect to the echo port (a 0 ms timeout refused, 5 s or the default accepted): the fd echoes bytes");
}

static void disk(const kvmsb_sandbox *sb, const char *image) {
    unsigned char pattern[1024];
    for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (unsigned char)(i * 7 + 3);
    CHECK_OK(kvmsb_sandbox_disk_write(sb, 0, 8192, pattern, sizeof pattern, KVMSB_TIMEOUT_DEFAULT));
    CHECK_OK(kvmsb_sandbox_disk_flush(sb, 0, KVMSB_TIMEOUT_DEFAULT));

    kvmsb_bytes b = {0};
    CHECK_OK(kvmsb_sandbox_disk_read(sb, 0, 8192, sizeof pattern, KVMSB_TIMEOUT_DEFAULT, &b));
    CHECK(b.len == sizeof pattern && memcmp(b.data, pattern, sizeof pattern) == 0);
    kvmsb_bytes_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    CHECK_OK(kvmsb_sandbox_disk_read(sb, 0, DISK_SIZE - 512, 512, KVMSB_TIMEOUT_DEFAULT, &b));
    CHECK(b.len == 512 && b.data[0] == 0 && b.data[511] == 0);
    kvmsb_bytes_free(&b);

    /* The flushed bytes are in the host image file. */
    int fd = open(image, O_RDONLY);
    CHECK(fd >= 0);
    unsigned char host[sizeof pattern];
    CHECK(pread(fd, host, sizeof host, 8192) == (ssize_t)sizeof host);
    CHECK(memcmp(host, pattern, sizeof pattern) == 0);
    close(fd);

    CHECK_STATUS(kvmsb_sandbox_disk_read(sb, 7, 0, 512, KVMSB_TIMEOUT_DEFAULT, &b), KVMSB_STATUS_NOT_FOUND);
    CHECK_ERROR_MENTIONS("disk 7");
    CHECK_STATUS(kvmsb_sandbox_disk_read(sb, 0, DISK_SIZE, 512, KVMSB_TIMEOUT_DEFAULT, &b), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_disk_write(sb, 0, 0, NULL, 512, KVMSB_TIMEOUT_DEFAULT), KVMSB_STATUS_NULL_ARGUMENT);
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
    CHECK_STATUS(kvmsb_sandbox_write_file(sb, "/x", (const uint8_t *)"x", 1, 0644, KVMSB_TIMEOUT_DEFAULT, NULL), KVMSB_STATUS_UNSUPPORTED);
    kvmsb_bytes b = {0};
    CHECK_STATUS(kvmsb_sandbox_read_file(sb, "/x", KVMSB_TIMEOUT_DEFAULT, &b), KVMSB_STATUS_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("read_file");
    PASS("exec and files on a micro guest give UNSUPPORTED; bad argv gives INVALID_ARGUMENT");
}

static void collect_wasm(void *user_data, kvmsb_stream stream, const uint8_t *data, size_t len) {
    char *buf = user_data;
    size_t n = strlen(buf);
    CHECK(stream == KVMSB_STREAM_STDOUT && n + len < 256);
    memcpy(buf + n, data, len);
    buf[n + len] = 0;
}

/* (module (func (export "_start") (loop (br 0)))): never ends by itself. */
static const unsigned char forever_wasm[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60,
                                             0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x07, 0x0a, 0x01, 0x06, 0x5f, 0x73,
                                             0x74, 0x61, 0x72, 0x74, 0x00, 0x00, 0x0a, 0x09, 0x01, 0x07, 0x00, 0x03,
                                             0x40, 0x0c, 0x00, 0x0b, 0x0b};

/* Streams output to a callback; then a hanging module with a short timeout ends
 * with KVMSB_STATUS_TIMEOUT within a generous bound (the sandbox is dead after). */
static void wasm_streaming_and_timeout(const kvmsb_sandbox *sb) {
    kvmsb_wasm_options *o = NULL;
    CHECK_OK(kvmsb_wasm_options_new(&o));
    char got[256] = {0};
    CHECK_OK(kvmsb_wasm_options_set_output(o, collect_wasm, got));
    kvmsb_wasm_result *r = NULL;
    CHECK_OK(kvmsb_sandbox_run_wasm_opts(sb, kvmsb_example_hello_wasm, sizeof kvmsb_example_hello_wasm, o, &r));
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT);
    size_t len = 99;
    CHECK(kvmsb_wasm_result_stdout(r, &len) == NULL && len == 0);
    kvmsb_wasm_result_free(r);
    CHECK(strcmp(got, "hello, world\n") == 0);
    PASS("run_wasm_opts: output through the callback");

    CHECK_OK(kvmsb_wasm_options_set_timeout(o, 1000));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_STATUS(kvmsb_sandbox_run_wasm_opts(sb, forever_wasm, sizeof forever_wasm, o, &r), KVMSB_STATUS_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK((t1.tv_sec - t0.tv_sec) < 10);
    kvmsb_wasm_options_free(o);
    PASS("run_wasm_opts: a hanging module times out with TIMEOUT");
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
    wasm_dirs(sb, tmp ? tmp : "/tmp");
    echo_port(sb);
    disk(sb, image);
    templates(sb);
    refused(sb);

    CHECK_OK(kvmsb_sandbox_shutdown(sb));
    CHECK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, NULL) != KVMSB_STATUS_OK);
    CHECK_OK(kvmsb_sandbox_kill(sb));
    kvmsb_sandbox_free(sb);
    unlink(image);
    PASS("shutdown, then ping fails; free");

    /* The timeout stops the VM: a sandbox of its own. */
    cfg = kvmsb_config_new();
    CHECK_OK(kvmsb_config_set_start_timeout_ms(cfg, 60000));
    if (seccomp != NULL && strcmp(seccomp, "disabled") == 0) CHECK_OK(kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_DISABLED));
    CHECK_OK(kvmsb_sandbox_start(cfg, &sb));
    kvmsb_config_free(cfg);
    wasm_streaming_and_timeout(sb);
    kvmsb_sandbox_free(sb);
    return 0;
}
