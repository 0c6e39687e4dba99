// `ember quantize`: a GGUF model's matrices re-encoded in another type.
#include "ember/quantize.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "ember/gguf.hpp"
#include "ember/gguf_writer.hpp"
#include "ember/kernels/quant_ref.hpp"
#include "ember/mapped_file.hpp"
#include "ember/thread_pool.hpp"

namespace ember {

namespace {

// general.file_type values (llama.cpp's llama_ftype enumeration, a fact of
// the files in circulation). Plain K types take their "_S" entry.
uint32_t file_type_of(DType t) {
    switch (t) {
        case DType::F32: return 0;
        case DType::F16: return 1;
        case DType::Q4_0: return 2;
        case DType::Q4_1: return 3;
        case DType::Q8_0: return 7;
        case DType::Q5_0: return 8;
        case DType::Q5_1: return 9;
        case DType::Q2_K: return 10;
        case DType::Q3_K: return 11;
        case DType::Q4_K: return 14;
        case DType::Q5_K: return 16;
        case DType::Q6_K: return 18;
        case DType::IQ4_NL: return 25;
        case DType::IQ4_XS: return 30;
        case DType::BF16: return 32;
        default: return 0;
    }
}

std::string upper(std::string_view s) {
    std::string u(s);
    for (char& c : u) c = char(std::toupper(static_cast<unsigned char>(c)));
    return u;
}

// The scheme's types, in the order usage text lists them.
const DType kPlain[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q6_K, DType::Q5_K, DType::Q5_1,
                        DType::Q5_0, DType::Q4_K, DType::Q4_1, DType::Q4_0, DType::IQ4_XS, DType::IQ4_NL, DType::Q3_K,
                        DType::Q2_K};

// Layers that get more bits in the _M mixtures: the first and last eighth,
// and every third layer in between.
bool more_bits(int layer, int n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

// A type with 32-element blocks for rows a super-block type cannot divide.
DType fallback_for(DType t) {
    switch (t) {
        case DType::Q4_K: return DType::Q5_0;
        case DType::Q5_K: return DType::Q5_1;
        case DType::Q6_K: return DType::Q8_0;
        case DType::Q2_K: case DType::Q3_K: case DType::IQ4_XS: return DType::IQ4_NL;
        default: return DType::F16;
    }
}

bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

// blk.N.* -> N, else -1.
int layer_of(std::string_view name) {
    if (name.substr(0, 4) != "blk.") return -1;
    int v = 0;
    size_t i = 4;
    if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
    for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) {
        v = v * 10 + (name[i] - '0');
        if (v > 1000000) return -1;
    }
    return i < name.size() && name[i] == '.' ? v : -1;
}

// ---- metadata values re-encoded as the writer takes them ----------------------------

size_t scalar_bytes(gguf::ValueType t) {
    using V = gguf::ValueType;
    switch (t) {
        case V::u8: case V::i8: case V::boolean: return 1;
        case V::u16: case V::i16: return 2;
        case V::u32: case V::i32: case V::f32: return 4;
        case V::u64: case V::i64: case V::f64: return 8;
        default: return 0;
    }
}

template <class T>
void put(std::vector<uint8_t>& b, T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& b, std::string_view s) {
    put<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
}

// The value's payload (what follows its type id in the file).
void encode_value(const gguf::Value& v, std::vector<uint8_t>& b) {
    using V = gguf::ValueType;
    switch (v.type) {
        case V::u8: put<uint8_t>(b, uint8_t(v.u)); return;
        case V::boolean: put<uint8_t>(b, uint8_t(v.u != 0)); return;
        case V::i8: put<int8_t>(b, int8_t(v.i)); return;
        case V::u16: put<uint16_t>(b, uint16_t(v.u)); return;
        case V::i16: put<int16_t>(b, int16_t(v.i)); return;
        case V::u32: put<uint32_t>(b, uint32_t(v.u)); return;
        case V::i32: put<int32_t>(b, int32_t(v.i)); return;
        case V::u64: put<uint64_t>(b, v.u); return;
        case V::i64: put<int64_t>(b, v.i); return;
        case V::f32: put<float>(b, float(v.f)); return;
        case V::f64: put<double>(b, v.f); return;
        case V::string: put_string(b, v.str); return;
        case V::array:
            put<uint32_t>(b, uint32_t(v.elem_type));
            put<uint64_t>(b, v.count);
            if (v.elem_type == V::string) {
                for (std::string_view s : v.strings) put_string(b, s);
            } else if (v.elem_type == V::array) {
                for (const gguf::Value& item : v.items) encode_value(item, b);
            } else {
                b.insert(b.end(), v.elems, v.elems + v.count * scalar_bytes(v.elem_type));
            }
            return;
    }
    fail(Status::internal, "quantize: unknown metadata value type");
}

}  // namespace

QuantizeScheme quantize_scheme(std::string_view name) {
    QuantizeScheme s;
    s.name = upper(name);
    if (s.name == "Q4_K_M" || s.name == "Q5_K_M") {
        s.base = s.name == "Q4_K_M" ? DType::Q4_K : DType::Q5_K;
        s.mixture = true;
        s.file_type = s.name == "Q4_K_M" ? 15 : 17;
        return s;
    }
    for (DType t : kPlain) {
        if (s.name == dtype_name(t)) {
            s.base = t;
            s.file_type = file_type_of(t);
            return s;
        }
    }
    fail(Status::invalid_argument, "unknown quantization type '" + std::string(name) + "' (one of: " +
                                       quantize_scheme_names() + ")");
}

std::string quantize_scheme_names() {
    std::string s = "Q4_K_M Q5_K_M";
    for (DType t : kPlain) s += std::string(" ") + dtype_name(t);
    return s;
}

DType quantize_type_for(const QuantizeScheme& s, std::string_view name, int layer, int n_layer, bool has_output) {
    if (!s.mixture) return s.base;
    const bool output = name == "output.weight" || (!has_output && name == "token_embd.weight");
    if (output) return DType::Q6_K;
    if (ends_with(name, "attn_qkv.weight")) return s.base == DType::Q4_K ? DType::Q5_K : DType::Q6_K;
    if ((ends_with(name, "attn_v.weight") || ends_with(name, "ffn_down.weight")) && layer >= 0 && n_layer > 0 &&
        more_bits(layer, n_layer))
        return DType::Q6_K;
    return s.base;
}

QuantizeResult quantize_model(const std::string& in, const std::string& out, const QuantizeScheme& scheme,
                              const QuantizeParams& params) {
    if (in == out) fail(Status::invalid_argument, "quantize: the output must be a different file from the input");
    const MappedFile map = MappedFile::open(in);
    const gguf::GgufFile f = gguf::GgufFile::parse(map.data(), map.size(), in);

    // Every tensor's source type is checked before any work is done.
    int n_layer = 0;
    bool has_output = false;
    for (const gguf::TensorInfo& t : f.tensors()) {
        const TypeInfo* ti = type_info(t.type);
        const std::string name(t.name);
        if (!ti || !ti->supported)
            fail(Status::unsupported, in + ": tensor '" + name + "' has type " + (ti ? ti->name : "?") +
                                          ", which cannot be read");
        const DType src = DType(t.type);
        const bool matrix = t.n_dims >= 2;
        if (matrix && src != DType::F32 && src != DType::F16 && src != DType::BF16 && src != DType::Q8_0)
            fail(Status::unsupported, in + ": tensor '" + name + "' is already " + ti->name +
                                          "; quantize from a model in F32, F16, BF16 or Q8_0");
        n_layer = std::max(n_layer, layer_of(t.name) + 1);
        has_output = has_output || t.name == "output.weight";
    }

    gguf::GgufWriter w;
    for (const auto& [key, value] : f.metadata()) {
        if (key == "general.alignment") {
            w.set_alignment(f.alignment());
            continue;
        }
        std::vector<uint8_t> bytes;
        encode_value(value, bytes);
        w.set_raw(std::string(key), value.type, std::move(bytes));
    }
    w.set_u32("general.quantization_version", 2);
    w.set_u32("general.file_type", scheme.file_type);

    int n = params.n_threads;
    if (n <= 0) n = int(std::min(8u, std::max(1u, std::thread::hardware_concurrency())));
    ThreadPool pool(std::min(n, 256));
    QuantizeResult res;
    std::vector<uint8_t> enc;
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        const gguf::TensorInfo& t = f.tensors()[i];
        const TensorView v = f.view(t);
        const std::string name(t.name);
        const int64_t ne0 = v.ne[0], rows = v.elements() / ne0;
        DType dst = t.n_dims >= 2 ? quantize_type_for(scheme, t.name, layer_of(t.name), n_layer, has_output)
                                  : DType::F32;
        if (ne0 % type_info(dst).block_size != 0) {
            dst = fallback_for(dst);
            if (ne0 % type_info(dst).block_size != 0) dst = DType::F16;
            ++res.n_fallback;
        }
        if (params.on_tensor) params.on_tensor(i, f.tensors().size(), name, v.type, dst);
        std::vector<int64_t> ne(v.ne.begin(), v.ne.begin() + v.n_dims);
        if (dst == v.type) {
            w.add_tensor(name, dst, ne, v.data, v.nbytes);
        } else {
            const size_t src_row = row_bytes(v.type, ne0), dst_row = row_bytes(dst, ne0);
            enc.assign(dst_row * size_t(rows), 0);
            // Chunks of rows, several per thread so uneven rows balance.
            const int64_t chunk = std::max<int64_t>(1, rows / (int64_t(pool.size()) * 8));
            const int64_t n_chunks = (rows + chunk - 1) / chunk;
            pool.parallel_for(n_chunks, [&](int64_t c, int) {
                thread_local std::vector<float> buf;
                buf.resize(size_t(ne0));
                for (int64_t r = c * chunk; r < std::min(rows, (c + 1) * chunk); ++r) {
                    kernels::dequantize_ref(v.type, v.data + size_t(r) * src_row, buf.data(), ne0);
                    kernels::quantize_ref(dst, buf.data(), enc.data() + size_t(r) * dst_row, ne0);
                }
            });
            w.add_tensor(name, dst, ne, enc.data(), enc.size());
        }
        res.bytes_in += v.nbytes;
        res.bytes_out += row_bytes(dst, ne0) * size_t(rows);
        ++res.n_tensors;
    }
    w.write(out);
    return res;
}

}  // namespace ember
