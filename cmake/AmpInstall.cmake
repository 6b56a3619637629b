# SPDX-License-Identifier: BSD-3-Clause
# cmake --install: headers, the library, a CMake package (find_package(amp) -> amp::amp) and amp.pc.
include(CMakePackageConfigHelpers)

set(AMP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/amp)
install(TARGETS amp EXPORT ampTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/amp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT ampTargets NAMESPACE amp:: DESTINATION ${AMP_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ampConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/ampConfig.cmake INSTALL_DESTINATION ${AMP_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ampConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ampConfig.cmake ${PROJECT_BINARY_DIR}/ampConfigVersion.cmake
        DESTINATION ${AMP_CMAKE_DIR})

# pkg-config: paths relative to ${prefix} so that the tree can be relocated.
file(RELATIVE_PATH AMP_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" AMP_PC_TO_PREFIX "${AMP_PC_TO_PREFIX}")
if(AMP_PLATFORM STREQUAL "linux")
  set(AMP_PC_LIBS_EXTRA "-pthread")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/amp.pc.in ${PROJECT_BINARY_DIR}/amp.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/amp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/amp)
