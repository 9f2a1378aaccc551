/* TEMPORARY stand-in for the JSON writer (replaced by the real engine/json.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
void tsr__json_init(tsr__json *j) { memset(j, 0, sizeof *j); j->first[0] = 1; }
void tsr__json_free(tsr__json *j) { free(j->buf); memset(j, 0, sizeof *j); }
static void put(tsr__json *j, const char *s, size_t n) {
    if (j->failed) return;
    if (j->len + n + 1 > j->cap) { size_t c = (j->len + n + 1) * 2; char *b = realloc(j->buf, c); if (!b) { j->failed = 1; return; } j->buf = b; j->cap = c; }
    memcpy(j->buf + j->len, s, n); j->len += n; j->buf[j->len] = 0; }
static void comma(tsr__json *j) { if (j->first[j->depth] == 2) { j->first[j->depth] = 0; return; } if (!j->first[j->depth]) put(j, ",", 1); j->first[j->depth] = 0; }
void tsr__json_obj(tsr__json *j) { comma(j); put(j, "{", 1); j->depth++; j->first[j->depth] = 1; j->first[40+j->depth]='}'; }
void tsr__json_arr(tsr__json *j) { comma(j); put(j, "[", 1); j->depth++; j->first[j->depth] = 1; j->first[40+j->depth]=']'; }
void tsr__json_end(tsr__json *j) { char c = j->first[40+j->depth]; j->depth--; put(j, &c, 1); }
void tsr__json_str(tsr__json *j, const char *s) { comma(j); if (!s) { put(j, "null", 4); return; } put(j, "\"", 1);
  for (; *s; s++) { char b[8]; if (*s == '"' || *s == '\\') { b[0]='\\'; b[1]=*s; put(j,b,2);} else if ((unsigned char)*s < 32) { snprintf(b, sizeof b, "\\u%04x", *s); put(j,b,6);} else put(j,s,1);} put(j, "\"", 1); }
void tsr__json_key(tsr__json *j, const char *k) { tsr__json_str(j, k); put(j, ":", 1); j->first[j->depth] = 2; }
void tsr__json_num(tsr__json *j, double v) { comma(j); char b[64]; tsr__format_number(b, sizeof b, v); put(j, b, strlen(b)); }
void tsr__json_int(tsr__json *j, int64_t v) { comma(j); char b[64]; snprintf(b, sizeof b, "%lld", (long long)v); put(j, b, strlen(b)); }
void tsr__json_uint(tsr__json *j, uint64_t v) { comma(j); char b[64]; snprintf(b, sizeof b, "%llu", (unsigned long long)v); put(j, b, strlen(b)); }
void tsr__json_bool(tsr__json *j, int v) { comma(j); put(j, v ? "true" : "false", v ? 4 : 5); }
void tsr__json_null(tsr__json *j) { comma(j); put(j, "null", 4); }
void tsr__json_raw(tsr__json *j, const char *s) { comma(j); put(j, s, strlen(s)); }
void tsr__json_kstr(tsr__json *j, const char *k, const char *s) { tsr__json_key(j, k); tsr__json_str(j, s); }
void tsr__json_knum(tsr__json *j, const char *k, double v) { tsr__json_key(j, k); tsr__json_num(j, v); }
void tsr__json_kint(tsr__json *j, const char *k, int64_t v) { tsr__json_key(j, k); tsr__json_int(j, v); }
void tsr__json_kuint(tsr__json *j, const char *k, uint64_t v) { tsr__json_key(j, k); tsr__json_uint(j, v); }
void tsr__json_kbool(tsr__json *j, const char *k, int v) { tsr__json_key(j, k); tsr__json_bool(j, v); }
const char *tsr__json_text(const tsr__json *j) { return j->buf && !j->failed ? j->buf : ""; }
char *tsr__json_take(tsr__json *j) { char *b = j->failed ? NULL : j->buf; if (!b) b = strdup(""); else j->buf = NULL; tsr__json_free(j); return b; }
