#pragma once
// Compiler attributes the library uses.
//
// DYNSPARSE_COMPILE_ONCE marks a function of a template shared by many instantiations of
// another (the trainer's loop, shared by every network type): kept out of line and not
// cloned per caller (GCC's interprocedural constant propagation would otherwise make one
// specialised copy per network type, which is what the shared function exists to avoid).
#if defined(__GNUC__) && !defined(__clang__)
#define DYNSPARSE_COMPILE_ONCE [[gnu::noinline, gnu::noclone]]
#elif defined(__GNUC__)
#define DYNSPARSE_COMPILE_ONCE [[gnu::noinline]]
#else
#define DYNSPARSE_COMPILE_ONCE
#endif
