# warren_target_warnings(<target>): the project's warning set on one target.
function(warren_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(WARREN_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
