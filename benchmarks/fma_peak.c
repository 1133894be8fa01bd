/* The fp32 FMA rate the cores reach with nothing but FMAs in flight: a check of the derived limit
 * (benchmarks/limits.py, fma_peak). Each OpenMP thread keeps 12 independent accumulator vectors (more than
 * latency × units on any x86 core design, so the FMA units never wait on a result) and runs `n` rounds of 12
 * FMAs. Vector width from -DWIDTH=512 (AVX-512) or 256 (AVX2 + FMA).
 * Prints: <threads> <seconds> <GFLOP/s>. Build: cc -O2 -march=native -fopenmp -DWIDTH=512 fma_peak.c */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#if WIDTH == 512
typedef __m512 vec;
#define SET(x) _mm512_set1_ps(x)
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define LANES 16
#elif WIDTH == 256
typedef __m256 vec;
#define SET(x) _mm256_set1_ps(x)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define LANES 8
#else
#error "WIDTH must be 512 or 256"
#endif
#define ACCUMULATORS 12

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000000L;
  int threads = 1;
  float sink = 0.0f;
  double start = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
  {
#pragma omp single
    threads = omp_get_num_threads();
    vec acc[ACCUMULATORS];
    for (int k = 0; k < ACCUMULATORS; k++) acc[k] = SET(1e-3f * (k + 1));
    vec b = SET(0.9999f), c = SET(1e-7f);
    for (long i = 0; i < n; i++) {
#pragma GCC unroll 12
      for (int k = 0; k < ACCUMULATORS; k++) acc[k] = FMA(acc[k], b, c);
    }
    float lanes[LANES];
    vec total = acc[0];
    for (int k = 1; k < ACCUMULATORS; k++) total = total + acc[k];
    __builtin_memcpy(lanes, &total, sizeof lanes);
    sink += lanes[0]; /* the result is used: the loop cannot be removed */
  }
  double seconds = omp_get_wtime() - start;
  double flops = (double)threads * n * ACCUMULATORS * LANES * 2.0;
  printf("%d %.6f %.3f %g\n", threads, seconds, flops / seconds / 1e9, sink);
  return 0;
}
