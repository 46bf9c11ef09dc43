/* Streaming output and interactive stdin through the C API, against the Linux
 * agent running as a host process (KVMSB_AGENT_SOCK; run.sh starts it):
 * output callbacks see chunks while the command still runs, a spawned `cat`
 * answers each line before its stdin is closed, kill ends `sleep 100` from
 * another thread, wait reports exit codes and signals, and NULL arguments are
 * KVMSB_STATUS_NULL_ARGUMENT. Each check would hang (up to its bound) or fail
 * if output were only handed over when the command ends. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* Generous "does not hang" bound for anything that should take a moment. */
#define BOUND_SEC 30

static double now_sec(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* What an output callback collected; shared with other threads under `lock`. */
typedef struct {
    uint32_t magic; /* proves the user-data pointer arrived unchanged */
    pthread_mutex_t lock;
    pthread_cond_t grew;
    char out[8192];
    size_t out_len;
    char err[8192];
    size_t err_len;
    int calls;
    const char *flag_path; /* created when "ready" arrives (live_output) */
} sink;

#define SINK_MAGIC 0x6b766d73u

static void sink_init(sink *s) {
    memset(s, 0, sizeof *s);
    s->magic = SINK_MAGIC;
    CHECK(pthread_mutex_init(&s->lock, NULL) == 0);
    CHECK(pthread_cond_init(&s->grew, NULL) == 0);
}

static void sink_destroy(sink *s) {
    pthread_cond_destroy(&s->grew);
    pthread_mutex_destroy(&s->lock);
}

static void on_output(void *user_data, kvmsb_stream stream, const uint8_t *data, size_t len) {
    sink *s = user_data;
    CHECK(s != NULL && s->magic == SINK_MAGIC);
    CHECK(stream == KVMSB_STREAM_STDOUT || stream == KVMSB_STREAM_STDERR);
    CHECK(data != NULL && len > 0);
    pthread_mutex_lock(&s->lock);
    char *buf = stream == KVMSB_STREAM_STDOUT ? s->out : s->err;
    size_t *n = stream == KVMSB_STREAM_STDOUT ? &s->out_len : &s->err_len;
    CHECK(*n + len < sizeof s->out);
    memcpy(buf + *n, data, len);
    *n += len;
    buf[*n] = '\0';
    s->calls++;
    /* The command waits for this file: it only appears if "ready" arrives
     * while the command runs. */
    if (s->flag_path != NULL && strstr(s->out, "ready\n") != NULL) {
        FILE *f = fopen(s->flag_path, "w");
        CHECK(f != NULL);
        fclose(f);
        s->flag_path = NULL;
    }
    pthread_cond_broadcast(&s->grew);
    pthread_mutex_unlock(&s->lock);
}

/* Waits (bounded) until stdout collected so far contains `want`. */
static void sink_wait_for(sink *s, const char *want) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += BOUND_SEC;
    pthread_mutex_lock(&s->lock);
    while (strstr(s->out, want) == NULL) {
        int e = pthread_cond_timedwait(&s->grew, &s->lock, &until);
        if (e == ETIMEDOUT) {
            pthread_mutex_unlock(&s->lock);
            FAIL("\"%s\" did not arrive within %d s (stdout so far: \"%s\")", want, BOUND_SEC, s->out);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

/* exec with a callback: the command prints "ready", then waits until a file
 * exists that only the callback creates on seeing "ready". Output delivered at
 * the end would leave it waiting until it gives up with exit code 9. */
static void live_output(const kvmsb_sandbox *sb) {
    char flag[] = "/tmp/kvmsb-c-test-flag-XXXXXX";
    int fd = mkstemp(flag);
    CHECK(fd >= 0);
    close(fd);
    unlink(flag);

    sink s;
    sink_init(&s);
    s.flag_path = flag;
    kvmsb_exec_options *o = NULL;
    CHECK_OK(kvmsb_exec_options_new(&o));
    CHECK_OK(kvmsb_exec_options_set_output(o, on_output, &s));
    CHECK_OK(kvmsb_exec_options_set_timeout(o, 120000));
    char script[512];
    snprintf(script, sizeof script,
             "echo ready; echo warming >&2; i=0; while [ ! -e %s ]; do i=$((i+1)); "
             "[ $i -gt 600 ] && exit 9; sleep 0.05; done; echo after",
             flag);
    const char *sh[] = {"/bin/sh", "-c", script};
    kvmsb_exec_result *r = NULL;
    CHECK_OK(kvmsb_sandbox_exec_opts(sb, sh, 3, o, &r));
    CHECK(!kvmsb_exec_result_timed_out(r));
    CHECK(kvmsb_exec_result_exit_code(r) == 0);
    kvmsb_exec_result_free(r);
    CHECK(s.flag_path == NULL); /* the callback created the file */
    CHECK_BYTES((const uint8_t *)s.out, s.out_len, "ready\nafter\n");
    CHECK_BYTES((const uint8_t *)s.err, s.err_len, "warming\n");
    CHECK(s.calls >= 3);
    unlink(flag);
    kvmsb_exec_options_free(o);
    sink_destroy(&s);
    PASS("output callback: chunks arrive while the command runs, user data intact");
}

typedef struct {
    const kvmsb_process *p;
    sink *s;
} talker_args;

/* Another thread types into `cat` and waits for each line to come back before
 * sending the next, then closes stdin. */
static void *talker(void *arg) {
    talker_args *a = arg;
    const char *lines[] = {"first line\n", "second\n", "third and last\n"};
    char want[128] = "";
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        CHECK_OK(kvmsb_process_write_stdin(a->p, (const uint8_t *)lines[i], strlen(lines[i])));
        strncat(want, lines[i], sizeof want - strlen(want) - 1);
        sink_wait_for(a->s, want);
    }
    CHECK_OK(kvmsb_process_close_stdin(a->p));
    return NULL;
}

static void interactive_stdin(const kvmsb_sandbox *sb) {
    sink s;
    sink_init(&s);
    kvmsb_exec_options *o = NULL;
    CHECK_OK(kvmsb_exec_options_new(&o));
    CHECK_OK(kvmsb_exec_options_set_output(o, on_output, &s));
    const char *cat[] = {"/bin/cat"};
    kvmsb_process *p = NULL;
    CHECK_OK(kvmsb_sandbox_spawn(sb, cat, 1, o, &p));
    CHECK(p != NULL && kvmsb_process_pid(p) > 0);

    pthread_t t;
    talker_args a = {p, &s};
    CHECK(pthread_create(&t, NULL, talker, &a) == 0);
    kvmsb_exec_result *r = NULL;
    CHECK_OK(kvmsb_process_wait(p, &r)); /* feeds the callback while `talker` types */
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(kvmsb_exec_result_exit_code(r) == 0 && kvmsb_exec_result_signal(r) == 0);
    kvmsb_exec_result_free(r);
    kvmsb_process_free(p);
    CHECK_BYTES((const uint8_t *)s.out, s.out_len, "first line\nsecond\nthird and last\n");
    CHECK(s.calls >= 3); /* one echo per line at least: each came back before the next was sent */

    /* Without a callback: the echo is collected in the result. */
    CHECK_OK(kvmsb_sandbox_spawn(sb, cat, 1, NULL, &p));
    CHECK_OK(kvmsb_process_write_stdin(p, (const uint8_t *)"collected", 9));
    CHECK_OK(kvmsb_process_close_stdin(p));
    CHECK_OK(kvmsb_process_wait(p, &r));
    size_t len = 0;
    const uint8_t *out = kvmsb_exec_result_stdout(r, &len);
    CHECK_BYTES(out, len, "collected");
    kvmsb_exec_result_free(r);
    kvmsb_process_free(p);
    kvmsb_exec_options_free(o);
    sink_destroy(&s);
    PASS("spawn + write_stdin: cat echoes each line before stdin is closed; collected without a callback");
}

static void *killer(void *arg) {
    const kvmsb_process *p = arg;
    usleep(200 * 1000); /* usually lets the main thread get into wait first */
    CHECK_OK(kvmsb_process_kill(p, 9));
    return NULL;
}

static void kill_and_status(const kvmsb_sandbox *sb) {
    /* kill from another thread while this one waits: `sleep 100` ends within the bound. */
    sink s;
    sink_init(&s);
    kvmsb_exec_options *o = NULL;
    CHECK_OK(kvmsb_exec_options_new(&o));
    CHECK_OK(kvmsb_exec_options_set_output(o, on_output, &s));
    const char *slow[] = {"/bin/sleep", "100"};
    kvmsb_process *p = NULL;
    double start = now_sec();
    CHECK_OK(kvmsb_sandbox_spawn(sb, slow, 2, o, &p));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, killer, p) == 0);
    kvmsb_exec_result *r = NULL;
    CHECK_OK(kvmsb_process_wait(p, &r));
    double took = now_sec() - start;
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(kvmsb_exec_result_signal(r) == 9);
    CHECK(kvmsb_exec_result_exit_code(r) == -1);
    CHECK(!kvmsb_exec_result_timed_out(r));
    CHECK(took < BOUND_SEC);
    kvmsb_exec_result_free(r);
    kvmsb_process_free(p);

    /* wait reports the exit code, and another signal than 9. */
    const char *exit3[] = {"/bin/sh", "-c", "echo bye; exit 3"};
    CHECK_OK(kvmsb_sandbox_spawn(sb, exit3, 3, o, &p));
    CHECK_OK(kvmsb_process_wait(p, &r));
    CHECK(kvmsb_exec_result_exit_code(r) == 3 && kvmsb_exec_result_signal(r) == 0);
    CHECK(kvmsb_exec_result_pid(r) == kvmsb_process_pid(p));
    kvmsb_exec_result_free(r);
    kvmsb_process_free(p);
    sink_wait_for(&s, "bye\n");

    CHECK_OK(kvmsb_sandbox_spawn(sb, slow, 2, NULL, &p));
    CHECK_OK(kvmsb_process_kill(p, 15));
    CHECK_OK(kvmsb_process_wait(p, &r));
    CHECK(kvmsb_exec_result_signal(r) == 15);
    kvmsb_exec_result_free(r);
    kvmsb_process_free(p);
    kvmsb_exec_options_free(o);
    sink_destroy(&s);
    PASS("kill from another thread ends sleep 100 (within the bound); wait gives exit code 3 and signal 15");
}

static void null_arguments(const kvmsb_sandbox *sb) {
    const char *cat[] = {"/bin/cat"};
    kvmsb_process *p = NULL;
    kvmsb_exec_result *r = NULL;
    CHECK_STATUS(kvmsb_sandbox_spawn(NULL, cat, 1, NULL, &p), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_spawn(sb, NULL, 1, NULL, &p), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_spawn(sb, cat, 1, NULL, NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK(p == NULL);
    CHECK_STATUS(kvmsb_process_write_stdin(NULL, (const uint8_t *)"x", 1), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_process_close_stdin(NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_process_kill(NULL, 9), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_process_wait(NULL, &r), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK(kvmsb_process_pid(NULL) == 0);
    kvmsb_process_free(NULL);
    CHECK_STATUS(kvmsb_exec_options_set_output(NULL, on_output, NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_wasm_options_set_output(NULL, on_output, NULL), KVMSB_STATUS_NULL_ARGUMENT);

    /* On a live process: NULL data with a length, NULL result_out. */
    CHECK_OK(kvmsb_sandbox_spawn(sb, cat, 1, NULL, &p));
    CHECK_STATUS(kvmsb_process_write_stdin(p, NULL, 3), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_OK(kvmsb_process_write_stdin(p, NULL, 0)); /* nothing to write is fine */
    CHECK_STATUS(kvmsb_process_wait(p, NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_OK(kvmsb_process_close_stdin(p));
    CHECK_OK(kvmsb_process_wait(p, &r)); /* the refused wait did not use it up */
    CHECK(kvmsb_exec_result_exit_code(r) == 0);
    kvmsb_exec_result_free(r);
    kvmsb_process_free(p);
    PASS("NULL arguments of spawn, process calls and set_output give NULL_ARGUMENT");
}

int main(void) {
    const char *sock = getenv("KVMSB_AGENT_SOCK");
    if (sock == NULL) FAIL("set KVMSB_AGENT_SOCK to the socket of `kvmsandbox-agent --unix PATH`");
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_sandbox_attach_host_agent(sock, 10000, &sb));
    live_output(sb);
    interactive_stdin(sb);
    kill_and_status(sb);
    null_arguments(sb);
    kvmsb_sandbox_free(sb);
    return 0;
}
