# Compile-fail check, run by ctest as
#
#   cmake -DBUILD_DIR=<build tree> -DTARGET_NAME=<target> -DSOURCE=<file.cpp>
#         [-DCONFIG=<config>] [-DMANIFEST=<list of known targets>]
#         -P expect_compile_failure.cmake
#
# SOURCE's first line is `// expect: <regex>` (a CMake regular expression, matched
# against the whole build log; the build runs with LC_ALL=C so GCC quotes with plain
# 'quotes'). The check passes only if building TARGET_NAME in BUILD_DIR FAILS and the build
# output matches the regex. It fails if the build succeeds, if the output does not match,
# or if TARGET_NAME is not a known compile-fail target of the tree (rather than letting
# "no such target" count as a compile error). The build log is printed on failure.
cmake_minimum_required(VERSION 3.21)

# Prints the reason verbatim (message(FATAL_ERROR) would re-wrap it and the build log),
# then stops with a non-zero exit code.
function(check_failed)
  string(JOIN "" msg ${ARGN})
  message("compile-fail check FAILED: ${msg}")
  message(FATAL_ERROR "compile-fail check FAILED for '${TARGET_NAME}' (${SOURCE})")
endfunction()

foreach(var BUILD_DIR TARGET_NAME SOURCE)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    check_failed("-D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${BUILD_DIR}/CMakeCache.txt")
  check_failed("'${BUILD_DIR}' is not a configured build tree")
endif()
if(NOT EXISTS "${SOURCE}")
  check_failed("source file '${SOURCE}' does not exist")
endif()

file(STRINGS "${SOURCE}" first_line LIMIT_COUNT 1)
if(NOT first_line MATCHES "^// expect: (.+)$")
  check_failed("${SOURCE}: the first line must be `// expect: <regex>`, got `${first_line}`")
endif()
string(STRIP "${CMAKE_MATCH_1}" expect)

# The target must be one the tree declared as a compile-fail target.
if(DEFINED MANIFEST AND NOT "${MANIFEST}" STREQUAL "")
  if(NOT EXISTS "${MANIFEST}")
    check_failed("manifest '${MANIFEST}' does not exist; re-run CMake in ${BUILD_DIR}")
  endif()
  file(STRINGS "${MANIFEST}" known_targets REGEX "^[^#]")
  if(NOT "${TARGET_NAME}" IN_LIST known_targets)
    list(JOIN known_targets " " known_list)
    check_failed("'${TARGET_NAME}' is not a compile-fail target of ${BUILD_DIR} "
                 "(known: ${known_list})")
  endif()
endif()

set(build_cmd "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET_NAME}")
if(DEFINED CONFIG AND NOT "${CONFIG}" STREQUAL "")
  list(APPEND build_cmd --config "${CONFIG}")
endif()
execute_process(
  COMMAND "${CMAKE_COMMAND}" -E env LC_ALL=C LANG=C LANGUAGE= ${build_cmd}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)

set(log "\n----- build log (${TARGET_NAME}) -----\n${output}----- end of build log -----\n")

# Generator messages for a target that does not exist: never a compile error.
if(output MATCHES "No rule to make target '?${TARGET_NAME}'?|unknown target '${TARGET_NAME}'|MSB1009")
  check_failed("target '${TARGET_NAME}' does not exist in ${BUILD_DIR}${log}")
endif()
if("${result}" STREQUAL "0")
  check_failed("the build of target '${TARGET_NAME}' succeeded, but ${SOURCE} must not compile "
               "(expected a diagnostic matching `${expect}`)${log}")
endif()
if(NOT "${result}" MATCHES "^[0-9]+$")
  check_failed("the build of '${TARGET_NAME}' could not run: ${result}${log}")
endif()
if(NOT output MATCHES "${expect}")
  check_failed("the build of '${TARGET_NAME}' failed (exit ${result}), but not with a diagnostic "
               "matching `${expect}`${log}")
endif()
set(matched "${CMAKE_MATCH_0}")

# Show the whole line holding the match when there is one.
string(REGEX MATCH "[^\n]*(${expect})[^\n]*" matched_line "${output}")
if(NOT matched_line STREQUAL "")
  set(matched "${matched_line}")
endif()
message(STATUS "compile-fail check passed: '${TARGET_NAME}' does not compile, as expected:\n  ${matched}")
