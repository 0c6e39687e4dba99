// ember/gguf_writer.hpp — builds GGUF v3 files: the llama2.c converter, the
// model tooling and the tests all write models through this one writer.
//
// Keys and tensors are written in insertion order; tensor data is aligned to
// general.alignment (32 unless set). Not thread-safe; one writer per file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/gguf.hpp"
#include "ember/tensor.hpp"

namespace ember::gguf {

class GgufWriter {
public:
    void set_u32(const std::string& key, uint32_t v);
    void set_i32(const std::string& key, int32_t v);
    void set_u64(const std::string& key, uint64_t v);
    void set_f32(const std::string& key, float v);
    void set_bool(const std::string& key, bool v);
    void set_string(const std::string& key, const std::string& v);
    void set_strings(const std::string& key, const std::vector<std::string>& v);
    void set_f32s(const std::string& key, const std::vector<float>& v);
    void set_i32s(const std::string& key, const std::vector<int32_t>& v);
    // A metadata entry from raw, already-encoded value bytes (tests use it to
    // write nested arrays and hostile values).
    void set_raw(const std::string& key, ValueType type, std::vector<uint8_t> encoded);

    // Tensor of `type` with GGUF dims ne (ne[0] = row length); `data` holds
    // exactly the encoded bytes, which are copied.
    void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, const void* data, size_t nbytes);
    // Tensor from float32 values, encoded to `type` with the reference quantizers.
    void add_tensor_f32(const std::string& name, DType type, const std::vector<int64_t>& ne, const float* values);

    void set_alignment(uint32_t a);
    void set_version(uint32_t v) { version_ = v; }

    std::vector<uint8_t> to_bytes() const;
    // Writes atomically enough for our tools (a temp file then rename); throws io_error.
    void write(const std::string& path) const;

private:
    struct Kv { std::string key; ValueType type; std::vector<uint8_t> bytes; };
    struct Tensor { std::string name; DType type; std::vector<int64_t> ne; std::vector<uint8_t> data; };
    void put(const std::string& key, ValueType t, std::vector<uint8_t> b);
    std::vector<Kv> kv_;
    std::vector<Tensor> tensors_;
    uint32_t alignment_ = kDefaultAlignment;
    uint32_t version_ = 3;
};

}  // namespace ember::gguf
