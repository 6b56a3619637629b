# SPDX-License-Identifier: BSD-3-Clause
# cmake -P script: runs a remote example that no host ever joins and checks that it gives up with an error
# and leaves no socket file behind.
#   -DREMOTE="prog;args" -DSOCKET=path -DEXPECT_STDERR=regex
file(REMOVE "${SOCKET}")
execute_process(COMMAND ${REMOTE} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 30)
if(code EQUAL 0 OR NOT code MATCHES "^[0-9]+$")
  message(FATAL_ERROR "exit code '${code}', expected a failure\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT err MATCHES "${EXPECT_STDERR}")
  message(FATAL_ERROR "stderr does not match '${EXPECT_STDERR}':\n${err}")
endif()
if(EXISTS "${SOCKET}" OR IS_SYMLINK "${SOCKET}")
  file(REMOVE "${SOCKET}")
  message(FATAL_ERROR "${SOCKET} was left behind")
endif()
message(STATUS "${err}")
