/* Snapshots through the C API on a real micro guest: snapshot (BUSY while a
 * stream is open), restore in place (the stream reads EOF), save/load and fork
 * from the file, a corrupt file is KVMSB_STATUS_SNAPSHOT, per-call isolation,
 * pools forked from a snapshot and from a template. Needs /dev/kvm. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "hello_wasm.h"

static void hello(const kvmsb_sandbox *sb) {
    kvmsb_wasm_result *r = NULL;
    CHECK_OK(kvmsb_sandbox_run_wasm(sb, kvmsb_example_hello_wasm, sizeof kvmsb_example_hello_wasm, NULL, 0, NULL, 0, NULL, 0, 0, 60000, &r));
    CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT);
    size_t len = 0;
    const uint8_t *out = kvmsb_wasm_result_stdout(r, &len);
    CHECK(len > 0 && out != NULL);
    kvmsb_wasm_result_free(r);
}

/* Waits (bounded) until the pool threads are done; returns the counters. */
static kvmsb_pool_counters settled(const kvmsb_pool *pool) {
    kvmsb_pool_counters m;
    for (int i = 0; i < 6000; i++) {
        CHECK_OK(kvmsb_pool_metrics(pool, &m));
        if (m.in_flight == 0) return m;
        usleep(10000);
    }
    FAIL("the pool never settled");
}

/* `seccomp` is the test's policy (valgrind cannot run under a filter): the
 * forks take it from the config given with the pool. */
static void pools(const kvmsb_sandbox *sb, const kvmsb_snapshot *snap, const char *seccomp) {
    kvmsb_config *cfg = kvmsb_config_new();
    if (seccomp != NULL && strcmp(seccomp, "disabled") == 0) CHECK_OK(kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_DISABLED));
    kvmsb_pool_options o = {.min_idle = 1, .max_size = 2, .threads = 1};
    kvmsb_pool *pool = NULL;
    CHECK_STATUS(kvmsb_pool_new_from_snapshot(NULL, cfg, &o, &pool), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_pool_new_from_template(NULL, cfg, &o, &pool), KVMSB_STATUS_NULL_ARGUMENT);
    kvmsb_pool_options bad = {.min_idle = 3, .max_size = 2};
    CHECK_STATUS(kvmsb_pool_new_from_snapshot(snap, cfg, &bad, &pool), KVMSB_STATUS_CONFIG);
    CHECK(pool == NULL);
    /* A config of another shape: every fork fails, named, at acquire. */
    kvmsb_config *big = kvmsb_config_new();
    CHECK_OK(kvmsb_config_set_vcpus(big, 2));
    kvmsb_pool_options lazy = {.min_idle = 0, .max_size = 1, .threads = 1};
    CHECK_OK(kvmsb_pool_new_from_snapshot(snap, big, &lazy, &pool));
    kvmsb_config_free(big);
    kvmsb_sandbox *none = NULL;
    CHECK_STATUS(kvmsb_pool_acquire(pool, 60000, &none), KVMSB_STATUS_SNAPSHOT);
    CHECK_ERROR_MENTIONS("vCPU");
    kvmsb_pool_free(pool);
    pool = NULL;

    CHECK_OK(kvmsb_pool_new_from_snapshot(snap, cfg, &o, &pool));
    for (int i = 0; i < 3; i++) {
        kvmsb_sandbox *p = NULL;
        CHECK_OK(kvmsb_pool_acquire(pool, 60000, &p));
        CHECK_OK(kvmsb_sandbox_ping(p, KVMSB_TIMEOUT_DEFAULT, NULL));
        hello(p);
        CHECK_OK(kvmsb_pool_release(pool, p, false));
    }
    kvmsb_pool_counters m = settled(pool);
    CHECK(m.acquired == 3 && m.released == 3 && m.resets == 3);
    CHECK(m.created >= 1 && m.created <= 2 && m.discarded == 0);
    kvmsb_pool_free(pool);
    PASS("a pool forked from a snapshot with a config: 3 acquire/run/release cycles, each reset in place; a config of another shape fails at acquire");

    kvmsb_wasm_template *t = NULL;
    CHECK_OK(kvmsb_sandbox_prepare_wasm(sb, kvmsb_example_hello_wasm, sizeof kvmsb_example_hello_wasm, NULL, &t));
    pool = NULL;
    CHECK_OK(kvmsb_pool_new_from_template(t, cfg, &o, &pool));
    kvmsb_config_free(cfg); /* copied by the pool */
    for (int i = 0; i < 2; i++) {
        kvmsb_sandbox *p = NULL;
        CHECK_OK(kvmsb_pool_acquire(pool, 60000, &p));
        kvmsb_wasm_result *r = NULL;
        CHECK_OK(kvmsb_wasm_template_run(t, p, NULL, &r));
        CHECK(kvmsb_wasm_result_outcome(r) == KVMSB_WASM_OUTCOME_EXIT);
        size_t len = 0;
        const uint8_t *out = kvmsb_wasm_result_stdout(r, &len);
        CHECK(len > 0 && out != NULL);
        kvmsb_wasm_result_free(r);
        CHECK_OK(kvmsb_pool_release(pool, p, false));
    }
    kvmsb_wasm_template_free(t); /* the pool keeps what it needs */
    kvmsb_sandbox *p = NULL;
    CHECK_OK(kvmsb_pool_acquire(pool, 60000, &p));
    CHECK_OK(kvmsb_sandbox_ping(p, KVMSB_TIMEOUT_DEFAULT, NULL));
    CHECK_OK(kvmsb_pool_release(pool, p, false));
    m = settled(pool);
    CHECK(m.acquired == 3 && m.resets == 3 && m.discarded == 0);
    kvmsb_pool_free(pool);
    PASS("a pool of template forks runs the template; the template may be freed first");
}

int main(void) {
    const char *tmp = getenv("KVMSB_TEST_TMP");
    char path[512];
    snprintf(path, sizeof path, "%s/kvmsb-c-test-%d.snap", tmp ? tmp : "/tmp", (int)getpid());

    kvmsb_config *cfg = kvmsb_config_new();
    CHECK_OK(kvmsb_config_set_start_timeout_ms(cfg, 60000));
    const char *seccomp = getenv("KVMSB_SECCOMP");
    if (seccomp != NULL && strcmp(seccomp, "disabled") == 0) CHECK_OK(kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_DISABLED));
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_sandbox_start(cfg, &sb));

    kvmsb_snapshot *snap = NULL;
    CHECK_STATUS(kvmsb_sandbox_snapshot(NULL, &snap), KVMSB_STATUS_NULL_ARGUMENT);
    int fd = -1;
    CHECK_OK(kvmsb_sandbox_connect(sb, 1025, KVMSB_TIMEOUT_DEFAULT, &fd));
    CHECK_STATUS(kvmsb_sandbox_snapshot(sb, &snap), KVMSB_STATUS_BUSY);
    CHECK_ERROR_MENTIONS("1 stream");
    close(fd);
    CHECK_OK(kvmsb_sandbox_snapshot(sb, &snap));
    CHECK(snap != NULL);
    PASS("snapshot (BUSY while a stream is open)");

    CHECK_OK(kvmsb_sandbox_connect(sb, 1025, KVMSB_TIMEOUT_DEFAULT, &fd));
    CHECK_OK(kvmsb_sandbox_restore(sb, snap));
    char b[8];
    CHECK(read(fd, b, sizeof b) == 0);
    close(fd);
    CHECK_OK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, NULL));
    PASS("restore (open stream reads EOF, agent answers)");

    CHECK_OK(kvmsb_snapshot_save(snap, path));
    kvmsb_snapshot *loaded = NULL;
    CHECK_OK(kvmsb_snapshot_load(path, &loaded));
    kvmsb_sandbox *fork = NULL;
    CHECK_OK(kvmsb_sandbox_from_snapshot(loaded, cfg, &fork));
    kvmsb_config_free(cfg);
    kvmsb_snapshot_free(loaded);
    CHECK_OK(kvmsb_sandbox_ping(fork, KVMSB_TIMEOUT_DEFAULT, NULL));
    hello(fork);
    kvmsb_sandbox_free(fork);
    kvmsb_config *big = kvmsb_config_new();
    CHECK_OK(kvmsb_config_set_vcpus(big, 2));
    CHECK_STATUS(kvmsb_sandbox_from_snapshot(snap, big, &fork), KVMSB_STATUS_SNAPSHOT);
    CHECK_ERROR_MENTIONS("vCPU count");
    kvmsb_config_free(big);
    PASS("save, load, fork from the file (a config of another shape is refused)");

    int f = open(path, O_WRONLY);
    CHECK(f >= 0);
    CHECK(pwrite(f, "X", 1, 0) == 1);
    close(f);
    CHECK_STATUS(kvmsb_snapshot_load(path, &loaded), KVMSB_STATUS_SNAPSHOT);
    CHECK_ERROR_MENTIONS("magic");
    CHECK_OK(kvmsb_snapshot_save(snap, path));
    CHECK(truncate(path, 100) == 0);
    CHECK_STATUS(kvmsb_snapshot_load(path, &loaded), KVMSB_STATUS_SNAPSHOT);
    CHECK_ERROR_MENTIONS("truncated");
    unlink(path);
    CHECK_STATUS(kvmsb_snapshot_load(path, &loaded), KVMSB_STATUS_IO);
    PASS("bad files are typed errors");

    CHECK_OK(kvmsb_sandbox_set_call_isolation(sb, snap));
    hello(sb);
    hello(sb);
    CHECK_OK(kvmsb_sandbox_set_call_isolation(sb, NULL));
    PASS("per-call isolation");

    pools(sb, snap, seccomp);

    kvmsb_snapshot_free(snap);
    kvmsb_sandbox_free(sb);
    kvmsb_snapshot_free(NULL);
    PASS("freed");
    return 0;
}
