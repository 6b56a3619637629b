# SPDX-License-Identifier: BSD-3-Clause
# cmake -P script: runs `ampctl ARGS...` and checks its exit code and output.
#   -DAMPCTL=path -DARGS="a;b;c" -DEXPECT_CODE=N -DEXPECT_OUTPUT=regex [-DEXPECT_STDERR=regex]
execute_process(COMMAND ${AMPCTL} ${ARGS} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
if(NOT code STREQUAL EXPECT_CODE)
  message(FATAL_ERROR "ampctl ${ARGS}: exit code ${code}, expected ${EXPECT_CODE}\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(DEFINED EXPECT_OUTPUT AND NOT out MATCHES "${EXPECT_OUTPUT}")
  message(FATAL_ERROR "ampctl ${ARGS}: stdout does not match '${EXPECT_OUTPUT}':\n${out}\nstderr:\n${err}")
endif()
if(DEFINED EXPECT_STDERR AND NOT err MATCHES "${EXPECT_STDERR}")
  message(FATAL_ERROR "ampctl ${ARGS}: stderr does not match '${EXPECT_STDERR}':\n${err}")
endif()
message(STATUS "ampctl ${ARGS}: ${out}")
