// HNSW search with per-call parameters and SIMD distances chosen at run time.
//
// FAISS's C API has no SearchParametersHNSW, so a search with its own efSearch had to
// change the index's efSearch under an exclusive lock. This shim (compiled by
// engine/build.rs against the headers of the FAISS that faiss-sys builds) calls
// HNSW::search directly with a SearchParametersHNSW per call: concurrent searches with
// different efSearch run in parallel on one index.
//
// For an HNSW over flat float storage (IndexHNSWFlat, AgentDB's HNSW spaces) it also
// replaces FAISS's distance computer: faiss-sys builds FAISS for generic x86-64 (SSE2
// only), while this file compiles AVX-512F and AVX2+FMA kernels beside a portable one and
// picks one per process from what the CPU reports (`__builtin_cpu_supports`), so the
// binary still runs on CPUs without them. It also reuses a per-thread visited table
// instead of allocating and clearing ntotal bytes per query.

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/ResultHandler.h>
#include <faiss/index_io.h>

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <vector>

namespace {

using idx_t = faiss::idx_t;

// ---------------------------------------------------------------- kernels

float dot_generic(const float* a, const float* b, size_t d) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < d; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

float l2_generic(const float* a, const float* b, size_t d) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        float t0 = a[i] - b[i], t1 = a[i + 1] - b[i + 1], t2 = a[i + 2] - b[i + 2], t3 = a[i + 3] - b[i + 3];
        s0 += t0 * t0;
        s1 += t1 * t1;
        s2 += t2 * t2;
        s3 += t3 * t3;
    }
    for (; i < d; i++) {
        float t = a[i] - b[i];
        s0 += t * t;
    }
    return (s0 + s1) + (s2 + s3);
}

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < d; i++) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma"))) float l2_avx2(const float* a, const float* b, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < d; i++) {
        float t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

__attribute__((target("avx512f"))) float dot_avx512(const float* a, const float* b, size_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= d; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx512f"))) float l2_avx512(const float* a, const float* b, size_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
    }
    for (; i + 16 <= d; i += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(t, t, s0);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(t, t, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// Four rows against one query in one pass: the four rows' loads are independent, so
// their cache misses overlap (HNSW visits rows in random order; each is a miss), and
// the query's loads are shared. FAISS's own `distances_batch_4` does the same.
void dot4_generic(const float* q, const float* const* b, size_t d, float* out) {
    for (int j = 0; j < 4; j++) out[j] = dot_generic(q, b[j], d);
}

void l24_generic(const float* q, const float* const* b, size_t d, float* out) {
    for (int j = 0; j < 4; j++) out[j] = l2_generic(q, b[j], d);
}

__attribute__((target("avx2,fma"))) void dot4_avx2(const float* q, const float* const* b, size_t d, float* out) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 x = _mm256_loadu_ps(q + i);
        s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[0] + i), s0);
        s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[1] + i), s1);
        s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[2] + i), s2);
        s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[3] + i), s3);
    }
    out[0] = hsum256(s0);
    out[1] = hsum256(s1);
    out[2] = hsum256(s2);
    out[3] = hsum256(s3);
    for (; i < d; i++) {
        for (int j = 0; j < 4; j++) out[j] += q[i] * b[j][i];
    }
}

__attribute__((target("avx2,fma"))) void l24_avx2(const float* q, const float* const* b, size_t d, float* out) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 x = _mm256_loadu_ps(q + i);
        __m256 t0 = _mm256_sub_ps(x, _mm256_loadu_ps(b[0] + i));
        __m256 t1 = _mm256_sub_ps(x, _mm256_loadu_ps(b[1] + i));
        __m256 t2 = _mm256_sub_ps(x, _mm256_loadu_ps(b[2] + i));
        __m256 t3 = _mm256_sub_ps(x, _mm256_loadu_ps(b[3] + i));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
        s2 = _mm256_fmadd_ps(t2, t2, s2);
        s3 = _mm256_fmadd_ps(t3, t3, s3);
    }
    out[0] = hsum256(s0);
    out[1] = hsum256(s1);
    out[2] = hsum256(s2);
    out[3] = hsum256(s3);
    for (; i < d; i++) {
        for (int j = 0; j < 4; j++) {
            float t = q[i] - b[j][i];
            out[j] += t * t;
        }
    }
}

__attribute__((target("avx512f"))) void dot4_avx512(const float* q, const float* const* b, size_t d, float* out) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 x = _mm512_loadu_ps(q + i);
        s0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(b[0] + i), s0);
        s1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(b[1] + i), s1);
        s2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(b[2] + i), s2);
        s3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(b[3] + i), s3);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 x = _mm512_maskz_loadu_ps(m, q + i);
        s0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, b[0] + i), s0);
        s1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, b[1] + i), s1);
        s2 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, b[2] + i), s2);
        s3 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, b[3] + i), s3);
    }
    out[0] = _mm512_reduce_add_ps(s0);
    out[1] = _mm512_reduce_add_ps(s1);
    out[2] = _mm512_reduce_add_ps(s2);
    out[3] = _mm512_reduce_add_ps(s3);
}

__attribute__((target("avx512f"))) void l24_avx512(const float* q, const float* const* b, size_t d, float* out) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 x = _mm512_loadu_ps(q + i);
        __m512 t0 = _mm512_sub_ps(x, _mm512_loadu_ps(b[0] + i));
        __m512 t1 = _mm512_sub_ps(x, _mm512_loadu_ps(b[1] + i));
        __m512 t2 = _mm512_sub_ps(x, _mm512_loadu_ps(b[2] + i));
        __m512 t3 = _mm512_sub_ps(x, _mm512_loadu_ps(b[3] + i));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
        s2 = _mm512_fmadd_ps(t2, t2, s2);
        s3 = _mm512_fmadd_ps(t3, t3, s3);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 x = _mm512_maskz_loadu_ps(m, q + i);
        __m512 t0 = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, b[0] + i));
        __m512 t1 = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, b[1] + i));
        __m512 t2 = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, b[2] + i));
        __m512 t3 = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, b[3] + i));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
        s2 = _mm512_fmadd_ps(t2, t2, s2);
        s3 = _mm512_fmadd_ps(t3, t3, s3);
    }
    out[0] = _mm512_reduce_add_ps(s0);
    out[1] = _mm512_reduce_add_ps(s1);
    out[2] = _mm512_reduce_add_ps(s2);
    out[3] = _mm512_reduce_add_ps(s3);
}

using DistFn = float (*)(const float*, const float*, size_t);
using Dist4Fn = void (*)(const float*, const float* const*, size_t, float*);

struct Kernels {
    DistFn dot;
    DistFn l2;
    Dist4Fn dot4;
    Dist4Fn l24;
    const char* level;
};

enum class Level { avx512, avx2, generic };

/// The best SIMD level this CPU has, capped by `AGENTDB_SIMD=avx2|generic`. AVX2 also
/// needs FMA and F16C (every AVX2 CPU has them; checked all the same).
Level cpu_level() {
    const char* force = std::getenv("AGENTDB_SIMD");
    bool allow512 = !(force && (std::strcmp(force, "avx2") == 0 || std::strcmp(force, "generic") == 0));
    bool allow2 = !(force && std::strcmp(force, "generic") == 0);
    __builtin_cpu_init();
    if (allow512 && __builtin_cpu_supports("avx512f")) return Level::avx512;
    if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        return Level::avx2;
    }
    return Level::generic;
}

Kernels pick_kernels() {
    switch (cpu_level()) {
        case Level::avx512: return {dot_avx512, l2_avx512, dot4_avx512, l24_avx512, "avx512"};
        case Level::avx2: return {dot_avx2, l2_avx2, dot4_avx2, l24_avx2, "avx2"};
        default: return {dot_generic, l2_generic, dot4_generic, l24_generic, "generic"};
    }
}

const Kernels& kernels() {
    static const Kernels k = pick_kernels();
    return k;
}

#include "hnsw_f16.h"

// ---------------------------------------------------------------- distance computer

/// Distances to the rows of a flat storage, float (`FlatDC`) or half (`HalfDC`: every
/// row times `scale`, so the query is scaled too and distances come out times scale²),
/// negated for inner product (HNSW minimises), as FAISS's NegativeDistanceComputer over
/// IndexFlat's computer does.
template <typename T>
struct RowsDC final : faiss::DistanceComputer {
    using One = float (*)(const float*, const T*, size_t);
    using Four = void (*)(const float*, const T* const*, size_t, float*);
    const T* xb;
    size_t d;
    bool ip;
    float scale;
    One f;
    Four f4;
    std::vector<float> scaled;
    const float* q = nullptr;

    RowsDC(const T* xb, size_t d, bool ip, float scale, One dot, One l2, Four dot4, Four l24)
            : xb(xb), d(d), ip(ip), scale(scale), f(ip ? dot : l2), f4(ip ? dot4 : l24) {}

    void set_query(const float* x) override {
        if (scale == 1.0f) {
            q = x;
            return;
        }
        scaled.resize(d);
        for (size_t i = 0; i < d; i++) scaled[i] = x[i] * scale;
        q = scaled.data();
    }

    float operator()(idx_t i) override {
        float v = f(q, xb + i * d, d);
        return ip ? -v : v;
    }

    void distances_batch_4(
            const idx_t i0, const idx_t i1, const idx_t i2, const idx_t i3,
            float& d0, float& d1, float& d2, float& d3) override {
        const T* rows[4] = {xb + i0 * d, xb + i1 * d, xb + i2 * d, xb + i3 * d};
        float out[4];
        f4(q, rows, d, out);
        float sign = ip ? -1.0f : 1.0f;
        d0 = sign * out[0];
        d1 = sign * out[1];
        d2 = sign * out[2];
        d3 = sign * out[3];
    }

    float symmetric_dis(idx_t i, idx_t j) override {
        // Not used by search (only by graph construction, which runs on the floats).
        std::vector<float> a(d);
        for (size_t t = 0; t < d; t++) a[t] = to_float(xb[i * d + t]);
        float v = f(a.data(), xb + j * d, d);
        return ip ? -v : v;
    }

    static float to_float(float x) { return x; }
    static float to_float(uint16_t h) { return half_to_float(h); }
};

using FlatDC = RowsDC<float>;
using HalfDC = RowsDC<uint16_t>;

FlatDC flat_dc(const float* xb, size_t d, bool ip) {
    const Kernels& k = kernels();
    return FlatDC(xb, d, ip, 1.0f, k.dot, k.l2, k.dot4, k.l24);
}

HalfDC half_dc(const uint16_t* xh, size_t d, bool ip, float scale) {
    const HalfKernels& k = half_kernels();
    return HalfDC(xh, d, ip, scale, k.dot, k.l2, k.dot4, k.l24);
}

void set_err(char* err, size_t len, const char* msg) {
    if (err && len) {
        std::snprintf(err, len, "%s", msg);
    }
}

thread_local std::unique_ptr<faiss::VisitedTable> tls_visited;

faiss::VisitedTable& visited_for(idx_t ntotal) {
    if (!tls_visited || tls_visited->visited.size() != (size_t)ntotal) {
        tls_visited.reset(new faiss::VisitedTable((int)ntotal));
    }
    return *tls_visited;
}

} // namespace

extern "C" {

/// The SIMD level the flat-HNSW distance kernels use in this process.
const char* agentdb_hnsw_simd_level() {
    return kernels().level;
}

/// Search `n` queries of an HNSW index with its own efSearch (`ef` <= 0: the index's)
/// and an optional row bitmap (bit i of byte i/8 set = row i may be returned). With
/// `xh` (the index's rows times `scale` as half floats) the walk reads those instead of
/// the float storage, and the distances come back divided by scale² (close to, not
/// exactly, the float ones: the caller re-scores).
/// Returns 0 on success, 1 if `index` is not an IndexHNSW (nothing written: the caller
/// searches another way), -1 on a FAISS error (message in `err`).
int agentdb_hnsw_search(
        const void* index,
        int64_t n,
        const float* x,
        int64_t k,
        int ef,
        const uint8_t* bitmap,
        size_t bitmap_len,
        const uint16_t* xh,
        float scale,
        float* distances,
        int64_t* labels,
        char* err,
        size_t err_len) {
    const auto* h = dynamic_cast<const faiss::IndexHNSW*>(static_cast<const faiss::Index*>(index));
    if (!h) return 1;
    try {
        faiss::IDSelectorBitmap sel(bitmap_len, bitmap);
        faiss::SearchParametersHNSW p;
        p.efSearch = ef > 0 ? ef : h->hnsw.efSearch;
        p.sel = bitmap ? &sel : nullptr;
        const auto* flat = dynamic_cast<const faiss::IndexFlat*>(h->storage);
        bool ip = h->metric_type == faiss::METRIC_INNER_PRODUCT;
        if (!flat || !(ip || h->metric_type == faiss::METRIC_L2)) {
            // Other storage (SQ, PQ, ...): FAISS's own search, with this call's parameters.
            h->search(n, x, k, distances, labels, &p);
            return 0;
        }
        using RH = faiss::HeapBlockResultHandler<faiss::HNSW::C>;
        RH bres(n, distances, labels, k);
        RH::SingleResultHandler res(bres);
        FlatDC fdc = flat_dc(flat->get_xb(), (size_t)h->d, ip);
        std::unique_ptr<HalfDC> hdc;
        if (xh) hdc.reset(new HalfDC(half_dc(xh, (size_t)h->d, ip, scale)));
        faiss::DistanceComputer& dc = hdc ? static_cast<faiss::DistanceComputer&>(*hdc) : fdc;
        faiss::VisitedTable& vt = visited_for(h->ntotal);
        try {
            for (idx_t i = 0; i < n; i++) {
                res.begin(i);
                dc.set_query(x + i * h->d);
                h->hnsw.search(dc, res, vt, &p);
                res.end();
            }
        } catch (...) {
            tls_visited.reset(); // may be left half-marked
            throw;
        }
        float unscale = xh ? 1.0f / (scale * scale) : 1.0f;
        if (ip || xh) {
            float f = ip ? -unscale : unscale;
            for (int64_t i = 0; i < n * k; i++) distances[i] *= f;
        }
        return 0;
    } catch (const std::exception& e) {
        set_err(err, err_len, e.what());
        return -1;
    } catch (...) {
        set_err(err, err_len, "unknown FAISS error");
        return -1;
    }
}

/// Make the flat float storage of an HNSW index a view of `xb` (`n` rows of the
/// index's dimension, which the caller keeps alive and unchanged for the index's life)
/// instead of FAISS's own copy: a fresh build's storage is dropped after checking that it
/// holds the same floats; an index read without its storage gets one. Returns 0 on
/// success, 1 if the index is not an HNSW over flat float storage (nothing changed),
/// -1 on a mismatch (message in `err`).
int agentdb_hnsw_share_storage(void* index, const float* xb, int64_t n, char* err, size_t err_len) {
    auto* h = dynamic_cast<faiss::IndexHNSW*>(static_cast<faiss::Index*>(index));
    if (!h) return 1;
    try {
        size_t bytes = (size_t)n * (size_t)h->d * sizeof(float);
        if (h->ntotal != n) {
            set_err(err, err_len, "the index and the vectors have different row counts");
            return -1;
        }
        auto view = faiss::MaybeOwnedVector<uint8_t>::create_view(
                const_cast<float*>(xb), bytes, nullptr);
        if (h->storage) {
            auto* flat = dynamic_cast<faiss::IndexFlat*>(h->storage);
            if (!flat) return 1;
            if (flat->ntotal != n || flat->codes.size() != bytes ||
                std::memcmp(flat->codes.data(), xb, bytes) != 0) {
                set_err(err, err_len, "the index's stored vectors differ from the segment's");
                return -1;
            }
            flat->codes = std::move(view);
            return 0;
        }
        if (h->metric_type != faiss::METRIC_INNER_PRODUCT && h->metric_type != faiss::METRIC_L2) return 1;
        auto* flat = new faiss::IndexFlat(h->d, h->metric_type);
        flat->codes = std::move(view);
        flat->ntotal = n;
        h->storage = flat;
        h->own_fields = true;
        return 0;
    } catch (const std::exception& e) {
        set_err(err, err_len, e.what());
        return -1;
    }
}

/// Whether `index` is an HNSW index whose storage is absent (read with it skipped).
int agentdb_hnsw_lacks_storage(const void* index) {
    auto* h = dynamic_cast<const faiss::IndexHNSW*>(static_cast<const faiss::Index*>(index));
    return h && !h->storage;
}

/// Serialise an HNSW index without its storage (FAISS's IO_FLAG_SKIP_STORAGE): the
/// vectors are in the segment's own file. Returns 0, or -1 with the message in `err`.
int agentdb_write_index_skip_storage(const void* index, FILE* f, char* err, size_t err_len) {
    try {
        faiss::write_index(static_cast<const faiss::Index*>(index), f, faiss::IO_FLAG_SKIP_STORAGE);
        return 0;
    } catch (const std::exception& e) {
        set_err(err, err_len, e.what());
        return -1;
    }
}

/// One distance with the selected kernel (for parity tests against the portable one).
float agentdb_simd_distance(const float* a, const float* b, size_t d, int inner_product, int portable) {
    if (portable) return inner_product ? dot_generic(a, b, d) : l2_generic(a, b, d);
    return inner_product ? kernels().dot(a, b, d) : kernels().l2(a, b, d);
}

/// Four distances with the selected batch-of-4 kernel (or the portable one), for parity tests.
void agentdb_simd_distance4(
        const float* q, const float* b0, const float* b1, const float* b2, const float* b3, size_t d,
        int inner_product, int portable, float* out) {
    const float* rows[4] = {b0, b1, b2, b3};
    if (portable) return inner_product ? dot4_generic(q, rows, d, out) : l24_generic(q, rows, d, out);
    return inner_product ? kernels().dot4(q, rows, d, out) : kernels().l24(q, rows, d, out);
}

/// One distance with the selected half-float kernel (or the portable one), for parity
/// tests: `b` is half floats, unscaled.
float agentdb_half_distance(const float* q, const uint16_t* b, size_t d, int inner_product, int portable) {
    Half1Fn f = portable ? (inner_product ? h1_generic<false> : h1_generic<true>)
                         : (inner_product ? half_kernels().dot : half_kernels().l2);
    return f(q, b, d);
}

/// Four distances with the selected half-float kernel (or the portable one), for parity
/// tests: `b0..b3` are half floats, unscaled.
void agentdb_half_distance4(
        const float* q, const uint16_t* b0, const uint16_t* b1, const uint16_t* b2, const uint16_t* b3, size_t d,
        int inner_product, int portable, float* out) {
    const uint16_t* rows[4] = {b0, b1, b2, b3};
    Half4Fn f = portable ? (inner_product ? h4_generic<false> : h4_generic<true>)
                         : (inner_product ? half_kernels().dot4 : half_kernels().l24);
    f(q, rows, d, out);
}

} // extern "C"
