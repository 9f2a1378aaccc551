/* The OpenCL runtime: device listing and choice, the kernel binary cache, build errors with
 * their log, status mapping with node/kernel names, and the buffer pool's reuse. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static tsr_engine *engine_on(const char *device, const char *cache, tsr_status want, char *msg,
                             size_t len)
{
    tsr_engine_options o;
    tsr_engine_options_init(&o);
    o.device = device;
    o.cache_dir = cache;
    tsr_engine *e = NULL;
    assert_int_equal(tsr_engine_new(&o, &e, msg, len), want);
    return e;
}

static void devices_are_listed(void **state)
{
    tsr_device_info *list = NULL;
    int n = 0;
    char msg[512];
    assert_int_equal(tsr_devices_list(&list, &n, msg, sizeof msg), TSR_OK);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        assert_int_equal(list[i].index, i);
        assert_true(strlen(list[i].name) > 0);
        assert_true(list[i].global_mem > 0);
        assert_true(list[i].max_alloc > 0 && list[i].max_alloc <= list[i].global_mem);
    }
    tsr_free(list);
}

static void device_choice(void **state)
{
    char msg[1024];
    tsr_engine *e = engine_on("0", "", TSR_OK, msg, sizeof msg);
    char name[256];
    snprintf(name, sizeof name, "%s", tsr_engine_device(e)->name);
    assert_false(tsr_engine_is_ref(e));
    tsr_engine_free(e);
    /* By a case-changed part of its name. */
    char part[8] = {0};
    for (int i = 0; i < 4 && name[i]; i++)
        part[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    e = engine_on(part, "", TSR_OK, msg, sizeof msg);
    assert_string_equal(tsr_engine_device(e)->name, name);
    tsr_engine_free(e);
    assert_null(engine_on("99", "", TSR_ERR_NO_DEVICE, msg, sizeof msg));
    assert_non_null(strstr(msg, "device 99 does not exist"));
    assert_null(engine_on("no-such-device-xyz", "", TSR_ERR_NO_DEVICE, msg, sizeof msg));
    assert_non_null(strstr(msg, "no-such-device-xyz"));
    e = engine_on("ref", "", TSR_OK, msg, sizeof msg);
    assert_true(tsr_engine_is_ref(e));
    tsr_engine_free(e);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        n += ent->d_name[0] != '.';
    closedir(d);
    return n;
}

static void build_once(tsr_engine *e)
{
    cl_kernel k;
    assert_int_equal(
        tsr__cl_kernel(e->cl, NULL, "adjust.invert", "tsr_adjust_invert", &k, tsr__eerr(e)),
        TSR_OK);
    /* The second lookup reuses the built program. */
    cl_kernel k2;
    assert_int_equal(
        tsr__cl_kernel(e->cl, NULL, "adjust.invert", "tsr_adjust_invert", &k2, tsr__eerr(e)),
        TSR_OK);
    assert_ptr_equal(k, k2);
}

static void binary_cache(void **state)
{
    char dir[] = "/tmp/tessera-cache-XXXXXX", msg[512], cache[600], path[900];
    assert_non_null(mkdtemp(dir));
    snprintf(cache, sizeof cache, "%s/nested/dir", dir); /* created on demand */
    tsr_engine *a = engine_on(NULL, cache, TSR_OK, msg, sizeof msg);
    build_once(a);
    assert_int_equal(a->cl->builds_compiled, 1);
    assert_int_equal(a->cl->builds_cached, 0);
    assert_int_equal(count_files(cache), 1);
    tsr_engine_free(a);

    tsr_engine *b = engine_on(NULL, cache, TSR_OK, msg, sizeof msg);
    build_once(b);
    assert_int_equal(b->cl->builds_compiled, 0); /* warm start: nothing recompiled */
    assert_int_equal(b->cl->builds_cached, 1);
    tsr_engine_free(b);

    /* A damaged cache file is not trusted: the program is rebuilt from source. */
    DIR *d = opendir(cache);
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (ent->d_name[0] != '.')
            snprintf(path, sizeof path, "%s/%s", cache, ent->d_name);
    closedir(d);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("garbage", f);
    fclose(f);
    tsr_engine *c = engine_on(NULL, cache, TSR_OK, msg, sizeof msg);
    build_once(c);
    assert_int_equal(c->cl->builds_compiled, 1);
    tsr_engine_free(c);

    /* An empty cache_dir disables the cache. */
    tsr_engine *nc = engine_on(NULL, "", TSR_OK, msg, sizeof msg);
    build_once(nc);
    assert_int_equal(nc->cl->builds_compiled, 1);
    tsr_engine_free(nc);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    assert_int_equal(system(path), 0);
}

static void build_error_carries_log(void **state)
{
    tsr_engine *e = tu_engine_cl();
    const char *src = "__kernel void k(__global float *a) { a[0] = no_such_symbol_here; }\n";
    size_t len = strlen(src);
    cl_program prog = NULL;
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__cl_build_source(e->cl, "broken", 1, &src, &len, &prog, &err),
                     TSR_ERR_BUILD);
    assert_null(prog);
    assert_non_null(strstr(err.msg, "building kernels/broken.cl"));
    assert_non_null(strstr(err.msg, "build log"));
    assert_non_null(strstr(err.msg, "no_such_symbol_here"));
}

static void cl_errors_name_node_and_kernel(void **state)
{
    tsr_engine *e = tu_engine_cl();
    tsr_node *n = tu_node("adjust.invert", NULL, 0);
    char *own_id = n->id;
    n->id = "inv1";
    tsr_exec ex;
    tsr__exec_init(&ex, e, n);
    cl_kernel k;
    assert_int_equal(tsr__exec_kernel(&ex, "tsr_adjust_invert", &k), TSR_OK);
    assert_int_equal(tsr__exec_cl_error(&ex, CL_MEM_OBJECT_ALLOCATION_FAILURE, "clFoo"),
                     TSR_ERR_DEVICE_NOMEM);
    assert_non_null(strstr(tsr__eerr(e)->msg, "node 'inv1' (adjust.invert)"));
    assert_non_null(strstr(tsr__eerr(e)->msg, "kernel 'tsr_adjust_invert'"));
    assert_non_null(strstr(tsr__eerr(e)->msg, "CL_MEM_OBJECT_ALLOCATION_FAILURE"));
    assert_int_equal(tsr__exec_cl_error(&ex, CL_OUT_OF_RESOURCES, "clFoo"), TSR_ERR_DEVICE_NOMEM);
    assert_int_equal(tsr__exec_cl_error(&ex, CL_INVALID_VALUE, "clFoo"), TSR_ERR_DEVICE);
    /* A real failing call: an argument of the wrong size. */
    char big[3] = {0};
    assert_int_equal(tsr__exec_args(&ex, k, 1, sizeof big, (const void *)big), TSR_ERR_DEVICE);
    assert_non_null(strstr(tsr__eerr(e)->msg, "clSetKernelArg(0)"));
    /* An unknown kernel name. */
    assert_int_equal(tsr__exec_kernel(&ex, "tsr_no_such_kernel", &k), TSR_ERR_DEVICE);
    assert_non_null(strstr(tsr__eerr(e)->msg, "tsr_no_such_kernel"));
    n->id = own_id;
    tsr__node_free(n);
}

static void pool_reuses_buffers(void **state)
{
    tsr_engine *e = tu_engine_cl();
    tsr__pool *p = e->pool;
    cl_mem a, b, c;
    char s0[1024], s1[1024];
    tsr__pool_trim(p);
    tsr__pool_stats(p, s0, sizeof s0);
    assert_int_equal(tsr__pool_alloc(p, 1000, &a, tsr__eerr(e)), TSR_OK);
    tsr__pool_release(p, a);
    assert_int_equal(tsr__pool_alloc(p, 900, &b, tsr__eerr(e)), TSR_OK); /* reused: within 25% */
    assert_ptr_equal(a, b);
    assert_int_equal(tsr__pool_alloc(p, 100, &c, tsr__eerr(e)), TSR_OK); /* not reused: too small */
    assert_ptr_not_equal(b, c);
    tsr__pool_release(p, b);
    tsr__pool_release(p, c);
    tsr__pool_stats(p, s1, sizeof s1);
    assert_non_null(strstr(s1, "pool.in_use_bytes: 0\n"));
    /* A cap below the request fails cleanly with the figures. */
    tsr__pool_set_cap(p, 4096);
    cl_mem d;
    assert_int_equal(tsr__pool_alloc(p, 8192, &d, tsr__eerr(e)), TSR_ERR_DEVICE_NOMEM);
    assert_non_null(strstr(tsr__eerr(e)->msg, "8192 more bytes would pass the budget"));
    tsr__pool_set_cap(p, (size_t)tsr_engine_vram_limit(e));
    tsr__pool_trim(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(devices_are_listed),
        cmocka_unit_test(device_choice),
        cmocka_unit_test(binary_cache),
        cmocka_unit_test(build_error_carries_log),
        cmocka_unit_test(cl_errors_name_node_and_kernel),
        cmocka_unit_test(pool_reuses_buffers),
    };
    return cmocka_run_group_tests_name("runtime", tests, NULL, NULL);
}
