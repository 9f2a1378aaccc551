/* The device memory pool and the budget: size classes, best-fit reuse, the hard cap, trim,
 * counters, fault injection, the staging pool, tsr_parse_size and the default budget rule.
 * Pool-level tests use private pools on the test engine's device, so their counters start at
 * zero; graph-level tests use their own engines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define KIB ((size_t)1 << 10)
#define MIB ((uint64_t)1 << 20)

static tsr__pool *fresh_pool(void)
{
    tsr__pool *p = NULL;
    assert_int_equal(tsr__pool_new(tu_engine_cl()->cl, &p), TSR_OK);
    return p;
}

static tsr_pool_stats stats_of(const tsr__pool *p)
{
    tsr_pool_stats s;
    tsr__pool_get_stats(p, &s);
    return s;
}

static size_t mem_size(cl_mem m)
{
    size_t size = 0;
    assert_int_equal(clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof size, &size, NULL), CL_SUCCESS);
    return size;
}

static cl_mem alloc_ok(tsr__pool *p, size_t bytes, tsr__err *err)
{
    cl_mem m = NULL;
    if (tsr__pool_alloc(p, bytes, &m, err))
        fail_msg("allocating %zu bytes: %s", bytes, err->msg);
    assert_non_null(m);
    return m;
}

/* ---- size classes ---------------------------------------------------------------------------- */

/* The properties every class must have; *prev carries the previous class for monotonicity. */
static void check_class(size_t b, size_t *prev)
{
    size_t c = tsr__pool_class_size(b);
    if (c < b || c < 256 || c < *prev || tsr__pool_class_size(c) != c)
        fail_msg("class of %zu is %zu (previous %zu, class of it %zu)", b, c, *prev,
                 tsr__pool_class_size(c));
    if (b > 256) {
        /* Own class: the classes of [2^k, 2^(k+1)) are 2^k * {4,5,6,7}/4, so the slack is under a
         * quarter of the request. Reuse takes a block of the next class at most: under 1.5x. */
        size_t next = c == SIZE_MAX ? c : tsr__pool_class_size(c + 1);
        if (c - b > b / 4 || (long double)next >= 1.5L * (long double)b)
            fail_msg("class of %zu is %zu, next %zu: over the waste bound", b, c, next);
    }
    *prev = c;
}

static void class_sizes(void **state)
{
    size_t prev = 0;
    for (size_t b = 0; b <= ((size_t)1 << 20); b++)
        check_class(b, &prev);
    /* Geometric sweep to the top of size_t, about 37 steps per doubling. */
    for (size_t b = ((size_t)1 << 20) + 1;; b += b / 37) {
        check_class(b, &prev);
        if (b > SIZE_MAX - b / 37)
            break;
    }
    check_class(SIZE_MAX, &prev);
    assert_true(tsr__pool_class_size(SIZE_MAX) == SIZE_MAX); /* saturates, never wraps */
    /* Exactly four classes per power of two above 256 bytes, at 2^k * {5,6,7,8}/4 (the last is
     * 2^(k+1) itself): dense count for small k, the boundaries for every k. */
    for (int k = 8; k < 16; k++) {
        size_t lo = (size_t)1 << k, last = 0;
        int distinct = 0;
        for (size_t b = lo + 1; b <= 2 * lo; b++) {
            size_t c = tsr__pool_class_size(b);
            distinct += c != last;
            last = c;
        }
        assert_int_equal(distinct, 4);
    }
    for (int k = 8; k < (int)(8 * sizeof(size_t)) - 1; k++) {
        size_t q = (size_t)1 << (k - 2);
        for (size_t m = 4; m <= 7; m++) {
            assert_true(tsr__pool_class_size(q * m) == q * m);
            assert_true(tsr__pool_class_size(q * m + 1) == q * (m + 1));
        }
    }
    assert_true(tsr__pool_class_size(0) == 256);
    assert_true(tsr__pool_class_size(1) == 256);
    assert_true(tsr__pool_class_size(257) == 320);
    assert_true(tsr__pool_class_size(1000) == 1024);
    assert_true(tsr__pool_class_size(1025) == 1280);
}

/* ---- reuse, cap, trim, peaks ----------------------------------------------------------------- */

static void best_fit_reuse(void **state)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr__pool *p = fresh_pool();
    cl_mem a = alloc_ok(p, 1000, &err), b = alloc_ok(p, 1200, &err), c = alloc_ok(p, 1500, &err);
    /* The driver holds exactly the class size. */
    assert_int_equal(mem_size(a), 1024);
    assert_int_equal(mem_size(b), 1280);
    assert_int_equal(mem_size(c), 1536);
    tsr_pool_stats s = stats_of(p);
    assert_int_equal(s.misses, 3);
    assert_int_equal(s.hits, 0);
    assert_int_equal(s.in_use_bytes, 1024 + 1280 + 1536);
    assert_int_equal(s.held_bytes, s.in_use_bytes);
    tsr__pool_release(p, c);
    tsr__pool_release(p, b);
    tsr__pool_release(p, a);
    s = stats_of(p);
    assert_int_equal(s.in_use_bytes, 0);
    assert_int_equal(s.held_bytes, 1024 + 1280 + 1536); /* cached, not given back */

    /* Same class: reused. */
    cl_mem x = alloc_ok(p, 900, &err);
    assert_ptr_equal(x, a);
    /* Its class (1024) is taken: a larger cached block would break the planner's accounting
     * (an estimate counts each buffer at its own class), so a new block. */
    cl_mem y = alloc_ok(p, 1000, &err);
    assert_ptr_not_equal(y, b);
    assert_ptr_not_equal(y, c);
    assert_int_equal(mem_size(y), 1024);
    /* A request of the 1280 class takes the cached 1280 block. */
    cl_mem z = alloc_ok(p, 1100, &err);
    assert_ptr_equal(z, b);
    /* A much smaller request never takes a big block. */
    cl_mem w = alloc_ok(p, 300, &err);
    assert_ptr_not_equal(w, c);
    assert_int_equal(mem_size(w), 320);
    s = stats_of(p);
    assert_int_equal(s.allocations, 7);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 5);
    assert_int_equal(s.held_bytes, 1024 + 1280 + 1536 + 1024 + 320);
    assert_int_equal(s.in_use_bytes, 1024 + 1024 + 1280 + 320);

    /* 100 bytes is class 256: the cached 320 block is another class, so a new 256-byte block;
     * a second 100-byte request after its release reuses it. */
    tsr__pool_release(p, w);
    tsr__pool_release(p, x);
    cl_mem v = alloc_ok(p, 100, &err);
    assert_ptr_not_equal(v, w);
    assert_int_equal(mem_size(v), 256);
    tsr__pool_release(p, v);
    cl_mem u = alloc_ok(p, 100, &err);
    assert_ptr_equal(u, v);
    s = stats_of(p);
    assert_int_equal(s.hits, 3);
    assert_int_equal(s.misses, 6);
    assert_int_equal(s.hits + s.misses, s.allocations);
    assert_int_equal(s.oom_events, 0);
    tsr__pool_free(p); /* frees blocks in use too: nothing leaks */
}

static void release_is_idempotent(void **state)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr__pool *p = fresh_pool(), *other = fresh_pool();
    cl_mem a = alloc_ok(p, 4096, &err), b = alloc_ok(p, 4096, &err);
    cl_mem foreign = alloc_ok(other, 4096, &err);
    tsr__pool_release(p, a);
    tsr__pool_release(p, a);       /* twice: counted once */
    tsr__pool_release(p, NULL);    /* no-op */
    tsr__pool_release(p, foreign); /* not this pool's: ignored */
    tsr__pool_release(NULL, b);    /* no pool: no-op */
    tsr_pool_stats s = stats_of(p);
    assert_int_equal(s.in_use_bytes, 4096);
    assert_int_equal(s.held_bytes, 8192);
    tsr__pool_free(p);
    tsr__pool_free(other);
}

static void hard_cap(void **state)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr__pool *p = fresh_pool();
    tsr__pool_set_cap(p, 64 * KIB);
    assert_int_equal(tsr__pool_cap(p), 64 * KIB);
    /* 5000-byte requests take 5120 bytes: 12 fit in 64 KiB, the 13th would not. */
    cl_mem m[16] = {0};
    int n = 0;
    tsr_status rc = TSR_OK;
    while (n < 16) {
        rc = tsr__pool_alloc(p, 5000, &m[n], &err);
        tsr_pool_stats s = stats_of(p);
        assert_true(s.held_bytes <= 64 * KIB);
        assert_true(s.in_use_bytes <= s.held_bytes);
        if (rc)
            break;
        n++;
    }
    assert_int_equal(n, 12);
    assert_int_equal(rc, TSR_ERR_DEVICE_NOMEM);
    assert_null(m[12]);
    /* The message carries the figures: the request, what is held, the cap. */
    assert_non_null(strstr(err.msg, "5120 more bytes would pass the budget"));
    assert_non_null(strstr(err.msg, "(61440 bytes in use, 61440 held, cap 65536)"));
    tsr_pool_stats s = stats_of(p);
    assert_int_equal(s.oom_events, 1);
    assert_int_equal(s.trims, 0); /* nothing was cached to give back */
    assert_int_equal(s.held_bytes, 12 * 5120);

    /* Four blocks go to the cache. An 8000-byte request (class 8192) finds no block of its
     * class and would pass the cap with the cache kept: the pool gives back cached blocks,
     * least recently released first, only until the request fits: one block here
     * (11 * 5120 + 8192 = 64512 <= 65536); the other three stay cached. */
    for (int i = 0; i < 4; i++)
        tsr__pool_release(p, m[i]);
    assert_int_equal(stats_of(p).held_bytes, 12 * 5120);
    cl_mem big = alloc_ok(p, 8000, &err);
    s = stats_of(p);
    assert_int_equal(s.trims, 1);
    assert_int_equal(s.oom_events, 1);
    assert_int_equal(s.held_bytes, 11 * 5120 + 8192);
    assert_int_equal(s.in_use_bytes, 8 * 5120 + 8192);
    /* m[0], released first, went back to the driver; m[1..3] are still cached: a 5000-byte
     * request is a hit. */
    cl_mem hit = alloc_ok(p, 5000, &err);
    assert_true(hit == m[1] || hit == m[2] || hit == m[3]);
    tsr__pool_release(p, hit);
    assert_int_equal(s.peak_held_bytes, 11 * 5120 + 8192); /* never above the cap on the way */

    /* A request larger than the cap itself fails, after giving back the whole cache. */
    cl_mem huge = NULL;
    assert_int_equal(tsr__pool_alloc(p, 100000, &huge, &err), TSR_ERR_DEVICE_NOMEM);
    assert_null(huge);
    assert_non_null(strstr(err.msg, "would pass the budget"));
    assert_int_equal(stats_of(p).oom_events, 2);

    /* A cached block is reused at the cap: a hit adds nothing to what the pool holds. */
    tsr__pool_release(p, m[4]);
    cl_mem again = alloc_ok(p, 5000, &err);
    assert_ptr_equal(again, m[4]);
    tsr__pool_release(p, big);
    tsr__pool_free(p);
}

static void trim_gives_cache_back(void **state)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr__pool *p = fresh_pool();
    cl_mem a = alloc_ok(p, 1000, &err), b = alloc_ok(p, 5000, &err), c = alloc_ok(p, 20000, &err);
    tsr__pool_release(p, a);
    tsr__pool_release(p, c);
    tsr_pool_stats s = stats_of(p);
    assert_true(s.held_bytes > s.in_use_bytes);
    tsr__pool_trim(p);
    s = stats_of(p);
    assert_int_equal(s.held_bytes, s.in_use_bytes);
    assert_int_equal(s.in_use_bytes, 5120);
    assert_int_equal(s.trims, 1);
    /* Nothing cached: a trim gives nothing back and is not counted. */
    tsr__pool_trim(p);
    assert_int_equal(stats_of(p).trims, 1);
    /* Trimmed blocks are gone: the same request is a miss. */
    uint64_t misses = stats_of(p).misses;
    cl_mem d = alloc_ok(p, 1000, &err);
    assert_int_equal(stats_of(p).misses, misses + 1);
    tsr__pool_release(p, b);
    tsr__pool_release(p, d);
    tsr__pool_trim(p);
    s = stats_of(p);
    assert_int_equal(s.held_bytes, 0);
    assert_int_equal(s.trims, 2);
    tsr__pool_trim(NULL); /* no-op */
    tsr__pool_free(p);
}

static void peak_counters(void **state)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr__pool *p = fresh_pool();
    cl_mem a = alloc_ok(p, 4096, &err), b = alloc_ok(p, 8192, &err);
    tsr_pool_stats s = stats_of(p);
    assert_int_equal(s.peak_in_use_bytes, 12288);
    assert_int_equal(s.peak_held_bytes, 12288);
    tsr__pool_release(p, a);
    cl_mem c = alloc_ok(p, 1024, &err); /* class 1024: the 4096 block is too big to reuse */
    s = stats_of(p);
    assert_int_equal(s.in_use_bytes, 9216);
    assert_int_equal(s.held_bytes, 13312);
    assert_int_equal(s.peak_in_use_bytes, 12288); /* the peak stays */
    assert_int_equal(s.peak_held_bytes, 13312);
    tsr__pool_reset_peaks(p); /* a new run: peaks restart from what is held now */
    s = stats_of(p);
    assert_int_equal(s.peak_in_use_bytes, 9216);
    assert_int_equal(s.peak_held_bytes, 13312);
    tsr__pool_release(p, b);
    tsr__pool_release(p, c);
    s = stats_of(p);
    assert_int_equal(s.peak_in_use_bytes, 9216);
    assert_int_equal(s.in_use_bytes, 0);
    tsr__pool_free(p);
}

/* New buffers are written at creation (so lazy drivers fail there): a block created where a
 * freed one was filled with a pattern reads back as zeros. 4 KiB, because small host-backed
 * buffers come from recycled heap memory on CPU drivers: without the write this test sees the
 * old pattern (checked on PoCL), whereas large ones come from fresh, already-zero pages. */
static void new_buffers_are_touched(void **state)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr__cl *cl = tu_engine_cl()->cl;
    tsr__pool *p = fresh_pool();
    enum { N = 4096 };
    unsigned char *buf = malloc(N);
    assert_non_null(buf);
    for (int round = 0; round < 4; round++) {
        cl_mem m = alloc_ok(p, N, &err);
        memset(buf, 1, N);
        assert_int_equal(clEnqueueReadBuffer(cl->queue, m, CL_TRUE, 0, N, buf, 0, NULL, NULL),
                         CL_SUCCESS);
        for (int i = 0; i < N; i++)
            if (buf[i])
                fail_msg("round %d: byte %d of a new buffer is %d, not 0", round, i, buf[i]);
        memset(buf, 0xab, N);
        assert_int_equal(clEnqueueWriteBuffer(cl->queue, m, CL_TRUE, 0, N, buf, 0, NULL, NULL),
                         CL_SUCCESS);
        tsr__pool_release(p, m);
        tsr__pool_trim(p); /* really freed: the next one is new */
    }
    assert_int_equal(stats_of(p).misses, 4);
    free(buf);
    tsr__pool_free(p);
}

static void max_single_allocation(void **state)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr_engine *e = tu_engine_cl();
    uint64_t max_alloc = tsr_engine_device(e)->max_alloc;
    assert_true(max_alloc > 0);
    tsr__pool *p = fresh_pool(); /* no cap: only the device's limit applies */
    cl_mem m = NULL;
    assert_int_equal(tsr__pool_alloc(p, (size_t)max_alloc + 1, &m, &err), TSR_ERR_DEVICE_NOMEM);
    assert_null(m);
    assert_non_null(strstr(err.msg, "exceeds the device's largest allocation"));
    char figure[64];
    snprintf(figure, sizeof figure, "(%llu)", (unsigned long long)max_alloc);
    assert_non_null(strstr(err.msg, figure));
    /* The largest request there is: refused the same way, never wrapped into a small one. */
    assert_int_equal(tsr__pool_alloc(p, SIZE_MAX, &m, &err), TSR_ERR_DEVICE_NOMEM);
    assert_null(m);
    tsr_pool_stats s = stats_of(p);
    assert_int_equal(s.oom_events, 2);
    assert_int_equal(s.held_bytes, 0);
    tsr__pool_free(p);
    /* The engine's pool too, whatever its budget. */
    assert_int_equal(tsr__pool_alloc(e->pool, (size_t)max_alloc + 1, &m, tsr__eerr(e)),
                     TSR_ERR_DEVICE_NOMEM);
    assert_null(m);
}

/* ---- fault injection ------------------------------------------------------------------------- */

/* Allocations `first`..`last` (1-based request numbers of pool p) succeed or fail as `fails`
 * says for each; every block is released at once so that later requests are hits. */
static void expect_faults(tsr__pool *p, uint64_t first, uint64_t last, uint64_t fail_from,
                          uint64_t fail_to, tsr__err *err)
{
    for (uint64_t k = first; k <= last; k++) {
        assert_int_equal(tsr__pool_allocations(p), k - 1);
        cl_mem m = NULL;
        tsr_status rc = tsr__pool_alloc(p, 2048, &m, err);
        int should_fail = k >= fail_from && k <= fail_to;
        if (should_fail != (rc != TSR_OK))
            fail_msg("allocation %llu: status %d, expected %s", (unsigned long long)k, rc,
                     should_fail ? "an injected failure" : "success");
        if (should_fail) {
            assert_int_equal(rc, TSR_ERR_DEVICE_NOMEM);
            assert_null(m);
            char want[64];
            snprintf(want, sizeof want, "injected failure of allocation %llu",
                     (unsigned long long)k);
            assert_non_null(strstr(err->msg, want));
        }
        tsr__pool_release(p, m);
    }
}

static void fault_injection(void **state)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr__pool *p = fresh_pool();
    tsr__pool_set_fault(p, 3, 3); /* the 3rd fails once */
    expect_faults(p, 1, 5, 3, 3, &err);
    tsr__pool_set_fault(p, 7, 9); /* a range */
    expect_faults(p, 6, 10, 7, 9, &err);
    tsr__pool_set_fault(p, 12, UINT64_MAX); /* sticky: every one from the 12th */
    expect_faults(p, 11, 20, 12, UINT64_MAX, &err);
    tsr__pool_set_fault(p, 0, 0); /* off */
    expect_faults(p, 21, 23, 0, 0, &err);
    tsr_pool_stats s = stats_of(p);
    assert_int_equal(s.oom_events, 1 + 3 + 9);
    assert_int_equal(s.allocations, 23);
    /* An injected failure stands for the device: it fails even where the cache could serve. */
    tsr__pool_set_fault(p, 24, 24);
    cl_mem m = NULL;
    assert_int_equal(tsr__pool_alloc(p, 2048, &m, &err), TSR_ERR_DEVICE_NOMEM);
    assert_true(stats_of(p).held_bytes > 0);
    tsr__pool_free(p);
}

static tsr_engine *engine_with(const char *fault_env, const char *vram_env, uint64_t vram_limit,
                               uint64_t staging_limit, tsr_status want, char *msg, size_t len)
{
    tsr_engine_options o;
    tsr_engine_options_init(&o);
    o.device = getenv("TSR_TEST_DEVICE");
    o.vram_limit = vram_limit;
    o.staging_limit = staging_limit;
    if (fault_env)
        setenv("TSR_FAULT_ALLOC", fault_env, 1);
    if (vram_env)
        setenv("TSR_VRAM_LIMIT", vram_env, 1);
    tsr_engine *e = NULL;
    tsr_status rc = tsr_engine_new(&o, &e, msg, len);
    unsetenv("TSR_FAULT_ALLOC"); /* before any assertion can jump out */
    unsetenv("TSR_VRAM_LIMIT");
    if (rc != want)
        fail_msg("engine: status %d, expected %d: %s", rc, want, msg);
    if (want)
        assert_null(e);
    return e;
}

static void fault_injection_env(void **state)
{
    char msg[1024];
    static const struct {
        const char *env;
        uint64_t from, to;
    } cases[] = {{"2", 2, 2}, {"2-4", 2, 4}, {"3+", 3, UINT64_MAX}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_engine *e = engine_with(cases[i].env, NULL, 0, 0, TSR_OK, msg, sizeof msg);
        expect_faults(e->pool, 1, 6, cases[i].from, cases[i].to, tsr__eerr(e));
        /* Only device allocations are injected; staging transfers go on. */
        for (int k = 0; k < 4; k++) {
            cl_mem m = alloc_ok(e->staging, 4096, tsr__eerr(e));
            tsr__pool_release(e->staging, m);
        }
        tsr_engine_free(e);
    }
    /* Without the variable nothing fails. */
    tsr_engine *e = engine_with(NULL, NULL, 0, 0, TSR_OK, msg, sizeof msg);
    expect_faults(e->pool, 1, 6, 0, 0, tsr__eerr(e));
    tsr_engine_free(e);
}

/* ---- sizes and the budget -------------------------------------------------------------------- */

static void parse_size(void **state)
{
    static const struct {
        const char *text;
        uint64_t total, want;
    } ok[] = {
        {"512M", 0, 512 * MIB},
        {"2G", 0, 2048 * MIB},
        {"1.5GiB", 0, 1536 * MIB},
        {"300MB", 0, 300 * MIB},
        {"65536", 0, 65536},
        {"60%", 1000, 600},
        {"100%", 4096 * MIB, 4096 * MIB},
        {"12.5%", 8 * MIB, MIB},
        /* Units are binary whatever the spelling, case-insensitive. */
        {"1K", 0, 1024},
        {"1k", 0, 1024},
        {"1KB", 0, 1024},
        {"1kib", 0, 1024},
        {"512m", 0, 512 * MIB},
        {"2g", 0, 2048 * MIB},
        {"1.5gib", 0, 1536 * MIB},
        {"300mb", 0, 300 * MIB},
        {"1T", 0, (uint64_t)1 << 40},
        {"1TiB", 0, (uint64_t)1 << 40},
        {"0.5K", 0, 512},
        {"1e3", 0, 1000},
        {"4096B", 0, 4096},
        /* Blanks before the number and between number and unit. */
        {" 512M", 0, 512 * MIB},
        {"512 M", 0, 512 * MIB},
        {"60 %", 1000, 600},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 0;
        char msg[512] = "";
        if (tsr_parse_size(ok[i].text, ok[i].total, &v, msg, sizeof msg))
            fail_msg("'%s' refused: %s", ok[i].text, msg);
        if (v != ok[i].want)
            fail_msg("'%s' gives %llu, expected %llu", ok[i].text, (unsigned long long)v,
                     (unsigned long long)ok[i].want);
    }
    /* A percentage of a large total is computed in double: within one byte of the exact value. */
    uint64_t total = 5731725312ull, v = 0;
    assert_int_equal(tsr_parse_size("60%", total, &v, NULL, 0), TSR_OK);
    assert_true(v + 1 >= total / 100 * 60 + total % 100 * 60 / 100 &&
                v <= total / 100 * 60 + total % 100 * 60 / 100 + 1);

    static const struct {
        const char *text;
        uint64_t total;
    } bad[] = {
        {"", 0},      {"abc", 0},  {"-1G", 0},   {"0", 0},   {"12Q", 0},
        {"1e30G", 0}, {"%", 1000}, {"512M ", 0}, {"1iB", 0}, {"1MiBB", 0},
        {"2 G B", 0}, {"inf", 0},  {"nan", 0},   {"0.1", 0}, {"60%", 0},
        {"1GiBx", 0}, {"M", 0},    {"0%", 1000}, {"16E", 0}, {"17179869184G", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t out = 12345;
        char msg[512] = "", quoted[64];
        tsr_status rc = tsr_parse_size(bad[i].text, bad[i].total, &out, msg, sizeof msg);
        if (rc != TSR_ERR_INVALID)
            fail_msg("'%s' accepted as %llu", bad[i].text, (unsigned long long)out);
        assert_true(out == 12345); /* untouched */
        snprintf(quoted, sizeof quoted, "'%s' is not a memory size", bad[i].text);
        if (!strstr(msg, quoted))
            fail_msg("message for '%s' does not name it: %s", bad[i].text, msg);
        /* The message slot is optional. */
        assert_int_equal(tsr_parse_size(bad[i].text, bad[i].total, &out, NULL, 0), TSR_ERR_INVALID);
    }
    uint64_t out = 0;
    assert_int_equal(tsr_parse_size(NULL, 0, &out, NULL, 0), TSR_ERR_INVALID);
}

static void default_budget(void **state)
{
    char msg[1024];
    tsr_engine *e = engine_with(NULL, NULL, 0, 0, TSR_OK, msg, sizeof msg);
    uint64_t total = tsr_engine_device(e)->global_mem, limit = tsr_engine_vram_limit(e);
    /* The rule: global memory less max(256 MiB, 10%), but at least half of it. */
    uint64_t headroom = total / 10 > 256 * MIB ? total / 10 : 256 * MIB;
    uint64_t want = total > 2 * headroom ? total - headroom : total / 2;
    assert_true(limit == want);
    assert_true(limit <= total && limit >= total / 2);
    assert_true(total - limit >= (256 * MIB < total / 2 ? 256 * MIB : total / 2));
    tsr_pool_stats s;
    assert_int_equal(tsr_engine_pool_stats(e, 0, &s), TSR_OK);
    assert_true(s.cap_bytes == limit); /* the budget is the pool's hard cap */
    assert_int_equal(tsr_engine_pool_stats(e, 1, &s), TSR_OK);
    assert_true(s.cap_bytes == 64 * MIB); /* the staging default */
    tsr_engine_free(e);

    /* Explicit limits: as given below the device's memory, clamped to it above. */
    e = engine_with(NULL, NULL, 12345, MIB, TSR_OK, msg, sizeof msg);
    assert_true(tsr_engine_vram_limit(e) == 12345);
    assert_int_equal(tsr_engine_pool_stats(e, 0, &s), TSR_OK);
    assert_true(s.cap_bytes == 12345);
    assert_int_equal(tsr_engine_pool_stats(e, 1, &s), TSR_OK);
    assert_true(s.cap_bytes == MIB);
    tsr_engine_free(e);
    e = engine_with(NULL, NULL, total + 1, 0, TSR_OK, msg, sizeof msg);
    assert_true(tsr_engine_vram_limit(e) == total);
    tsr_engine_free(e);
    e = engine_with(NULL, NULL, UINT64_MAX, 0, TSR_OK, msg, sizeof msg);
    assert_true(tsr_engine_vram_limit(e) == total);
    tsr_engine_free(e);

    /* The reference engine has no device memory. */
    tsr_engine *ref = tu_engine_ref();
    assert_true(tsr_engine_vram_limit(ref) == 0);
    assert_int_equal(tsr_engine_pool_stats(ref, 0, &s), TSR_ERR_INVALID);
    assert_non_null(strstr(tsr_errmsg(ref), "no device pool"));
}

static void budget_from_environment(void **state)
{
    char msg[1024];
    tsr_engine *e = engine_with(NULL, "3M", 0, 0, TSR_OK, msg, sizeof msg);
    uint64_t total = tsr_engine_device(e)->global_mem;
    assert_true(tsr_engine_vram_limit(e) == 3 * MIB);
    tsr_engine_free(e);
    e = engine_with(NULL, "50%", 0, 0, TSR_OK, msg, sizeof msg);
    uint64_t half = tsr_engine_vram_limit(e);
    assert_true(half + 1 >= total / 2 && half <= total / 2 + 1);
    tsr_engine_free(e);
    e = engine_with(NULL, "200%", 0, 0, TSR_OK, msg, sizeof msg);
    assert_true(tsr_engine_vram_limit(e) == total);
    tsr_engine_free(e);
    /* The option wins over the environment. */
    e = engine_with(NULL, "3M", 8 * MIB, 0, TSR_OK, msg, sizeof msg);
    assert_true(tsr_engine_vram_limit(e) == 8 * MIB);
    tsr_engine_free(e);
    /* A bad value is an error at creation, naming the variable and the text. */
    engine_with(NULL, "lots", 0, 0, TSR_ERR_INVALID, msg, sizeof msg);
    assert_non_null(strstr(msg, "TSR_VRAM_LIMIT"));
    assert_non_null(strstr(msg, "'lots' is not a memory size"));
    engine_with(NULL, "0", 0, 0, TSR_ERR_INVALID, msg, sizeof msg);
    assert_non_null(strstr(msg, "'0' is not a memory size"));
    /* A bad value does not matter when the option gives the budget. */
    e = engine_with(NULL, "lots", 8 * MIB, 0, TSR_OK, msg, sizeof msg);
    tsr_engine_free(e);
}

/* ---- whole runs ------------------------------------------------------------------------------ */

typedef struct run_dir {
    char path[64];
    char in[128];
} run_dir;

static void run_dir_make(run_dir *d, int w, int h)
{
    snprintf(d->path, sizeof d->path, "/tmp/tessera-pool-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    snprintf(d->in, sizeof d->in, "%s/in.png", d->path);
    tsr_image *img = tu_random_image(w, h, 3, 4242);
    tsr_save_options so;
    tsr_save_options_init(&so);
    tsr_status rc = tsr_image_write(tu_engine_ref(), img, d->in, &so);
    tsr_image_free(img);
    if (rc)
        fail_msg("writing %s: %s", d->in, tsr_errmsg(tu_engine_ref()));
}

static void run_dir_remove(run_dir *d)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
}

/* blur -> resize x1.5 -> invert: one stage of three nodes with accumulated halos. */
static tsr_image *run_chain(tsr_engine *e, const run_dir *d, const char *name, int tw, int th)
{
    char yaml[2048], out[128];
    snprintf(out, sizeof out, "%s/%s.png", d->path, name);
    snprintf(yaml, sizeof yaml,
             "version: 1\n"
             "nodes:\n"
             "  src: { type: image.load, params: { path: '%s' } }\n"
             "  blur: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 2 } }\n"
             "  up: { type: resize, inputs: { image: blur.image },\n"
             "        params: { scale: 1.5, filter: bicubic } }\n"
             "  inv: { type: adjust.invert, inputs: { image: up.image } }\n"
             "  out: { type: image.save, inputs: { image: inv.image },\n"
             "         params: { path: '%s', bit_depth: 16 } }\n",
             d->in, out);
    tsr_graph *g = NULL;
    if (tsr_graph_load_string(e, yaml, name, &g))
        fail_msg("%s", tsr_errmsg(e));
    tsr_run_options ro = {.tile_width = tw, .tile_height = th, .no_reuse = 1};
    if (tsr_graph_run(e, g, &ro))
        fail_msg("%s: %s", name, tsr_errmsg(e));
    tsr_graph_free(g);
    return tu_load(out);
}

/* A "key: value" line of tsr_engine_stats(); fails the test when the key is missing. */
static uint64_t stat_value(tsr_engine *e, const char *key)
{
    char *text = tsr_engine_stats(e), want[128];
    assert_non_null(text);
    snprintf(want, sizeof want, "\n%s: ", key);
    const char *at = strstr(text, want);
    unsigned long long v = 0;
    int ok = at && sscanf(at + strlen(want), "%llu", &v) == 1;
    tsr_free(text);
    if (!ok)
        fail_msg("no '%s' in the run statistics", key);
    return v;
}

static tsr_pool_stats engine_stats(tsr_engine *e, int staging)
{
    tsr_pool_stats s;
    assert_int_equal(tsr_engine_pool_stats(e, staging, &s), TSR_OK);
    return s;
}

/* Whole runs under budgets from "a few tiles' worth" to "one tile": the pool never holds more
 * than the budget, the plan's estimate fits it, and the pixels equal the untiled run's. */
static void budget_caps_runs(void **state)
{
    run_dir d;
    run_dir_make(&d, 300, 200);
    char msg[1024];
    tsr_engine *whole_e = engine_with(NULL, NULL, 0, 0, TSR_OK, msg, sizeof msg);
    tsr_image *whole = run_chain(whole_e, &d, "whole", 0, 0);
    assert_true(stat_value(whole_e, "plan.tiles") == 1);
    tsr_engine_free(whole_e);
    static const uint64_t budgets[] = {128 * KIB, 256 * KIB, MIB, 4 * MIB};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        tsr_engine *e = engine_with(NULL, NULL, budgets[i], 0, TSR_OK, msg, sizeof msg);
        tsr_image *out = run_chain(e, &d, "capped", 0, 0);
        tsr_pool_stats s = engine_stats(e, 0);
        if (s.peak_held_bytes > budgets[i] || stat_value(e, "plan.estimate_bytes") > budgets[i])
            fail_msg("budget %llu: peak held %llu, estimate %llu", (unsigned long long)budgets[i],
                     (unsigned long long)s.peak_held_bytes,
                     (unsigned long long)stat_value(e, "plan.estimate_bytes"));
        assert_true(stat_value(e, "plan.budget_bytes") == budgets[i]);
        if (budgets[i] < 4 * MIB) /* 450x300x3 floats in four buffers need about 4 MiB */
            assert_true(stat_value(e, "plan.tiles") > 1);
        assert_int_equal(s.in_use_bytes, 0); /* every buffer back after the run */
        assert_int_equal(s.hits + s.misses, s.allocations);
        /* Equal to the untiled run after 16-bit quantization: a misplaced halo or seam changes
         * pixels by far more than a level. Bit identity of the floats themselves is for the
         * per-node tiled tests, which compare images in memory. */
        assert_true(tu_max_diff(whole, out) == 0.0);
        tsr_image_free(out);
        tsr_engine_free(e);
    }
    tsr_image_free(whole);
    run_dir_remove(&d);
}

/* Two jobs on one engine, tiled, with room in the budget to keep the cache: tiles reuse the
 * blocks of earlier tiles, and the second job allocates nothing new. (Where the budget binds,
 * the pool gives cached blocks back to fit other classes and less is reused: docs/MEMORY.md.) */
static void reuse_across_jobs(void **state)
{
    run_dir d;
    run_dir_make(&d, 300, 200);
    char msg[1024];
    const uint64_t budget = 8 * MIB;
    tsr_engine *e = engine_with(NULL, NULL, budget, 0, TSR_OK, msg, sizeof msg);
    tsr_image *first = run_chain(e, &d, "first", 96, 96);
    assert_true(stat_value(e, "plan.tiles") == 5 * 4);
    tsr_pool_stats a = engine_stats(e, 0);
    assert_int_equal(a.in_use_bytes, 0);
    assert_int_equal(a.trims, 0);
    assert_int_equal(a.hits + a.misses, a.allocations);
    /* 8 requests a tile (upload, blur's scratch and output, resize's scratch, two tap tables and
     * output, invert's output) and the blur's taps once, 20 tiles: every tile of a stage asks for
     * the same sizes, so only the first tile's buffers are new (measured: 8 misses of 161, a
     * block reused within the tile). */
    print_message("reuse: %llu misses of %llu requests\n", (unsigned long long)a.misses,
                  (unsigned long long)a.allocations);
    assert_true(a.misses >= 1 && a.misses <= 9);
    assert_true(a.hits == a.allocations - a.misses);

    tsr_image *second = run_chain(e, &d, "second", 96, 96);
    tsr_pool_stats b = engine_stats(e, 0);
    assert_true(b.allocations - a.allocations == a.allocations); /* the same plan */
    assert_int_equal(b.misses - a.misses, 0);                    /* all from the cache */
    assert_int_equal(b.hits - a.hits, a.allocations);
    assert_true(b.held_bytes == a.held_bytes);
    assert_true(b.peak_held_bytes <= budget);
    assert_true(tu_max_diff(first, second) == 0.0);
    /* trim gives back everything cached, and the next job allocates afresh. */
    tsr_engine_trim(e);
    b = engine_stats(e, 0);
    assert_int_equal(b.held_bytes, 0);
    assert_int_equal(b.trims, 1);
    tsr_image *third = run_chain(e, &d, "third", 96, 96);
    tsr_pool_stats c = engine_stats(e, 0);
    assert_int_equal(c.misses - b.misses, a.misses);
    assert_true(tu_max_diff(first, third) == 0.0);
    tsr_image_free(first);
    tsr_image_free(second);
    tsr_image_free(third);
    tsr_engine_free(e);
    run_dir_remove(&d);
}

/* The staging pool after a run: its counters move, its cap holds with chunked transfers, and
 * the pixels do not depend on the chunk size. */
static void staging_counters(void **state)
{
    run_dir d;
    run_dir_make(&d, 300, 200);
    char msg[1024];
    tsr_engine *big = engine_with(NULL, NULL, 0, 0, TSR_OK, msg, sizeof msg);
    tsr_image *ref = run_chain(big, &d, "big-staging", 0, 0);
    tsr_pool_stats s = engine_stats(big, 1);
    assert_true(s.cap_bytes == 64 * MIB);
    /* One upload (the source) and one download (the root) for the single tile; on a CPU
     * device (buffers in host memory) such full-width transfers skip staging. */
    assert_int_equal(s.allocations, big->host_device ? 0 : 2);
    assert_int_equal(s.hits + s.misses, s.allocations);
    assert_true(s.peak_held_bytes <= s.cap_bytes);
    assert_true(big->host_device || s.peak_held_bytes > 0);
    assert_int_equal(s.in_use_bytes, 0);
    tsr_engine_free(big);

    /* 16 KiB of staging: chunks of a quarter of it, 4 KiB. Tiles of 64x64 of the 450x300
     * output make 8x5 tiles, each with one upload (the source) and one download (the root). */
    const uint64_t cap = 16 * KIB;
    tsr_engine *small = engine_with(NULL, NULL, 0, cap, TSR_OK, msg, sizeof msg);
    tsr_image *chunked = run_chain(small, &d, "small-staging", 64, 64);
    s = engine_stats(small, 1);
    assert_true(s.cap_bytes == cap);
    assert_true(s.peak_held_bytes <= cap);
    assert_true(s.peak_in_use_bytes <= cap / 4); /* one chunk at a time */
    assert_int_equal(s.allocations, 2 * 8 * 5);
    assert_int_equal(s.hits + s.misses, s.allocations);
    assert_int_equal(s.in_use_bytes, 0);
    assert_int_equal(s.oom_events, 0);
    assert_true(tu_max_diff(ref, chunked) == 0.0);
    /* Trim gives the staging cache back too. */
    assert_true(s.held_bytes > 0);
    tsr_engine_trim(small);
    s = engine_stats(small, 1);
    assert_int_equal(s.held_bytes, 0);
    assert_true(s.trims >= 1);
    assert_int_equal(engine_stats(small, 0).held_bytes, 0);
    tsr_image_free(ref);
    tsr_image_free(chunked);
    tsr_engine_free(small);
    run_dir_remove(&d);
}

int main(void)
{
    /* Hermetic: the budget and fault variables of the caller's shell must not leak in. */
    unsetenv("TSR_FAULT_ALLOC");
    unsetenv("TSR_VRAM_LIMIT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(class_sizes),
        cmocka_unit_test(best_fit_reuse),
        cmocka_unit_test(release_is_idempotent),
        cmocka_unit_test(hard_cap),
        cmocka_unit_test(trim_gives_cache_back),
        cmocka_unit_test(peak_counters),
        cmocka_unit_test(new_buffers_are_touched),
        cmocka_unit_test(max_single_allocation),
        cmocka_unit_test(fault_injection),
        cmocka_unit_test(fault_injection_env),
        cmocka_unit_test(parse_size),
        cmocka_unit_test(default_budget),
        cmocka_unit_test(budget_from_environment),
        cmocka_unit_test(budget_caps_runs),
        cmocka_unit_test(reuse_across_jobs),
        cmocka_unit_test(staging_counters),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
