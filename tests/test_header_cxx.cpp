// capi/ember.h must compile as C++ too (test_capi.c compiles it as C99).
#include "ember.h"

static_assert(EMBER_ABI_VERSION >= 1);
static_assert(sizeof(ember_model_params) >= sizeof(uint32_t));
