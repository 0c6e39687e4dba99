// The avx2 kernel table: kernels/simd.hpp compiled with this ISA's flags (see CMakeLists.txt).
#define EMBER_ISA_NS isa_avx2
#define EMBER_ISA_ARCH xsimd::fma3<xsimd::avx2>
#include "ember/kernels/simd.hpp"

namespace ember::kernels {
const KernelTable& table_avx2() {
    static const KernelTable t = isa_avx2::make_table("avx2", 2);
    return t;
}
}  // namespace ember::kernels
