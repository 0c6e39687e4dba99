// ember/kv_cache.hpp — keys and values of attention, in pages shared copy-on-write.
//
// A KvPool holds fixed-size pages: a page stores `page_size` positions of every
// layer, head-major: v[layer][head][slot][head_dim], and the keys transposed,
// k[layer][head][head_dim][slot] (the attention scores of a run of positions
// are then lanes of one vector: no sums across lanes). One KV head's keys
// (values) in a page are one run of page_size * head_dim elements. Each
// thread of a decode's attention reads its own heads' rows, and with rows of
// all heads side by side (k[layer][slot][kv_dim]) it read a quarter of every
// 1 KiB and left the prefetchers waiting: 1.1B Q4_0 decode at 4K positions
// 27.8 -> 31.2 tok/s, a 4000-token prompt 168 -> 208 tok/s.
// Elements are float32 or (half the memory) IEEE float16 (11 significant
// bits; llama.cpp's default K/V type): each value rounded to nearest when
// written, and a fast context shift rounds the keys it re-rotates again. Pages are
// reference-counted so a forked session shares its parent's prefix: the pages
// are copied only when one side writes into a shared page (its last, partial
// one). A pool grows by whole slabs when it runs out (never inside a forward
// pass: callers reserve first) up to an optional cap, and reports its size.
//
// A KvCache is one sequence's page table over a pool. Not thread-safe: a pool
// and its caches are used by one thread at a time (the session's, or the
// scheduler's step).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ember/common.hpp"
#include "ember/tensor.hpp"

namespace ember {

class KvPool {
public:
    // max_pages = 0: no cap. pages_per_slab: growth step. type: F32 or F16.
    KvPool(int n_layer, int n_head, int head_dim, int page_size, int pages_per_slab, int max_pages = 0,
           DType type = DType::F32);

    int page_size() const { return page_size_; }
    int n_head() const { return n_head_; }
    int head_dim() const { return head_dim_; }
    int kv_dim() const { return n_head_ * head_dim_; }
    int n_layer() const { return n_layer_; }
    DType type() const { return type_; }
    size_t elem_bytes() const { return type_ == DType::F16 ? 2 : 4; }
    // Bytes of one position's keys (or values) in one layer, all heads.
    size_t row_bytes() const { return size_t(kv_dim()) * elem_bytes(); }
    size_t page_bytes() const { return size_t(2) * n_layer_ * page_size_ * row_bytes(); }
    int pages_total() const { return usable_; }
    int pages_used() const { return pages_total() - int(free_.size()); }
    size_t bytes_reserved() const { return size_t(pages_total()) * page_bytes(); }
    size_t bytes_used() const { return size_t(pages_used()) * page_bytes(); }

    // A free page with one reference; grows the pool if needed; throws context_full at the cap.
    int acquire();
    void retain(int page) { ++refs_[size_t(page)]; }
    void release(int page);
    int refs(int page) const { return refs_[size_t(page)]; }
    // Ensures at least n free pages exist (growing now rather than later).
    void reserve_free(int n);

    // A page's keys (values) of one layer: n_head runs of page_size * head_dim
    // elements, as type(): values a row per position, keys a row per element.
    uint8_t* k(int page, int layer) { return base(page) + size_t(layer) * page_size_ * row_bytes(); }
    uint8_t* v(int page, int layer) { return base(page) + size_t(n_layer_ + layer) * page_size_ * row_bytes(); }
    const uint8_t* k(int page, int layer) const { return const_cast<KvPool*>(this)->k(page, layer); }
    const uint8_t* v(int page, int layer) const { return const_cast<KvPool*>(this)->v(page, layer); }

private:
    uint8_t* base(int page) {
        return slabs_[size_t(page / per_slab_)].get() + size_t(page % per_slab_) * page_bytes();
    }
    void grow();

    int n_layer_, n_head_, head_dim_, page_size_, per_slab_, max_pages_;
    DType type_;
    // Slabs are anonymous mappings in huge pages where the kernel grants them:
    // attention reads a layer's keys and values of every page, 32 KiB pieces
    // far apart, and in 4 KiB pages each piece cost TLB misses. A slab is
    // touched whole when it is made (as it was zeroed before), so no step of
    // a pass waits on a page fault.
    struct SlabFree { size_t n; void operator()(uint8_t* p) const; };
    std::vector<std::unique_ptr<uint8_t, SlabFree>> slabs_;  // raw bytes: the elements are type_'s
    std::vector<int> refs_;
    std::vector<int> free_;
    int usable_ = 0;  // pages that can be handed out (a capped last slab has fewer)
};

class KvCache {
public:
    KvCache() = default;
    KvCache(std::shared_ptr<KvPool> pool, int n_ctx) : pool_(std::move(pool)), n_ctx_(n_ctx) {}
    ~KvCache() { clear(); }
    KvCache(KvCache&& o) noexcept { *this = std::move(o); }
    KvCache& operator=(KvCache&& o) noexcept;
    KvCache(const KvCache&) = delete;
    KvCache& operator=(const KvCache&) = delete;

    int n_ctx() const { return n_ctx_; }
    int kv_dim() const { return pool_->kv_dim(); }
    DType type() const { return pool_->type(); }
    const std::shared_ptr<KvPool>& pool() const { return pool_; }

    // Makes positions [from, to) writable: allocates missing pages and copies
    // shared ones. Throws context_full (nothing changed) when to > n_ctx or the
    // pool is at its cap.
    void prepare(int from, int to);
    // Forgets positions >= n (releases whole pages past it).
    void truncate(int n);
    void clear() { truncate(0); }

    // A cache over the same pool sharing every page (copy-on-write).
    KvCache fork() const;
    // Bytes of pages this cache holds alone (shared pages count for no one cache).
    size_t bytes_exclusive() const;
    int pages() const { return int(pages_.size()); }

    // One position's values of one layer and one KV head: head_dim() elements
    // of type() (the next position's follow them). Its keys: the same count,
    // element d at k(...) + d * page_size() elements (keys are transposed).
    uint8_t* k(int layer, int pos, int head) { return pool_->k(page(pos), layer) + at_k(pos, head); }
    uint8_t* v(int layer, int pos, int head) { return pool_->v(page(pos), layer) + at_v(pos, head); }
    const uint8_t* k(int layer, int pos, int head) const { return pool_->k(page(pos), layer) + at_k(pos, head); }
    const uint8_t* v(int layer, int pos, int head) const { return pool_->v(page(pos), layer) + at_v(pos, head); }
    // One position's keys (values) of one layer, all heads in order (kv_dim()
    // elements): as floats (F16 converted exactly; written rounded to nearest),
    // or as the bytes of type() (row_bytes()).
    void read_k(int layer, int pos, float* out) const { read_row(layer, pos, false, out); }
    void read_v(int layer, int pos, float* out) const { read_row(layer, pos, true, out); }
    void write_k(int layer, int pos, const float* in) { write_row(layer, pos, false, in); }
    void write_v(int layer, int pos, const float* in) { write_row(layer, pos, true, in); }
    void get_k(int layer, int pos, uint8_t* out) const { copy_row(layer, pos, false, out, true); }
    void get_v(int layer, int pos, uint8_t* out) const { copy_row(layer, pos, true, out, true); }
    void put_k(int layer, int pos, const uint8_t* in) { copy_row(layer, pos, false, const_cast<uint8_t*>(in), false); }
    void put_v(int layer, int pos, const uint8_t* in) { copy_row(layer, pos, true, const_cast<uint8_t*>(in), false); }

private:
    int page(int pos) const { return pages_[size_t(pos / pool_->page_size())]; }
    size_t at_v(int pos, int head) const {
        return (size_t(head) * size_t(pool_->page_size()) + size_t(pos % pool_->page_size())) *
               size_t(pool_->head_dim()) * pool_->elem_bytes();
    }
    size_t at_k(int pos, int head) const {
        return (size_t(head) * size_t(pool_->page_size()) * size_t(pool_->head_dim()) + size_t(pos % pool_->page_size())) *
               pool_->elem_bytes();
    }
    void read_row(int layer, int pos, bool values, float* out) const;
    void write_row(int layer, int pos, bool values, const float* in);
    // out = the row's bytes (get) or the row's bytes = out (put)
    void copy_row(int layer, int pos, bool values, uint8_t* out, bool get) const;

    std::shared_ptr<KvPool> pool_;
    int n_ctx_ = 0;
    std::vector<int> pages_;
};

}  // namespace ember
