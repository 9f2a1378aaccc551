/* The node registry against the tree (the files in nodes/, nodes.def, kernels, node tests), the
 * contract every class must keep, and the schema JSON a GUI reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

#define MAX_DEF 128

typedef struct def_entry {
    char sym[128], name[128];
} def_entry;

/* TSR_NODE(sym, "name") lines of nodes/nodes.def, in order. */
static int read_def(def_entry *out, int max)
{
    FILE *f = fopen("nodes/nodes.def", "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        def_entry d;
        if (sscanf(line, " TSR_NODE ( %127[A-Za-z0-9_] , \"%127[^\"]\" )", d.sym, d.name) == 2) {
            assert_true(n < max);
            out[n++] = d;
        }
    }
    fclose(f);
    return n;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void def_matches_files(void **state)
{
    def_entry defs[MAX_DEF];
    int n = read_def(defs, MAX_DEF);
    assert_true(n > 0);

    /* Every file in nodes/ is listed... */
    static tu_name_list files;
    tu_list_dir("nodes", ".c", &files);
    for (int f = 0; f < files.n; f++) {
        size_t len = strlen(files.name[f]);
        int found = 0;
        for (int i = 0; i < n; i++)
            if (strlen(defs[i].name) == len - 2 && !strncmp(defs[i].name, files.name[f], len - 2))
                found = 1;
        if (!found)
            fail_msg("nodes/%s is not listed in nodes/nodes.def", files.name[f]);
    }

    /* ...and every entry has its file, its symbol spelt from its name, and is registered in
     * the same order. */
    assert_int_equal(tsr__node_class_count, n);
    for (int i = 0; i < n; i++) {
        char path[300], sym[128];
        snprintf(path, sizeof path, "nodes/%s.c", defs[i].name);
        if (!file_exists(path))
            fail_msg("nodes.def lists '%s' but %s does not exist", defs[i].name, path);
        snprintf(sym, sizeof sym, "%s", defs[i].name);
        for (char *p = sym; *p; p++)
            if (*p == '.')
                *p = '_';
        if (strcmp(sym, defs[i].sym) != 0)
            fail_msg("nodes.def: '%s' should be exported as tsr_node_%s, not tsr_node_%s",
                     defs[i].name, sym, defs[i].sym);
        assert_string_equal(tsr__node_classes[i]->name, defs[i].name);
        assert_ptr_equal(tsr__node_class_find(defs[i].name), tsr__node_classes[i]);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(defs[i].name, defs[j].name);
    }
    assert_int_equal(files.n, n);
    assert_null(tsr__node_class_find("no.such.node"));
    assert_null(tsr__node_class_find(""));
}

static int unique_names(const void *table, size_t stride, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) {
            const char *a = *(const char *const *)((const char *)table + (size_t)i * stride);
            const char *b = *(const char *const *)((const char *)table + (size_t)j * stride);
            if (strcmp(a, b) == 0)
                return 0;
        }
    return 1;
}

/* Param names are YAML keys and --set words: lower case, digits, '_'. */
static int plain_word(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static void class_contract(void **state)
{
    for (int k = 0; k < tsr__node_class_count; k++) {
        const tsr_node_class *c = tsr__node_classes[k];
        const char *nm = c->name;
        if (!c->doc || !*c->doc)
            fail_msg("%s: no doc line", nm);
        assert_true(c->n_inputs >= 0 && c->n_inputs <= TSR_MAX_PORTS);
        assert_true(c->n_outputs >= 0 && c->n_outputs <= TSR_MAX_PORTS);
        assert_true(c->n_params >= 0 && c->n_params <= TSR_MAX_PARAMS);
        assert_true(c->n_inputs == 0 || c->inputs);
        assert_true(c->n_outputs == 0 || c->outputs);
        assert_true(c->n_params == 0 || c->params);
        if (c->flags & TSR_NODE_VALUE) {
            if (!c->resolve || c->n_outputs < 1 || c->outputs[0].type == TSR_PORT_IMAGE)
                fail_msg("%s: a VALUE node needs resolve and a non-image output", nm);
            continue;
        }
        if (!c->infer)
            fail_msg("%s: no infer", nm);
        if (c->flags & TSR_NODE_SOURCE) {
            if (!c->produce || c->n_inputs != 0 || c->n_outputs < 1)
                fail_msg("%s: a SOURCE needs produce, no inputs and an output", nm);
        } else if (c->flags & TSR_NODE_SINK) {
            if (!c->consume || c->n_outputs != 0 || c->n_inputs < 1)
                fail_msg("%s: a SINK needs consume, an input and no outputs", nm);
        } else {
            /* A processing node: the plain-C reference defines it, the kernel runs it. */
            if (!c->run_ref)
                fail_msg("%s: no run_ref", nm);
            if (!c->plan)
                fail_msg("%s: no plan", nm);
            if (!c->run_cl || !c->kernel)
                fail_msg("%s: no run_cl/kernel", nm);
            if (strcmp(c->kernel, nm) != 0)
                fail_msg("%s: kernel file stem '%s' differs from the type", nm, c->kernel);
            char path[300];
            snprintf(path, sizeof path, "kernels/%s.cl", c->kernel);
            if (!file_exists(path))
                fail_msg("%s: %s does not exist", nm, path);
            int embedded = 0;
            for (int i = 0; i < tsr__kernel_source_count; i++)
                embedded |= strcmp(tsr__kernel_sources[i].name, c->kernel) == 0;
            if (!embedded)
                fail_msg("%s: kernel '%s' is not embedded in the library", nm, c->kernel);
            snprintf(path, sizeof path, "tests/nodes/test_%s.c", nm);
            if (!file_exists(path))
                fail_msg("%s: no %s", nm, path);
        }
        for (int i = 0; i < c->n_inputs; i++)
            assert_true(c->inputs[i].name && c->inputs[i].doc);
        for (int i = 0; i < c->n_outputs; i++)
            assert_true(c->outputs[i].name && c->outputs[i].doc);
        if (!unique_names(c->inputs, sizeof *c->inputs, c->n_inputs) ||
            !unique_names(c->outputs, sizeof *c->outputs, c->n_outputs) ||
            !unique_names(c->params, sizeof *c->params, c->n_params))
            fail_msg("%s: duplicate port or param names", nm);
    }
}

static void param_contract(void **state)
{
    for (int k = 0; k < tsr__node_class_count; k++) {
        const tsr_node_class *c = tsr__node_classes[k];
        for (int i = 0; i < c->n_params; i++) {
            const tsr_param_def *d = &c->params[i];
            if (!plain_word(d->name) || !d->doc || !*d->doc)
                fail_msg("%s: param %d: bad name or no doc", c->name, i);
            int req = (d->flags & TSR_PARAM_REQUIRED) != 0;
            int opt = (d->flags & TSR_PARAM_OPTIONAL) != 0;
            /* Exactly one of: required, optional without default, or a default. */
            if (req + opt + (d->def != NULL) != 1)
                fail_msg("%s.%s: must be REQUIRED, OPTIONAL or have a default (one only)", c->name,
                         d->name);
            if ((d->type == TSR_PARAM_ENUM) != (d->choices != NULL))
                fail_msg("%s.%s: choices go with ENUM params only", c->name, d->name);
            if (d->type == TSR_PARAM_ENUM) {
                /* Non-empty words without repeats. */
                const char *p = d->choices;
                assert_true(*p && p[strlen(p) - 1] != '|' && !strstr(p, "||"));
                char words[32][64];
                int n = 0;
                for (;;) {
                    const char *bar = strchr(p, '|');
                    size_t len = bar ? (size_t)(bar - p) : strlen(p);
                    assert_true(len > 0 && len < 64 && n < 32);
                    snprintf(words[n], 64, "%.*s", (int)len, p);
                    for (int j = 0; j < n; j++)
                        assert_string_not_equal(words[j], words[n]);
                    n++;
                    if (!bar)
                        break;
                    p = bar + 1;
                }
            }
        }
        /* Every default passes its own param's checks. */
        tsr__err err;
        tsr__err_clear(&err);
        tsr_node n;
        if (tsr__node_init(&n, c, NULL, &err) != TSR_OK)
            fail_msg("%s: defaults rejected: %s", c->name, err.msg);
        for (int i = 0; i < c->n_params; i++)
            assert_int_equal(n.params[i].set, c->params[i].def != NULL);
        tsr__node_clear(&n);
    }
}

/* ---- JSON ------------------------------------------------------------------------------------
 * A strict RFC 8259 checker, written here so that the test does not trust the writer. */
typedef struct jp {
    const char *p;
} jp;

static void ws(jp *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
        j->p++;
}

static int hex4(const char *p)
{
    for (int i = 0; i < 4; i++)
        if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
            return 0;
    return 1;
}

static int j_value(jp *j, int depth);

static int j_string(jp *j)
{
    if (*j->p != '"')
        return 0;
    for (j->p++; *j->p != '"'; j->p++) {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            j->p++;
            if (*j->p == 'u') {
                if (!hex4(j->p + 1))
                    return 0;
                j->p += 4;
            } else if (!*j->p || !strchr("\"\\/bfnrt", *j->p)) {
                return 0;
            }
        } else if (c >= 0x80) {
            int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : -1;
            if (n < 0 || c > 0xF4)
                return 0;
            for (int i = 1; i <= n; i++)
                if (((unsigned char)j->p[i] & 0xC0) != 0x80)
                    return 0;
            j->p += n;
        }
    }
    j->p++;
    return 1;
}

static int j_number(jp *j)
{
    const char *p = j->p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    return 1;
}

static int j_value(jp *j, int depth)
{
    if (depth > 64)
        return 0;
    ws(j);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        int obj = close == '}';
        j->p++;
        ws(j);
        if (*j->p == close) {
            j->p++;
            return 1;
        }
        for (;;) {
            ws(j);
            if (obj) {
                if (!j_string(j))
                    return 0;
                ws(j);
                if (*j->p++ != ':')
                    return 0;
            }
            if (!j_value(j, depth + 1))
                return 0;
            ws(j);
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p++ != close)
                return 0;
            return 1;
        }
    }
    if (*j->p == '"')
        return j_string(j);
    static const char *const lit[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++)
        if (!strncmp(j->p, lit[i], strlen(lit[i]))) {
            j->p += strlen(lit[i]);
            return 1;
        }
    return j_number(j);
}

static int json_valid(const char *s)
{
    jp j = {s};
    if (!j_value(&j, 0))
        return 0;
    ws(&j);
    return *j.p == 0;
}

static void json_checker_rejects(void **state)
{
    /* The checker itself must be able to fail, or the tests below prove nothing. */
    assert_true(json_valid("{\"a\": [1, -2.5e3, true, null, \"x\\n\\u00e9\"]}"));
    assert_false(json_valid("{\"a\": 1,}"));
    assert_false(json_valid("{\"a\" 1}"));
    assert_false(json_valid("\"tab\there\""));
    assert_false(json_valid("\"bad \\x escape\""));
    assert_false(json_valid("\"\xff\""));
    assert_false(json_valid("01"));
    assert_false(json_valid("{} {}"));
    assert_false(json_valid("1,5"));
}

static void nodes_json_registry(void **state)
{
    char *js = tsr_nodes_json();
    assert_non_null(js);
    if (!json_valid(js))
        fail_msg("tsr_nodes_json() is not valid JSON:\n%s", js);
    for (int k = 0; k < tsr__node_class_count; k++) {
        char want[256];
        snprintf(want, sizeof want, "\"type\":\"%s\"", tsr__node_classes[k]->name);
        if (!strstr(js, want))
            fail_msg("no %s in the schema", want);
    }
    /* image.save as the brief defines it: typed defaults, ranges, choices, required flags. */
    assert_non_null(strstr(js, "{\"name\":\"path\",\"type\":\"string\",\"required\":true,"
                               "\"optional\":false,\"default\":null,\"min\":null,"
                               "\"max\":null,\"choices\":null"));
    assert_non_null(strstr(js, "{\"name\":\"compression\",\"type\":\"int\",\"required\":false,"
                               "\"optional\":false,\"default\":6,\"min\":0,\"max\":9,"
                               "\"choices\":null"));
    assert_non_null(strstr(js, "{\"name\":\"subsampling\",\"type\":\"enum\",\"required\":"
                               "false,\"optional\":false,\"default\":\"420\",\"min\":null,"
                               "\"max\":null,\"choices\":[\"444\",\"422\",\"420\"]"));
    assert_non_null(strstr(js, "{\"name\":\"format\",\"type\":\"enum\",\"required\":false,"
                               "\"optional\":true,\"default\":null"));
    assert_non_null(strstr(js, "\"tessera\":\"" TSR_VERSION "\""));
    tsr_free(js);
}

static void nodes_json_escaping(void **state)
{
    static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "in \"quotes\""}};
    static const tsr_port_def outs[] = {{"model", TSR_PORT_MODEL, "m"}};
    static const tsr_param_def params[] = {
        {"a", TSR_PARAM_NUMBER, "0.1", 0.01, 1e300, NULL, 0,
         "back\\slash \"q\" nl\n tab\t cr\r bell\x07 del\x7f caf\xc3\xa9 bad\xff end"},
        {"b", TSR_PARAM_BOOL, "yes", 0, -1, NULL, 0, "ls\xe2\x80\xa8 overlong\xc0\xaf"},
        {"c", TSR_PARAM_INT, NULL, -3, 3, NULL, TSR_PARAM_REQUIRED, "surrogate\xed\xa0\x80"},
        {"d", TSR_PARAM_STRING, "a\"b", 0, -1, NULL, 0, NULL},
    };
    static const tsr_node_class cls = {.name = "t.\"x\"",
                                       .doc = "doc/\x01",
                                       .inputs = ports,
                                       .n_inputs = 1,
                                       .outputs = outs,
                                       .n_outputs = 1,
                                       .params = params,
                                       .n_params = 4};
    static const tsr_node_class empty = {.name = "t.empty", .doc = "nothing"};
    const tsr_node_class *list[] = {&cls, &empty};
    char *js = tsr__nodes_json_of(list, 2);
    assert_non_null(js);
    if (!json_valid(js))
        fail_msg("not valid JSON:\n%s", js);
    assert_non_null(strstr(js, "\"type\":\"t.\\\"x\\\"\""));
    assert_non_null(strstr(js, "\"doc\":\"doc/\\u0001\""));
    assert_non_null(strstr(js, "\"doc\":\"in \\\"quotes\\\"\""));
    assert_non_null(strstr(js, "\"back\\\\slash \\\"q\\\" nl\\n tab\\t cr\\r bell\\u0007 del\x7f "
                               "caf\xc3\xa9 bad\\ufffd end\""));
    assert_non_null(strstr(js, "\"ls\\u2028 overlong\\ufffd\\ufffd\""));
    assert_non_null(strstr(js, "\"surrogate\\ufffd\\ufffd\\ufffd\""));
    /* Typed defaults and numbers in shortest round-trip form. */
    assert_non_null(strstr(js, "\"default\":0.1,\"min\":0.01,\"max\":1e+300"));
    assert_non_null(strstr(js, "\"type\":\"bool\",\"required\":false,\"optional\":false,"
                               "\"default\":true"));
    assert_non_null(strstr(js, "\"required\":true,\"optional\":false,\"default\":null,"
                               "\"min\":-3,\"max\":3"));
    assert_non_null(strstr(js, "\"default\":\"a\\\"b\""));
    assert_non_null(strstr(js, "\"doc\":null}"));
    assert_non_null(strstr(js, "\"type\":\"model\""));
    assert_non_null(strstr(js, "\"inputs\":[],\"outputs\":[],\"params\":[]"));
    tsr_free(js);

    js = tsr__nodes_json_of(list, 0);
    assert_non_null(js);
    assert_true(json_valid(js));
    tsr_free(js);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(def_matches_files),   cmocka_unit_test(class_contract),
        cmocka_unit_test(param_contract),      cmocka_unit_test(json_checker_rejects),
        cmocka_unit_test(nodes_json_registry), cmocka_unit_test(nodes_json_escaping),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
