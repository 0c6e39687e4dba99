#include "ember/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ember/common.hpp"

namespace ember {

MappedFile MappedFile::open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(Status::io_error, "cannot open '" + path + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        fail(Status::io_error, "cannot stat '" + path + "': " + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(Status::io_error, "'" + path + "' is not a regular file");
    }
    MappedFile m;
    m.size_ = size_t(st.st_size);
    if (m.size_ == 0) {
        ::close(fd);
        static const uint8_t empty = 0;
        m.data_ = &empty;  // an empty file parses as "too short", not as a mapping error
        return m;
    }
    void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int e = errno;
    if (p == MAP_FAILED) {
        ::close(fd);
        fail(Status::io_error, "cannot map '" + path + "': " + std::strerror(e));
    }
    m.data_ = static_cast<const uint8_t*>(p);
    m.mapped_ = true;
    m.fd_ = fd;
    return m;
}

MappedFile MappedFile::from_bytes(std::vector<uint8_t> bytes) {
    MappedFile m;
    m.owned_ = std::move(bytes);
    m.data_ = m.owned_.data();
    m.size_ = m.owned_.size();
    return m;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
    if (this != &o) {
        if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
        const bool owned = !o.mapped_ && !o.owned_.empty();
        owned_ = std::move(o.owned_);
        data_ = owned ? owned_.data() : o.data_;
        size_ = o.size_;
        mapped_ = o.mapped_;
        if (fd_ >= 0) ::close(fd_);
        fd_ = o.fd_;
        o.data_ = nullptr;
        o.size_ = 0;
        o.mapped_ = false;
        o.fd_ = -1;
    }
    return *this;
}

void MappedFile::release(const uint8_t* p, size_t n) const {
    if (!mapped_) return;
    // whole pages strictly inside [p, p + n)
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t a = (uintptr_t(p) + page - 1) / page * page, b = (uintptr_t(p) + n) / page * page;
    if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
}

bool MappedFile::read_into(const uint8_t* p, size_t n, uint8_t* dst) const {
    if (!mapped_ || fd_ < 0 || p < data_ || n > size_ || size_t(p - data_) > size_ - n) return false;
    size_t done = 0;
    while (done < n) {
        const ssize_t r = ::pread(fd_, dst + done, n - done, off_t(size_t(p - data_) + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        done += size_t(r);
    }
    return true;
}

MappedFile::~MappedFile() {
    if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace ember
