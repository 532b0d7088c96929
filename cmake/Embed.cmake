# chainctl_embed(TARGET_SOURCE_VAR SYMBOL FILE): generates a .cc that defines
#   extern const std::string_view SYMBOL;  holding FILE's bytes,
# regenerated whenever FILE changes.
set(CHAINCTL_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/EmbedFile.cmake)

function(chainctl_embed out_var symbol file)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/embedded_${symbol}.cc)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DIN=${file} -DOUT=${out} -DSYMBOL=${symbol}
            -P ${CHAINCTL_EMBED_SCRIPT}
    DEPENDS ${file} ${CHAINCTL_EMBED_SCRIPT}
    COMMENT "Embedding ${file}")
  set(${out_var} ${${out_var}} ${out} PARENT_SCOPE)
endfunction()
