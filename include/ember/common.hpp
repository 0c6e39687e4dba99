// ember/common.hpp — error type, status codes and small helpers shared by every layer.
//
// Inside the core, failure is an ember::Error (a std::runtime_error carrying a
// Status). The C ABI (capi/) is the only place that catches it and turns it into
// an ember_status code plus a thread-local message; nothing else swallows it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace ember {

// Mirrors ember_status in capi/ember.h (same values; static_assert'ed there).
enum class Status : int {
    ok = 0,
    invalid_argument = 1,   // a caller passed something out of range or null
    io_error = 2,           // a file could not be opened, read or mapped
    bad_format = 3,         // the file is not a valid GGUF / checkpoint, or is corrupt
    unsupported = 4,        // valid file, but an architecture/type/feature we do not run
    out_of_memory = 5,      // an allocation of a size we computed failed
    context_full = 6,       // the session's KV cache has no room for the request
    cancelled = 7,          // a callback asked to stop
    internal = 8,           // a bug: an internal invariant did not hold
};

class Error : public std::runtime_error {
public:
    Error(Status s, const std::string& what) : std::runtime_error(what), status_(s) {}
    Status status() const noexcept { return status_; }

private:
    Status status_;
};

// Throws Error(s, what). Defined out of line (src/common.cpp) so that the
// per-ISA kernel objects, which may reach it, define no weak copy of it or of
// Error (see tests/isa_symbols.cmake).
[[noreturn]] void fail(Status s, const std::string& what);
[[noreturn]] void fail(Status s, const char* what);  // (no std::string built at the call)

// Overflow-checked arithmetic for sizes computed from untrusted file contents.
inline bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
    return __builtin_mul_overflow(a, b, out);
}
inline bool add_overflows(uint64_t a, uint64_t b, uint64_t* out) {
    return __builtin_add_overflow(a, b, out);
}
inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace ember
