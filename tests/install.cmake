# `cmake --install` gives a usable package: the header, the library (only
# ember_* exported, SONAME with the ABI major), pkg-config and CMake configs.
# Inputs: BUILD (the build dir), SOURCE (the source dir), WORK (scratch), NM.
set(prefix "${WORK}/install-prefix")
file(REMOVE_RECURSE "${prefix}" "${WORK}/consumer-build")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD}" --prefix "${prefix}" RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed")
endif()
file(GLOB_RECURSE libs "${prefix}/*/libember.so.*")
file(GLOB_RECURSE pcs "${prefix}/*/emberlm.pc")
file(GLOB_RECURSE cfgs "${prefix}/*/emberlmConfig.cmake")
if(NOT EXISTS "${prefix}/include/ember.h" OR NOT libs OR NOT pcs OR NOT cfgs)
  message(FATAL_ERROR "install is missing the header, the library, emberlm.pc or emberlmConfig.cmake")
endif()

# Only ember_* leaves the library.
list(GET libs 0 lib)
execute_process(COMMAND "${NM}" -D --defined-only "${lib}" OUTPUT_VARIABLE syms)
string(REGEX MATCHALL "[^\n]* [TDBRVW] [^\n]*" exported "${syms}")
foreach(s IN LISTS exported)
  if(NOT s MATCHES " (ember_[a-z0-9_]+(@@EMBER_1)?|EMBER_1)$")
    message(FATAL_ERROR "libember exports a symbol outside the C ABI: ${s}")
  endif()
endforeach()
execute_process(COMMAND objdump -p "${lib}" OUTPUT_VARIABLE dyn)
if(NOT dyn MATCHES "SONAME +libember\\.so\\.1")
  message(FATAL_ERROR "libember's SONAME is not libember.so.1")
endif()

# pkg-config
get_filename_component(pcdir "${pcs}" DIRECTORY)
execute_process(COMMAND "${CMAKE_COMMAND}" -E env "PKG_CONFIG_PATH=${pcdir}" pkg-config --cflags --libs emberlm
                OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not find emberlm")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
execute_process(COMMAND cc -std=c99 -Wall -Werror "${SOURCE}/examples/c/hello.c" ${flags} -o "${WORK}/hello-pkgconfig"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "a C host does not build with pkg-config's flags: ${err}")
endif()

# find_package(emberlm)
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE}/tests/consumer" -B "${WORK}/consumer-build"
                "-DCMAKE_PREFIX_PATH=${prefix}" "-DHELLO_SOURCE=${SOURCE}/examples/c/hello.c"
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(rc EQUAL 0)
  execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK}/consumer-build" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "find_package(emberlm) consumer does not build: ${err}")
endif()
# the consumer runs against the installed library (bad usage -> exit 2 with a usage line)
execute_process(COMMAND "${CMAKE_COMMAND}" -E env "LD_LIBRARY_PATH=${lib}/.." "${WORK}/consumer-build/hello"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "usage")
  message(FATAL_ERROR "the installed consumer did not run (${rc}): ${err}")
endif()
message("installed package: header, libember.so.1 (ember_* only), pkg-config and find_package all work")
