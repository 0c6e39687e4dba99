// GGUF parsing with validation of every field against the byte span.
#include "ember/gguf.hpp"

#include <cinttypes>
#include <cstdarg>
#include <cstdio>

namespace ember::gguf {

namespace {

constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxDim = uint64_t(1) << 40;  // no real tensor has a dimension near this

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

// A bounds-checked little-endian cursor over the span.
class Cursor {
public:
    Cursor(const uint8_t* p, size_t n, std::string_view what) : p_(p), n_(n), what_(what) {}

    size_t pos() const { return off_; }
    size_t remaining() const { return n_ - off_; }

    void need(uint64_t k, const char* item) const {
        if (k > remaining())
            fail(Status::bad_format,
                 fmt("%.*s: truncated GGUF: %s needs %" PRIu64 " bytes at offset %zu but only %zu remain",
                     int(what_.size()), what_.data(), item, k, off_, remaining()));
    }
    template <class T>
    T read(const char* item) {
        need(sizeof(T), item);
        T v;
        std::memcpy(&v, p_ + off_, sizeof(T));
        off_ += sizeof(T);
        return v;
    }
    std::string_view read_string(const char* item) {
        const uint64_t len = read<uint64_t>(item);
        need(len, item);
        std::string_view s(reinterpret_cast<const char*>(p_ + off_), size_t(len));
        off_ += size_t(len);
        return s;
    }
    const uint8_t* skip(uint64_t k, const char* item) {
        need(k, item);
        const uint8_t* at = p_ + off_;
        off_ += size_t(k);
        return at;
    }

private:
    const uint8_t* p_;
    size_t n_;
    size_t off_ = 0;
    std::string_view what_;
};

size_t scalar_size(ValueType t) {
    switch (t) {
        case ValueType::u8: case ValueType::i8: case ValueType::boolean: return 1;
        case ValueType::u16: case ValueType::i16: return 2;
        case ValueType::u32: case ValueType::i32: case ValueType::f32: return 4;
        case ValueType::u64: case ValueType::i64: case ValueType::f64: return 8;
        default: return 0;
    }
}

bool valid_type(uint32_t t) { return t <= uint32_t(ValueType::f64); }

void read_scalar(const uint8_t* p, ValueType t, Value& v) {
    v.type = t;
    auto get = [&](auto x) { std::memcpy(&x, p, sizeof x); return x; };
    switch (t) {
        case ValueType::u8: v.u = get(uint8_t{}); break;
        case ValueType::u16: v.u = get(uint16_t{}); break;
        case ValueType::u32: v.u = get(uint32_t{}); break;
        case ValueType::u64: v.u = get(uint64_t{}); break;
        case ValueType::boolean: v.u = get(uint8_t{}) != 0; break;
        case ValueType::i8: v.i = get(int8_t{}); break;
        case ValueType::i16: v.i = get(int16_t{}); break;
        case ValueType::i32: v.i = get(int32_t{}); break;
        case ValueType::i64: v.i = get(int64_t{}); break;
        case ValueType::f32: v.f = get(float{}); break;
        case ValueType::f64: v.f = get(double{}); break;
        default: break;
    }
    switch (t) {
        case ValueType::u8: case ValueType::u16: case ValueType::u32: case ValueType::u64:
        case ValueType::boolean:
            v.i = v.u <= uint64_t(INT64_MAX) ? int64_t(v.u) : INT64_MAX;
            v.f = double(v.u);
            break;
        case ValueType::i8: case ValueType::i16: case ValueType::i32: case ValueType::i64:
            v.u = v.i >= 0 ? uint64_t(v.i) : 0;
            v.f = double(v.i);
            break;
        default: break;
    }
}

Value read_value(Cursor& c, ValueType t, int depth, std::string_view key) {
    Value v;
    v.type = t;
    if (t == ValueType::string) {
        v.str = c.read_string("metadata string");
        return v;
    }
    if (t != ValueType::array) {
        read_scalar(c.skip(scalar_size(t), "metadata value"), t, v);
        return v;
    }
    if (depth >= kMaxArrayDepth)
        fail(Status::bad_format, fmt("metadata '%.*s': arrays nested deeper than %d", int(key.size()), key.data(),
                                     kMaxArrayDepth));
    const uint32_t et = c.read<uint32_t>("array element type");
    if (!valid_type(et))
        fail(Status::bad_format, fmt("metadata '%.*s': unknown array element type %u", int(key.size()), key.data(), et));
    v.elem_type = ValueType(et);
    v.count = c.read<uint64_t>("array length");
    // Every element takes at least one byte (strings and arrays at least 8), so a
    // count larger than what remains is corrupt: refuse it before allocating.
    const uint64_t min_elem = scalar_size(v.elem_type) ? scalar_size(v.elem_type) : 8;
    if (v.count > c.remaining() / min_elem)
        fail(Status::bad_format, fmt("metadata '%.*s': array of %" PRIu64 " elements does not fit in the file",
                                     int(key.size()), key.data(), v.count));
    if (v.elem_type == ValueType::string) {
        v.strings.reserve(size_t(v.count));
        for (uint64_t k = 0; k < v.count; ++k) v.strings.push_back(c.read_string("array string"));
    } else if (v.elem_type == ValueType::array) {
        v.items.reserve(size_t(v.count));
        for (uint64_t k = 0; k < v.count; ++k) v.items.push_back(read_value(c, ValueType::array, depth + 1, key));
    } else {
        v.elems = c.skip(v.count * scalar_size(v.elem_type), "array data");
    }
    return v;
}

std::string key_str(std::string_view k) { return std::string(k); }

}  // namespace

const char* value_type_name(ValueType t) {
    static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return uint32_t(t) <= 12 ? names[uint32_t(t)] : "?";
}

bool Value::is_integer() const {
    switch (type) {
        case ValueType::u8: case ValueType::i8: case ValueType::u16: case ValueType::i16:
        case ValueType::u32: case ValueType::i32: case ValueType::u64: case ValueType::i64:
            return true;
        default: return false;
    }
}

double Value::elem_f64(uint64_t k) const {
    Value tmp;
    read_scalar(elems + k * scalar_size(elem_type), elem_type, tmp);
    return tmp.f;
}
int64_t Value::elem_i64(uint64_t k) const {
    Value tmp;
    read_scalar(elems + k * scalar_size(elem_type), elem_type, tmp);
    return (elem_type == ValueType::f32 || elem_type == ValueType::f64) ? int64_t(tmp.f) : tmp.i;
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, std::string_view what) {
    GgufFile g;
    g.data_ = data;
    g.size_ = size;
    Cursor c(data, size, what);
    const std::string w(what);

    if (size < 4) fail(Status::bad_format, w + ": not a GGUF file (shorter than the 4-byte magic)");
    const uint32_t magic = c.read<uint32_t>("magic");
    if (magic != kMagic) fail(Status::bad_format, w + ": not a GGUF file (bad magic)");
    g.version_ = c.read<uint32_t>("version");
    if (g.version_ == 1) fail(Status::unsupported, w + ": GGUF version 1 is not supported (re-convert the model)");
    if (g.version_ != 2 && g.version_ != 3)
        fail(Status::bad_format, fmt("%s: unknown GGUF version %u", w.c_str(), g.version_));
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    // A key/value pair takes at least 8+4+1 bytes, a tensor info at least 8+4+8+4+8.
    if (n_kv > c.remaining() / 13)
        fail(Status::bad_format, fmt("%s: metadata count %" PRIu64 " cannot fit in a file of %zu bytes (truncated or corrupt)", w.c_str(), n_kv, size));
    if (n_tensors > c.remaining() / 32)
        fail(Status::bad_format, fmt("%s: tensor count %" PRIu64 " cannot fit in a file of %zu bytes (truncated or corrupt)", w.c_str(), n_tensors, size));

    g.kv_.reserve(size_t(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
        const std::string_view key = c.read_string("metadata key");
        const uint32_t t = c.read<uint32_t>("metadata type");
        if (!valid_type(t))
            fail(Status::bad_format, fmt("%s: metadata '%s' has unknown type %u", w.c_str(), key_str(key).c_str(), t));
        Value v = read_value(c, ValueType(t), 0, key);
        if (!g.kv_index_.emplace(key, g.kv_.size()).second)
            fail(Status::bad_format, fmt("%s: duplicate metadata key '%s'", w.c_str(), key_str(key).c_str()));
        g.kv_.emplace_back(key, std::move(v));
    }

    if (const Value* a = g.find("general.alignment")) {
        if (!a->is_integer() || a->u == 0 || a->u > 65536 || (a->u & (a->u - 1)) != 0)
            fail(Status::bad_format, w + ": general.alignment must be a power of two no larger than 65536");
        g.alignment_ = uint32_t(a->u);
    }

    g.tensors_.reserve(size_t(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        TensorInfo t;
        t.name = c.read_string("tensor name");
        const std::string name = key_str(t.name);
        t.n_dims = c.read<uint32_t>("tensor dimension count");
        if (t.n_dims == 0 || t.n_dims > 4)
            fail(Status::bad_format, fmt("%s: tensor '%s' has %u dimensions (1 to 4 allowed)", w.c_str(), name.c_str(), t.n_dims));
        uint64_t elements = 1;
        for (uint32_t d = 0; d < t.n_dims; ++d) {
            const uint64_t ne = c.read<uint64_t>("tensor dimension");
            if (ne == 0 || ne > kMaxDim)
                fail(Status::bad_format, fmt("%s: tensor '%s' has an absurd dimension %" PRIu64, w.c_str(), name.c_str(), ne));
            if (mul_overflows(elements, ne, &elements))
                fail(Status::bad_format, fmt("%s: tensor '%s' element count overflows", w.c_str(), name.c_str()));
            t.ne[d] = int64_t(ne);
        }
        t.type = c.read<uint32_t>("tensor type");
        const TypeInfo* ti = type_info(t.type);
        if (!ti) fail(Status::bad_format, fmt("%s: tensor '%s' has unknown type id %u", w.c_str(), name.c_str(), t.type));
        if (uint64_t(t.ne[0]) % ti->block_size != 0)
            fail(Status::bad_format, fmt("%s: tensor '%s' row length %" PRId64 " is not a multiple of the %s block size %u",
                                         w.c_str(), name.c_str(), t.ne[0], ti->name, ti->block_size));
        if (mul_overflows(elements / ti->block_size, ti->type_size, &t.nbytes))
            fail(Status::bad_format, fmt("%s: tensor '%s' byte size overflows", w.c_str(), name.c_str()));
        t.offset = c.read<uint64_t>("tensor offset");
        if (!g.tensor_index_.emplace(t.name, g.tensors_.size()).second)
            fail(Status::bad_format, fmt("%s: duplicate tensor name '%s'", w.c_str(), name.c_str()));
        g.tensors_.push_back(t);
    }

    g.data_offset_ = align_up(c.pos(), g.alignment_);
    for (const TensorInfo& t : g.tensors_) {
        const std::string name = key_str(t.name);
        if (t.offset % g.alignment_ != 0)
            fail(Status::bad_format, fmt("%s: tensor '%s' offset %" PRIu64 " is not aligned to %u", w.c_str(), name.c_str(),
                                         t.offset, g.alignment_));
        uint64_t begin, end;
        if (add_overflows(g.data_offset_, t.offset, &begin) || add_overflows(begin, t.nbytes, &end) || end > size)
            fail(Status::bad_format, fmt("%s: tensor '%s' data (%" PRIu64 " bytes at offset %" PRIu64
                                         ") lies past the end of the file (%zu bytes); the file is truncated or corrupt",
                                         w.c_str(), name.c_str(), t.nbytes, t.offset, size));
    }
    return g;
}

const Value* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

TensorView GgufFile::view(const TensorInfo& t) const {
    TensorView v;
    v.name = t.name;
    v.type = DType(t.type);
    v.n_dims = int(t.n_dims);
    v.ne = t.ne;
    v.data = data_ + data_offset_ + t.offset;
    v.nbytes = size_t(t.nbytes);
    return v;
}

namespace {
[[noreturn]] void wrong_kind(std::string_view key, const char* want, const Value& v) {
    fail(Status::bad_format, "metadata '" + std::string(key) + "' should be " + want + " but is " + value_type_name(v.type));
}
[[noreturn]] void missing(std::string_view key) {
    fail(Status::bad_format, "required metadata '" + std::string(key) + "' is missing");
}
}  // namespace

std::string_view GgufFile::get_string(std::string_view key) const {
    const Value* v = find(key);
    if (!v) missing(key);
    if (v->type != ValueType::string) wrong_kind(key, "a string", *v);
    return v->str;
}
std::string_view GgufFile::get_string(std::string_view key, std::string_view fallback) const {
    return has(key) ? get_string(key) : fallback;
}
int64_t GgufFile::get_int(std::string_view key) const {
    const Value* v = find(key);
    if (!v) missing(key);
    if (!v->is_integer()) wrong_kind(key, "an integer", *v);
    return v->i;
}
int64_t GgufFile::get_int(std::string_view key, int64_t fallback) const {
    return has(key) ? get_int(key) : fallback;
}
double GgufFile::get_float(std::string_view key) const {
    const Value* v = find(key);
    if (!v) missing(key);
    if (!v->is_number()) wrong_kind(key, "a number", *v);
    return v->f;
}
double GgufFile::get_float(std::string_view key, double fallback) const {
    return has(key) ? get_float(key) : fallback;
}
bool GgufFile::get_bool(std::string_view key, bool fallback) const {
    const Value* v = find(key);
    if (!v) return fallback;
    if (v->type != ValueType::boolean && !v->is_integer()) wrong_kind(key, "a bool", *v);
    return v->u != 0;
}
const Value* GgufFile::get_array(std::string_view key, ValueType elem) const {
    const Value* v = find(key);
    if (!v) return nullptr;
    if (v->type != ValueType::array) wrong_kind(key, "an array", *v);
    if (v->elem_type != elem)
        fail(Status::bad_format, "metadata '" + std::string(key) + "' should be an array of " + value_type_name(elem) +
                                     " but holds " + value_type_name(v->elem_type));
    return v;
}

}  // namespace ember::gguf
