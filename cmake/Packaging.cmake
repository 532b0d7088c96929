# CPack: a Debian package of everything `cmake --install` installs, made by `cpack` in the build
# folder (or `cmake --build BUILD --target package`); scripts/check-deb installs it on a clean
# Debian 12. Its Depends are computed from the binaries' libraries by dpkg-shlibdeps (package
# dpkg-dev, scripts/install-deps).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME chainctl)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "chainctl")
set(CPACK_PACKAGE_CONTACT "chainctl maintainers <maintainers@users.noreply.b-seed-849a695b.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "task chains: DAGs of tasks whose JSON output feeds the next")
# The long description, under the summary (the Description line).
set(CPACK_PACKAGE_DESCRIPTION
    "chainctl runs chains of tasks described in YAML or JSON files: each task's JSON
output is checked against its schema and passed to the tasks that depend on it.
The daemon, chaind, schedules tasks within CPU, memory and GPU limits, retries
them, keeps their history, and starts the tasks it predicts will run next ahead
of time. The package has chainctl, chaind, chaind-exec, the man pages, the JSON
Schema of chain files, shell completions and systemd user units.")
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # chainctl_VERSION_ARCH.deb
set(CPACK_STRIP_FILES ON)  # RelWithDebInfo keeps line tables; the package does without them
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/package)
include(CPack)

find_program(CHAINCTL_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(NOT CHAINCTL_DPKG_SHLIBDEPS)
  message(STATUS "dpkg-shlibdeps not found: cpack would make a .deb without Depends "
                 "(scripts/install-deps installs dpkg-dev)")
endif()
