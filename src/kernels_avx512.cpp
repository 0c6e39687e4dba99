// The avx512 kernel table: kernels/simd.hpp compiled with this ISA's flags (see CMakeLists.txt).
#define EMBER_ISA_NS isa_avx512
#define EMBER_ISA_ARCH xsimd::avx512bw
#include "ember/kernels/simd.hpp"

namespace ember::kernels {
const KernelTable& table_avx512() {
    static const KernelTable t = isa_avx512::make_table("avx512", 3);
    return t;
}
}  // namespace ember::kernels
