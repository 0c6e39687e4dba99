# End-to-end: convert llama2.c's stories260K with `ember convert-llama2c`, run it
# greedily for 256 steps with the prompt "Once upon a time", and compare stdout
# byte for byte with what the llama2.c reference program prints.
# Inputs: EMBER (the CLI), SHARED (../shared), WORK (a scratch folder).
set(ck "${SHARED}/models/stories260K.bin")
set(tk "${SHARED}/models/tok512.bin")
set(expected "${SHARED}/testdata/stories260K-greedy-once-upon-a-time.txt")
if(NOT EXISTS "${ck}" OR NOT EXISTS "${tk}" OR NOT EXISTS "${expected}")
  message("SKIP: ${SHARED} is absent (stories260K.bin, tok512.bin and the expected text come from ../shared)")
  cmake_language(EXIT 77)
endif()
set(gguf "${WORK}/stories260K.gguf")
execute_process(COMMAND "${EMBER}" convert-llama2c "${ck}" "${tk}" "${gguf}" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "convert-llama2c failed (${rc}): ${err}")
endif()
foreach(threads 1 2)
  execute_process(COMMAND "${EMBER}" run -m "${gguf}" -p "Once upon a time" --steps 256 --temp 0 -t ${threads}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ember run failed (${rc}): ${err}")
  endif()
  file(READ "${expected}" want)
  if(NOT out STREQUAL want)
    file(WRITE "${WORK}/stories260K-got-${threads}.txt" "${out}")
    message(FATAL_ERROR "greedy text differs from llama2.c's with ${threads} thread(s)\n--- expected\n${want}\n--- got\n${out}")
  endif()
  message("greedy text matches llama2.c exactly with ${threads} thread(s): ${err}")
endforeach()
