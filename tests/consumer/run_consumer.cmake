# Builds and runs tests/consumer against dynsparse, as ctest tests package_consumer and
# subdirectory_consumer do:
#
#   cmake -DMODE=package|subdirectory
#         -DDYNSPARSE_BUILD_DIR=<configured dynsparse build tree>   (MODE=package)
#         -DDYNSPARSE_SOURCE_DIR=<dynsparse source tree>             (MODE=subdirectory)
#         -DCONSUMER_SOURCE_DIR=<this directory> -DWORK_DIR=<scratch directory>
#         [-DCONFIG=Release] [-DGENERATOR=<cmake generator>] [-DCXX_COMPILER=<c++>]
#         -P run_consumer.cmake
#
# package:      cmake --install <build> --prefix <WORK_DIR>/package/prefix, then configure
#               the consumer with CMAKE_PREFIX_PATH=<prefix> (find_package(dynsparse 0.1)),
#               build it and run it; also checks dynsparse was found in <prefix>.
# subdirectory: configure the consumer with CONSUMER_USE_SUBDIRECTORY=ON, build, run.
cmake_minimum_required(VERSION 3.21)

function(fail)
  string(JOIN "" msg ${ARGN})
  message(FATAL_ERROR "consumer test (${MODE}) FAILED: ${msg}")
endfunction()

# run(<step name> <command...>): runs a command, prints its output, fails on non-zero exit.
function(run step)
  list(JOIN ARGN " " command_line)
  message(STATUS "[${MODE}] ${step}: ${command_line}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT "${rc}" STREQUAL "0")
    fail("${step} exited with ${rc}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

foreach(var MODE CONSUMER_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    fail("-D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED CONFIG OR "${CONFIG}" STREQUAL "")
  set(CONFIG Release)
endif()

set(root "${WORK_DIR}/${MODE}")
set(build "${root}/build")
file(REMOVE_RECURSE "${root}")
file(MAKE_DIRECTORY "${root}")

set(configure_args -S "${CONSUMER_SOURCE_DIR}" -B "${build}" "-DCMAKE_BUILD_TYPE=${CONFIG}")
if(DEFINED GENERATOR AND NOT "${GENERATOR}" STREQUAL "")
  list(APPEND configure_args -G "${GENERATOR}")
endif()
if(DEFINED CXX_COMPILER AND NOT "${CXX_COMPILER}" STREQUAL "")
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()

if(MODE STREQUAL "package")
  if(NOT DEFINED DYNSPARSE_BUILD_DIR OR NOT EXISTS "${DYNSPARSE_BUILD_DIR}/cmake_install.cmake")
    fail("-DDYNSPARSE_BUILD_DIR must name a configured dynsparse build tree")
  endif()
  set(prefix "${root}/prefix")
  run("install" "${CMAKE_COMMAND}" --install "${DYNSPARSE_BUILD_DIR}" --prefix "${prefix}"
      --config "${CONFIG}")
  file(GLOB_RECURSE installed_config "${prefix}/*/dynsparseConfig.cmake")
  if(NOT installed_config)
    fail("no dynsparseConfig.cmake under ${prefix}")
  endif()
  if(NOT EXISTS "${prefix}/include/dynsparse/dynsparse.hpp")
    fail("${prefix}/include/dynsparse/dynsparse.hpp was not installed")
  endif()
  # Only the fresh prefix may provide dynsparse: no package registry, no system copy first.
  list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix}"
       -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "subdirectory")
  if(NOT DEFINED DYNSPARSE_SOURCE_DIR OR NOT EXISTS "${DYNSPARSE_SOURCE_DIR}/CMakeLists.txt")
    fail("-DDYNSPARSE_SOURCE_DIR must name the dynsparse source tree")
  endif()
  list(APPEND configure_args -DCONSUMER_USE_SUBDIRECTORY=ON
       "-DCONSUMER_DYNSPARSE_SOURCE_DIR=${DYNSPARSE_SOURCE_DIR}")
else()
  fail("MODE must be package or subdirectory, not '${MODE}'")
endif()

run("configure" "${CMAKE_COMMAND}" ${configure_args})

if(MODE STREQUAL "package")
  # The config file that was used must be the freshly installed one.
  file(STRINGS "${build}/CMakeCache.txt" found_dir REGEX "^dynsparse_DIR:")
  string(REGEX REPLACE "^[^=]*=" "" found_dir "${found_dir}")
  file(REAL_PATH "${prefix}" real_prefix)
  file(REAL_PATH "${found_dir}" real_found_dir)
  string(FIND "${real_found_dir}" "${real_prefix}/" at)
  if(NOT at EQUAL 0)
    fail("find_package(dynsparse) used ${found_dir}, not the package installed in ${prefix}")
  endif()
elseif(NOT EXISTS "${build}/dynsparse")
  fail("the dynsparse source tree was not added with add_subdirectory")
endif()

run("build" "${CMAKE_COMMAND}" --build "${build}" --config "${CONFIG}")

# find_consumer_executable(<var> <name>)
function(find_consumer_executable var name)
  foreach(candidate "${build}/bin/${name}" "${build}/bin/${CONFIG}/${name}"
                    "${build}/bin/${name}.exe" "${build}/bin/${CONFIG}/${name}.exe")
    if(EXISTS "${candidate}")
      set(${var} "${candidate}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  fail("the consumer executable ${name} was not built under ${build}/bin")
endfunction()

find_consumer_executable(exe dynsparse_consumer)
run("run" "${exe}")
if(NOT run_output MATCHES "output shape 5 x 2")
  fail("unexpected consumer output: ${run_output}")
endif()

find_consumer_executable(exe dynsparse_consumer_gradient_check)
run("run gradient check" "${exe}")
if(NOT run_output MATCHES "gradient checks passed")
  fail("unexpected gradient-check output: ${run_output}")
endif()
message(STATUS "consumer test (${MODE}) passed")
