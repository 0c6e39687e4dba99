// ember/mapped_file.hpp — a read-only view of a model file's bytes.
//
// Normally a private read-only mmap of the file (weights are used in place and
// the page cache is shared between processes); a host may instead hand over a
// buffer it owns (bytes from its own asset system). Move-only; unmaps on
// destruction. Thread-safe to read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ember {

class MappedFile {
public:
    MappedFile() = default;
    // Maps `path`; throws ember::Error(io_error) naming the file and the OS reason.
    static MappedFile open(const std::string& path);
    // Takes ownership of bytes already in memory.
    static MappedFile from_bytes(std::vector<uint8_t> bytes);

    MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }
    MappedFile& operator=(MappedFile&& o) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();

    const uint8_t* data() const { return data_; }
    // Drops the pages of [p, p + n) from this process's resident memory (a
    // repacked copy replaced them); they are read back from the file if touched.
    void release(const uint8_t* p, size_t n) const;
    size_t size() const { return size_; }
    bool is_mapped() const { return mapped_; }
    // Copies [p, p + n) of the file into dst with pread (no page faults on the
    // mapping); false if that is not possible (not a mapped file, a read
    // error), and the caller copies from data() instead. Thread-safe.
    bool read_into(const uint8_t* p, size_t n, uint8_t* dst) const;

private:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    bool mapped_ = false;
    int fd_ = -1;  // kept open while mapped, for read_into
    std::vector<uint8_t> owned_;
};

}  // namespace ember
