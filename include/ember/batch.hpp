// ember/batch.hpp — the unit of work of a forward pass.
//
// A batch is a list of (token, position, sequence) entries. One pass can
// prefill a prompt (many entries of one sequence), decode one token, or decode
// one token for each of many sessions at once: `seq` indexes the KV caches
// handed to the forward pass, so every weight is read once for all of them.
// Entries of one sequence must have increasing positions, and a sequence's
// cache must already hold every earlier position.
#pragma once

#include <cstdint>
#include <vector>

namespace ember {

struct Batch {
    std::vector<int32_t> token;   // [n] token ids
    std::vector<int32_t> pos;     // [n] position of each token in its sequence
    std::vector<int32_t> seq;     // [n] index into the caches of the forward call
    std::vector<uint8_t> logits;  // [n] 1 = produce logits for this entry

    size_t size() const { return token.size(); }
    void clear() { token.clear(); pos.clear(); seq.clear(); logits.clear(); }
    void add(int32_t tok, int32_t p, int32_t s, bool want_logits) {
        token.push_back(tok);
        pos.push_back(p);
        seq.push_back(s);
        logits.push_back(want_logits ? 1 : 0);
    }
    int n_logits() const {
        int n = 0;
        for (uint8_t l : logits) n += l;
        return n;
    }
};

}  // namespace ember
