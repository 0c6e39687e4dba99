// ember/gguf.hpp — GGUF (v2, v3) reader over a byte span.
//
// GgufFile::parse() walks the header, the metadata and the tensor infos of a
// file that is already in memory (normally a read-only mapping) and validates
// every count, length, offset and dimension against the span before anything
// uses it, with overflow checks: a hostile file gives an ember::Error with
// Status::bad_format (or unsupported) and a message naming the problem, never
// an out-of-bounds read. Nothing is copied: strings and tensor data are views
// into the span, which must outlive the GgufFile.
//
// Thread-safety: a parsed GgufFile is immutable and may be read from any thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common.hpp"
#include "ember/tensor.hpp"

namespace ember::gguf {

constexpr uint32_t kMagic = 0x46554747u;  // "GGUF" little-endian
constexpr uint32_t kDefaultAlignment = 32;

enum class ValueType : uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
    string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

const char* value_type_name(ValueType t);

// One metadata value. Scalars are widened into the three numeric fields;
// arrays keep their element type and either a pointer to packed numeric
// elements, a list of string views, or (nested arrays) a list of Values.
struct Value {
    ValueType type = ValueType::u8;
    uint64_t u = 0;      // unsigned integers and bool
    int64_t i = 0;       // signed integers (also set for unsigned that fit)
    double f = 0;        // floats (also set for integers)
    std::string_view str;
    // arrays
    ValueType elem_type = ValueType::u8;
    uint64_t count = 0;
    const uint8_t* elems = nullptr;           // packed numeric elements (little-endian)
    std::vector<std::string_view> strings;    // elem_type == string
    std::vector<Value> items;                 // elem_type == array

    bool is_integer() const;
    bool is_number() const { return is_integer() || type == ValueType::f32 || type == ValueType::f64; }
    // Numeric element k of a numeric array, widened.
    double elem_f64(uint64_t k) const;
    int64_t elem_i64(uint64_t k) const;
};

struct TensorInfo {
    std::string_view name;
    uint32_t type = 0;
    uint32_t n_dims = 0;
    std::array<int64_t, 4> ne{1, 1, 1, 1};
    uint64_t offset = 0;   // relative to the data section
    uint64_t nbytes = 0;
};

class GgufFile {
public:
    // Parses and validates; throws ember::Error. `what` names the source in messages.
    static GgufFile parse(const uint8_t* data, size_t size, std::string_view what = "file");

    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }
    size_t size() const { return size_; }
    const uint8_t* bytes() const { return data_; }

    const std::vector<std::pair<std::string_view, Value>>& metadata() const { return kv_; }
    const Value* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }

    // Typed getters. The required forms throw bad_format naming the key when it
    // is missing or of the wrong kind; the optional forms return the fallback
    // when missing and throw when present with the wrong kind.
    std::string_view get_string(std::string_view key) const;
    std::string_view get_string(std::string_view key, std::string_view fallback) const;
    int64_t get_int(std::string_view key) const;
    int64_t get_int(std::string_view key, int64_t fallback) const;
    double get_float(std::string_view key) const;
    double get_float(std::string_view key, double fallback) const;
    bool get_bool(std::string_view key, bool fallback) const;
    const Value* get_array(std::string_view key, ValueType elem) const;  // nullptr if missing

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;
    // A view of the tensor's bytes (already validated to lie inside the span).
    TensorView view(const TensorInfo& t) const;

private:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = kDefaultAlignment;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string_view, Value>> kv_;
    std::map<std::string_view, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string_view, size_t> tensor_index_;
};

}  // namespace ember::gguf
