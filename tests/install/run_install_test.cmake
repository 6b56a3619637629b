# SPDX-License-Identifier: BSD-3-Clause
# cmake -P script: install amp, then build and run a consumer with find_package and with pkg-config.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
run(${CMAKE_COMMAND} --install ${AMP_BUILD_DIR} --prefix ${prefix})

file(GLOB_RECURSE config "${prefix}/*/ampConfig.cmake")
file(GLOB_RECURSE pc "${prefix}/*/amp.pc")
foreach(required "${prefix}/include/amp/metal/io_region.hpp" "${prefix}/include/amp/metal/result.hpp" "${config}" "${pc}")
  if(required STREQUAL "" OR NOT EXISTS "${required}")
    message(FATAL_ERROR "missing from the installed tree: '${required}'")
  endif()
endforeach()

# 1. find_package(amp) -> amp::amp
run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${WORK_DIR}/cmake-consumer -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-consumer)
run(${WORK_DIR}/cmake-consumer/consumer)
if(NOT last_output MATCHES "amp consumer ok")
  message(FATAL_ERROR "consumer (find_package) printed: ${last_output}")
endif()
message(STATUS "find_package(amp) consumer: ${last_output}")

# 2. pkg-config
get_filename_component(pc_dir "${pc}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
run(pkg-config --cflags --libs amp)
string(STRIP "${last_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
separate_arguments(extra UNIX_COMMAND "${CXX_FLAGS} ${LINK_FLAGS}")
run(${CXX} ${extra} ${CONSUMER_DIR}/main.cpp ${pc_flags} -o ${WORK_DIR}/pc-consumer)
run(${WORK_DIR}/pc-consumer)
if(NOT last_output MATCHES "amp consumer ok")
  message(FATAL_ERROR "consumer (pkg-config) printed: ${last_output}")
endif()
message(STATUS "pkg-config consumer: ${last_output}")
