// The sse2 kernel table: kernels/simd.hpp compiled with this ISA's flags (see CMakeLists.txt).
#define EMBER_ISA_NS isa_sse2
#define EMBER_ISA_ARCH xsimd::sse2
#include "ember/kernels/simd.hpp"

namespace ember::kernels {
const KernelTable& table_sse2() {
    static const KernelTable t = isa_sse2::make_table("sse2", 1);
    return t;
}
}  // namespace ember::kernels
