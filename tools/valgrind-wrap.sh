#!/bin/bash
# valgrind-wrap.sh TEST [ARGS...] - meson's --wrapper for the valgrind run of tools/test.sh.
# A test that is a compiled program runs under valgrind directly. A test that is a wrapper script
# (tests/ns-run.sh, tests/with-munge.sh, tests/with-postgres.sh, ...) is not itself checked — valgrind
# would be checking bash — but is handed the valgrind command in JOULE_TEST_WRAPPER, which those scripts
# put in front of the program they finally run.
vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
if [ "$(head -c 2 "$1" 2>/dev/null)" = "#!" ]; then
        JOULE_TEST_WRAPPER=$vg exec "$@"
fi
exec $vg "$@"
