/* Replay driver for the fuzz harnesses when built without libFuzzer: runs
 * LLVMFuzzerTestOneInput once over every file named on the command line, or inside every folder
 * named there (not recursively, in name order). Without arguments it replays FUZZ_CORPUS, the
 * harness's committed corpus (tests/run.sh runs test binaries without arguments, from the
 * repository root). A crash, a sanitizer report or a leak fails the process; otherwise it prints
 * how many inputs ran and exits 0. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        free(buf);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 1;
    }
    /* A copy of exactly len bytes, so that ASan sees a read past the input's end. */
    unsigned char *exact = malloc(len ? len : 1);
    if (len)
        memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the number of failures; *count gets the inputs run. */
static int run_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st)) {
        fprintf(stderr, "replay: no such file or folder: %s\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: cannot open folder %s\n", path);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    int fails = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(names[i]) + 2;
        char *full = malloc(len);
        snprintf(full, len, "%s/%s", path, names[i]);
        struct stat fst;
        if (!stat(full, &fst) && S_ISREG(fst.st_mode)) {
            (*count)++;
            fails += run_file(full);
        }
        free(full);
        free(names[i]);
    }
    free(names);
    return fails;
}

int main(int argc, char **argv)
{
    int count = 0, fails = 0;
    if (argc < 2) {
        fails += run_path(FUZZ_CORPUS, &count);
    } else {
        for (int i = 1; i < argc; i++)
            fails += run_path(argv[i], &count);
    }
    printf("replay %s: %d inputs, %d unreadable\n", argc < 2 ? FUZZ_CORPUS : "", count, fails);
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    return fails ? 1 : 0;
}
