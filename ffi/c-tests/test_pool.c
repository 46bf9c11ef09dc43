/* A warm pool through the C API: acquire/release reuse with metrics, min_idle
 * refill, max_size blocking and the acquire timeout, a sandbox killed while
 * borrowed is replaced, release to the wrong pool is refused, 4 threads
 * acquiring concurrently, and a borrowed sandbox outliving kvmsb_pool_free.
 * Needs /dev/kvm. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define WAIT_MS 60000

static kvmsb_pool_counters metrics(const kvmsb_pool *pool) {
    kvmsb_pool_counters m;
    memset(&m, 0xff, sizeof m);
    CHECK_OK(kvmsb_pool_metrics(pool, &m));
    return m;
}

/* Waits (bounded) until the pool threads have nothing left to do. */
static kvmsb_pool_counters settle(const kvmsb_pool *pool) {
    for (int i = 0; i < 6000; i++) {
        kvmsb_pool_counters m = metrics(pool);
        if (m.in_flight == 0) return m;
        usleep(10000);
    }
    FAIL("the pool never settled");
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static kvmsb_pool *new_pool(const kvmsb_config *cfg, uint32_t min_idle, uint32_t max_size) {
    kvmsb_pool_options o = {.min_idle = min_idle, .max_size = max_size, .threads = 2};
    kvmsb_pool *pool = NULL;
    CHECK_OK(kvmsb_pool_new(cfg, &o, &pool));
    CHECK(pool != NULL);
    return pool;
}

static void reuse_and_refill(const kvmsb_config *cfg) {
    kvmsb_pool *pool = new_pool(cfg, 2, 3);
    bool ready = false;
    CHECK_OK(kvmsb_pool_wait_idle(pool, 2, WAIT_MS, &ready));
    CHECK(ready);
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_pool_acquire(pool, WAIT_MS, &sb));
    CHECK_OK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, NULL));
    /* Borrowed: the pool boots another to keep two idle. */
    CHECK_OK(kvmsb_pool_wait_idle(pool, 2, WAIT_MS, &ready));
    CHECK(ready);
    kvmsb_pool_counters m = metrics(pool);
    CHECK(m.busy == 1 && m.idle == 2 && m.created == 3);
    CHECK_OK(kvmsb_pool_release(pool, sb, false));
    m = settle(pool);
    CHECK(m.acquired == 1 && m.released == 1 && m.resets == 1 && m.busy == 0 && m.idle == 3);
    kvmsb_pool_free(pool);
    PASS("acquire, ping, release; min_idle refilled; the released sandbox reset");
}

static void bounds_and_timeout(const kvmsb_config *cfg) {
    kvmsb_pool *pool = new_pool(cfg, 0, 1);
    kvmsb_sandbox *a = NULL, *b = NULL;
    CHECK_OK(kvmsb_pool_acquire(pool, WAIT_MS, &a));
    double t = now_s();
    CHECK_STATUS(kvmsb_pool_acquire(pool, 200, &b), KVMSB_STATUS_TIMEOUT);
    double waited = now_s() - t;
    CHECK(waited >= 0.2 && waited < 2.0);
    CHECK(b == NULL);
    CHECK_ERROR_MENTIONS("max_size 1");
    CHECK(metrics(pool).acquire_timeouts == 1);

    /* A sandbox killed while borrowed is discarded and replaced. */
    CHECK_OK(kvmsb_sandbox_kill(a));
    CHECK_OK(kvmsb_pool_release(pool, a, false));
    CHECK_OK(kvmsb_pool_acquire(pool, WAIT_MS, &b));
    CHECK_OK(kvmsb_sandbox_ping(b, KVMSB_TIMEOUT_DEFAULT, NULL));
    kvmsb_pool_counters m = metrics(pool);
    CHECK(m.discarded == 1 && m.created == 2 && m.resets == 0);

    /* Giving it to another pool is refused and frees nothing. */
    kvmsb_pool *other = new_pool(cfg, 0, 1);
    CHECK_STATUS(kvmsb_pool_release(other, b, false), KVMSB_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("not acquired from this pool");
    kvmsb_pool_free(other);
    CHECK_OK(kvmsb_sandbox_ping(b, KVMSB_TIMEOUT_DEFAULT, NULL));
    /* kvmsb_sandbox_free gives a pooled sandbox back too. */
    kvmsb_sandbox_free(b);
    m = settle(pool);
    CHECK(m.released == 2 && m.busy == 0);
    kvmsb_pool_free(pool);
    PASS("max_size blocks; timeout; killed sandbox replaced; wrong pool refused");
}

struct worker {
    kvmsb_pool *pool;
    int ok;
};

static void *acquire_loop(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < 3; i++) {
        kvmsb_sandbox *sb = NULL;
        if (kvmsb_pool_acquire(w->pool, WAIT_MS, &sb) != KVMSB_STATUS_OK) return NULL;
        if (kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, NULL) == KVMSB_STATUS_OK) w->ok++;
        if (kvmsb_pool_release(w->pool, sb, false) != KVMSB_STATUS_OK) return NULL;
    }
    return NULL;
}

static void concurrent(const kvmsb_config *cfg) {
    kvmsb_pool *pool = new_pool(cfg, 1, 2);
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.pool = pool, .ok = 0};
        CHECK(pthread_create(&t[i], NULL, acquire_loop, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(w[i].ok == 3);
    }
    kvmsb_pool_counters m = settle(pool);
    CHECK(m.acquired == 12 && m.released == 12 && m.busy == 0 && m.acquire_timeouts == 0);
    CHECK(m.acquire_wait_max_ns >= m.acquire_wait_total_ns / 12);
    kvmsb_pool_free(pool);
    PASS("4 threads x 3 acquire/ping/release on max_size 2");
}

static void outlives_pool(const kvmsb_config *cfg) {
    kvmsb_pool *pool = new_pool(cfg, 1, 2);
    kvmsb_sandbox *sb = NULL;
    CHECK_OK(kvmsb_pool_acquire(pool, WAIT_MS, &sb));
    kvmsb_pool_free(pool);
    CHECK_OK(kvmsb_sandbox_ping(sb, KVMSB_TIMEOUT_DEFAULT, NULL));
    kvmsb_sandbox_free(sb);
    PASS("a borrowed sandbox stays usable after kvmsb_pool_free, freed by its owner");
}

int main(void) {
    kvmsb_config *cfg = kvmsb_config_new();
    CHECK(cfg != NULL);
    const char *seccomp = getenv("KVMSB_SECCOMP");
    if (seccomp != NULL && strcmp(seccomp, "disabled") == 0) CHECK_OK(kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_DISABLED));

    kvmsb_pool_options bad = {.min_idle = 3, .max_size = 2, .threads = 1};
    kvmsb_pool *pool = NULL;
    CHECK_STATUS(kvmsb_pool_new(cfg, &bad, &pool), KVMSB_STATUS_CONFIG);
    CHECK_ERROR_MENTIONS("min_idle = 3");
    CHECK(pool == NULL);
    CHECK_STATUS(kvmsb_pool_new(NULL, NULL, &pool), KVMSB_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(kvmsb_pool_acquire(NULL, 0, NULL), KVMSB_STATUS_NULL_ARGUMENT);
    kvmsb_pool_free(NULL);
    PASS("bad options and NULL arguments refused");

    reuse_and_refill(cfg);
    bounds_and_timeout(cfg);
    concurrent(cfg);
    outlives_pool(cfg);
    kvmsb_config_free(cfg);
    return 0;
}
