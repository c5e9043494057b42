/*
 * memhog: fill memory with a per-page pattern, then verify it after the
 * kernel has swapped it out and back in.
 *
 *   memhog MIB [SEED]
 *
 * Every page's content is a function of (page index, seed) only.  Pages come
 * in four kinds so that a compressing swap device sees a realistic mix:
 *   0: pseudo-random words (incompressible)
 *   1: a short repeating pattern (compresses well)
 *   2: one 64-bit value repeated (zram's same-filled page)
 *   3: pseudo-random first half, zero second half
 * The first word of every page except kind 2 holds the page index xor seed.
 *
 * Phases: fill (computing a checksum), verify forward, verify backward.  The
 * checksum is an order-independent sum, so all three must match.  Exit status
 * 0 only if every page matched in both passes.
 * Output lines start with "memhog:"; the last one is
 *   memhog: OK pages=N verified=2N checksum=...
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t seed;

static inline uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void gen(uint64_t idx, uint64_t *w)
{
    uint64_t base = mix(idx ^ seed);
    switch (idx & 3) {
    case 0:
        for (int i = 0; i < WORDS; i++) w[i] = mix(base + (uint64_t)i);
        break;
    case 1:
        for (int i = 0; i < WORDS; i++) w[i] = base + (uint64_t)(i & 7);
        break;
    case 2:
        for (int i = 0; i < WORDS; i++) w[i] = base;
        return;
    case 3:
        for (int i = 0; i < WORDS / 2; i++) w[i] = mix(base + (uint64_t)i);
        memset(w + WORDS / 2, 0, PAGE / 2);
        break;
    }
    w[0] = idx ^ seed;
}

static uint64_t page_sum(uint64_t idx, const uint64_t *w)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < WORDS; i++) h = (h ^ w[i]) * 0x100000001b3ULL;
    return h * (2 * idx + 1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void meminfo(const char *when)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return;
    char line[256];
    long total = -1, freek = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "SwapTotal: %ld kB", &total);
        sscanf(line, "SwapFree: %ld kB", &freek);
    }
    fclose(f);
    if (total >= 0 && freek >= 0)
        printf("memhog: %s: swap used %ld MiB of %ld MiB\n", when, (total - freek) / 1024, total / 1024);
}

static long verify(unsigned char *mem, uint64_t pages, int backward, uint64_t *sum_out)
{
    uint64_t expect[WORDS];
    uint64_t sum = 0;
    long bad = 0;
    for (uint64_t k = 0; k < pages; k++) {
        uint64_t idx = backward ? pages - 1 - k : k;
        const uint64_t *w = (const uint64_t *)(mem + idx * PAGE);
        gen(idx, expect);
        if (memcmp(w, expect, PAGE) != 0) {
            if (bad < 10) {
                int first = 0;
                while (first < WORDS && w[first] == expect[first]) first++;
                printf("memhog: MISMATCH page %" PRIu64 " word %d: got %016" PRIx64 " want %016" PRIx64 "\n",
                       idx, first, w[first], expect[first]);
            }
            bad++;
        }
        sum += page_sum(idx, w);
    }
    *sum_out = sum;
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: memhog MIB [SEED]\n"); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t mib = strtoull(argv[1], NULL, 0);
    seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x5eed;
    uint64_t pages = mib * 1024 * 1024 / PAGE;
    size_t bytes = pages * PAGE;
    unsigned char *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("memhog: mmap"); return 1; }
    madvise(mem, bytes, MADV_NOHUGEPAGE);

    printf("memhog: filling %" PRIu64 " MiB (%" PRIu64 " pages), seed %" PRIu64 "\n", mib, pages, seed);
    double t0 = now();
    uint64_t sum = 0;
    for (uint64_t idx = 0; idx < pages; idx++) {
        uint64_t *w = (uint64_t *)(mem + idx * PAGE);
        gen(idx, w);
        sum += page_sum(idx, w);
        if ((idx + 1) % (pages / 8 ? pages / 8 : 1) == 0)
            printf("memhog: filled %" PRIu64 "/%" PRIu64 " pages (%.1f s)\n", idx + 1, pages, now() - t0);
    }
    double t1 = now();
    printf("memhog: fill done in %.1f s, checksum %016" PRIx64 "\n", t1 - t0, sum);
    meminfo("after fill");

    uint64_t fsum, bsum;
    long bad = verify(mem, pages, 0, &fsum);
    double t2 = now();
    printf("memhog: forward verify in %.1f s: %ld bad pages, checksum %016" PRIx64 "\n", t2 - t1, bad, fsum);
    meminfo("after forward verify");
    long bad2 = verify(mem, pages, 1, &bsum);
    double t3 = now();
    printf("memhog: backward verify in %.1f s: %ld bad pages, checksum %016" PRIx64 "\n", t3 - t2, bad2, bsum);

    if (bad || bad2 || fsum != sum || bsum != sum) {
        printf("memhog: FAIL bad_forward=%ld bad_backward=%ld checksums fill=%016" PRIx64 " fwd=%016" PRIx64
               " bwd=%016" PRIx64 "\n", bad, bad2, sum, fsum, bsum);
        return 1;
    }
    printf("memhog: OK pages=%" PRIu64 " verified=%" PRIu64 " checksum=%016" PRIx64 "\n", pages, 2 * pages, sum);
    return 0;
}
