# An example trained EPOCHS epochs straight, and 1 epoch + --save + --resume to EPOCHS,
# must write JSON summaries with equal results: everything but timings, the epoch lists and
# the reset count included (the resumed run's cover the epochs before the resume too).
#   cmake -DEXE=... -DDATA=... -DWORK=... -DEPOCHS=2 -DFLAGS="--train-limit;8;..." -P resume_equal.cmake
# FIRST replaces the first run's "--epochs;1", e.g. "--epochs;2;--stop-after;1" (an interrupted run).
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
function(run_example log)
  execute_process(COMMAND "${EXE}" --data "${DATA}" --quiet ${FLAGS} ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_FILE "${WORK}/${log}.log" ERROR_FILE "${WORK}/${log}.log")
  if(NOT rc EQUAL 0)
    file(READ "${WORK}/${log}.log" out)
    message(FATAL_ERROR "${EXE} ${ARGN} failed (${rc}):\n${out}")
  endif()
endfunction()
run_example(straight --epochs ${EPOCHS} --json "${WORK}/straight.json")
if(NOT DEFINED FIRST)
  set(FIRST --epochs 1)  # a shorter run, extended by --resume
endif()
run_example(first ${FIRST} --save "${WORK}/run.ckpt")
run_example(resumed --epochs ${EPOCHS} --resume "${WORK}/run.ckpt" --json "${WORK}/resumed.json")
file(READ "${WORK}/straight.json" a)
file(READ "${WORK}/resumed.json" b)
string(JSON n LENGTH "${a}")
math(EXPR last "${n} - 1")
set(compared 0)
foreach(i RANGE ${last})
  string(JSON key MEMBER "${a}" ${i})
  if(key MATCHES "seconds|^resumed_after_epoch$")
    continue()  # timings (this process's only); where the resume happened
  endif()
  string(JSON va GET "${a}" "${key}")
  string(JSON vb GET "${b}" "${key}")
  if(NOT va STREQUAL vb)
    message(FATAL_ERROR "${key}: straight ${va}, resumed ${vb}")
  endif()
  math(EXPR compared "${compared} + 1")
endforeach()
string(JSON loss GET "${a}" test_loss)
message(STATUS "resume equal: ${compared} fields equal (test_loss ${loss})")
