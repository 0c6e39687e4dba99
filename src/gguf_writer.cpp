#include "ember/gguf_writer.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ember/kernels/quant_ref.hpp"

namespace ember::gguf {

namespace {
template <class T>
void append(std::vector<uint8_t>& b, T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
}
void append_str(std::vector<uint8_t>& b, const std::string& s) {
    append<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
}
}  // namespace

void GgufWriter::put(const std::string& key, ValueType t, std::vector<uint8_t> b) {
    for (Kv& kv : kv_)
        if (kv.key == key) { kv.type = t; kv.bytes = std::move(b); return; }
    kv_.push_back({key, t, std::move(b)});
}

void GgufWriter::set_u32(const std::string& k, uint32_t v) { std::vector<uint8_t> b; append(b, v); put(k, ValueType::u32, b); }
void GgufWriter::set_i32(const std::string& k, int32_t v) { std::vector<uint8_t> b; append(b, v); put(k, ValueType::i32, b); }
void GgufWriter::set_u64(const std::string& k, uint64_t v) { std::vector<uint8_t> b; append(b, v); put(k, ValueType::u64, b); }
void GgufWriter::set_f32(const std::string& k, float v) { std::vector<uint8_t> b; append(b, v); put(k, ValueType::f32, b); }
void GgufWriter::set_bool(const std::string& k, bool v) { std::vector<uint8_t> b; append<uint8_t>(b, v); put(k, ValueType::boolean, b); }
void GgufWriter::set_string(const std::string& k, const std::string& v) { std::vector<uint8_t> b; append_str(b, v); put(k, ValueType::string, b); }

void GgufWriter::set_strings(const std::string& k, const std::vector<std::string>& v) {
    std::vector<uint8_t> b;
    append<uint32_t>(b, uint32_t(ValueType::string));
    append<uint64_t>(b, v.size());
    for (const auto& s : v) append_str(b, s);
    put(k, ValueType::array, b);
}
void GgufWriter::set_f32s(const std::string& k, const std::vector<float>& v) {
    std::vector<uint8_t> b;
    append<uint32_t>(b, uint32_t(ValueType::f32));
    append<uint64_t>(b, v.size());
    for (float x : v) append(b, x);
    put(k, ValueType::array, b);
}
void GgufWriter::set_i32s(const std::string& k, const std::vector<int32_t>& v) {
    std::vector<uint8_t> b;
    append<uint32_t>(b, uint32_t(ValueType::i32));
    append<uint64_t>(b, v.size());
    for (int32_t x : v) append(b, x);
    put(k, ValueType::array, b);
}
void GgufWriter::set_raw(const std::string& k, ValueType t, std::vector<uint8_t> encoded) { put(k, t, std::move(encoded)); }

void GgufWriter::set_alignment(uint32_t a) {
    alignment_ = a;
    set_u32("general.alignment", a);
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, const void* data,
                            size_t nbytes) {
    if (ne.empty() || ne.size() > 4) fail(Status::invalid_argument, "add_tensor: 1 to 4 dimensions");
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    const TypeInfo& ti = type_info(type);
    if (ne[0] % ti.block_size != 0 || size_t(n / ti.block_size) * ti.type_size != nbytes)
        fail(Status::invalid_argument, "add_tensor: '" + name + "' byte size does not match its shape and type");
    const auto* p = static_cast<const uint8_t*>(data);
    tensors_.push_back({name, type, ne, std::vector<uint8_t>(p, p + nbytes)});
}

void GgufWriter::add_tensor_f32(const std::string& name, DType type, const std::vector<int64_t>& ne, const float* values) {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    std::vector<uint8_t> enc(kernels::encoded_bytes(type, n));
    kernels::quantize_ref(type, values, enc.data(), n);
    add_tensor(name, type, ne, enc.data(), enc.size());
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
    std::vector<uint8_t> b;
    append<uint32_t>(b, kMagic);
    append<uint32_t>(b, version_);
    append<uint64_t>(b, tensors_.size());
    append<uint64_t>(b, kv_.size());
    for (const Kv& kv : kv_) {
        append_str(b, kv.key);
        append<uint32_t>(b, uint32_t(kv.type));
        b.insert(b.end(), kv.bytes.begin(), kv.bytes.end());
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
        append_str(b, t.name);
        append<uint32_t>(b, uint32_t(t.ne.size()));
        for (int64_t d : t.ne) append<uint64_t>(b, uint64_t(d));
        append<uint32_t>(b, uint32_t(t.type));
        append<uint64_t>(b, offset);
        offset = align_up(offset + t.data.size(), alignment_);
    }
    b.resize(align_up(b.size(), alignment_), 0);
    for (const Tensor& t : tensors_) {
        b.insert(b.end(), t.data.begin(), t.data.end());
        b.resize(align_up(b.size(), alignment_), 0);
    }
    return b;
}

void GgufWriter::write(const std::string& path) const {
    const std::vector<uint8_t> b = to_bytes();
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail(Status::io_error, "cannot create '" + tmp + "': " + std::strerror(errno));
    const bool ok = std::fwrite(b.data(), 1, b.size(), f) == b.size();
    if (std::fclose(f) != 0 || !ok) {
        std::remove(tmp.c_str());
        fail(Status::io_error, "cannot write '" + path + "'");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        fail(Status::io_error, "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
    }
}

}  // namespace ember::gguf
