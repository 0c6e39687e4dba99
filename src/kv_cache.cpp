#include "ember/kv_cache.hpp"

#include "ember/kernels/quant_ref.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace ember {

KvPool::KvPool(int n_layer, int n_head, int head_dim, int page_size, int pages_per_slab, int max_pages, DType type)
    : n_layer_(n_layer), n_head_(n_head), head_dim_(head_dim), page_size_(page_size),
      per_slab_(std::max(1, pages_per_slab)), max_pages_(max_pages), type_(type) {
    if (n_layer <= 0 || n_head <= 0 || head_dim <= 0 || page_size <= 0) fail(Status::internal, "KvPool: bad geometry");
    if (type != DType::F32 && type != DType::F16)
        fail(Status::invalid_argument, std::string("KV cache type ") + dtype_name(type) + " is not supported (f32, f16)");
}

void KvPool::SlabFree::operator()(uint8_t* p) const {
    if (p) ::munmap(p, n);
}

void KvPool::grow() {
    int n = per_slab_;
    if (max_pages_ > 0) n = std::min(n, max_pages_ - pages_total());
    if (n <= 0) fail(Status::context_full, "KV memory full: all " + std::to_string(pages_total()) + " pages (" +
                                               std::to_string(bytes_reserved() >> 20) + " MiB) are in use");
    const size_t bytes = size_t(per_slab_) * page_bytes();
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // zeroed
    if (mem == MAP_FAILED)
        fail(Status::out_of_memory, "out of memory growing the KV pool to " + std::to_string((bytes_reserved() + bytes) >> 20) + " MiB");
    ::madvise(mem, bytes, MADV_HUGEPAGE);
    // Touched now, as it was zeroed before, not by the first write into each
    // page: a fault that zeroes a 2 MiB page would land inside a scheduler
    // step (left to fault in, 4 NPC sessions with a 4 ms budget showed steps
    // of 8 ms, though this host's noise alone gave some of 15).
    std::memset(mem, 0, bytes);
    std::unique_ptr<uint8_t, SlabFree> slab(static_cast<uint8_t*>(mem), SlabFree{bytes});
    slabs_.push_back(std::move(slab));
    const int first = int(refs_.size());
    refs_.resize(size_t(first + per_slab_), 0);
    usable_ += n;
    // Pages past the cap exist in the slab but are never handed out.
    for (int p = first + n - 1; p >= first; --p) free_.push_back(p);
    for (int p = first + n; p < first + per_slab_; ++p) refs_[size_t(p)] = -1;
}

void KvPool::reserve_free(int n) {
    while (int(free_.size()) < n) grow();
}

int KvPool::acquire() {
    if (free_.empty()) grow();
    const int p = free_.back();
    free_.pop_back();
    refs_[size_t(p)] = 1;
    return p;
}

void KvPool::release(int page) {
    if (--refs_[size_t(page)] == 0) free_.push_back(page);
}

KvCache& KvCache::operator=(KvCache&& o) noexcept {
    if (this != &o) {
        if (pool_) clear();
        pool_ = std::move(o.pool_);
        n_ctx_ = o.n_ctx_;
        pages_ = std::move(o.pages_);
        o.pages_.clear();
        o.n_ctx_ = 0;
    }
    return *this;
}

void KvCache::prepare(int from, int to) {
    if (to <= from) return;
    if (to > n_ctx_)
        fail(Status::context_full, "context full: position " + std::to_string(to - 1) + " is past n_ctx " +
                                       std::to_string(n_ctx_));
    const int P = pool_->page_size();
    const int first = from / P, last = (to - 1) / P;
    // Count what is needed and reserve it first, so a failure changes nothing.
    int need = 0;
    for (int i = first; i <= last; ++i)
        if (i >= int(pages_.size()) || pool_->refs(pages_[size_t(i)]) > 1) ++need;
    pool_->reserve_free(need);
    for (int i = first; i <= last; ++i) {
        if (i >= int(pages_.size())) {
            while (int(pages_.size()) < i) pages_.push_back(pool_->acquire());  // gaps (not expected)
            pages_.push_back(pool_->acquire());
        } else if (pool_->refs(pages_[size_t(i)]) > 1) {
            // copy-on-write: this cache gets its own copy of the shared page
            const int old = pages_[size_t(i)], fresh = pool_->acquire();
            for (int l = 0; l < pool_->n_layer(); ++l) {
                std::memcpy(pool_->k(fresh, l), pool_->k(old, l), size_t(P) * pool_->row_bytes());
                std::memcpy(pool_->v(fresh, l), pool_->v(old, l), size_t(P) * pool_->row_bytes());
            }
            pool_->release(old);
            pages_[size_t(i)] = fresh;
        }
    }
}

void KvCache::truncate(int n) {
    if (!pool_) return;
    const int P = pool_->page_size();
    const size_t keep = size_t((std::max(n, 0) + P - 1) / P);
    while (pages_.size() > keep) {
        pool_->release(pages_.back());
        pages_.pop_back();
    }
}

void KvCache::read_row(int layer, int pos, bool values, float* out) const {
    const size_t eb = pool_->elem_bytes(), hd = size_t(pool_->head_dim());
    const size_t step = values ? eb : size_t(pool_->page_size()) * eb;  // (see copy_row)
    for (int h = 0; h < pool_->n_head(); ++h) {
        const uint8_t* e = values ? v(layer, pos, h) : k(layer, pos, h);
        for (size_t d = 0; d < hd; ++d, e += step) kernels::dequantize_ref(pool_->type(), e, out++, 1);
    }
}

void KvCache::write_row(int layer, int pos, bool values, const float* in) {
    const size_t eb = pool_->elem_bytes(), hd = size_t(pool_->head_dim());
    const size_t step = values ? eb : size_t(pool_->page_size()) * eb;
    for (int h = 0; h < pool_->n_head(); ++h) {
        uint8_t* e = values ? v(layer, pos, h) : k(layer, pos, h);
        for (size_t d = 0; d < hd; ++d, e += step) kernels::quantize_ref(pool_->type(), in++, e, 1);
    }
}

void KvCache::copy_row(int layer, int pos, bool values, uint8_t* out, bool get) const {
    const size_t eb = pool_->elem_bytes(), hd = size_t(pool_->head_dim());
    // a value row's elements are adjacent; a key's are page_size apart
    const size_t step = values ? eb : size_t(pool_->page_size()) * eb;
    for (int h = 0; h < pool_->n_head(); ++h) {
        auto* e = const_cast<uint8_t*>(values ? v(layer, pos, h) : k(layer, pos, h));
        uint8_t* o = out + size_t(h) * hd * eb;
        for (size_t d = 0; d < hd; ++d, e += step, o += eb)
            if (get) std::memcpy(o, e, eb);
            else std::memcpy(e, o, eb);
    }
}

KvCache KvCache::fork() const {
    KvCache c(pool_, n_ctx_);
    c.pages_ = pages_;
    for (int p : pages_) pool_->retain(p);
    return c;
}

size_t KvCache::bytes_exclusive() const {
    size_t n = 0;
    for (int p : pages_)
        if (pool_->refs(p) == 1) n += pool_->page_bytes();
    return n;
}

}  // namespace ember
