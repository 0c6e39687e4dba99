// Out-of-line pieces of ember/common.hpp.
#include "ember/common.hpp"

namespace ember {

void fail(Status s, const std::string& what) { throw Error(s, what); }
void fail(Status s, const char* what) { throw Error(s, what); }

}  // namespace ember
