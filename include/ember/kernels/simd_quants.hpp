// ember/kernels/simd_quants.hpp — matmul kernels for Q4_1, Q5_0, Q5_1, IQ4_NL
// and the super-block types Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, against
// Q8_0 activations.
//
// A fragment of kernels/simd.hpp: included there inside the per-ISA anonymous
// namespace (so it is compiled once per ISA, with that ISA's flags and
// symbols), after the int8 helpers it uses. Not a header of its own.
//
// Every type is read through the decomposition of kernels/quant_ref_blocks.hpp:
// a chunk of up to 256 weights of one row (one super-block, or eight 32-blocks)
// is unpacked to bytes u[e], a scale per lane and an offset per group, with
//
//     weight[e] = D[g] * u[e] - O[g].
//
// u is unsigned wherever possible (the integer multiply-add wants an unsigned
// operand) and the offset is paid once per group against the activation
// group's sum, precomputed per call: the dot product of a chunk is
//
//     sum_b dx_b * sum_lanes D_lane * int32(u . x)_lane  -  sum_g O_g * (dx * sum x)_g
//
// With AVX-512 VNNI, and with AVX2 (+FMA, F16C), Q4_K, Q5_K and Q6_K weights
// repacked at load 16 rows at a time (kernels/repack.hpp) have their own
// kernels (matmul_k_x16, below): those carry Q4_K_M / Q5_K_M files. The row
// kernels here serve the rest.
//
// Prefill: a tile of R weight rows is unpacked once per chunk and multiplied
// by T activation rows before the next chunk; each (row, activation) pair has
// its own accumulator and sees the same sequence of operations whatever the
// tile shape, the row range or the number of activation rows (batch
// invariance, see docs/architecture.md).

#if !defined(EMBER_ISA_NS)
#error "kernels/simd_quants.hpp is a fragment of kernels/simd.hpp"
#endif

#if defined(__AVX2__)

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
constexpr bool kQVnni = true;
#else
constexpr bool kQVnni = false;
#endif

// One chunk of one weight row, unpacked (lives in L1 for a tile of rows).
struct QChunk {
    alignas(32) uint8_t u[256];  // quants, 32 per activation block
    alignas(32) float D[64];     // kG16: 8 lanes per block (lanes 0-3 group 2b, 4-7 group 2b+1); else D[b]
    alignas(32) float O[16];     // kG16: per group of 16; else per block (O[b], b < 8)
};

inline uint16_t ld16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
inline __m256i ld256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i ld128(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline void st256(uint8_t* p, __m256i v) { _mm256_store_si256(reinterpret_cast<__m256i*>(p), v); }
inline __m256i bytes(int v) { return _mm256_set1_epi8(char(v)); }

// 16 nibbles-pairs (Q4_0 order) to 32 bytes: element j low nibble, j+16 high.
inline __m256i nibbles32(const uint8_t* p) {
    const __m128i raw = ld128(p), m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m), _mm_and_si128(raw, m));
}
// The 32 bits at p as 32 bytes: 0x10 where the bit is set (a fifth quant bit).
inline __m256i fifth_bits(const uint8_t* p) {
    uint32_t x;
    std::memcpy(&x, p, 4);
    // byte i takes byte i/8 of x, then keeps bit i%8
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int(x)),
        _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i sel = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, sel), sel), bytes(0x10));
}
// Eight group scales (bytes, signed or not) times d, as floats.
inline __m256 scales8(__m128i s, float d, bool is_signed) {
    const __m256i w = is_signed ? _mm256_cvtepi8_epi32(s) : _mm256_cvtepu8_epi32(s);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(w), _mm256_set1_ps(d));
}
// 16 group scales to per-lane scales of 8 blocks (G16 types).
inline void spread_lanes(__m256 lo, __m256 hi, float* D) {
    for (int b = 0; b < 4; ++b) {
        const __m256i idx = _mm256_setr_epi32(2 * b, 2 * b, 2 * b, 2 * b, 2 * b + 1, 2 * b + 1, 2 * b + 1, 2 * b + 1);
        _mm256_store_ps(D + 8 * b, _mm256_permutevar8x32_ps(lo, idx));
        _mm256_store_ps(D + 32 + 8 * b, _mm256_permutevar8x32_ps(hi, idx));
    }
}
// IQ4 grid lookup of 32 nibbles; unsigned (level + 128) for VNNI.
inline __m256i iq4_lookup(const uint8_t* p) {
    alignas(16) int8_t grid[16];
    for (int i = 0; i < 16; ++i) grid[i] = int8_t(kQVnni ? kIq4nlValues[i] ^ 0x80 : kIq4nlValues[i]);
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(grid)));
    return _mm256_shuffle_epi8(tbl, nibbles32(p));
}

// ---- unpackers: one chunk (kBlocks 32-blocks; nblk of them are present) -----------

struct UQ4K {
    static constexpr DType kType = DType::Q4_K;
    static constexpr bool kG16 = false, kSigned = false, kOffset = true;
    static constexpr size_t kChunkBytes = sizeof(BlockQ4_K);
    template <bool Five = false>
    static void unpack_k4(const uint8_t* b, QChunk& c) {
        const float d = h2f(ld16(b)), dmin = h2f(ld16(b + 2));
        uint32_t w[3];
        std::memcpy(w, b + 4, 12);
        // eight 6-bit scales and eight 6-bit mins, as bytes
        const uint32_t sc_lo = w[0] & 0x3f3f3f3f, m_lo = w[1] & 0x3f3f3f3f;
        const uint32_t sc_hi = (w[2] & 0x0f0f0f0f) | ((w[0] >> 2) & 0x30303030);
        const uint32_t m_hi = ((w[2] >> 4) & 0x0f0f0f0f) | ((w[1] >> 2) & 0x30303030);
        const __m128i sv = _mm_setr_epi32(int(sc_lo), int(sc_hi), int(m_lo), int(m_hi));
        _mm256_store_ps(c.D, scales8(sv, d, false));
        _mm256_store_ps(c.O, scales8(_mm_srli_si128(sv, 8), dmin, false));
        const uint8_t* qs = b + (Five ? 48 : 16);
        const __m256i m4 = bytes(0x0f);
        __m256i qh;
        if constexpr (Five) qh = ld256(b + 16);
        for (int j = 0; j < 4; ++j) {
            const __m256i raw = ld256(qs + 32 * j);
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if constexpr (Five) {
                // bit s of qh[l] is the fifth bit of element l of sub-block s
                const __m128i s0 = _mm_cvtsi32_si128(2 * j), s1 = _mm_cvtsi32_si128(2 * j + 1);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, s0), bytes(1)), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, s1), bytes(1)), 4));
            }
            st256(c.u + 64 * j, lo);
            st256(c.u + 64 * j + 32, hi);
        }
    }
    static void unpack(const uint8_t* b, int, QChunk& c) { unpack_k4<false>(b, c); }
};

struct UQ5K : UQ4K {
    static constexpr DType kType = DType::Q5_K;
    static constexpr size_t kChunkBytes = sizeof(BlockQ5_K);
    static void unpack(const uint8_t* b, int, QChunk& c) { unpack_k4<true>(b, c); }
};

struct UQ6K {
    static constexpr DType kType = DType::Q6_K;
    static constexpr bool kG16 = true, kSigned = false, kOffset = true;
    static constexpr size_t kChunkBytes = sizeof(BlockQ6_K);
    static void unpack(const uint8_t* b, int, QChunk& c) {
        const float d = h2f(ld16(b + 208));
        const __m128i s = ld128(b + 192);
        const __m256 lo = scales8(s, d, true), hi = scales8(_mm_srli_si128(s, 8), d, true);
        spread_lanes(lo, hi, c.D);
        const __m256 k32 = _mm256_set1_ps(32.0f);  // stored q = value + 32
        _mm256_store_ps(c.O, _mm256_mul_ps(lo, k32));
        _mm256_store_ps(c.O + 8, _mm256_mul_ps(hi, k32));
        const __m256i m4 = bytes(0x0f), m2 = bytes(0x30);
        for (int h = 0; h < 2; ++h) {
            const __m256i l0 = ld256(b + 64 * h), l1 = ld256(b + 64 * h + 32), qh = ld256(b + 128 + 32 * h);
            uint8_t* u = c.u + 128 * h;
            st256(u, _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)));
            st256(u + 32, _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)));
            st256(u + 64, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m2)));
            st256(u + 96, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2)));
        }
    }
};

struct UQ2K {
    static constexpr DType kType = DType::Q2_K;
    static constexpr bool kG16 = true, kSigned = false, kOffset = true;
    static constexpr size_t kChunkBytes = sizeof(BlockQ2_K);
    static void unpack(const uint8_t* b, int, QChunk& c) {
        const float d = h2f(ld16(b + 80)), dmin = h2f(ld16(b + 82));
        const __m128i s = ld128(b), m = _mm_set1_epi8(0x0f);
        const __m128i sc = _mm_and_si128(s, m), mn = _mm_and_si128(_mm_srli_epi16(s, 4), m);
        spread_lanes(scales8(sc, d, false), scales8(_mm_srli_si128(sc, 8), d, false), c.D);
        _mm256_store_ps(c.O, scales8(mn, dmin, false));
        _mm256_store_ps(c.O + 8, scales8(_mm_srli_si128(mn, 8), dmin, false));
        const __m256i m2 = bytes(3);
        for (int h = 0; h < 2; ++h) {
            const __m256i q = ld256(b + 16 + 32 * h);
            for (int j = 0; j < 4; ++j)
                st256(c.u + 128 * h + 32 * j, _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j)), m2));
        }
    }
};

struct UQ3K {
    static constexpr DType kType = DType::Q3_K;
    static constexpr bool kG16 = true, kSigned = false, kOffset = true;
    static constexpr size_t kChunkBytes = sizeof(BlockQ3_K);
    static void unpack(const uint8_t* b, int, QChunk& c) {
        const float d = h2f(ld16(b + 108));
        uint32_t a[3];
        std::memcpy(a, b + 96, 12);
        // sixteen 6-bit scales: low nibbles from bytes 0-7, top bits from bytes 8-11
        const uint32_t s0 = (a[0] & 0x0f0f0f0f) | ((a[2] & 0x03030303) << 4);
        const uint32_t s1 = (a[1] & 0x0f0f0f0f) | (((a[2] >> 2) & 0x03030303) << 4);
        const uint32_t s2 = ((a[0] >> 4) & 0x0f0f0f0f) | (((a[2] >> 4) & 0x03030303) << 4);
        const uint32_t s3 = ((a[1] >> 4) & 0x0f0f0f0f) | (((a[2] >> 6) & 0x03030303) << 4);
        const __m128i s = _mm_sub_epi8(_mm_setr_epi32(int(s0), int(s1), int(s2), int(s3)), _mm_set1_epi8(32));
        const __m256 lo = scales8(s, d, true), hi = scales8(_mm_srli_si128(s, 8), d, true);
        spread_lanes(lo, hi, c.D);
        const __m256 k4 = _mm256_set1_ps(4.0f);  // stored q = value + 4
        _mm256_store_ps(c.O, _mm256_mul_ps(lo, k4));
        _mm256_store_ps(c.O + 8, _mm256_mul_ps(hi, k4));
        const __m256i hm = ld256(b), m2 = bytes(3), one = bytes(1);
        for (int h = 0; h < 2; ++h) {
            const __m256i q = ld256(b + 32 + 32 * h);
            for (int j = 0; j < 4; ++j) {
                const __m256i low = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j)), m2);
                const __m256i hb = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + j)), one);
                st256(c.u + 128 * h + 32 * j, _mm256_or_si256(low, _mm256_slli_epi16(hb, 2)));
            }
        }
    }
};

struct UIQ4XS {
    static constexpr DType kType = DType::IQ4_XS;
    static constexpr bool kG16 = false, kSigned = !kQVnni, kOffset = kQVnni;
    static constexpr size_t kChunkBytes = sizeof(BlockIQ4_XS);
    static void unpack(const uint8_t* b, int, QChunk& c) {
        const float d = h2f(ld16(b));
        const uint16_t sh = ld16(b + 2);
        for (int s = 0; s < 8; ++s) {
            const int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 0x0f) | (((sh >> (2 * s)) & 3) << 4);
            c.D[s] = d * float(ls - 32);
            c.O[s] = kQVnni ? 128.0f * c.D[s] : 0.0f;
        }
        for (int s = 0; s < 8; ++s) st256(c.u + 32 * s, iq4_lookup(b + 8 + 16 * s));
    }
};

// The 32-blocks: eight blocks make a chunk; the row's last chunk may have fewer.
template <DType T>
struct U32 {
    static constexpr DType kType = T;
    static constexpr bool kIq4 = T == DType::IQ4_NL;
    static constexpr bool kG16 = false, kSigned = kIq4 && !kQVnni, kOffset = !kIq4 || kQVnni;
    static constexpr size_t kBlockBytes = T == DType::Q4_1 ? sizeof(BlockQ4_1)
                                          : T == DType::Q5_0 ? sizeof(BlockQ5_0)
                                          : T == DType::Q5_1 ? sizeof(BlockQ5_1)
                                                             : sizeof(BlockIQ4_NL);
    static constexpr size_t kChunkBytes = 8 * kBlockBytes;
    static void unpack(const uint8_t* p, int nblk, QChunk& c) {
        for (int k = 0; k < nblk; ++k) {
            const uint8_t* b = p + size_t(k) * kBlockBytes;
            const float d = h2f(ld16(b));
            c.D[k] = d;
            if constexpr (kIq4) {
                c.O[k] = kQVnni ? 128.0f * d : 0.0f;
                st256(c.u + 32 * k, iq4_lookup(b + 2));
            } else if constexpr (T == DType::Q4_1) {
                c.O[k] = -h2f(ld16(b + 2));
                st256(c.u + 32 * k, nibbles32(b + 4));
            } else if constexpr (T == DType::Q5_0) {
                c.O[k] = 16.0f * d;
                st256(c.u + 32 * k, _mm256_or_si256(nibbles32(b + 6), fifth_bits(b + 2)));
            } else {
                c.O[k] = -h2f(ld16(b + 2));
                st256(c.u + 32 * k, _mm256_or_si256(nibbles32(b + 8), fifth_bits(b + 4)));
            }
        }
        for (int k = nblk; k < 8; ++k) c.O[k] = 0.0f;  // the activation sums are zero-padded too
    }
};

// int32 lanes of u . x over 32 bytes (lanes 0-3: bytes 0-15, lanes 4-7: bytes 16-31).
template <bool Signed>
inline __m256i qdot(__m256i u, __m256i x) {
    if constexpr (Signed) {
        return dot32_i8(u, x);
    } else {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x);
#else
        // u <= 63 here, so no pair of products saturates the 16-bit sums
        return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
#endif
    }
}

// Activation rows prepared once per call: dx[t][b] the block scales and
// xs[t][g] = dx * sum of the group's quants (per 16, or per 32-block),
// zero-padded to whole chunks.
struct QActs {
    const float* dx;
    const float* xs;
    int64_t ldd, lds;
};

template <class U, int R, int T>
inline void qtile(const uint8_t* W_, size_t ws, int64_t n_chunks, int64_t nb, const uint8_t* X, size_t xs,
                  const QActs& a, float* Y, int64_t ldy, int64_t r, int64_t t) {
    __m256 acc[R][T];
    for (auto& row : acc)
        for (auto& v : row) v = _mm256_setzero_ps();
    QChunk c[R];
    for (int64_t ch = 0; ch < n_chunks; ++ch) {
        const int nblk = int(nb - 8 * ch < 8 ? nb - 8 * ch : 8);
        for (int i = 0; i < R; ++i) U::unpack(W_ + size_t(r + i) * ws + size_t(ch) * U::kChunkBytes, nblk, c[i]);
        for (int b = 0; b < nblk; ++b) {
            const int64_t blk = 8 * ch + b;
            __m256i xq[T];
            __m256 dx[T];
            for (int j = 0; j < T; ++j) {
                xq[j] = ld256(reinterpret_cast<const uint8_t*>(
                    reinterpret_cast<const BlockQ8_0*>(X + size_t(t + j) * xs)[blk].qs));
                dx[j] = _mm256_set1_ps(a.dx[(t + j) * a.ldd + blk]);
            }
            for (int i = 0; i < R; ++i) {
                const __m256i u = _mm256_load_si256(reinterpret_cast<const __m256i*>(c[i].u + 32 * b));
                const __m256 D = U::kG16 ? _mm256_load_ps(c[i].D + 8 * b) : _mm256_set1_ps(c[i].D[b]);
                for (int j = 0; j < T; ++j)
                    acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(qdot<U::kSigned>(u, xq[j])), _mm256_mul_ps(D, dx[j]),
                                                acc[i][j]);
            }
        }
        if constexpr (U::kOffset) {
            for (int i = 0; i < R; ++i)
                for (int j = 0; j < T; ++j) {
                    const float* s = a.xs + (t + j) * a.lds + (U::kG16 ? 16 : 8) * ch;
                    acc[i][j] = _mm256_fnmadd_ps(_mm256_load_ps(c[i].O), _mm256_loadu_ps(s), acc[i][j]);
                    if constexpr (U::kG16)
                        acc[i][j] = _mm256_fnmadd_ps(_mm256_load_ps(c[i].O + 8), _mm256_loadu_ps(s + 8), acc[i][j]);
                }
        }
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < T; ++j) Y[(t + j) * ldy + r + i] = hsum256(acc[i][j]);
}

// R weight rows against every activation row: tiles of T, then 2, then 1.
template <class U, int R, int T>
inline void qrow_tile(const uint8_t* W_, size_t ws, int64_t n_chunks, int64_t nb, const uint8_t* X, size_t xs,
                      int64_t nt, const QActs& a, float* Y, int64_t ldy, int64_t r) {
    int64_t t = 0;
    for (; t + T <= nt; t += T) qtile<U, R, T>(W_, ws, n_chunks, nb, X, xs, a, Y, ldy, r, t);
    for (; t + 2 <= nt; t += 2) qtile<U, R, 2>(W_, ws, n_chunks, nb, X, xs, a, Y, ldy, r, t);
    for (; t < nt; ++t) qtile<U, R, 1>(W_, ws, n_chunks, nb, X, xs, a, Y, ldy, r, t);
}

template <class U>
inline void matmul_quant(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                         int64_t nt, float* Y, int64_t ldy) {
    const int64_t nb = n / 32, n_chunks = (nb + 7) / 8;
    QActs a;
    a.ldd = 8 * n_chunks;
    a.lds = (U::kG16 ? 2 : 1) * a.ldd;
    // Per-thread scratch on the heap (a host's thread may have a small stack).
    float* const dx_base = static_cast<float*>(kernel_scratch(2, sizeof(float) * size_t(nt * a.ldd)));
    float* const xs_base = static_cast<float*>(kernel_scratch(3, sizeof(float) * size_t(nt * a.lds)));
    for (int64_t t = 0; t < nt; ++t) {
        const auto* xb = reinterpret_cast<const BlockQ8_0*>(X + size_t(t) * xs);
        float* dx = dx_base + t * a.ldd;
        float* sx = xs_base + t * a.lds;
        for (int64_t k = 0; k < a.ldd; ++k) {
            if (k >= nb) {
                dx[k] = 0;
                for (int h = 0; h < (U::kG16 ? 2 : 1); ++h) sx[(U::kG16 ? 2 : 1) * k + h] = 0;
                continue;
            }
            dx[k] = h2f(xb[k].d);
            int s0 = 0, s1 = 0;
            for (int j = 0; j < 16; ++j) { s0 += xb[k].qs[j]; s1 += xb[k].qs[j + 16]; }
            if (U::kG16) {
                sx[2 * k] = dx[k] * float(s0);
                sx[2 * k + 1] = dx[k] * float(s1);
            } else {
                sx[k] = dx[k] * float(s0 + s1);
            }
        }
    }
    a.dx = dx_base;
    a.xs = xs_base;
    // Tiles: R weight rows share each unpacked chunk across T activation rows.
    // AVX-512 has 32 vector registers (16 accumulators fit), AVX2 16.
#if defined(__AVX512F__)
    constexpr int R = 4, T = 4;
#else
    constexpr int R = 2, T = 4;
#endif
    int64_t r = r0;
    for (; r + R <= r1; r += R) qrow_tile<U, R, T>(W_, ws, n_chunks, nb, X, xs, nt, a, Y, ldy, r);
    for (; r < r1; ++r) qrow_tile<U, 1, T>(W_, ws, n_chunks, nb, X, xs, nt, a, Y, ldy, r);
}

// ---- Shared by the 16-row super-block kernels (AVX-512 VNNI and AVX2, below) ----
// Decode streams the weights once: the hardware prefetcher alone left about
// a third of the bandwidth unused (measured: 22 -> 34 GB/s on one core for
// Q4_K), so each column asks for the one kPrefetchColumns ahead.
constexpr size_t kPrefetchColumns = 4;
// Calls f.template operator()<I>() for I = 0..N-1, unrolled: constant shifts
// and offsets in every sub-block's code, no branches.
template <int N, class F>
inline void unrolled(F&& f) {
    [&]<int... I>(std::integer_sequence<int, I...>) { (f.template operator()<I>(), ...); }(std::make_integer_sequence<int, N>{});
}

#endif  // __AVX2__

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// ---- Q4_K, Q5_K, Q6_K repacked 16 rows at a time (kernels/repack.hpp) -------------
// One 512-bit register holds the same four weights of 16 rows, so a VPDPBUSD
// against four broadcast activation bytes advances 16 dot products; the
// sub-block scales of the 16 rows are one vector too. Per 32-block and
// activation row: 8 VPDPBUSD, then the scale (and, for Q4_K/Q5_K, the min)
// once for all 16 rows.

// Activation rows prepared once per call: per 32-block the scale dx and
// dx * sum(x) (Q4_K/Q5_K), per 16 elements -32 * sum(x) (Q6_K's offset, in
// the integer sum).
struct X16Acts {
    const float* dx;
    const float* xsum;
    const int32_t* off16;
    int64_t nb;  // 32-blocks per row
};

inline __m512i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
inline __m512i ld512(const uint8_t* p) { return _mm512_loadu_si512(p); }
inline __m512 halfs16(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

#include "ember/kernels/x16_kquants_avx512.hpp"

template <bool Five, int T>
inline void x16_q45k(const uint8_t* G, int64_t nsb, const X16Acts& a, const uint8_t* X, size_t xs, int64_t t0, float* Y,
                     int64_t ldy) {
    constexpr size_t B = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    __m512 acc[T];
    for (auto& v : acc) v = _mm512_setzero_ps();
    // (on a Xeon the hardware prefetcher alone reads these faster: 2-thread
    // decode kernel 25.5 GB/s against 20 with the columns prefetched)
    const bool pf = k45_column_prefetch();
    for (int64_t k = 0; k < nsb; ++k) {
        const uint8_t* col = G + size_t(k) * 16 * B;
        if (pf) prefetch_column(col + kPrefetchColumns * 16 * B, 16 * B);
        const K45Column c = k45_column(col);
        unrolled<8>([&]<int S>() {
            const __m512 D = k45_D<S>(c), O = k45_O<S>(c);
            __m512i q[8];
            for (int g = 0; g < 8; ++g) q[g] = k45_quants<Five, S>(col, g);
            const int64_t blk = 8 * k + S;
            for (int j = 0; j < T; ++j) {
                const int8_t* xq = reinterpret_cast<const BlockQ8_0*>(X + size_t(t0 + j) * xs)[blk].qs;
                __m512i p = _mm512_setzero_si512();
                for (int g = 0; g < 8; ++g) p = _mm512_dpbusd_epi32(p, q[g], bcast4(xq + 4 * g));
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(D, _mm512_set1_ps(a.dx[j * a.nb + blk])), acc[j]);
                acc[j] = _mm512_fnmadd_ps(O, _mm512_set1_ps(a.xsum[j * a.nb + blk]), acc[j]);
            }
        });
    }
    for (int j = 0; j < T; ++j) _mm512_storeu_ps(Y + (t0 + j) * ldy, acc[j]);
}

template <int T>
inline void x16_q6k(const uint8_t* G, int64_t nsb, const X16Acts& a, const uint8_t* X, size_t xs, int64_t t0, float* Y,
                    int64_t ldy) {
    constexpr size_t B = sizeof(BlockQ6_K);
    __m512 acc[T];
    for (auto& v : acc) v = _mm512_setzero_ps();
    for (int64_t k = 0; k < nsb; ++k) {
        const uint8_t* col = G + size_t(k) * 16 * B;
        prefetch_column(col + kPrefetchColumns * 16 * B, 16 * B);
        const __m512 d = halfs16(col);
        unrolled<8>([&]<int Bk>() {
            const __m512 D0 = q6k_scale(col, d, 2 * Bk), D1 = q6k_scale(col, d, 2 * Bk + 1);
            __m512i u[8];
            for (int g = 0; g < 8; ++g) u[g] = q6k_quants<Bk>(col, g);
            const int64_t blk = 8 * k + Bk;
            for (int j = 0; j < T; ++j) {
                const int8_t* xq = reinterpret_cast<const BlockQ8_0*>(X + size_t(t0 + j) * xs)[blk].qs;
                // stored q = value + 32: each 16-group starts from -32 * sum(x)
                __m512i p0 = _mm512_set1_epi32(a.off16[j * 2 * a.nb + 2 * blk]);
                __m512i p1 = _mm512_set1_epi32(a.off16[j * 2 * a.nb + 2 * blk + 1]);
                for (int g = 0; g < 4; ++g) p0 = _mm512_dpbusd_epi32(p0, u[g], bcast4(xq + 4 * g));
                for (int g = 4; g < 8; ++g) p1 = _mm512_dpbusd_epi32(p1, u[g], bcast4(xq + 4 * g));
                const __m512 sx = _mm512_set1_ps(a.dx[j * a.nb + blk]);
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), _mm512_mul_ps(D0, sx), acc[j]);
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), _mm512_mul_ps(D1, sx), acc[j]);
            }
        });
    }
    for (int j = 0; j < T; ++j) _mm512_storeu_ps(Y + (t0 + j) * ldy, acc[j]);
}

// One activation row (decode) against NS 16-row groups side by side: NS
// streams per thread, each prefetched (PREFETCHT0) one column ahead, an
// eighth of a column per sub-block step so that the requests are spread
// between the loads (where k45_column_prefetch(): kPrefetchColumns ahead, the
// distance measured on a Zen 5). On the Xeon, 2 threads, 5632 x 2048: Q4_K
// 23 -> 29.7 GB/s, Q5_K 23.4 -> 29.4, Q6_K 22 -> 28.5 against one stream with
// no prefetch; two streams without prefetch read 19.5, one with it 21, and
// half a column ahead or two columns were slower. Per group the operations
// are x16_k_group<Ty, 1>'s in the same order (the two partial VPDPBUSD
// chains are exact integer sums), so each row's result is the same bit for bit.
template <DType Ty, int NS>
inline void x16_k_streams(const uint8_t* const* G, int64_t nsb, const X16Acts& a, const uint8_t* X, float* const* Yo) {
    constexpr size_t B = Ty == DType::Q6_K ? sizeof(BlockQ6_K) : Ty == DType::Q5_K ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    constexpr size_t Step = 16 * B / 8;
    const size_t PD = (k45_column_prefetch() ? kPrefetchColumns : 1) * 16 * B;
    const auto* xb = reinterpret_cast<const BlockQ8_0*>(X);
    __m512 acc[NS];
    for (auto& v : acc) v = _mm512_setzero_ps();
    for (int64_t k = 0; k < nsb; ++k) {
        const uint8_t* col[NS];
        for (int st = 0; st < NS; ++st) col[st] = G[st] + size_t(k) * 16 * B;
        if constexpr (Ty == DType::Q6_K) {
            __m512 d[NS];
            for (int st = 0; st < NS; ++st) d[st] = halfs16(col[st]);
            unrolled<8>([&]<int Bk>() {
                const int64_t blk = 8 * k + Bk;
                const int8_t* xq = xb[blk].qs;
                const __m512 sx = _mm512_set1_ps(a.dx[blk]);
                for (int st = 0; st < NS; ++st) {
                    prefetch_column(col[st] + PD + Bk * Step, Step);
                    const __m512 D0 = q6k_scale(col[st], d[st], 2 * Bk), D1 = q6k_scale(col[st], d[st], 2 * Bk + 1);
                    __m512i p0 = _mm512_set1_epi32(a.off16[2 * blk]);
                    __m512i p1 = _mm512_set1_epi32(a.off16[2 * blk + 1]);
                    for (int g = 0; g < 4; ++g) p0 = _mm512_dpbusd_epi32(p0, q6k_quants<Bk>(col[st], g), bcast4(xq + 4 * g));
                    for (int g = 4; g < 8; ++g) p1 = _mm512_dpbusd_epi32(p1, q6k_quants<Bk>(col[st], g), bcast4(xq + 4 * g));
                    acc[st] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), _mm512_mul_ps(D0, sx), acc[st]);
                    acc[st] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), _mm512_mul_ps(D1, sx), acc[st]);
                }
            });
        } else {
            constexpr bool Five = Ty == DType::Q5_K;
            K45Column c[NS];
            for (int st = 0; st < NS; ++st) c[st] = k45_column(col[st]);
            unrolled<8>([&]<int S>() {
                const int64_t blk = 8 * k + S;
                const int8_t* xq = xb[blk].qs;
                const __m512 sx = _mm512_set1_ps(a.dx[blk]), sm = _mm512_set1_ps(a.xsum[blk]);
                for (int st = 0; st < NS; ++st) {
                    prefetch_column(col[st] + PD + S * Step, Step);
                    const __m512 D = k45_D<S>(c[st]), O = k45_O<S>(c[st]);
                    __m512i p = _mm512_setzero_si512(), p1 = _mm512_setzero_si512();
                    for (int g = 0; g < 4; ++g) {
                        p = _mm512_dpbusd_epi32(p, k45_quants<Five, S>(col[st], g), bcast4(xq + 4 * g));
                        p1 = _mm512_dpbusd_epi32(p1, k45_quants<Five, S>(col[st], g + 4), bcast4(xq + 4 * g + 16));
                    }
                    p = _mm512_add_epi32(p, p1);
                    acc[st] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(D, sx), acc[st]);
                    acc[st] = _mm512_fnmadd_ps(O, sm, acc[st]);
                }
            });
        }
    }
    for (int st = 0; st < NS; ++st) _mm512_storeu_ps(Yo[st], acc[st]);
}

template <DType Ty, int T>
inline void x16_k_group(const uint8_t* G, int64_t nsb, const X16Acts& a, const uint8_t* X, size_t xs, int64_t t0,
                        float* Y, int64_t ldy) {
    if constexpr (Ty == DType::Q6_K) x16_q6k<T>(G, nsb, a, X, xs, t0, Y, ldy);
    else x16_q45k<Ty == DType::Q5_K, T>(G, nsb, a, X, xs, t0, Y, ldy);
}

template <DType Ty>
void matmul_k_x16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                  int64_t nt, float* Y, int64_t ldy) {
    const int64_t nb = n / 32, nsb = n / QK_K;
    // Per-thread scratch on the heap (a host's thread may have a small stack).
    float* const dx_buf = static_cast<float*>(kernel_scratch(4, sizeof(float) * size_t(nt * nb)));
    float* const xsum_buf = static_cast<float*>(kernel_scratch(5, sizeof(float) * size_t(nt * nb)));
    int32_t* const off_buf = static_cast<int32_t*>(kernel_scratch(6, sizeof(int32_t) * size_t(2 * nt * nb)));
    for (int64_t t = 0; t < nt; ++t) {
        const auto* xb = reinterpret_cast<const BlockQ8_0*>(X + size_t(t) * xs);
        for (int64_t k = 0; k < nb; ++k) {
            int s0, s1;
            half_sums(xb[k].qs, s0, s1);
            const float d = h2f(xb[k].d);
            dx_buf[t * nb + k] = d;
            xsum_buf[t * nb + k] = d * float(s0 + s1);
            off_buf[2 * (t * nb + k)] = -32 * s0;
            off_buf[2 * (t * nb + k) + 1] = -32 * s1;
        }
    }
    // Up to 8 activation rows per pass over a 16-row group (8 accumulators, 8
    // quant vectors and the scales fit the 32 registers); the group's columns
    // stay in L1/L2 while the slices of activation rows pass.
    constexpr int64_t kT = 4;
    if (nt == 1) {  // a decode: the chunk's groups as four (AMD: two) streams side by side, then in pairs, then one by one
        const X16Acts a{dx_buf, xsum_buf, off_buf, nb};
        const auto pass = [&]<int N>(const uint8_t* const* g, float* const* y) { x16_k_streams<Ty, N>(g, nsb, a, X, y); };
        // (four streams on the Xeon: kernel +2-3%, 1.1B Q4_K_M decode 45.3 -> 46.8 tok/s)
        if (k45_column_prefetch()) for_group_streams_each<2, 1>(W_, ws, Y, r0, r1, pass);
        else for_group_streams_each<4, 2, 1>(W_, ws, Y, r0, r1, pass);
        return;
    }
    for (int64_t r = r0; r < r1; r += 16) {
        const uint8_t* G = W_ + size_t(r) * ws;
        for (int64_t t0 = 0; t0 < nt; t0 += kT) {
            const X16Acts a{dx_buf + t0 * nb, xsum_buf + t0 * nb, off_buf + 2 * t0 * nb, nb};
            float* y = Y + r;
            switch (nt - t0 < kT ? nt - t0 : kT) {
                case 4: x16_k_group<Ty, 4>(G, nsb, a, X, xs, t0, y, ldy); break;
                case 3: x16_k_group<Ty, 3>(G, nsb, a, X, xs, t0, y, ldy); break;
                case 2: x16_k_group<Ty, 2>(G, nsb, a, X, xs, t0, y, ldy); break;
                default: x16_k_group<Ty, 1>(G, nsb, a, X, xs, t0, y, ldy); break;
            }
        }
    }
}
#endif  // AVX-512 VNNI

#if defined(__AVX2__) && !(defined(__AVX512VNNI__) && defined(__AVX512BW__))
// ---- AVX2 (+FMA, F16C): Q4_K, Q5_K, Q6_K repacked 16 rows at a time ---------------
// The layout the VNNI kernels read (kernels/repack.hpp): each 64-byte piece
// holds four bytes of each of the 16 rows, rows 0-7 in its first 32 bytes and
// rows 8-15 in its last, so one 256-bit load gives the same four bytes of 8
// rows (a "half"), and one maddubs against four broadcast activation bytes
// advances 8 dot products by four weights. A pass takes one half (for a
// single activation row both, in one pass) through every super-block against
// T activation rows; each unpacked weight vector serves all T.
//
// The integer sum of a 32-block is exact and already carries its sub-block
// scale: maddubs gives int16 pair sums, which add in int16 while they cannot
// overflow, then one madd against the scale (as an int16 in both halves of
// each row's lane) gives scale * (u . x) in int32.
//   Q4_K: u <= 15, so all eight maddubs of a block add in int16 (|sum| <=
//     8 * 2 * 15 * 127 = 30480). Float per block: acc += (d * dx) * isum,
//     then acc -= (dmin * m) * (dx * sum x).
//   Q5_K: u <= 31: four maddubs per int16 sum, two madds a block.
//   Q6_K: u <= 63: two maddubs per int16 sum, each 16-group's madd against
//     its signed scale; the stored offset 32 comes off inside the same int32
//     sum, as (32 * sc0, 32 * sc1) . (-sum x0, -sum x1) by one more madd.
//     Float per block: acc += (d * dx) * isum.
// Each output thus sees the same float operations in block order whatever T,
// the halves per pass and the panel: a row's result does not depend on the
// other activation rows of the call, nor on how rows are split over threads.

// Activation rows prepared once per panel: per row j and 32-block b, dx (the
// block's scale), dx * sum(x) (Q4_K/Q5_K's min) and the negated sums of the
// two 16-element groups as two int16 in one word (Q6_K's offset).
struct KPanel {
    const float* dx;
    const float* xsum;
    const int32_t* nsum;
    int64_t nb;  // 32-blocks per row
};
inline void k_panel(const uint8_t* X, size_t xs, int P, int64_t nb, float* dx, float* xsum, int32_t* nsum) {
    for (int j = 0; j < P; ++j) {
        const auto* xb = reinterpret_cast<const BlockQ8_0*>(X + size_t(j) * xs);
        for (int64_t k = 0; k < nb; ++k) {
            int s0, s1;
            half_sums(xb[k].qs, s0, s1);
            const float d = h2f(xb[k].d);
            dx[j * nb + k] = d;
            xsum[j * nb + k] = d * float(s0 + s1);
            nsum[j * nb + k] = int32_t(uint32_t(uint16_t(-s0)) | (uint32_t(uint16_t(-s1)) << 16));
        }
    }
}
// Four activation bytes in every 32-bit lane.
inline __m256i bcast4x8(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
// pshufb controls. Byte S of each 32-bit lane as an int16 in both halves of
// the lane (the madd operand), or alone as an int32:
inline __m256i pair_ctl(int s) {
    const auto w = [s](int i) { return int(uint32_t(4 * i + s) * 0x10001u | 0x80008000u); };
    return _mm256_setr_epi32(w(0), w(1), w(2), w(3), w(0), w(1), w(2), w(3));
}
inline __m256i byte_ctl(int s) {
    const auto w = [s](int i) { return int(uint32_t(4 * i + s) | 0xffffff00u); };
    return _mm256_setr_epi32(w(0), w(1), w(2), w(3), w(0), w(1), w(2), w(3));
}
// Of 16 bytes (one per row, in both 128-bit lanes), row 8h+i's into the high
// byte of both int16 of lane i (an arithmetic shift by 8 then sign-extends).
inline __m256i row_byte_ctl(int h) {
    const auto w = [h](int i) { return int(uint32_t(8 * h + i) * 0x01000100u | 0x00800080u); };
    return _mm256_setr_epi32(w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7));
}
inline __m256 halfs8(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// Q4_K / Q5_K, unpacked once per 16-row group and panel for a prefill (every
// slice of activation rows that passes the group then reads them; each pass
// used to unpack them again, 13 times per group for a 64-row panel):
//   scales, at sc + 32k + 16h (super-block k, half h): eight vectors of the
//   sub-blocks' scales (an int16 in both halves of each row's lane: the madd
//   operand) then eight of dmin * min (floats, per row);
//   quants, at qv + 128k + 16S + 2g + h (sub-block S, 4-byte piece g): the
//   piece's 8 rows x 4 weights as bytes 0..15 (Q5_K: 0..31), maddubs-ready.
// A decode (one pass over the group) unpacks each column's scales as it comes
// and its quants in the loop (a separate pass first would read the group's
// memory twice, the first time in scattered lines).
// One super-block column's scales (both halves: 32 vectors).
inline void k45_column_scales(const uint8_t* col, __m256i* o) {
    const __m256i m6 = _mm256_set1_epi32(0x3f3f3f3f), lo4 = _mm256_set1_epi32(0x0f0f0f0f),
                  hi2 = _mm256_set1_epi32(0x30303030);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
        const uint8_t* c = col + 32 * h;
        const __m256 dmin = halfs8(col + 32 + 16 * h);
        // per row (lane): the eight 6-bit scales and mins as bytes of two words each
        const __m256i w0 = ld256(c + 64), w1 = ld256(c + 128), w2 = ld256(c + 192);
        const __m256i sc_lo = _mm256_and_si256(w0, m6), m_lo = _mm256_and_si256(w1, m6);
        const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(w2, lo4), _mm256_and_si256(_mm256_srli_epi32(w0, 2), hi2));
        const __m256i m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w2, 4), lo4),
                                             _mm256_and_si256(_mm256_srli_epi32(w1, 2), hi2));
        unrolled<8>([&]<int S>() {
            _mm256_store_si256(o + 16 * h + S, _mm256_shuffle_epi8(S < 4 ? sc_lo : sc_hi, pair_ctl(S % 4)));
            const __m256 m = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(S < 4 ? m_lo : m_hi, byte_ctl(S % 4)));
            _mm256_store_si256(o + 16 * h + 8 + S, _mm256_castps_si256(_mm256_mul_ps(m, dmin)));
        });
    }
}
// Piece g of sub-block S of half h of a column, as bytes (QS: where the
// column's qs start; Five: Q5_K's fifth bits, from qh at 256).
template <bool Five, int S>
inline __m256i k45_piece(const uint8_t* col, int h, int g) {
    constexpr size_t QS = Five ? 768 : 256;
    const uint8_t* c = col + 32 * h;
    const __m256i raw = ld256(c + QS + 64 * (8 * (S / 2) + g));
    __m256i q = _mm256_and_si256(S % 2 ? _mm256_srli_epi16(raw, 4) : raw, bytes(0x0f));
    if constexpr (Five) {  // bit S of qh, moved to bit 4 (0x10): the fifth bit
        const __m256i qh = ld256(c + 256 + 64 * g);
        __m256i top = qh;
        if constexpr (S < 4) top = _mm256_slli_epi16(qh, 4 - S);
        if constexpr (S > 4) top = _mm256_srli_epi16(qh, S - 4);
        q = _mm256_or_si256(q, _mm256_and_si256(top, bytes(0x10)));
    }
    return q;
}
template <bool Five>
inline void k45_unpack(const uint8_t* G, int64_t nsb, __m256i* sc, __m256i* qv) {
    constexpr size_t B = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    for (int64_t k = 0; k < nsb; ++k) {
        const uint8_t* col = G + size_t(k) * 16 * B;
        k45_column_scales(col, sc + 32 * k);
        if (!qv) continue;  // scales only
        unrolled<8>([&]<int S>() {
#pragma GCC unroll 8
            for (int g = 0; g < 8; ++g)
#pragma GCC unroll 2
                for (int h = 0; h < 2; ++h) _mm256_store_si256(qv + 128 * k + 16 * S + 2 * g + h, k45_piece<Five, S>(col, h, g));
        });
    }
}

// How the AVX2 K-quant passes prefetch the weights they read.
enum class KPrefetch {
    none,
    // the column kPrefetchColumns ahead, whole (the first slice of a panel)
    column,
    // a decode's streams: an eighth of a column at each sub-block step, so
    // that the requests are spread between the loads, one column ahead (where
    // k45_column_prefetch(), kPrefetchColumns: the distance measured on the
    // Zen CPUs). On the Xeon, 2 threads, 5632 x 2048 (bench_kernels --isa
    // avx2), Q4_K 16.8 -> 28.4 GB/s, Q5_K 18.9 -> 28.0, Q6_K 20.4 -> 26 against
    // one stream with its whole column prefetched 4 ahead at once; of that,
    // the spread requests alone gave Q4_K 15.6 -> 20.3. Half a column or three
    // quarters ahead: within noise.
    stream,
};
template <size_t B, int Sub>
inline void k_prefetch(KPrefetch pf, const uint8_t* col) {
    if (pf == KPrefetch::column && Sub == 0) prefetch_column(col + kPrefetchColumns * 16 * B, 16 * B);
    if (pf == KPrefetch::stream) {
        const size_t ahead = (k45_column_prefetch() ? kPrefetchColumns : 1) * 16 * B;
        prefetch_column(col + ahead + Sub * 2 * B, 2 * B);
    }
}

// Q4_K / Q5_K: NH halves from h0 of each of NG 16-row groups (G[0..NG), side
// by side: a decode's streams), against T activation rows (X, `xs` apart; a.*
// offset to the first of them), into Y[i] for group i (row j at Y[i] + j *
// ldy, the group's first output at Y[i][0]); Pre: what k45_unpack laid out
// beforehand (0: nothing, 1: the scales, at sc; 2: the quants too, at qv; with
// NG = 1), the rest is unpacked here. Within a sub-block each activation
// broadcast serves every half. Each group sees the same operations in the
// same order whatever NG.
template <bool Five, int T, int NH, int Pre, int NG = 1>
inline void k45_avx2(const uint8_t* const* G, int h0, int64_t nsb, const __m256i* sc, const __m256i* qv, const KPanel& a,
                     const uint8_t* X, size_t xs, float* const* Y, int64_t ldy, KPrefetch prefetch) {
    static_assert(NG == 1 || Pre == 0);
    constexpr size_t B = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    __m256 acc[NG][NH][T];
    for (auto& q : acc)
        for (auto& r : q)
            for (auto& v : r) v = _mm256_setzero_ps();
    const uint8_t* xq[T];
    for (int j = 0; j < T; ++j) xq[j] = X + size_t(j) * xs + offsetof(BlockQ8_0, qs);
    alignas(32) __m256i own[NG][Pre ? 1 : 32];
    for (int64_t k = 0; k < nsb; ++k) {
        const __m256i* pr[NG][NH];
        __m256 dv[NG][NH];
        const uint8_t* cols[NG];
        for (int gi = 0; gi < NG; ++gi) {
            const uint8_t* col = cols[gi] = G[gi] + size_t(k) * 16 * B;
            if constexpr (!Pre) k45_column_scales(col, own[gi]);
            for (int hh = 0; hh < NH; ++hh) {
                pr[gi][hh] = (Pre ? sc + 32 * k : own[gi]) + 16 * (h0 + hh);
                dv[gi][hh] = halfs8(col + 16 * (h0 + hh));
            }
        }
        unrolled<8>([&]<int S>() {
            const size_t xo = size_t(8 * k + S) * sizeof(BlockQ8_0);
            const int64_t blk = 8 * k + S;
#pragma GCC unroll 2
            for (int gi = 0; gi < NG; ++gi) {
                const uint8_t* col = cols[gi];
                k_prefetch<B, S>(prefetch, col);
                __m256i s16[NH][T], s32[NH][T];
#pragma GCC unroll 8
                for (int g = 0; g < 8; ++g) {
                    __m256i q[NH];
                    for (int hh = 0; hh < NH; ++hh)
                        q[hh] = Pre >= 2 ? _mm256_load_si256(qv + 128 * k + 16 * S + 2 * g + h0 + hh) : k45_piece<Five, S>(col, h0 + hh, g);
#pragma GCC unroll 8
                    for (int j = 0; j < T; ++j) {
                        const __m256i bx = bcast4x8(xq[j] + xo + 4 * g);
                        for (int hh = 0; hh < NH; ++hh) {
                            const __m256i p = _mm256_maddubs_epi16(q[hh], bx);
                            s16[hh][j] = g % (Five ? 4 : 8) == 0 ? p : _mm256_add_epi16(s16[hh][j], p);
                            in_register(s16[hh][j]);
                            if (Five && g == 3) s32[hh][j] = _mm256_madd_epi16(s16[hh][j], _mm256_load_si256(pr[gi][hh] + S));
                        }
                    }
                }
                for (int hh = 0; hh < NH; ++hh)
#pragma GCC unroll 8
                    for (int j = 0; j < T; ++j) {
                        __m256i isum = _mm256_madd_epi16(s16[hh][j], _mm256_load_si256(pr[gi][hh] + S));
                        if constexpr (Five) isum = _mm256_add_epi32(s32[hh][j], isum);
                        acc[gi][hh][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                                                         _mm256_mul_ps(dv[gi][hh], _mm256_set1_ps(a.dx[j * a.nb + blk])),
                                                         acc[gi][hh][j]);
                        acc[gi][hh][j] = _mm256_fnmadd_ps(_mm256_castsi256_ps(_mm256_load_si256(pr[gi][hh] + 8 + S)),
                                                          _mm256_set1_ps(a.xsum[j * a.nb + blk]), acc[gi][hh][j]);
                    }
            }
        });
    }
    for (int gi = 0; gi < NG; ++gi)
        for (int hh = 0; hh < NH; ++hh)
            for (int j = 0; j < T; ++j) _mm256_storeu_ps(Y[gi] + j * ldy + 8 * (h0 + hh), acc[gi][hh][j]);
}

// Q6_K: as k45_avx2. The 16 int8 scales of a 16-group (one per row) are one
// 16-byte piece; pshufb spreads a half's eight to its lanes.
template <int T, int NH, int NG = 1>
inline void k6_avx2(const uint8_t* const* G, int h0, int64_t nsb, const KPanel& a, const uint8_t* X, size_t xs,
                    float* const* Y, int64_t ldy, KPrefetch prefetch) {
    constexpr size_t B = sizeof(BlockQ6_K);
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
    __m256 acc[NG][NH][T];
    for (auto& q : acc)
        for (auto& r : q)
            for (auto& v : r) v = _mm256_setzero_ps();
    const uint8_t* xq[T];
    for (int j = 0; j < T; ++j) xq[j] = X + size_t(j) * xs + offsetof(BlockQ8_0, qs);
    __m256i sctl[NH];  // pshufb control: the half's eight rows of a 16-byte piece to its lanes
    for (int hh = 0; hh < NH; ++hh) sctl[hh] = row_byte_ctl(h0 + hh);
    for (int64_t k = 0; k < nsb; ++k) {
        unrolled<8>([&]<int Bk>() {
            constexpr int h6 = Bk / 4, qn = Bk % 4;  // 128-element half of the super-block; nibble / qh bit pair
            const size_t xo = size_t(8 * k + Bk) * sizeof(BlockQ8_0);
            const int64_t blk = 8 * k + Bk;
#pragma GCC unroll 2
            for (int gi = 0; gi < NG; ++gi) {
                const uint8_t* col = G[gi] + size_t(k) * 16 * B;
                k_prefetch<B, Bk>(prefetch, col);
                // the scales of the block's two 16-groups, (sc, sc) per lane: the madd operands
                __m256i sc[NH][2];
                for (int hh = 0; hh < NH; ++hh)
                    for (int e = 0; e < 2; ++e)
                        sc[hh][e] = _mm256_srai_epi16(
                            _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(ld128(col + 32 + 16 * (2 * Bk + e))), sctl[hh]), 8);
                __m256i s32[NH][T];
#pragma GCC unroll 4
                for (int pp = 0; pp < 4; ++pp) {  // pieces 2pp and 2pp+1: 8 elements of 16-group pp / 2
                    __m256i u[NH][2];
                    for (int hh = 0; hh < NH; ++hh)
                        for (int e = 0; e < 2; ++e) {
                            const uint8_t* c = col + 32 * (h0 + hh);
                            const int g = 2 * pp + e;
                            const __m256i l = ld256(c + 288 + 64 * (16 * h6 + 8 * (qn & 1) + g));
                            const __m256i qh = ld256(c + 2336 + 64 * (8 * h6 + g));
                            const __m256i top = qn == 0 ? _mm256_slli_epi16(qh, 4) : qn == 1 ? _mm256_slli_epi16(qh, 2)
                                                : qn == 2 ? qh : _mm256_srli_epi16(qh, 2);
                            u[hh][e] = _mm256_or_si256(_mm256_and_si256(qn >> 1 ? _mm256_srli_epi16(l, 4) : l, m4),
                                                       _mm256_and_si256(top, m2));
                        }
#pragma GCC unroll 8
                    for (int j = 0; j < T; ++j) {
                        const __m256i b0 = bcast4x8(xq[j] + xo + 8 * pp), b1 = bcast4x8(xq[j] + xo + 8 * pp + 4);
                        for (int hh = 0; hh < NH; ++hh) {
                            const __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(u[hh][0], b0), _mm256_maddubs_epi16(u[hh][1], b1));
                            const __m256i p = _mm256_madd_epi16(t, sc[hh][pp / 2]);
                            s32[hh][j] = pp == 0 ? p : _mm256_add_epi32(s32[hh][j], p);
                            in_register(s32[hh][j]);
                        }
                    }
                }
                for (int hh = 0; hh < NH; ++hh) {
                    // (32 * sc0, 32 * sc1) per lane, against (-sum x0, -sum x1): the offset
                    const __m256i off = _mm256_slli_epi16(_mm256_blend_epi16(sc[hh][0], sc[hh][1], 0xaa), 5);
                    const __m256 d = halfs8(col + 16 * (h0 + hh));
#pragma GCC unroll 8
                    for (int j = 0; j < T; ++j) {
                        const __m256i isum = _mm256_add_epi32(s32[hh][j], _mm256_madd_epi16(off, _mm256_set1_epi32(a.nsum[j * a.nb + blk])));
                        acc[gi][hh][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                                                         _mm256_mul_ps(d, _mm256_set1_ps(a.dx[j * a.nb + blk])), acc[gi][hh][j]);
                    }
                }
            }
        });
    }
    for (int gi = 0; gi < NG; ++gi)
        for (int hh = 0; hh < NH; ++hh)
            for (int j = 0; j < T; ++j) _mm256_storeu_ps(Y[gi] + j * ldy + 8 * (h0 + hh), acc[gi][hh][j]);
}

template <DType Ty, int T, int NH, int Pre, int NG = 1>
inline void k_pass_avx2(const uint8_t* const* G, int h0, int64_t nsb, const __m256i* sc, const __m256i* qv, const KPanel& a,
                        const uint8_t* X, size_t xs, float* const* Y, int64_t ldy, KPrefetch prefetch) {
    if constexpr (Ty == DType::Q6_K) k6_avx2<T, NH, NG>(G, h0, nsb, a, X, xs, Y, ldy, prefetch);
    else k45_avx2<Ty == DType::Q5_K, T, NH, Pre, NG>(G, h0, nsb, sc, qv, a, X, xs, Y, ldy, prefetch);
}

// One slice of Tn <= T activation rows against a group: one half per pass;
// a single row takes both halves in one pass.
template <DType Ty, int T, int Pre>
inline void k_slice_avx2(int Tn, const uint8_t* G, int64_t nsb, const __m256i* sc, const __m256i* qv, const KPanel& a,
                         const uint8_t* X, size_t xs, float* Y, int64_t ldy, KPrefetch prefetch) {
    if constexpr (T == 1) {
        k_pass_avx2<Ty, 1, 2, Pre>(&G, 0, nsb, sc, qv, a, X, xs, &Y, ldy, prefetch);
    } else if (Tn == T) {
        k_pass_avx2<Ty, T, 1, Pre>(&G, 0, nsb, sc, qv, a, X, xs, &Y, ldy, prefetch);
        k_pass_avx2<Ty, T, 1, Pre>(&G, 1, nsb, sc, qv, a, X, xs, &Y, ldy, KPrefetch::none);
    } else {
        k_slice_avx2<Ty, T - 1, Pre>(Tn, G, nsb, sc, qv, a, X, xs, Y, ldy, prefetch);
    }
}

template <DType Ty>
__attribute__((noinline)) void matmul_k_x16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1,
                                            const uint8_t* X, size_t xs, int64_t nt, float* Y, int64_t ldy) {
    const int64_t nb = n / 32, nsb = n / QK_K;
    // A panel of up to 64 activation rows is prepared once; each 16-row group
    // then serves every slice of kT rows of the panel while it is in L1/L2.
    // kT: the accumulators and block sums of a slice, the weight vectors and
    // the scales within the 16 registers.
    constexpr int kT = Ty == DType::Q4_K ? 5 : 4, kPanelRows = 64;
    // Per-thread scratch on the heap (a host's thread may have a small stack).
    float* const dx = static_cast<float*>(kernel_scratch(4, sizeof(float) * size_t(kPanelRows * nb)));
    float* const xsum = static_cast<float*>(kernel_scratch(5, sizeof(float) * size_t(kPanelRows * nb)));
    int32_t* const nsum = static_cast<int32_t*>(kernel_scratch(6, sizeof(int32_t) * size_t(kPanelRows * nb)));
    // Q4_K / Q5_K: a group's scales and quants unpacked once per panel
    // (k45_unpack) for the slices to share: 1.1B-shape kernels at 64 rows, AVX2
    // on a Xeon, Q4_K +10%, Q5_K +50% (bench_kernels, 4 interleaved rounds); a
    // panel of one slice (P <= kT: a few batched decodes) shares only the
    // scales between its two passes (its quants unpacked ahead cost Q4_K 15% at
    // 4 rows). Q6_K's int8 scales take one pshufb each, in the pass.
    constexpr bool kUnpack = Ty != DType::Q6_K;
    __m256i* const sc = kUnpack ? static_cast<__m256i*>(kernel_scratch(8, sizeof(__m256i) * size_t(32 * nsb))) : nullptr;
    __m256i* const qv = kUnpack ? static_cast<__m256i*>(kernel_scratch(9, sizeof(__m256i) * size_t(128 * nsb))) : nullptr;
    if (nt == 1) {
        // A decode: the chunk's groups as streams side by side (their passes
        // share each activation broadcast), then the rest one by one.
        k_panel(X, xs, 1, nb, dx, xsum, nsum);
        const KPanel a{dx, xsum, nsum, nb};
        // Q6_K as four streams where PREFETCHT0 (not AMD): on the Xeon, kernel
        // 27.7 -> 32.9 GB/s, 1.1B Q4_K_M decode +4% (4 interleaved rounds);
        // Q4_K and Q5_K were no faster with four.
        const auto pass = [&]<int N>(const uint8_t* const* g, float* const* y) {
            k_pass_avx2<Ty, 1, 2, 0, N>(g, 0, nsb, nullptr, nullptr, a, X, xs, y, ldy, KPrefetch::stream);
        };
        if (Ty == DType::Q6_K && !k45_column_prefetch()) r0 = for_group_streams_each<4, 2>(W_, ws, Y, r0, r1, pass);
        else r0 = for_group_streams_each<2>(W_, ws, Y, r0, r1, pass);
    }
    for (int64_t p0 = 0; p0 < nt; p0 += kPanelRows) {
        const int P = int(nt - p0 < kPanelRows ? nt - p0 : kPanelRows);
        k_panel(X + size_t(p0) * xs, xs, P, nb, dx, xsum, nsum);
        for (int64_t r = r0; r < r1; r += 16) {
            const uint8_t* G = W_ + size_t(r) * ws;  // a group's 16 rows are contiguous
            if (P == 1) {  // (a decode, or the last row of a batch of 64k + 1: the streams, above)
                const KPanel a{dx, xsum, nsum, nb};
                k_slice_avx2<Ty, 1, 0>(1, G, nsb, nullptr, nullptr, a, X + size_t(p0) * xs, xs, Y + p0 * ldy + r, ldy,
                                       KPrefetch::stream);
                continue;
            }
            if constexpr (kUnpack) {
                if (P <= kT) {  // one slice (a few batched decodes): its two passes share the scales
                    k45_unpack<Ty == DType::Q5_K>(G, nsb, sc, nullptr);
                    const KPanel a{dx, xsum, nsum, nb};
                    k_slice_avx2<Ty, kT, 1>(P, G, nsb, sc, nullptr, a, X + size_t(p0) * xs, xs, Y + p0 * ldy + r, ldy,
                                            KPrefetch::column);
                    continue;
                }
                k45_unpack<Ty == DType::Q5_K>(G, nsb, sc, qv);
            }
            for (int t0 = 0; t0 < P; t0 += kT) {
                const int Tn = P - t0 < kT ? P - t0 : kT;
                const KPanel a{dx + t0 * nb, xsum + t0 * nb, nsum + t0 * nb, nb};
                // the first slice prefetches, for all
                k_slice_avx2<Ty, kT, kUnpack ? 2 : 0>(Tn, G, nsb, sc, qv, a, X + size_t(p0 + t0) * xs, xs,
                                                      Y + (p0 + t0) * ldy + r, ldy,
                                                      t0 == 0 ? KPrefetch::column : KPrefetch::none);
            }
        }
    }
}
#endif  // AVX2 without AVX-512 VNNI

// The generic path (ISAs without AVX2): the reference decoder, integer group
// sums, float accumulation in a fixed order.
template <DType Ty>
inline float dot_quant_generic(int64_t n, const uint8_t* w, const BlockQ8_0* x) {
    const TypeInfo& ti = type_info(Ty);
    DecodedBlock b;
    float acc = 0;
    for (int64_t k = 0; k < n / int64_t(ti.block_size); ++k) {
        decode_block_ref(Ty, w + size_t(k) * ti.type_size, b);
        for (int a = 0; a < b.n / 32; ++a) {
            const BlockQ8_0& xb = x[k * (ti.block_size / 32) + a];
            float blk = 0;
            for (int h = 0; h < 2; ++h) {
                const int g = 2 * a + h;
                int32_t sqx = 0, sx = 0;
                for (int j = 0; j < 16; ++j) {
                    sqx += b.q[16 * g + j] * xb.qs[16 * h + j];
                    sx += xb.qs[16 * h + j];
                }
                blk += b.D[g] * float(sqx) - b.O[g] * float(sx);
            }
            acc += blk * h2f(xb.d);
        }
    }
    return acc;
}

template <DType Ty>
void matmul_quant_type(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                       int64_t nt, float* Y, int64_t ldy) {
#if defined(__AVX2__)
    using U = std::conditional_t<Ty == DType::Q4_K, UQ4K,
              std::conditional_t<Ty == DType::Q5_K, UQ5K,
              std::conditional_t<Ty == DType::Q6_K, UQ6K,
              std::conditional_t<Ty == DType::Q2_K, UQ2K,
              std::conditional_t<Ty == DType::Q3_K, UQ3K,
              std::conditional_t<Ty == DType::IQ4_XS, UIQ4XS, U32<Ty>>>>>>>;
    matmul_quant<U>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
#else
    for (int64_t t = 0; t < nt; ++t)
        for (int64_t r = r0; r < r1; ++r)
            Y[t * ldy + r] = dot_quant_generic<Ty>(n, W_ + size_t(r) * ws, reinterpret_cast<const BlockQ8_0*>(X + size_t(t) * xs));
#endif
}
