// FileError is header-only; this file keeps the adapters library non-empty
// and gives the vtable a home.
#include "adapters/file_error.hpp"
