# SPDX-License-Identifier: BSD-3-Clause
# cmake -P script: runs a remote and a host example at the same time (execute_process runs its COMMANDs
# concurrently) and checks that both exit 0 and the host prints what it should.
#   -DREMOTE="prog;args" -DHOST="prog;args" -DEXPECT=regex
execute_process(COMMAND ${REMOTE} COMMAND ${HOST} RESULTS_VARIABLE codes OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
if(NOT codes STREQUAL "0;0")
  message(FATAL_ERROR "exit codes ${codes} (remote;host)\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "output does not match '${EXPECT}':\n${out}\n${err}")
endif()
message(STATUS "${out}")
