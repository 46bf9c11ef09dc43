/* Error paths that need no VM: NULL handles and arguments, bad config values,
 * missing guest images, version and status names. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static void null_handles(void) {
    uint64_t rtt = 0;
    CHECK_STATUS(kvmsb_sandbox_ping(NULL, KVMSB_TIMEOUT_DEFAULT, &rtt), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_ERROR_MENTIONS("`sandbox` is NULL");
    CHECK_STATUS(kvmsb_sandbox_start(NULL, NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_config_set_vcpus(NULL, 1), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_shutdown(NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_kill(NULL), KVMSB_STATUS_NULL_ARGUMENT);
    int fd = -1;
    CHECK_STATUS(kvmsb_sandbox_connect(NULL, 1025, KVMSB_TIMEOUT_DEFAULT, &fd), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK(fd == -1);
    kvmsb_timings t;
    CHECK_STATUS(kvmsb_sandbox_timings(NULL, &t), KVMSB_STATUS_NULL_ARGUMENT);
    kvmsb_bytes b = {0};
    CHECK_STATUS(kvmsb_sandbox_read_file(NULL, "/etc/hostname", KVMSB_TIMEOUT_DEFAULT, &b), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_disk_read(NULL, 0, 0, 512, KVMSB_TIMEOUT_DEFAULT, &b), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK(b.data == NULL && b.len == 0);
    const char *argv[] = {"true"};
    kvmsb_exec_result *er = NULL;
    CHECK_STATUS(kvmsb_sandbox_exec(NULL, argv, 1, NULL, 0, NULL, NULL, 0, 0, &er), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK(er == NULL);
    /* Destructors and getters accept NULL. */
    kvmsb_sandbox_free(NULL);
    kvmsb_config_free(NULL);
    kvmsb_exec_result_free(NULL);
    kvmsb_wasm_result_free(NULL);
    kvmsb_bytes_free(NULL);
    kvmsb_bytes_free(&b);
    CHECK(kvmsb_exec_result_exit_code(NULL) == -1);
    CHECK(kvmsb_wasm_result_outcome(NULL) == KVMSB_WASM_OUTCOME_ERROR);
    CHECK(strcmp(kvmsb_wasm_result_message(NULL), "") == 0);
    size_t len = 99;
    CHECK(kvmsb_exec_result_stdout(NULL, &len) == NULL && len == 0);
    PASS("null handles give NULL_ARGUMENT");
}

static void missing_images(void) {
    kvmsb_config *cfg = kvmsb_config_new();
    CHECK(cfg != NULL);
    kvmsb_sandbox *sb = NULL;

    CHECK_OK(kvmsb_config_set_micro(cfg, "/nonexistent/micro-guest.elf"));
    CHECK_STATUS(kvmsb_sandbox_start(cfg, &sb), KVMSB_STATUS_CONFIG);
    CHECK_ERROR_MENTIONS("/nonexistent/micro-guest.elf");
    CHECK(sb == NULL);

    CHECK_OK(kvmsb_config_set_linux(cfg, "/nonexistent/vmlinux"));
    CHECK_STATUS(kvmsb_sandbox_start(cfg, &sb), KVMSB_STATUS_CONFIG);
    CHECK_ERROR_MENTIONS("/nonexistent/vmlinux");
    CHECK(sb == NULL);

    /* The message can also be copied out, snprintf-style. */
    char small[8];
    size_t full = kvmsb_last_error_message(small, sizeof small);
    CHECK(full == strlen(kvmsb_last_error()) && full > sizeof small);
    CHECK(strlen(small) == sizeof small - 1);
    CHECK(kvmsb_last_error_message(NULL, 0) == full);

    kvmsb_config_free(cfg);
    PASS("missing micro image / kernel give CONFIG naming the path");
}

static void bad_values(void) {
    kvmsb_config *cfg = kvmsb_config_new();
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_config_set_vcpus(cfg, 0));
    CHECK_STATUS(kvmsb_sandbox_start(cfg, &sb), KVMSB_STATUS_CONFIG);
    CHECK_ERROR_MENTIONS("vcpus = 0");
    CHECK_OK(kvmsb_config_set_vcpus(cfg, 1));

    CHECK_OK(kvmsb_config_set_memory_mib(cfg, 0));
    CHECK_STATUS(kvmsb_sandbox_start(cfg, &sb), KVMSB_STATUS_CONFIG);
    CHECK_ERROR_MENTIONS("memory = 0");
    CHECK_OK(kvmsb_config_set_memory_mib(cfg, 64));

    CHECK_OK(kvmsb_config_add_disk(cfg, "/nonexistent/disk.img", false));
    CHECK_STATUS(kvmsb_sandbox_start(cfg, &sb), KVMSB_STATUS_CONFIG);
    CHECK_ERROR_MENTIONS("/nonexistent/disk.img");
    CHECK(sb == NULL);

    CHECK_STATUS(kvmsb_config_set_seccomp(cfg, 42), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("42");
    CHECK_STATUS(kvmsb_config_add_disk(cfg, NULL, false), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_config_add_disk(cfg, "", false), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(kvmsb_config_append_cmdline(cfg, "\xff\xfe"), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("UTF-8");
    kvmsb_config_free(cfg);
    PASS("bad config values give CONFIG / INVALID_ARGUMENT");
}

static void attach_missing_agent(void) {
    kvmsb_sandbox *sb = NULL;
    CHECK_STATUS(kvmsb_sandbox_attach_host_agent(NULL, 0, &sb), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_sandbox_attach_host_agent("/nonexistent/agent.sock", 500, &sb), KVMSB_STATUS_AGENT);
    CHECK(sb == NULL);
    PASS("attaching to a missing agent gives AGENT");
}

static void names(void) {
    CHECK(strcmp(kvmsb_status_name(KVMSB_STATUS_OK), "KVMSB_STATUS_OK") == 0);
    CHECK(strcmp(kvmsb_status_name(KVMSB_STATUS_UNSUPPORTED), "KVMSB_STATUS_UNSUPPORTED") == 0);
    CHECK(strcmp(kvmsb_status_name(12345), "KVMSB_STATUS_UNKNOWN") == 0);
    CHECK(KVMSB_STATUS_OK == 0 && KVMSB_STATUS_NULL_ARGUMENT == 1 && KVMSB_STATUS_PANIC == 18);
    const char *v = kvmsb_version();
    CHECK(v != NULL && strchr(v, '.') != NULL);
    PASS("status names and version");
}

/* Option handles: NULL handles, bad values named, defaults constants distinct. */
static void option_handles(void) {
    CHECK_STATUS(kvmsb_exec_options_new(NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_wasm_options_new(NULL), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_exec_options_set_timeout(NULL, 5), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_ERROR_MENTIONS("`opts` is NULL");
    CHECK_STATUS(kvmsb_wasm_options_set_fuel(NULL, 5), KVMSB_STATUS_NULL_ARGUMENT);
    kvmsb_wasm_options *w = NULL;
    CHECK_OK(kvmsb_wasm_options_new(&w));
    const char *args[] = {"prog", NULL};
    CHECK_STATUS(kvmsb_wasm_options_set_args(w, args, 2), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("`args[1]` is NULL");
    const char *env[] = {"NOEQUALS"};
    CHECK_STATUS(kvmsb_wasm_options_set_env(w, env, 1), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("NOEQUALS");
    CHECK_STATUS(kvmsb_wasm_options_set_stdin(w, NULL, 3), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_wasm_options_set_timeout(w, 0), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_OK(kvmsb_wasm_options_set_timeout(w, KVMSB_TIMEOUT_DEFAULT));
    CHECK_OK(kvmsb_wasm_options_set_timeout(w, KVMSB_TIMEOUT_NONE));
    CHECK_OK(kvmsb_wasm_options_set_fuel(w, 1000));
    CHECK_OK(kvmsb_wasm_options_set_max_memory(w, 1 << 20));
    kvmsb_wasm_result *wr = NULL;
    const unsigned char module[] = {0};
    CHECK_STATUS(kvmsb_sandbox_run_wasm_opts(NULL, module, 1, w, &wr), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK(wr == NULL);
    kvmsb_wasm_options_free(w);
    kvmsb_wasm_options_free(NULL);
    kvmsb_exec_options_free(NULL);
    CHECK(KVMSB_TIMEOUT_DEFAULT != KVMSB_TIMEOUT_NONE && KVMSB_TIMEOUT_NONE > 0);
    PASS("option handles: NULL, bad values, timeout constants");
}

/* Attaching to a socket that accepts but never says hello ends with TIMEOUT
 * within the given timeout (generous "does not hang" bound: 2 s for 300 ms). */
static void attach_timeout(void) {
    const char *tmp = getenv("KVMSB_TEST_TMP");
    char path[256];
    snprintf(path, sizeof path, "%s/silent-%d.sock", tmp ? tmp : "/tmp", (int)getpid());
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(l >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    CHECK(strlen(path) < sizeof addr.sun_path);
    strcpy(addr.sun_path, path);
    unlink(path);
    CHECK(bind(l, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(l, 8) == 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kvmsb_sandbox *sb = NULL;
    CHECK_STATUS(kvmsb_sandbox_attach_host_agent(path, 300, &sb), KVMSB_STATUS_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(took < 2.0);
    CHECK(sb == NULL);
    CHECK_STATUS(kvmsb_sandbox_attach_host_agent(path, KVMSB_TIMEOUT_NONE, &sb), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("KVMSB_TIMEOUT_NONE");
    close(l);
    unlink(path);
    PASS("attach to a silent socket: TIMEOUT within the bound; NONE rejected");
}

int main(void) {
    null_handles();
    missing_images();
    bad_values();
    attach_missing_agent();
    names();
    option_handles();
    attach_timeout();
    return 0;
}
