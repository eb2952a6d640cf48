// Kernels for distances from a float query to rows stored as IEEE half floats (the fp16 graph walk,
// `search.hnsw_walk = "fp16"`): half the bytes per visited row, so half the memory traffic
// of a walk that is bound by it. The walk only orders candidates; the engine re-scores
// its hits exactly from the float vectors.
//
// One template per SIMD level, `L2` choosing squared L2 or the inner product. Included
// by hnsw_shim.cpp (inside its anonymous namespace, after `cpu_level` and `hsum256`);
// its `HalfDC` walks over them.

inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (man << 13); // inf / NaN
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        // Subnormal half: normalise.
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400) == 0);
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

template <bool L2>
inline float acc1(float s, float x, float y) {
    if constexpr (L2) {
        float t = x - y;
        return s + t * t;
    } else {
        return s + x * y;
    }
}

template <bool L2>
float h1_generic(const float* q, const uint16_t* b, size_t d) {
    float s = 0;
    for (size_t i = 0; i < d; i++) s = acc1<L2>(s, q[i], half_to_float(b[i]));
    return s;
}

template <bool L2>
void h4_generic(const float* q, const uint16_t* const* b, size_t d, float* out) {
    for (int j = 0; j < 4; j++) {
        float s = 0;
        for (size_t i = 0; i < d; i++) s = acc1<L2>(s, q[i], half_to_float(b[j][i]));
        out[j] = s;
    }
}

template <bool L2>
__attribute__((target("avx2,fma,f16c"))) inline __m256 acc256(__m256 s, __m256 x, __m256 y) {
    if constexpr (L2) {
        __m256 t = _mm256_sub_ps(x, y);
        return _mm256_fmadd_ps(t, t, s);
    } else {
        return _mm256_fmadd_ps(x, y, s);
    }
}

__attribute__((target("avx2,fma,f16c"))) inline __m256 load_h8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <bool L2>
__attribute__((target("avx2,fma,f16c"))) float h1_avx2(const float* q, const uint16_t* b, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = acc256<L2>(s0, _mm256_loadu_ps(q + i), load_h8(b + i));
        s1 = acc256<L2>(s1, _mm256_loadu_ps(q + i + 8), load_h8(b + i + 8));
    }
    for (; i + 8 <= d; i += 8) s0 = acc256<L2>(s0, _mm256_loadu_ps(q + i), load_h8(b + i));
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < d; i++) s = acc1<L2>(s, q[i], half_to_float(b[i]));
    return s;
}

template <bool L2>
__attribute__((target("avx2,fma,f16c"))) void h4_avx2(const float* q, const uint16_t* const* b, size_t d, float* out) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 x = _mm256_loadu_ps(q + i);
        s0 = acc256<L2>(s0, x, load_h8(b[0] + i));
        s1 = acc256<L2>(s1, x, load_h8(b[1] + i));
        s2 = acc256<L2>(s2, x, load_h8(b[2] + i));
        s3 = acc256<L2>(s3, x, load_h8(b[3] + i));
    }
    out[0] = hsum256(s0);
    out[1] = hsum256(s1);
    out[2] = hsum256(s2);
    out[3] = hsum256(s3);
    for (; i < d; i++) {
        for (int j = 0; j < 4; j++) out[j] = acc1<L2>(out[j], q[i], half_to_float(b[j][i]));
    }
}

template <bool L2>
__attribute__((target("avx512f"))) inline __m512 acc512(__m512 s, __m512 x, __m512 y) {
    if constexpr (L2) {
        __m512 t = _mm512_sub_ps(x, y);
        return _mm512_fmadd_ps(t, t, s);
    } else {
        return _mm512_fmadd_ps(x, y, s);
    }
}

__attribute__((target("avx512f"))) inline __m512 load_h16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <bool L2>
__attribute__((target("avx512f"))) float h1_avx512(const float* q, const uint16_t* b, size_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 = acc512<L2>(s0, _mm512_loadu_ps(q + i), load_h16(b + i));
        s1 = acc512<L2>(s1, _mm512_loadu_ps(q + i + 16), load_h16(b + i + 16));
    }
    for (; i + 16 <= d; i += 16) s0 = acc512<L2>(s0, _mm512_loadu_ps(q + i), load_h16(b + i));
    float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (; i < d; i++) s = acc1<L2>(s, q[i], half_to_float(b[i]));
    return s;
}

template <bool L2>
__attribute__((target("avx512f"))) void h4_avx512(const float* q, const uint16_t* const* b, size_t d, float* out) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 x = _mm512_loadu_ps(q + i);
        s0 = acc512<L2>(s0, x, load_h16(b[0] + i));
        s1 = acc512<L2>(s1, x, load_h16(b[1] + i));
        s2 = acc512<L2>(s2, x, load_h16(b[2] + i));
        s3 = acc512<L2>(s3, x, load_h16(b[3] + i));
    }
    out[0] = _mm512_reduce_add_ps(s0);
    out[1] = _mm512_reduce_add_ps(s1);
    out[2] = _mm512_reduce_add_ps(s2);
    out[3] = _mm512_reduce_add_ps(s3);
    for (; i < d; i++) {
        for (int j = 0; j < 4; j++) out[j] = acc1<L2>(out[j], q[i], half_to_float(b[j][i]));
    }
}

using Half1Fn = float (*)(const float*, const uint16_t*, size_t);
using Half4Fn = void (*)(const float*, const uint16_t* const*, size_t, float*);

struct HalfKernels {
    Half1Fn dot;
    Half1Fn l2;
    Half4Fn dot4;
    Half4Fn l24;
};

inline HalfKernels pick_half_kernels() {
    switch (cpu_level()) {
        case Level::avx512: return {h1_avx512<false>, h1_avx512<true>, h4_avx512<false>, h4_avx512<true>};
        case Level::avx2: return {h1_avx2<false>, h1_avx2<true>, h4_avx2<false>, h4_avx2<true>};
        default: return {h1_generic<false>, h1_generic<true>, h4_generic<false>, h4_generic<true>};
    }
}

inline const HalfKernels& half_kernels() {
    static const HalfKernels k = pick_half_kernels();
    return k;
}
