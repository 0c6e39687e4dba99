// ember/kernels/x16_kquants_avx512.hpp — reading the Q4_K, Q5_K and Q6_K
// 16-row groups (kernels/repack.hpp) into AVX-512 registers: per super-block
// column, each row's scales as a float lane and each 4-byte piece of quants
// as the unsigned bytes VPDPBUSD / TDPBSUD take.
//
// A fragment: included inside a per-ISA anonymous namespace by
// kernels/simd_quants.hpp (the avx512 VNNI kernels) and src/kernels_amx.cpp
// (the tile kernels), which must compute the same scales and quants bit for
// bit. Not a header of its own.

// A Q4_K/Q5_K column's 16 rows: d, dmin, and per row (lane) the eight 6-bit
// scales and mins as bytes of two words each (sub-blocks 0-3 in the low
// words, 4-7 in the high ones).
struct K45Column {
    __m512 d, dmin;
    __m512i sc_lo, m_lo, sc_hi, m_hi;
};
inline K45Column k45_column(const uint8_t* col) {
    const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), lo4 = _mm512_set1_epi32(0x0f0f0f0f),
                  hi2 = _mm512_set1_epi32(0x30303030);
    const auto ld = [](const uint8_t* p) { return _mm512_loadu_si512(p); };
    const __m512i w0 = ld(col + 64), w1 = ld(col + 128), w2 = ld(col + 192);
    K45Column c;
    c.d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(col)));
    c.dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + 32)));
    c.sc_lo = _mm512_and_si512(w0, m6);
    c.m_lo = _mm512_and_si512(w1, m6);
    c.sc_hi = _mm512_or_si512(_mm512_and_si512(w2, lo4), _mm512_and_si512(_mm512_srli_epi32(w0, 2), hi2));
    c.m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), lo4), _mm512_and_si512(_mm512_srli_epi32(w1, 2), hi2));
    return c;
}
// Sub-block S's d * scale (D) and dmin * min (O), per row.
template <int S>
inline __m512 k45_D(const K45Column& c) {
    const __m512i w = _mm512_srli_epi32(S < 4 ? c.sc_lo : c.sc_hi, 8 * (S % 4));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(w, _mm512_set1_epi32(0xff))), c.d);
}
template <int S>
inline __m512 k45_O(const K45Column& c) {
    const __m512i w = _mm512_srli_epi32(S < 4 ? c.m_lo : c.m_hi, 8 * (S % 4));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(w, _mm512_set1_epi32(0xff))), c.dmin);
}
// Piece g (elements 4g..4g+3) of sub-block S of the column's 16 rows: the
// quants 0..15 (Q5_K with the fifth bit: 0..31).
template <bool Five, int S>
inline __m512i k45_quants(const uint8_t* col, int g) {
    constexpr size_t QS = Five ? 768 : 256;
    const __m512i raw = _mm512_loadu_si512(col + QS + 64 * (8 * (S / 2) + g));
    __m512i q = _mm512_and_si512(S % 2 ? _mm512_srli_epi16(raw, 4) : raw, _mm512_set1_epi8(0x0f));
    if constexpr (Five) {  // bit S of qh: the fifth bit
        const __mmask64 hb = _mm512_test_epi8_mask(_mm512_loadu_si512(col + 256 + 64 * g), _mm512_set1_epi8(char(1 << S)));
        q = _mm512_mask_add_epi8(q, hb, q, _mm512_set1_epi8(0x10));
    }
    return q;
}

// A Q6_K column: 16-element group gr's d * scale, per row.
inline __m512 q6k_scale(const uint8_t* col, __m512 d, int gr) {
    return _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(col + 32 + 16 * gr)))), d);
}
// Piece g (elements 4g..4g+3) of 32-block Bk of the column's 16 rows: the
// quants 0..63 (value + 32).
template <int Bk>
inline __m512i q6k_quants(const uint8_t* col, int g) {
    constexpr int h = Bk / 4, qn = Bk % 4;  // half, and which nibble / qh bit pair
    const __m512i l = _mm512_loadu_si512(col + 288 + 64 * (16 * h + 8 * (qn & 1) + g));
    const __m512i lo = _mm512_and_si512(qn >> 1 ? _mm512_srli_epi16(l, 4) : l, _mm512_set1_epi8(0x0f));
    const __m512i qh = _mm512_loadu_si512(col + 2336 + 64 * (8 * h + g));
    const __m512i top = qn == 0 ? _mm512_slli_epi16(qh, 4) : qn == 1 ? _mm512_slli_epi16(qh, 2)
                        : qn == 2 ? qh : _mm512_srli_epi16(qh, 2);
    return _mm512_or_si512(lo, _mm512_and_si512(top, _mm512_set1_epi8(0x30)));
}
