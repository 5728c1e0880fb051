# The one way files become part of the binary (the journal's migrations, the
# console's assets): a generated C++ source defining a function that returns a
# std::vector of entries, each `{FIELDS..., R"mewsembed(<the file's text>)mewsembed"}`.
# An installed binary then needs no source tree and no file beside it.
#
# Included by a CMakeLists.txt, this file defines mews_embed_files(); run with
# `cmake -P` (by the command that function adds), it writes the source.
#
#   mews_embed_files(<output.cpp>
#     HEADER <include path>    declares FUNCTION and TYPE, e.g. journal/migrations.h
#     NAMESPACE <ns>           e.g. mews::journal
#     FUNCTION <name>          e.g. embeddedMigrations
#     TYPE <struct>            e.g. Migration: its last member takes the text
#     FIELDS <command>         called at configure time as <command>(<file> <out-var>); sets
#                              <out-var> to the entry's C++ initialisers before the text
#                              (e.g. `1, "journal"`), or stops with FATAL_ERROR naming the file
#     FILES <file>...)         in the order of the vector
#
# The fields depend only on file names, known at configure time (the callers
# glob with CONFIGURE_DEPENDS); the texts are read at build time, so an edited
# file is embedded again without a re-configure.

if(CMAKE_SCRIPT_MODE_FILE)
  # Script mode: MANIFEST names the file mews_embed_files() wrote; OUTPUT the source.
  include(${MANIFEST})
  set(body "// Generated from the files in ${EMBED_ORIGIN} by cmake/EmbedFiles.cmake. Do not edit.\n")
  string(APPEND body "#include \"${EMBED_HEADER}\"\n\nnamespace ${EMBED_NAMESPACE} {\n\n")
  string(APPEND body "const std::vector<${EMBED_TYPE}>& ${EMBED_FUNCTION}() {\n")
  string(APPEND body "  static const std::vector<${EMBED_TYPE}> all = {\n")
  set(index 0)
  foreach(input IN LISTS EMBED_FILES)
    file(READ ${input} text)
    if(text MATCHES "\\)mewsembed\"")
      message(FATAL_ERROR "${input} contains the raw-string delimiter )mewsembed\"")
    endif()
    string(APPEND body "      {${EMBED_FIELDS_${index}}, R\"mewsembed(${text})mewsembed\"},\n")
    math(EXPR index "${index} + 1")
  endforeach()
  string(APPEND body "  };\n  return all;\n}\n\n}  // namespace ${EMBED_NAMESPACE}\n")
  file(WRITE ${OUTPUT}.tmp "${body}")
  file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
  return()
endif()

function(mews_embed_files output)
  cmake_parse_arguments(PARSE_ARGV 1 EMBED "" "HEADER;NAMESPACE;FUNCTION;TYPE;FIELDS" "FILES")
  foreach(required HEADER NAMESPACE FUNCTION TYPE FIELDS FILES)
    if(NOT EMBED_${required})
      message(FATAL_ERROR "mews_embed_files(${output}): ${required} is missing")
    endif()
  endforeach()
  # The manifest carries what the script needs in bracket arguments, so that
  # the fields' quotes and semicolons (a content type's) pass unchanged.
  set(manifest "${output}.embed.cmake")
  set(origin "")
  foreach(file IN LISTS EMBED_FILES)
    get_filename_component(folder ${file} DIRECTORY)
    file(RELATIVE_PATH folder ${PROJECT_SOURCE_DIR} ${folder})
    list(APPEND origin "${folder}/")
  endforeach()
  list(REMOVE_DUPLICATES origin)
  list(JOIN origin ", " origin)
  set(text "set(EMBED_ORIGIN [==[${origin}]==])\n")
  foreach(name HEADER NAMESPACE FUNCTION TYPE FILES)
    string(APPEND text "set(EMBED_${name} [==[${EMBED_${name}}]==])\n")
  endforeach()
  set(index 0)
  foreach(file IN LISTS EMBED_FILES)
    cmake_language(CALL ${EMBED_FIELDS} ${file} fields)
    string(APPEND text "set(EMBED_FIELDS_${index} [==[${fields}]==])\n")
    math(EXPR index "${index} + 1")
  endforeach()
  file(WRITE ${manifest}.tmp "${text}")
  file(COPY_FILE ${manifest}.tmp ${manifest} ONLY_IF_DIFFERENT)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DMANIFEST=${manifest} -DOUTPUT=${output} -P ${CMAKE_CURRENT_FUNCTION_LIST_FILE}
    DEPENDS ${EMBED_FILES} ${manifest} ${CMAKE_CURRENT_FUNCTION_LIST_FILE}
    COMMENT "Embedding ${EMBED_NAMESPACE}::${EMBED_FUNCTION}()"
    VERBATIM)
endfunction()
