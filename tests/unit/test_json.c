/* The JSON writer (engine/json.c) against texts derived by hand from RFC 8259, its misuse and
 * depth limits, and its two users (the node schema, the plan event) with strings no fixed buffer
 * could hold. Where python3 is installed, its json module reads the documents back as an
 * independent parser; without it those tests are skipped, the literal comparisons still run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* The writer's text, taken (the writer is left empty); fails the test when it failed. */
static char *take(tsr__json *j)
{
    char *s = tsr__json_take(j);
    if (!s)
        fail_msg("the writer failed");
    assert_int_equal(j->len, 0);
    assert_int_equal(j->depth, 0);
    assert_int_equal(j->failed, 0);
    return s;
}

static void expect(tsr__json *j, const char *want)
{
    char *got = take(j);
    if (strcmp(got, want) != 0)
        fail_msg("got  %s\nwant %s", got, want);
    free(got);
}

static void expect_str(const char *in, const char *want)
{
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_str(&j, in);
    expect(&j, want);
}

static void control_characters(void **state)
{
    /* RFC 8259 section 7: the five short forms where they exist, \u00XX for the rest. */
    static const char *const want[32] = {
        NULL,          "\"\\u0001\"", "\"\\u0002\"", "\"\\u0003\"", "\"\\u0004\"", "\"\\u0005\"",
        "\"\\u0006\"", "\"\\u0007\"", "\"\\b\"",     "\"\\t\"",     "\"\\n\"",     "\"\\u000b\"",
        "\"\\f\"",     "\"\\r\"",     "\"\\u000e\"", "\"\\u000f\"", "\"\\u0010\"", "\"\\u0011\"",
        "\"\\u0012\"", "\"\\u0013\"", "\"\\u0014\"", "\"\\u0015\"", "\"\\u0016\"", "\"\\u0017\"",
        "\"\\u0018\"", "\"\\u0019\"", "\"\\u001a\"", "\"\\u001b\"", "\"\\u001c\"", "\"\\u001d\"",
        "\"\\u001e\"", "\"\\u001f\"",
    };
    for (int c = 1; c < 32; c++) {
        char in[2] = {(char)c, 0};
        expect_str(in, want[c]);
    }
    expect_str("", "\"\"");
    expect_str("a\x01"
               "b\x1f"
               "c",
               "\"a\\u0001b\\u001fc\"");
}

static void quotes_backslash_ascii(void **state)
{
    expect_str("\"", "\"\\\"\"");
    expect_str("\\", "\"\\\\\"");
    expect_str("say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\"");
    /* '/' and DEL need no escape. */
    expect_str("a/b\x7f", "\"a/b\x7f\"");
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_str(&j, NULL);
    expect(&j, "null");
}

static void utf8_kept(void **state)
{
    /* 2-, 3- and 4-byte sequences, and the edges of the valid ranges, pass through as bytes. */
    expect_str("caf\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e",
               "\"caf\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e\"");
    expect_str("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf",
               "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"");
    expect_str("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
    /* U+2028 and U+2029 are escaped: valid JSON, but they end a JavaScript string literal. */
    expect_str("a\xe2\x80\xa8"
               "b\xe2\x80\xa9"
               "c",
               "\"a\\u2028b\\u2029c\"");
}

static void utf8_invalid_replaced(void **state)
{
    /* Every byte that does not start a valid sequence becomes one U+FFFD. */
    expect_str("\x80", "\"\\ufffd\"");
    expect_str("\xff", "\"\\ufffd\"");
    expect_str("\xfe\xfe", "\"\\ufffd\\ufffd\"");
    expect_str("a\xc0\xaf"
               "b",
               "\"a\\ufffd\\ufffdb\""); /* overlong '/' */
    expect_str("\xc1\xbf", "\"\\ufffd\\ufffd\"");
    expect_str("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong, 3 bytes */
    expect_str("\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong, 4 bytes */
    expect_str("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate D800 */
    expect_str("\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate DFFF */
    expect_str("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* U+110000 */
    expect_str("\xf5\x80", "\"\\ufffd\\ufffd\"");
    /* Truncated sequences, at the end and before ASCII (the ASCII byte is kept). */
    expect_str("x\xe2\x82", "\"x\\ufffd\\ufffd\"");
    expect_str("\xe2\x82z", "\"\\ufffd\\ufffdz\"");
    expect_str("\xf0\x9d\x84", "\"\\ufffd\\ufffd\\ufffd\"");
    expect_str("\xc3", "\"\\ufffd\"");
    /* A valid character right after an invalid byte survives. */
    expect_str("\xff\xc3\xa9", "\"\\ufffd\xc3\xa9\"");
}

static void long_strings_whole(void **state)
{
    /* 100,000 bytes, with escapes spread through it so the writer's bulk copies are split. */
    enum { N = 100000 };
    char *in = malloc(N + 1), *want = malloc(2 * N + 3);
    assert_non_null(in);
    assert_non_null(want);
    size_t w = 0;
    want[w++] = '"';
    for (int i = 0; i < N; i++) {
        in[i] = i % 1000 == 999 ? '"' : (char)('a' + i % 26);
        if (in[i] == '"')
            want[w++] = '\\';
        want[w++] = in[i];
    }
    in[N] = 0;
    want[w++] = '"';
    want[w] = 0;
    expect_str(in, want);

    /* The same length as a key, and a plain run with no escape at all. */
    memset(in, 'k', N);
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_obj(&j);
    tsr__json_kint(&j, in, 1);
    tsr__json_end(&j);
    char *got = take(&j);
    assert_int_equal(strlen(got), (size_t)N + 6);
    assert_memory_equal(got, "{\"kkk", 5);
    assert_string_equal(got + N + 2, "\":1}");
    free(got);
    free(in);
    free(want);
}

static void nesting_commas(void **state)
{
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_obj(&j);
    tsr__json_key(&j, "a");
    tsr__json_arr(&j);
    tsr__json_int(&j, 1);
    tsr__json_arr(&j);
    tsr__json_end(&j);
    tsr__json_obj(&j);
    tsr__json_end(&j);
    tsr__json_arr(&j);
    tsr__json_int(&j, 2);
    tsr__json_obj(&j);
    tsr__json_key(&j, "b");
    tsr__json_null(&j);
    tsr__json_end(&j);
    tsr__json_end(&j);
    tsr__json_end(&j);
    tsr__json_key(&j, "c");
    tsr__json_obj(&j);
    tsr__json_kbool(&j, "d", 1);
    tsr__json_kbool(&j, "e", 0);
    tsr__json_kstr(&j, "s", "x");
    tsr__json_kstr(&j, "n", NULL);
    tsr__json_knum(&j, "f", 2.5);
    tsr__json_kuint(&j, "u", 7);
    tsr__json_end(&j);
    tsr__json_key(&j, "g");
    tsr__json_arr(&j);
    tsr__json_end(&j);
    tsr__json_key(&j, "q\"k");
    tsr__json_raw(&j, "{\"x\":[1, 2]}");
    tsr__json_key(&j, "r");
    tsr__json_arr(&j);
    tsr__json_raw(&j, "true");
    tsr__json_raw(&j, "[3]");
    tsr__json_raw(&j, NULL);
    tsr__json_end(&j);
    tsr__json_end(&j);
    assert_string_equal(tsr__json_text(&j),
                        "{\"a\":[1,[],{},[2,{\"b\":null}]],\"c\":{\"d\":true,\"e\":false,\"s\":"
                        "\"x\",\"n\":null,\"f\":2.5,\"u\":7},\"g\":[],\"q\\\"k\":{\"x\":[1, 2]},"
                        "\"r\":[true,[3],null]}");
    expect(&j, "{\"a\":[1,[],{},[2,{\"b\":null}]],\"c\":{\"d\":true,\"e\":false,\"s\":\"x\",\"n\":"
               "null,\"f\":2.5,\"u\":7},\"g\":[],\"q\\\"k\":{\"x\":[1, 2]},\"r\":[true,[3],null]}");

    /* Scalars at the top level are documents too; take empties the writer for the next one. */
    tsr__json_init(&j);
    tsr__json_int(&j, 5);
    expect(&j, "5");
    tsr__json_arr(&j);
    tsr__json_end(&j);
    expect(&j, "[]");
    expect(&j, ""); /* nothing written */
    tsr__json_free(&j);
}

static void numbers(void **state)
{
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_arr(&j);
    tsr__json_num(&j, 0.1);
    tsr__json_num(&j, 1e300);
    tsr__json_num(&j, -0.0);
    tsr__json_num(&j, NAN);
    tsr__json_num(&j, INFINITY);
    tsr__json_num(&j, -INFINITY);
    tsr__json_num(&j, 0);
    tsr__json_num(&j, 100);
    tsr__json_num(&j, -2.5);
    tsr__json_num(&j, 0.1 + 0.2); /* needs 17 digits to read back */
    tsr__json_num(&j, 1e-7);
    tsr__json_num(&j, 1.7976931348623157e308);
    tsr__json_int(&j, INT64_MIN);
    tsr__json_int(&j, INT64_MAX);
    tsr__json_int(&j, 0);
    tsr__json_int(&j, -1);
    tsr__json_uint(&j, UINT64_MAX);
    tsr__json_uint(&j, 0);
    tsr__json_end(&j);
    expect(&j, "[0.1,1e+300,-0,null,null,null,0,100,-2.5,0.30000000000000004,1e-07,"
               "1.7976931348623157e+308,-9223372036854775808,9223372036854775807,0,-1,"
               "18446744073709551615,0]");

    tsr__json_obj(&j);
    tsr__json_knum(&j, "nan", NAN);
    tsr__json_kint(&j, "min", INT64_MIN);
    tsr__json_end(&j);
    expect(&j, "{\"nan\":null,\"min\":-9223372036854775808}");
}

static void depth_limit(void **state)
{
    tsr__json j;
    tsr__json_init(&j);
    char want[2 * 64 + 1];
    for (int i = 0; i < 64; i++) {
        tsr__json_arr(&j);
        want[i] = '[';
        want[64 + i] = ']';
    }
    want[128] = 0;
    assert_false(j.failed);
    for (int i = 0; i < 64; i++)
        tsr__json_end(&j);
    expect(&j, want);

    /* One level deeper fails, whatever follows, and take gives NULL. */
    for (int i = 0; i < 64; i++)
        tsr__json_obj(&j), tsr__json_key(&j, "k");
    assert_false(j.failed);
    tsr__json_arr(&j);
    assert_true(j.failed);
    assert_string_equal(tsr__json_text(&j), "");
    for (int i = 0; i < 65; i++)
        tsr__json_end(&j);
    assert_null(tsr__json_take(&j));
    /* ...and the writer is empty and usable again. */
    assert_false(j.failed);
    tsr__json_str(&j, "ok");
    expect(&j, "\"ok\"");
}

static void misuse_fails(void **state)
{
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_obj(&j);
    tsr__json_int(&j, 1); /* a value with no key */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_arr(&j);
    tsr__json_key(&j, "k"); /* a key in an array */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_obj(&j);
    tsr__json_key(&j, "k");
    tsr__json_key(&j, "k2"); /* two keys in a row */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_obj(&j);
    tsr__json_key(&j, "k");
    tsr__json_end(&j); /* a key with no value */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_end(&j); /* nothing open */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_key(&j, "k"); /* a key at the top level */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_int(&j, 1);
    tsr__json_int(&j, 2); /* two documents */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_obj(&j);
    tsr__json_key(&j, NULL); /* keys cannot be null */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_raw(&j, ""); /* not a value */
    assert_true(j.failed);
    assert_null(tsr__json_take(&j));

    tsr__json_obj(&j); /* unfinished: still open */
    tsr__json_kint(&j, "a", 1);
    assert_string_equal(tsr__json_text(&j), "{\"a\":1");
    assert_null(tsr__json_take(&j));

    /* A failed writer stays failed and writes nothing more. */
    tsr__json_end(&j);
    assert_true(j.failed);
    tsr__json_arr(&j);
    tsr__json_str(&j, "x");
    assert_string_equal(tsr__json_text(&j), "");
    tsr__json_free(&j);
    assert_false(j.failed);
    assert_null(j.buf);
    tsr__json_free(&j); /* twice is harmless */
}

/* ---- an independent parser: python3's json module ------------------------------------------- */

static int have_python(void)
{
    return system("command -v python3 >/dev/null 2>&1") == 0;
}

/* A new temporary file holding text; its name in path. */
static void write_temp(char *path, size_t size, const char *text)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, size, "%s/tsr-json-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Checks, in Python, what each part of the document below must read back as. */
static const char every_feature_check[] =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1], encoding='utf-8'))\n"
    "assert d['ctl'] == ''.join(map(chr, range(1, 32))) + '\"\\\\/', repr(d['ctl'])\n"
    "assert d['utf8'] == 'caf\\u00e9 \\u2603 \\U0001d11e \\u2028', repr(d['utf8'])\n"
    "assert d['bad'] == 'a\\ufffdb\\ufffd\\ufffdc', repr(d['bad'])\n"
    "assert d['big'] == ('ab\"\\\\\\n' * 20000), 'big'\n"
    "n = d['num']\n"
    /* "-0" is a JSON integer to Python: equal to 0, its sign is not kept */
    "assert n[:3] == [0.1, 1e300, 0] and str(n[2]) == '0', n\n"
    "assert n[3:6] == [None, None, None], n\n"
    "assert n[6:] == [-2**63, 2**63 - 1, 2**64 - 1, 0.1 + 0.2], n\n"
    "assert d['nest'] == [{}, [], {'a': [1, {'b': None}]}, True, False], d['nest']\n"
    "assert d['raw'] == {'x': [1, 2]} and d['k\"\\n'] == 'v', d\n";

static void python_reads_every_feature(void **state)
{
    if (!have_python())
        skip();
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_obj(&j);
    char ctl[40];
    for (int c = 1; c < 32; c++)
        ctl[c - 1] = (char)c;
    memcpy(ctl + 31, "\"\\/", 4);
    tsr__json_kstr(&j, "ctl", ctl);
    tsr__json_kstr(&j, "utf8", "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e \xe2\x80\xa8");
    tsr__json_kstr(&j, "bad",
                   "a\xff"
                   "b\xc0\xaf"
                   "c");
    size_t big_n = 5 * 20000;
    char *big = malloc(big_n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < big_n; i += 5)
        memcpy(big + i, "ab\"\\\n", 5);
    big[big_n] = 0;
    tsr__json_kstr(&j, "big", big);
    free(big);
    tsr__json_key(&j, "num");
    tsr__json_arr(&j);
    tsr__json_num(&j, 0.1);
    tsr__json_num(&j, 1e300);
    tsr__json_num(&j, -0.0);
    tsr__json_num(&j, NAN);
    tsr__json_num(&j, INFINITY);
    tsr__json_num(&j, -INFINITY);
    tsr__json_int(&j, INT64_MIN);
    tsr__json_int(&j, INT64_MAX);
    tsr__json_uint(&j, UINT64_MAX);
    tsr__json_num(&j, 0.1 + 0.2);
    tsr__json_end(&j);
    tsr__json_key(&j, "nest");
    tsr__json_arr(&j);
    tsr__json_obj(&j);
    tsr__json_end(&j);
    tsr__json_arr(&j);
    tsr__json_end(&j);
    tsr__json_obj(&j);
    tsr__json_key(&j, "a");
    tsr__json_arr(&j);
    tsr__json_int(&j, 1);
    tsr__json_obj(&j);
    tsr__json_key(&j, "b");
    tsr__json_null(&j);
    tsr__json_end(&j);
    tsr__json_end(&j);
    tsr__json_end(&j);
    tsr__json_bool(&j, 1);
    tsr__json_bool(&j, 0);
    tsr__json_end(&j);
    tsr__json_key(&j, "raw");
    tsr__json_raw(&j, "{\"x\": [1, 2]}");
    tsr__json_kstr(&j, "k\"\n", "v");
    tsr__json_end(&j);
    char *doc = take(&j);

    char doc_path[512], py_path[512], cmd[1200];
    write_temp(doc_path, sizeof doc_path, doc);
    write_temp(py_path, sizeof py_path, every_feature_check);
    free(doc);
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s'", py_path, doc_path);
    int rc = system(cmd);
    unlink(doc_path);
    unlink(py_path);
    assert_int_equal(rc, 0);
}

/* Every registered type, read back by python3 (one name a line) and compared with the registry;
 * then a class whose name, doc and enum words are far longer than any old fixed buffer. */
static void python_reads_nodes_json(void **state)
{
    if (!have_python())
        skip();
    char *js = tsr_nodes_json();
    assert_non_null(js);
    char doc_path[512], cmd[1200];
    write_temp(doc_path, sizeof doc_path, js);
    tsr_free(js);
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; d=json.load(open(sys.argv[1], encoding=\"utf-8\")); "
             "assert isinstance(d[\"tessera\"], str); "
             "print(\"\\n\".join(n[\"type\"] for n in d[\"nodes\"]))' '%s'",
             doc_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        assert_true(n < tsr__node_class_count);
        assert_string_equal(line, tsr__node_classes[n]->name);
        n++;
    }
    int rc = pclose(p);
    unlink(doc_path);
    assert_int_equal(rc, 0);
    assert_int_equal(n, tsr__node_class_count);
}

static void nodes_json_long_strings(void **state)
{
    enum { N = 10000 };
    char *name = malloc(N + 1), *choices = malloc(3 * N + 1);
    assert_non_null(name);
    assert_non_null(choices);
    memset(name, 'n', N);
    name[N] = 0;
    /* "a|<N x>|b|<N y>" */
    size_t c = 0;
    choices[c++] = 'a';
    choices[c++] = '|';
    memset(choices + c, 'x', N), c += N;
    memcpy(choices + c, "|b|", 3), c += 3;
    memset(choices + c, 'y', N), c += N;
    choices[c] = 0;
    const tsr_param_def params[] = {
        {"mode", TSR_PARAM_ENUM, "b", 0, -1, choices, 0, name},
    };
    const tsr_node_class cls = {.name = name, .doc = name, .params = params, .n_params = 1};
    const tsr_node_class *list[] = {&cls};
    char *js = tsr__nodes_json_of(list, 1);
    assert_non_null(js);

    size_t want_n = 3 * N + 64;
    char *want = malloc(want_n);
    assert_non_null(want);
    snprintf(want, want_n, "\"type\":\"%s\",\"doc\":\"%s\"", name, name);
    assert_non_null(strstr(js, want));
    snprintf(want, want_n, "\"choices\":[\"a\",\"%.*s\",\"b\",\"%s\"],\"doc\":\"%s\"}", N,
             choices + 2, choices + N + 5, name);
    assert_non_null(strstr(js, want));
    assert_non_null(strstr(js, "\"default\":\"b\""));

    if (have_python()) {
        char doc_path[512], cmd[1200];
        write_temp(doc_path, sizeof doc_path, js);
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                 "c=d[\"nodes\"][0]; p=c[\"params\"][0]; "
                 "assert c[\"type\"] == \"n\" * 10000, len(c[\"type\"]); "
                 "assert p[\"choices\"] == [\"a\", \"x\" * 10000, \"b\", \"y\" * 10000]' '%s'",
                 doc_path);
        int rc = system(cmd);
        unlink(doc_path);
        assert_int_equal(rc, 0);
    }
    free(want);
    free(js);
    free(choices);
    free(name);
}

/* The plan event with node ids a graph file may hold: 10,000 characters, quotes, newlines. */
static void plan_json_ids(void **state)
{
    enum { N = 10000 };
    static tsr_node nodes[2];
    char *long_id = malloc(N + 1);
    assert_non_null(long_id);
    memset(long_id, 'i', N);
    long_id[N] = 0;
    nodes[0].id = long_id;
    nodes[1].id = "q\"\n\\";
    tsr_graph g = {.nodes = nodes, .n_nodes = 2};
    int stage_nodes[] = {0, 1};
    tsr__stage st = {.root = 1,
                     .nodes = stage_nodes,
                     .n_nodes = 2,
                     .tile_w = 320,
                     .tile_h = 214,
                     .tiles = INT64_MAX,
                     .estimate = SIZE_MAX};
    tsr__plan plan = {.stages = &st,
                      .n_stages = 1,
                      .budget = 8178020352u,
                      .host_need = SIZE_MAX,
                      .host_peak = 5,
                      .host_peak_node = 1,
                      .staging = 64u << 20,
                      .mem_limit = 1};
    char *js = tsr__plan_describe(&g, &plan, 1);
    assert_non_null(js);

    size_t want_n = N + 512;
    char *want = malloc(want_n);
    assert_non_null(want);
    snprintf(want, want_n,
             "{\"event\":\"plan\",\"budget_bytes\":8178020352,\"tile_target_bytes\":0,\"host_"
             "estimate_bytes\":%zu,"
             "\"host_images_bytes\":5,\"host_peak_node\":\"q\\\"\\n\\\\\",\"host_device\":false,"
             "\"host_device_bytes\":0,\"host_staging_bytes\":67108864,\"host_budget_bytes\":1,"
             "\"stages\":[{\"root\":"
             "\"q\\\"\\n\\\\\",\"nodes\":[\"%s\",\"q\\\"\\n\\\\\"],\"tile_width\":320,"
             "\"tile_height\":214,\"tiles\":9223372036854775807,\"estimate_bytes\":%zu}]}",
             (size_t)SIZE_MAX, long_id, (size_t)SIZE_MAX);
    assert_string_equal(js, want);
    free(js);

    memset(&plan, 0, sizeof plan);
    plan.host_peak_node = -1; /* no node: null */
    js = tsr__plan_describe(&g, &plan, 1);
    assert_non_null(js);
    assert_string_equal(
        js,
        "{\"event\":\"plan\",\"budget_bytes\":0,\"tile_target_bytes\":0,\"host_estimate_bytes\":0,"
        "\"host_images_bytes\":0,\"host_peak_node\":null,"
        "\"host_device\":false,\"host_device_bytes\":0,\"host_staging_bytes\":0,"
        "\"host_budget_bytes\":0,\"stages\":[]}");
    free(js);
    free(want);
    free(long_id);
}

/* The public quote is the writer's string form. */
static void public_quote(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"a\"b\\c\n\x01", "\"a\\\"b\\\\c\\n\\u0001\""},
                 {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
                 {"bad\xff", "\"bad\\ufffd\""},
                 {"", "\"\""}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *q = tsr_json_quote(cases[i].in);
        assert_non_null(q);
        assert_string_equal(q, cases[i].out);
        tsr_free(q);
    }
    char *q = tsr_json_quote(NULL);
    assert_string_equal(q, "null");
    tsr_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(public_quote),
        cmocka_unit_test(control_characters),
        cmocka_unit_test(quotes_backslash_ascii),
        cmocka_unit_test(utf8_kept),
        cmocka_unit_test(utf8_invalid_replaced),
        cmocka_unit_test(long_strings_whole),
        cmocka_unit_test(nesting_commas),
        cmocka_unit_test(numbers),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(misuse_fails),
        cmocka_unit_test(python_reads_every_feature),
        cmocka_unit_test(python_reads_nodes_json),
        cmocka_unit_test(nodes_json_long_strings),
        cmocka_unit_test(plan_json_ids),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
