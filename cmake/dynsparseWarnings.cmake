# Build-only helper targets for dynsparse's own tests, examples and benchmarks.
# Neither is installed nor exported; the library target itself carries no such flags.
#
#   dynsparse_warnings  -Wall -Wextra -Wpedantic (+ -Werror with DYNSPARSE_WERROR)
#   dynsparse_native    -march=native when DYNSPARSE_NATIVE is ON and the compiler accepts it
include_guard(GLOBAL)
include(CheckCXXCompilerFlag)

add_library(dynsparse_warnings INTERFACE)
if(MSVC)
  target_compile_options(dynsparse_warnings INTERFACE /W4 $<$<BOOL:${DYNSPARSE_WERROR}>:/WX>)
else()
  target_compile_options(dynsparse_warnings INTERFACE -Wall -Wextra -Wpedantic
                         $<$<BOOL:${DYNSPARSE_WERROR}>:-Werror>)
endif()

add_library(dynsparse_native INTERFACE)
if(DYNSPARSE_NATIVE)
  check_cxx_compiler_flag(-march=native DYNSPARSE_HAVE_MARCH_NATIVE)
  if(DYNSPARSE_HAVE_MARCH_NATIVE)
    target_compile_options(dynsparse_native INTERFACE -march=native)
  else()
    message(STATUS "dynsparse: the compiler does not accept -march=native; not using it")
  endif()
endif()
