# warren_embed_files(<target> <function> <file>...): compiles the files into <target>
# as `std::span<const warren::observer::asset> <function>()` (warren/observer/asset.hpp),
# each named by its file name. Regenerated when a file changes, so a page is served from
# the binary and nothing is read or fetched at run time.
set(WARREN_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/warren_embed_run.cmake)

function(warren_embed_files target function)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${function}.cpp)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DFUNCTION=${function} "-DFILES=${ARGN}" -P ${WARREN_EMBED_SCRIPT}
    DEPENDS ${ARGN} ${WARREN_EMBED_SCRIPT}
    COMMENT "Embedding ${function}: ${ARGN}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()
