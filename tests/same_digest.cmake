# Runs every program in PROGRAMS (a ;-list) and fails unless all that ran
# print the same "digest" line (builds of one test at other dispatch levels
# or vector widths). A program that exits 77 (its CPU level is missing) is
# left out.
set(first "")
foreach(program IN LISTS PROGRAMS)
  execute_process(COMMAND ${program} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(rc EQUAL 77)
    message(STATUS "${program}: skipped")
    continue()
  endif()
  string(REGEX MATCH "digest [0-9a-f]+" line "${out}")
  if(NOT rc EQUAL 0 OR line STREQUAL "")
    message(FATAL_ERROR "${program} failed (exit ${rc})")
  endif()
  message(STATUS "${program}: ${line}")
  if(first STREQUAL "")
    set(first "${line}")
  elseif(NOT line STREQUAL first)
    message(FATAL_ERROR "outputs differ: ${first} vs ${line} from ${program}")
  endif()
endforeach()
