# The per-ISA kernel objects must define no weak (COMDAT) symbols shared with
# another ISA's object: the linker keeps one copy of each, and a copy compiled
# with AVX-512 flags could then be run by the baseline table on a CPU without
# AVX-512. Template instantiations over the object's own xsimd architecture
# (unoptimised builds keep some) are distinct symbols per ISA and allowed.
# Inputs: NM (the nm tool), OBJECTS (;-separated object files of ember_core).
set(bad "")
foreach(obj IN LISTS OBJECTS)
  if(obj MATCHES "kernels_(sse2|avx2|avx512bf16|avx512|amx|neon)")
    set(own "${CMAKE_MATCH_1}")
    execute_process(COMMAND "${NM}" -C "${obj}" OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "nm failed on ${obj}")
    endif()
    string(REGEX MATCHALL "[^\n]* [WVu] [^\n]*" weak "${syms}")
    foreach(w IN LISTS weak)
      if(NOT w MATCHES "DW.ref.__gxx_personality_v0" AND NOT w MATCHES "xsimd::${own}")
        string(APPEND bad "${obj}: ${w}\n")
      endif()
    endforeach()
    math(EXPR checked "${checked}+1")
  endif()
endforeach()
if(NOT checked)
  message(FATAL_ERROR "no per-ISA kernel objects found")
endif()
if(bad)
  message(FATAL_ERROR "weak symbols in per-ISA kernel objects (move them into the ISA namespace):\n${bad}")
endif()
message("${checked} per-ISA kernel objects define no weak symbols")
