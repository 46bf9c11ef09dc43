/* exec and files through the C API against the Linux agent running as a host
 * process (KVMSB_AGENT_SOCK names its socket; run.sh starts it). Linux user
 * space cannot run in a guest on the PVM test machines, so this is where the
 * Linux-guest operations are exercised end to end. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
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
    CHECK_OK(kvmsb_sandbox_write_file(sb, path, data, sizeof data, 0600, KVMSB_TIMEOUT_DEFAULT, &written));
    CHECK(written == sizeof data);

    kvmsb_bytes b = {0};
    CHECK_OK(kvmsb_sandbox_read_file(sb, path, KVMSB_TIMEOUT_DEFAULT, &b));
    CHECK(b.len == sizeof data && memcmp(b.data, data, sizeof data) == 0);
    kvmsb_bytes_free(&b);

    CHECK_OK(kvmsb_sandbox_write_file(sb, path, NULL, 0, 0600, KVMSB_TIMEOUT_DEFAULT, NULL));
    CHECK_OK(kvmsb_sandbox_read_file(sb, path, KVMSB_TIMEOUT_DEFAULT, &b));
    CHECK(b.len == 0 && b.data == NULL);

    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    CHECK_STATUS(kvmsb_sandbox_read_file(sb, missing, KVMSB_TIMEOUT_DEFAULT, &b), KVMSB_STATUS_NOT_FOUND);
    CHECK_ERROR_MENTIONS("missing");
    CHECK_STATUS(kvmsb_sandbox_read_file(sb, NULL, KVMSB_TIMEOUT_DEFAULT, &b), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_write_file(sb, path, NULL, 3, 0600, KVMSB_TIMEOUT_DEFAULT, NULL), KVMSB_STATUS_NULL_ARGUMENT);

    unlink(path);
    rmdir(dir);
    PASS("write_file / read_file round trip (300 kB, empty), NOT_FOUND");
}

static const kvmsb_file_info *entry_named(const kvmsb_file_list *l, const char *name, kvmsb_file_info *slot) {
    for (size_t i = 0; i < kvmsb_file_list_len(l); i++) {
        CHECK_OK(kvmsb_file_list_get(l, i, slot));
        if (strcmp(slot->name, name) == 0) return slot;
    }
    return NULL;
}

static void files_api(const kvmsb_sandbox *sb) {
    char dir[] = "/tmp/kvmsb-c-test-fsapi-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[300], src[300], dst[300], moved[300], local[] = "/tmp/kvmsb-c-test-local-XXXXXX";
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    CHECK_OK(kvmsb_sandbox_make_dir(sb, sub, 0750, true, 10000));
    CHECK_STATUS(kvmsb_sandbox_make_dir(sb, sub, 0750, false, KVMSB_TIMEOUT_DEFAULT), KVMSB_STATUS_ALREADY_EXISTS);

    /* Upload 3 MB from a descriptor, download it into another one. */
    int fd = mkstemp(local);
    CHECK(fd >= 0);
    static unsigned char big[3 << 20];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 7 % 253);
    CHECK(write(fd, big, sizeof big) == (ssize_t)sizeof big);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    snprintf(src, sizeof src, "%s/a/big.bin", dir);
    uint64_t n = 0;
    CHECK_OK(kvmsb_sandbox_upload_fd(sb, src, fd, 0640, KVMSB_TIMEOUT_DEFAULT, &n));
    CHECK(n == sizeof big);
    CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
    CHECK_OK(kvmsb_sandbox_download_fd(sb, src, fd, 10000, &n));
    CHECK(n == sizeof big);
    static unsigned char back[3 << 20];
    CHECK(pread(fd, back, sizeof back, 0) == (ssize_t)sizeof back);
    CHECK(memcmp(back, big, sizeof big) == 0);
    close(fd);
    unlink(local);
    CHECK_STATUS(kvmsb_sandbox_upload_fd(sb, src, -1, 0640, KVMSB_TIMEOUT_DEFAULT, NULL), KVMSB_STATUS_INVALID_ARGUMENT);

    kvmsb_file_list *l = NULL;
    kvmsb_file_info info;
    CHECK_OK(kvmsb_sandbox_stat(sb, src, true, KVMSB_TIMEOUT_NONE, &l));
    CHECK(kvmsb_file_list_len(l) == 1);
    CHECK_OK(kvmsb_file_list_get(l, 0, &info));
    CHECK(strcmp(info.name, "big.bin") == 0 && info.kind == KVMSB_FILE_KIND_FILE);
    CHECK(info.size == sizeof big && info.mode == 0640 && info.mtime_sec > 1600000000);
    CHECK(info.link_target == NULL);
    CHECK_STATUS(kvmsb_file_list_get(l, 1, &info), KVMSB_STATUS_INVALID_ARGUMENT);
    kvmsb_file_list_free(l);

    snprintf(dst, sizeof dst, "%s/a/link", dir);
    CHECK(symlink("big.bin", dst) == 0);
    snprintf(moved, sizeof moved, "%s/a/moved.bin", dir);
    CHECK_OK(kvmsb_sandbox_rename(sb, src, moved, KVMSB_TIMEOUT_DEFAULT));
    snprintf(sub, sizeof sub, "%s/a", dir);
    CHECK_OK(kvmsb_sandbox_list_dir(sb, sub, 10000, &l));
    CHECK(kvmsb_file_list_len(l) == 3);
    const kvmsb_file_info *e = entry_named(l, "moved.bin", &info);
    CHECK(e != NULL && e->kind == KVMSB_FILE_KIND_FILE && e->size == sizeof big);
    e = entry_named(l, "link", &info);
    CHECK(e != NULL && e->kind == KVMSB_FILE_KIND_SYMLINK && strcmp(e->link_target, "big.bin") == 0);
    e = entry_named(l, "b", &info);
    CHECK(e != NULL && e->kind == KVMSB_FILE_KIND_DIR && e->mode == 0750);
    kvmsb_file_list_free(l);
    kvmsb_file_list_free(NULL);

    CHECK_STATUS(kvmsb_sandbox_stat(sb, src, false, KVMSB_TIMEOUT_DEFAULT, &l), KVMSB_STATUS_NOT_FOUND);
    CHECK_ERROR_MENTIONS("big.bin");
    CHECK_STATUS(kvmsb_sandbox_remove(sb, sub, false, KVMSB_TIMEOUT_DEFAULT), KVMSB_STATUS_IO);
    CHECK_OK(kvmsb_sandbox_remove(sb, sub, true, 10000));
    CHECK(access(sub, F_OK) != 0);
    CHECK_OK(kvmsb_sandbox_remove(sb, dir, false, KVMSB_TIMEOUT_DEFAULT));
    PASS("files API: make_dir, upload_fd/download_fd (3 MB), stat, list_dir, rename, remove");
}

/* The agent process (KVMSB_AGENT_PID), stopped while the files timeouts run;
 * continued at exit too, so a failed check never leaves it stopped. */
static pid_t stopped_agent = 0;

static void continue_agent(void) {
    if (stopped_agent > 0) kill(stopped_agent, SIGCONT);
}

static double now_sec(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* kill(SIGSTOP) returns before the target stops: wait (bounded) until every
 * thread of `pid` is in state T, so none answers a request sent next. */
static void wait_until_stopped(pid_t pid) {
    char dir_path[64];
    snprintf(dir_path, sizeof dir_path, "/proc/%d/task", (int)pid);
    for (int tries = 0; tries < 3000; tries++) {
        DIR *d = opendir(dir_path);
        CHECK(d != NULL);
        bool all = true;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char stat_path[384], buf[512];
            snprintf(stat_path, sizeof stat_path, "%s/%s/stat", dir_path, e->d_name);
            FILE *f = fopen(stat_path, "r");
            if (f == NULL) continue; /* the thread just ended */
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            const char *close_paren = strrchr(buf, ')'); /* "pid (comm) S ..." */
            if (close_paren == NULL || close_paren[1] != ' ' || close_paren[2] != 'T') all = false;
        }
        closedir(d);
        if (all) return;
        usleep(10 * 1000);
    }
    FAIL("the agent (pid %d) did not stop within 30 s of SIGSTOP", (int)pid);
}

/* Every files call ends with KVMSB_STATUS_TIMEOUT after its own `timeout_ms`
 * when the agent stops answering (SIGSTOP), well before the 10 s default; `0`
 * is refused. */
static void files_timeouts(const kvmsb_sandbox *sb) {
    CHECK_STATUS(kvmsb_sandbox_stat(sb, "/tmp", true, 0, NULL), KVMSB_STATUS_NULL_ARGUMENT);
    kvmsb_file_list *l = NULL;
    CHECK_STATUS(kvmsb_sandbox_stat(sb, "/tmp", true, 0, &l), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("timeout_ms");
    CHECK_STATUS(kvmsb_sandbox_list_dir(sb, "/tmp", 0, &l), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_make_dir(sb, "/tmp", 0755, true, 0), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_remove(sb, "/nonexistent", false, 0), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_rename(sb, "/nonexistent", "/nonexistent2", 0), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_upload_fd(sb, "/nonexistent", 0, 0600, 0, NULL), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_download_fd(sb, "/nonexistent", 1, 0, NULL), KVMSB_STATUS_INVALID_ARGUMENT);
    kvmsb_bytes bytes = {0};
    CHECK_STATUS(kvmsb_sandbox_ping(sb, 0, NULL), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_read_file(sb, "/nonexistent", 0, &bytes), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_write_file(sb, "/nonexistent", NULL, 0, 0600, 0, NULL), KVMSB_STATUS_INVALID_ARGUMENT);

    const char *pid_text = getenv("KVMSB_AGENT_PID");
    if (pid_text == NULL) FAIL("set KVMSB_AGENT_PID to the pid of `kvmsandbox-agent --unix PATH`");
    char local[] = "/tmp/kvmsb-c-test-timeout-XXXXXX";
    int fd = mkstemp(local);
    CHECK(fd >= 0);
    CHECK(write(fd, "some bytes", 10) == 10);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    char guest_dir[] = "/tmp/kvmsb-c-test-timeout-dir-XXXXXX";
    CHECK(mkdtemp(guest_dir) != NULL);

    stopped_agent = (pid_t)atol(pid_text);
    CHECK(stopped_agent > 0);
    atexit(continue_agent);
    CHECK(kill(stopped_agent, SIGSTOP) == 0);
    wait_until_stopped(stopped_agent);
    /* The stopped agent still holds these requests and runs them once it is
     * continued: the changing ones name paths under a directory that does not
     * exist, so they fail then without touching anything. */
#define NOWHERE "/nonexistent-kvmsb-c-test"
    const uint64_t t = 300;
    for (int call = 0; call < 10; call++) {
        double start = now_sec();
        kvmsb_status s = KVMSB_STATUS_OK;
        switch (call) {
        case 0: s = kvmsb_sandbox_stat(sb, guest_dir, true, t, &l); break;
        case 1: s = kvmsb_sandbox_list_dir(sb, guest_dir, t, &l); break;
        case 2: s = kvmsb_sandbox_make_dir(sb, NOWHERE "/d", 0755, false, t); break;
        case 3: s = kvmsb_sandbox_remove(sb, NOWHERE "/f", false, t); break;
        case 4: s = kvmsb_sandbox_rename(sb, NOWHERE "/a", NOWHERE "/b", t); break;
        case 5: s = kvmsb_sandbox_upload_fd(sb, NOWHERE "/f", fd, 0600, t, NULL); break;
        case 6: s = kvmsb_sandbox_download_fd(sb, local, fd, t, NULL); break;
        case 7: s = kvmsb_sandbox_ping(sb, t, NULL); break;
        case 8: s = kvmsb_sandbox_read_file(sb, local, t, &bytes); break;
        default: s = kvmsb_sandbox_write_file(sb, NOWHERE "/w", (const uint8_t *)"x", 1, 0600, t, NULL); break;
        }
        double took = now_sec() - start;
        if (s != KVMSB_STATUS_TIMEOUT)
            FAIL("files call %d returned %s, wanted KVMSB_STATUS_TIMEOUT", call, kvmsb_status_name((int32_t)s));
        /* Generous, yet below the 10 s default: the call's own timeout ended it. */
        if (took >= 5.0) FAIL("files call %d took %.1f s with a 300 ms timeout", call, took);
    }
    CHECK(kill(stopped_agent, SIGCONT) == 0);
    stopped_agent = 0;

    /* Answering again, the same sandbox works (a timed-out connection is dropped). */
    CHECK_OK(kvmsb_sandbox_stat(sb, guest_dir, true, t * 10, &l));
    kvmsb_file_list_free(l);
    close(fd);
    unlink(local);
    CHECK_OK(kvmsb_sandbox_remove(sb, guest_dir, true, KVMSB_TIMEOUT_DEFAULT));
    PASS("per-call timeouts: 0 refused; 300 ms ends each of the 7 files calls, ping, read_file and write_file on a stopped agent");
}

static void refused(const kvmsb_sandbox *sb) {
    kvmsb_wasm_result *r = NULL;
    CHECK_STATUS(kvmsb_sandbox_run_wasm(sb, kvmsb_example_hello_wasm, sizeof kvmsb_example_hello_wasm, NULL, 0, NULL,
                                        0, NULL, 0, 0, 0, &r),
                 KVMSB_STATUS_UNSUPPORTED);
    CHECK(r == NULL);
    int fd = -1;
    CHECK_STATUS(kvmsb_sandbox_connect(sb, 1025, KVMSB_TIMEOUT_DEFAULT, &fd), KVMSB_STATUS_UNSUPPORTED);
    kvmsb_timings t;
    CHECK_OK(kvmsb_sandbox_timings(sb, &t));
    CHECK(t.vm_created_ns == 0 && t.agent_ready_ns == 0);
    PASS("run_wasm / connect on a host agent give UNSUPPORTED; timings are zero");
}

/* The options handle: every setter, reuse for two commands, NULL = defaults. */
static void exec_options(const kvmsb_sandbox *sb) {
    kvmsb_exec_options *o = NULL;
    CHECK_OK(kvmsb_exec_options_new(&o));
    const char *env[] = {"GREETING=from options", "PATH=/bin:/usr/bin"};
    CHECK_OK(kvmsb_exec_options_set_env(o, env, 2));
    CHECK_OK(kvmsb_exec_options_set_cwd(o, "/tmp"));
    const char *in = "piped in";
    CHECK_OK(kvmsb_exec_options_set_stdin(o, (const uint8_t *)in, strlen(in)));
    CHECK_OK(kvmsb_exec_options_set_timeout(o, 10000));
    CHECK_STATUS(kvmsb_exec_options_set_timeout(o, 0), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("KVMSB_TIMEOUT_DEFAULT");

    const char *sh[] = {"/bin/sh", "-c", "echo \"$GREETING\" \"$(pwd)\" \"$(cat)\""};
    for (int i = 0; i < 2; i++) {
        kvmsb_exec_result *r = NULL;
        CHECK_OK(kvmsb_sandbox_exec_opts(sb, sh, 3, o, &r));
        size_t len = 0;
        const uint8_t *out = kvmsb_exec_result_stdout(r, &len);
        CHECK_BYTES(out, len, "from options /tmp piped in\n");
        kvmsb_exec_result_free(r);
    }

    /* A short timeout ends a hanging command within the bound, as a result. */
    CHECK_OK(kvmsb_exec_options_set_timeout(o, 300));
    CHECK_OK(kvmsb_exec_options_set_stdin(o, NULL, 0));
    const char *slow[] = {"/bin/sleep", "30"};
    kvmsb_exec_result *r = NULL;
    CHECK_OK(kvmsb_sandbox_exec_opts(sb, slow, 2, o, &r));
    CHECK(kvmsb_exec_result_timed_out(r));
    kvmsb_exec_result_free(r);
    kvmsb_exec_options_free(o);

    /* NULL options: empty environment, no stdin. */
    const char *envcount[] = {"/bin/sh", "-c", "env | grep -vc '^PWD=\\|^SHLVL=\\|^_=' ; cat"};
    r = NULL;
    CHECK_OK(kvmsb_sandbox_exec_opts(sb, envcount, 3, NULL, &r));
    size_t len = 0;
    const uint8_t *out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "0\n");
    kvmsb_exec_result_free(r);
    CHECK_STATUS(kvmsb_sandbox_exec_opts(sb, envcount, 0, NULL, &r), KVMSB_STATUS_INVALID_ARGUMENT);
    PASS("exec options: env, cwd, stdin, timeout, reuse, NULL = defaults");
}

/* Output callback: collects what arrives, per stream, with the user data given. */
typedef struct {
    char out[4096];
    size_t out_len;
    char err[4096];
    size_t err_len;
    int calls;
} collected;

static void collect(void *user_data, kvmsb_stream stream, const uint8_t *data, size_t len) {
    collected *c = user_data;
    char *buf = stream == KVMSB_STREAM_STDOUT ? c->out : c->err;
    size_t *n = stream == KVMSB_STREAM_STDOUT ? &c->out_len : &c->err_len;
    CHECK(*n + len < sizeof c->out);
    memcpy(buf + *n, data, len);
    *n += len;
    c->calls++;
}

static void exec_streaming(const kvmsb_sandbox *sb) {
    kvmsb_exec_options *o = NULL;
    CHECK_OK(kvmsb_exec_options_new(&o));
    collected c = {0};
    CHECK_OK(kvmsb_exec_options_set_output(o, collect, &c));
    const char *sh[] = {"/bin/sh", "-c", "echo one; sleep 0.1; echo two >&2; echo three"};
    kvmsb_exec_result *r = NULL;
    CHECK_OK(kvmsb_sandbox_exec_opts(sb, sh, 3, o, &r));
    CHECK(kvmsb_exec_result_exit_code(r) == 0);
    size_t len = 99;
    CHECK(kvmsb_exec_result_stdout(r, &len) == NULL && len == 0); /* went to the callback */
    kvmsb_exec_result_free(r);
    CHECK_BYTES((const uint8_t *)c.out, c.out_len, "one\nthree\n");
    CHECK_BYTES((const uint8_t *)c.err, c.err_len, "two\n");
    CHECK(c.calls >= 2);

    /* Interactive stdin: write, read the answer through the callback, close. */
    memset(&c, 0, sizeof c);
    const char *cat[] = {"/bin/cat"};
    kvmsb_process *p = NULL;
    CHECK_OK(kvmsb_sandbox_spawn(sb, cat, 1, o, &p));
    CHECK(kvmsb_process_pid(p) > 0);
    CHECK_OK(kvmsb_process_write_stdin(p, (const uint8_t *)"typed ", 6));
    CHECK_OK(kvmsb_process_write_stdin(p, (const uint8_t *)"in\n", 3));
    CHECK_OK(kvmsb_process_close_stdin(p));
    CHECK_OK(kvmsb_process_close_stdin(p)); /* idempotent */
    CHECK_STATUS(kvmsb_process_write_stdin(p, (const uint8_t *)"x", 1), KVMSB_STATUS_IO);
    r = NULL;
    CHECK_OK(kvmsb_process_wait(p, &r));
    CHECK(kvmsb_exec_result_exit_code(r) == 0);
    kvmsb_exec_result_free(r);
    CHECK_STATUS(kvmsb_process_wait(p, &r), KVMSB_STATUS_INVALID_ARGUMENT);
    kvmsb_process_free(p);
    CHECK_BYTES((const uint8_t *)c.out, c.out_len, "typed in\n");

    /* kill from the C side; the result says so. Collected output without a callback. */
    CHECK_OK(kvmsb_exec_options_set_output(o, NULL, NULL));
    const char *slow[] = {"/bin/sh", "-c", "echo started; exec sleep 30"};
    CHECK_OK(kvmsb_sandbox_spawn(sb, slow, 3, o, &p));
    CHECK_OK(kvmsb_process_kill(p, 9));
    CHECK_OK(kvmsb_process_wait(p, &r));
    CHECK(kvmsb_exec_result_signal(r) == 9);
    kvmsb_exec_result_free(r);
    kvmsb_process_free(p);
    kvmsb_exec_options_free(o);
    CHECK_STATUS(kvmsb_process_kill(NULL, 9), KVMSB_STATUS_NULL_ARGUMENT);
    kvmsb_process_free(NULL);
    PASS("exec streaming: output callback with user data, interactive stdin, kill");
}

/* echo with a per-call timeout; agent limits read, changed and enforced. */
static void echo_and_limits(kvmsb_sandbox *sb) {
    kvmsb_bytes b = {0};
    CHECK_OK(kvmsb_sandbox_echo(sb, (const uint8_t *)"ping!", 5, KVMSB_TIMEOUT_DEFAULT, &b));
    CHECK_BYTES(b.data, b.len, "ping!");
    kvmsb_bytes_free(&b);
    CHECK_OK(kvmsb_sandbox_echo(sb, (const uint8_t *)"x", 1, 5000, &b));
    kvmsb_bytes_free(&b);
    CHECK_STATUS(kvmsb_sandbox_echo(sb, (const uint8_t *)"x", 1, 0, &b), KVMSB_STATUS_INVALID_ARGUMENT);

    kvmsb_agent_limits l;
    CHECK_OK(kvmsb_sandbox_agent_limits(sb, &l));
    CHECK(l.max_output == 64u << 20 && l.default_deadline_ms == 3600000 && l.max_stale_frames == 1024);
    kvmsb_agent_limits small = l;
    small.max_output = 100;
    CHECK_OK(kvmsb_sandbox_set_agent_limits(sb, &small));
    const char *big[] = {"/usr/bin/head", "-c", "1000", "/dev/zero"};
    kvmsb_exec_result *r = NULL;
    CHECK_STATUS(kvmsb_sandbox_exec_opts(sb, big, 4, NULL, &r), KVMSB_STATUS_OUTPUT_LIMIT);
    small.max_output = 0;
    CHECK_STATUS(kvmsb_sandbox_set_agent_limits(sb, &small), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("max_output = 0");
    CHECK_OK(kvmsb_sandbox_set_agent_limits(sb, &l));
    CHECK_OK(kvmsb_sandbox_exec_opts(sb, big, 4, NULL, &r));
    size_t len = 0;
    kvmsb_exec_result_stdout(r, &len);
    CHECK(len == 1000);
    kvmsb_exec_result_free(r);
    PASS("echo with a timeout; agent limits get/set/enforced");
}

int main(void) {
    const char *sock = getenv("KVMSB_AGENT_SOCK");
    if (sock == NULL) FAIL("set KVMSB_AGENT_SOCK to the socket of `kvmsandbox-agent --unix PATH`");
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_sandbox_attach_host_agent(sock, 10000, &sb));
    uint64_t rtt = 0;
    CHECK_OK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, &rtt));
    CHECK(rtt > 0);
    PASS("attached to the host agent");

    exec_basics(sb);
    exec_endings(sb);
    exec_errors(sb);
    exec_options(sb);
    exec_streaming(sb);
    echo_and_limits(sb);
    files(sb);
    files_api(sb);
    files_timeouts(sb);
    refused(sb);
    kvmsb_sandbox_free(sb);
    return 0;
}
