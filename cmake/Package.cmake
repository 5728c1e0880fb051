# Install layout and the Debian package (scripts/package runs cpack -G DEB):
#   /usr/bin/mews-relay
#   /etc/mews-relay/mews-relay.ini   the commented sample, journal in /var/lib/mews-relay (conffile)
#   /etc/mews-relay/mews-relay.env   the token, for systemd's EnvironmentFile= (conffile)
#   /lib/systemd/system/mews-relay.service
#   /usr/share/mews-relay/migrations/*.sql   the schema steps the binary embeds, for reading
#   /usr/share/mews-relay/migrations/postgresql/*.sql   the same for a PostgreSQL journal
#   /usr/share/doc/mews-relay/       README.md, copyright, the example alert rules
include(GNUInstallDirs)

install(TARGETS mews-relay RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The packaged config is the example with the journal where the unit's StateDirectory is.
file(READ ${PROJECT_SOURCE_DIR}/examples/mews-relay.ini example_config)
string(REPLACE "path      = data/relay.db" "path      = /var/lib/mews-relay/relay.db" packaged_config
               "${example_config}")
if(packaged_config STREQUAL example_config)
  message(FATAL_ERROR "examples/mews-relay.ini: the journal path line changed; update cmake/Package.cmake")
endif()
file(WRITE ${CMAKE_BINARY_DIR}/packaging/mews-relay.ini "${packaged_config}")
install(FILES ${CMAKE_BINARY_DIR}/packaging/mews-relay.ini ${PROJECT_SOURCE_DIR}/packaging/mews-relay.env
        DESTINATION /etc/mews-relay PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/mews-relay.service DESTINATION /lib/systemd/system)
install(FILES ${MEWS_RELAY_MIGRATION_FILES} DESTINATION ${CMAKE_INSTALL_DATADIR}/mews-relay/migrations)
install(FILES ${MEWS_RELAY_POSTGRES_MIGRATION_FILES} DESTINATION ${CMAKE_INSTALL_DATADIR}/mews-relay/migrations/postgresql)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/packaging/copyright
              ${PROJECT_SOURCE_DIR}/examples/alerts.yml
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mews-relay)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "mews-relay maintainers <mews-relay@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "store-and-forward relay for Mews webhooks")
set(CPACK_PACKAGE_DESCRIPTION
    "Receives Mews webhooks, journals each batch in SQLite before acknowledging it, and delivers the events to on-premise HTTP targets with retries, backoff, circuit breaking and dead letters.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
