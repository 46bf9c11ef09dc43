/* A real WASI program built with wasi-libc (see build.sh): prints a greeting,
 * its arguments and one environment variable, then copies stdin to stdout
 * (upper-cased) and a summary to stderr. Exits with the number of arguments
 * so the exit code path through libc's exit() -> proc_exit is exercised. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("hello from wasi-libc\n");
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=%s\n", i, argv[i]);
    }
    const char *greeting = getenv("GREETING");
    printf("GREETING=%s\n", greeting ? greeting : "(unset)");

    size_t total = 0;
    int c;
    while ((c = getchar()) != EOF) {
        putchar(toupper(c));
        total++;
    }
    double ratio = total > 0 ? (double)total / 4.0 : 0.0;
    fprintf(stderr, "read %zu bytes (%.2f quads)\n", total, ratio);
    return argc - 1;
}
