# Embeds MEWS_RELAY_MIGRATION_FILES (globbed once, in the top-level
# CMakeLists.txt) into the binary at build time, so an installed binary needs no
# source tree. The generated file is rewritten whenever a migration changes or
# one is added.

# '|' joins the list: a ';' would split the -D argument into several.
list(JOIN MEWS_RELAY_MIGRATION_FILES "|" MEWS_RELAY_MIGRATION_INPUTS)
set(MEWS_RELAY_MIGRATIONS_CPP ${CMAKE_BINARY_DIR}/generated/embedded_migrations.cpp)
add_custom_command(
  OUTPUT ${MEWS_RELAY_MIGRATIONS_CPP}
  COMMAND ${CMAKE_COMMAND} -DOUTPUT=${MEWS_RELAY_MIGRATIONS_CPP}
          "-DINPUTS=${MEWS_RELAY_MIGRATION_INPUTS}"
          -P ${PROJECT_SOURCE_DIR}/cmake/GenerateMigrations.cmake
  DEPENDS ${MEWS_RELAY_MIGRATION_FILES} ${PROJECT_SOURCE_DIR}/cmake/GenerateMigrations.cmake
  COMMENT "Embedding journal migrations"
  VERBATIM)
