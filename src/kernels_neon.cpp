// The NEON kernel table (Arm64): kernels/simd.hpp compiled for xsimd::neon64.
#define EMBER_ISA_NS isa_neon
#define EMBER_ISA_ARCH xsimd::neon64
#include "ember/kernels/simd.hpp"

namespace ember::kernels {
const KernelTable& table_neon() {
    static const KernelTable t = isa_neon::make_table("neon", 2);
    return t;
}
}  // namespace ember::kernels
