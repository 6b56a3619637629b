# SPDX-License-Identifier: BSD-3-Clause
# cmake -P script: runs a remote and a host example at the same time (execute_process runs its COMMANDs
# concurrently) and checks that both exit 0 and the host prints what it should (and, if asked, that their
# stderr says something: the remote's stdout goes to the host's stdin, its stderr is shared).
#   -DREMOTE="prog;args" -DHOST="prog;args" -DEXPECT=regex [-DEXPECT_STDERR="regex;regex..."]
execute_process(COMMAND ${REMOTE} COMMAND ${HOST} RESULTS_VARIABLE codes OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
if(NOT codes STREQUAL "0;0")
  message(FATAL_ERROR "exit codes ${codes} (remote;host)\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "output does not match '${EXPECT}':\n${out}\n${err}")
endif()
foreach(regex IN LISTS EXPECT_STDERR)
  if(NOT err MATCHES "${regex}")
    message(FATAL_ERROR "stderr does not match '${regex}':\n${err}")
  endif()
endforeach()
message(STATUS "${out}")
