/* One core's LZ4 speed on 4 KiB pages: each page of FILE compressed alone and decompressed
 * alone, the way a compressed RAM device stores pages: LZ4_compress_fast_extState at
 * acceleration 1, which clears its 16 KiB hash table for every page as the kernel's lz4
 * backend and SwiftZram's codec do, and LZ4_decompress_safe.
 *
 *   cc -O2 -o lz4_pages lz4_pages.c -llz4 && ./lz4_pages FILE [PASSES]
 *
 * Prints one JSON object: pages, compressed bytes, and for each pass the seconds of this
 * thread's CPU time taken (so time spent descheduled on a busy machine does not count).
 * Single-threaded. */
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PAGE = 4096 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [PASSES]\n", argv[0]);
        return 2;
    }
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    FILE *file = fopen(argv[1], "rb");
    if (!file) {
        perror(argv[1]);
        return 1;
    }
    fseek(file, 0, SEEK_END);
    long pages = ftell(file) / PAGE;
    rewind(file);
    if (pages <= 0 || passes <= 0) {
        fprintf(stderr, "need at least one page and one pass\n");
        return 1;
    }
    int bound = LZ4_compressBound(PAGE);
    char *input = malloc((size_t)pages * PAGE);
    char *compressed = malloc((size_t)pages * (size_t)bound);
    int *sizes = malloc((size_t)pages * sizeof(int));
    char *output = malloc(PAGE);
    if (!input || !compressed || !sizes || !output || fread(input, PAGE, (size_t)pages, file) != (size_t)pages) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(file);
    void *state = malloc((size_t)LZ4_sizeofState());
    if (!state) {
        return 1;
    }
    long long total = 0;
    printf("{\"pages\": %ld, \"passes\": [", pages);
    for (int pass = 0; pass < passes; pass++) {
        double start = now();
        total = 0;
        for (long i = 0; i < pages; i++) {
            sizes[i] = LZ4_compress_fast_extState(state, input + i * PAGE, compressed + i * bound, PAGE, bound, 1);
            total += sizes[i];
        }
        double compress = now() - start;
        start = now();
        for (long i = 0; i < pages; i++) {
            if (LZ4_decompress_safe(compressed + i * bound, output, sizes[i], PAGE) != PAGE ||
                memcmp(output, input + i * PAGE, 64) != 0) {
                fprintf(stderr, "page %ld did not round-trip\n", i);
                return 1;
            }
        }
        double decompress = now() - start;
        printf("%s{\"compress_s\": %.6f, \"decompress_s\": %.6f}", pass ? ", " : "", compress, decompress);
    }
    printf("], \"compressed_bytes\": %lld}\n", total);
    return 0;
}
