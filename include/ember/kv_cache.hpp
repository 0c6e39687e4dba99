// ember/kv_cache.hpp — one sequence's keys and values, sized up front.
//
// Layout per layer: k[pos][kv_dim] and v[pos][kv_dim] in float32, kv_dim =
// n_head_kv * head_dim, for positions [0, n_ctx). The cache belongs to a
// session; the model's weights are shared. Copying is explicit (clone()).
#pragma once

#include <cstdint>
#include <vector>

namespace ember {

class KvCache {
public:
    KvCache() = default;
    KvCache(int n_layer, int n_ctx, int kv_dim)
        : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim),
          k_(size_t(n_layer) * size_t(n_ctx) * size_t(kv_dim)), v_(k_.size()) {}

    int n_ctx() const { return n_ctx_; }
    int kv_dim() const { return kv_dim_; }
    size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

    float* k(int layer, int pos) { return k_.data() + (size_t(layer) * n_ctx_ + pos) * kv_dim_; }
    float* v(int layer, int pos) { return v_.data() + (size_t(layer) * n_ctx_ + pos) * kv_dim_; }
    const float* k(int layer, int pos) const { return k_.data() + (size_t(layer) * n_ctx_ + pos) * kv_dim_; }
    const float* v(int layer, int pos) const { return v_.data() + (size_t(layer) * n_ctx_ + pos) * kv_dim_; }

    KvCache clone() const { return *this; }

private:
    KvCache(const KvCache&) = default;  // deep copies only through clone()
    int n_layer_ = 0, n_ctx_ = 0, kv_dim_ = 0;
    std::vector<float> k_, v_;

public:
    KvCache(KvCache&&) = default;
    KvCache& operator=(KvCache&&) = default;
};

}  // namespace ember
