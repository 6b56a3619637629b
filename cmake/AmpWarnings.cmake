# SPDX-License-Identifier: BSD-3-Clause
# Warnings for amp's own targets (never for consumers or third-party code). Not -Wnull-dereference: with
# g++ 12 at -O3 it fires inside libstdc++'s stream buffers inlined into any code that reads a file.
function(amp_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
                                           -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
                                           -Wformat=2 -Wimplicit-fallthrough)
  if(AMP_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# The core must build freestanding: no exceptions, no RTTI. Enforce it on the host build too.
set(AMP_CORE_FLAGS -fno-exceptions -fno-rtti)
