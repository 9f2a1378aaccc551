/* JSON writer: every JSON text the engine and the CLI produce goes through here, so escaping,
 * number spelling and commas are decided in one place and a node id or doc string of any length
 * or content still gives a document that parses. The text is compact (no spaces or newlines). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Bits of first[level]. FIRST: nothing written at this level yet. ARRAY: the level is an array
 * (else an object). KEY: an object's key was written and its value is due. Keeping the key state
 * lets misuse (a value without a key, a key in an array, an object closed after its key) fail
 * instead of producing text that does not parse. */
enum { FIRST = 1, ARRAY = 2, KEY = 4 };

#define MAX_DEPTH ((int)sizeof(((tsr__json *)0)->first))

void tsr__json_init(tsr__json *j)
{
    memset(j, 0, sizeof *j);
}

void tsr__json_free(tsr__json *j)
{
    if (!j)
        return;
    free(j->buf);
    tsr__json_init(j);
}

static void fail(tsr__json *j)
{
    j->failed = 1;
}

/* Room for n more bytes and the terminating NUL. */
static int reserve(tsr__json *j, size_t n)
{
    if (j->failed)
        return 0;
    if (j->buf && n < j->cap - j->len)
        return 1;
    if (n > SIZE_MAX - j->len - 1) {
        fail(j);
        return 0;
    }
    size_t need = j->len + n + 1, cap = j->cap ? j->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(j->buf, cap);
    if (!p) {
        fail(j);
        return 0;
    }
    j->buf = p;
    j->cap = cap;
    return 1;
}

static void put_n(tsr__json *j, const char *s, size_t n)
{
    if (!reserve(j, n))
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = 0;
}

static void put(tsr__json *j, const char *s)
{
    put_n(j, s, strlen(s));
}

/* Before a value: checks that a value may stand here and writes the comma it needs. */
static int begin_value(tsr__json *j)
{
    if (j->failed)
        return 0;
    if (j->depth == 0) {
        if (j->len) /* one document per writer: a second top-level value would not parse */
            fail(j);
        return !j->failed;
    }
    unsigned char *f = &j->first[j->depth - 1];
    if (*f & ARRAY) {
        if (!(*f & FIRST))
            put_n(j, ",", 1);
        *f &= (unsigned char)~FIRST;
    } else if (*f & KEY) {
        *f &= (unsigned char)~KEY;
    } else {
        fail(j);
    }
    return !j->failed;
}

/* Length of the valid UTF-8 sequence at s (2-4), or 0 when it is not one: no overlong forms,
 * no surrogates, nothing past U+10FFFF. s[0] >= 0x80; the string is NUL-terminated, and a NUL
 * is never a continuation byte, so the loop stops at the end. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0], cp;
    int n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A quoted string. Each invalid byte becomes U+FFFD so the document always parses. U+2028 and
 * U+2029 are valid JSON but end a JavaScript string literal, so they are escaped too. Runs of
 * bytes that need nothing are copied at once: a long doc string costs one copy. */
static void put_string(tsr__json *j, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *run = p;
    put_n(j, "\"", 1);
    for (;;) {
        unsigned c = *p;
        int n = 1;
        const char *esc = NULL;
        char u[7];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            p++;
            continue;
        }
        if (c >= 0x80) {
            n = utf8_len(p);
            if (n == 0) {
                n = 1;
                esc = "\\ufffd";
            } else if (n == 3 && c == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
                esc = p[2] == 0xA8 ? "\\u2028" : "\\u2029";
            } else {
                p += n;
                continue;
            }
        }
        put_n(j, (const char *)run, (size_t)(p - run));
        if (c == 0)
            break;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = 0;
                esc = u;
            }
            break;
        }
        put(j, esc);
        p += n;
        run = p;
    }
    put_n(j, "\"", 1);
}

static void open_level(tsr__json *j, int array)
{
    if (!begin_value(j))
        return;
    if (j->depth >= MAX_DEPTH) {
        fail(j);
        return;
    }
    put_n(j, array ? "[" : "{", 1);
    j->first[j->depth++] = (unsigned char)(FIRST | (array ? ARRAY : 0));
}

void tsr__json_obj(tsr__json *j)
{
    open_level(j, 0);
}

void tsr__json_arr(tsr__json *j)
{
    open_level(j, 1);
}

void tsr__json_end(tsr__json *j)
{
    if (j->failed)
        return;
    if (j->depth == 0 || (j->first[j->depth - 1] & KEY)) {
        fail(j);
        return;
    }
    j->depth--;
    put_n(j, j->first[j->depth] & ARRAY ? "]" : "}", 1);
}

void tsr__json_key(tsr__json *j, const char *key)
{
    if (j->failed)
        return;
    unsigned char *f = j->depth ? &j->first[j->depth - 1] : NULL;
    if (!key || !f || (*f & (ARRAY | KEY))) {
        fail(j);
        return;
    }
    if (!(*f & FIRST))
        put_n(j, ",", 1);
    put_string(j, key);
    put_n(j, ":", 1);
    *f = (unsigned char)((*f & ~FIRST) | KEY);
}

void tsr__json_str(tsr__json *j, const char *s)
{
    if (!s) {
        tsr__json_null(j);
        return;
    }
    if (begin_value(j))
        put_string(j, s);
}

void tsr__json_num(tsr__json *j, double v)
{
    if (!isfinite(v)) { /* JSON has no NaN or infinities */
        tsr__json_null(j);
        return;
    }
    /* %.17g of any double is at most 24 characters ("-2.2250738585072014e-308"). */
    char tmp[40];
    tsr__format_number(tmp, sizeof tmp, v);
    if (begin_value(j))
        put(j, tmp);
}

void tsr__json_int(tsr__json *j, int64_t v)
{
    char tmp[24]; /* 20 digits and a sign at most */
    snprintf(tmp, sizeof tmp, "%" PRId64, v);
    if (begin_value(j))
        put(j, tmp);
}

void tsr__json_uint(tsr__json *j, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    if (begin_value(j))
        put(j, tmp);
}

void tsr__json_bool(tsr__json *j, int v)
{
    if (begin_value(j))
        put(j, v ? "true" : "false");
}

void tsr__json_null(tsr__json *j)
{
    if (begin_value(j))
        put(j, "null");
}

void tsr__json_raw(tsr__json *j, const char *json)
{
    if (!json) {
        tsr__json_null(j);
        return;
    }
    if (!*json) { /* not a value: the document would not parse */
        fail(j);
        return;
    }
    if (begin_value(j))
        put(j, json);
}

void tsr__json_kstr(tsr__json *j, const char *key, const char *s)
{
    tsr__json_key(j, key);
    tsr__json_str(j, s);
}

void tsr__json_knum(tsr__json *j, const char *key, double v)
{
    tsr__json_key(j, key);
    tsr__json_num(j, v);
}

void tsr__json_kint(tsr__json *j, const char *key, int64_t v)
{
    tsr__json_key(j, key);
    tsr__json_int(j, v);
}

void tsr__json_kuint(tsr__json *j, const char *key, uint64_t v)
{
    tsr__json_key(j, key);
    tsr__json_uint(j, v);
}

void tsr__json_kbool(tsr__json *j, const char *key, int v)
{
    tsr__json_key(j, key);
    tsr__json_bool(j, v);
}

const char *tsr__json_text(const tsr__json *j)
{
    return j->failed || !j->buf ? "" : j->buf;
}

/* An unfinished document (a container still open) counts as failed: it would not parse. */
char *tsr__json_take(tsr__json *j)
{
    char *out = NULL;
    if (!j->failed && j->depth == 0) {
        out = j->buf ? j->buf : calloc(1, 1);
        j->buf = NULL;
    }
    tsr__json_free(j);
    return out;
}

char *tsr_json_quote(const char *s)
{
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_str(&j, s);
    return tsr__json_take(&j);
}
