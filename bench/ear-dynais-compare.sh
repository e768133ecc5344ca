#!/bin/bash
# ear-dynais-compare.sh EAR_SOURCE_DIR [BUILD_DIR] - builds bench/ear-dynais-compare.c against EAR's DynAIS
# (EAR_SOURCE_DIR/src/library/dynais/avx2, a checkout of github.com/eas4dc/EAR; EPL-2.0, used here only to
# measure) and joule's src/dynais/dynais.c as the release build compiles it (-O3, no -march), in a
# temporary directory, and runs it. Needs an x86-64 CPU with AVX2. See docs/runtime-dynais.md.
set -euo pipefail
ear=${1:?usage: ear-dynais-compare.sh EAR_SOURCE_DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/inc/common/types" "$dir/inc/common/hardware" "$dir/inc/library/dynais/avx2"
cp "$ear/src/library/dynais/dynais.h" "$dir/inc/library/dynais/"
cp "$ear"/src/library/dynais/avx2/dynais{,_core}.{c,h} "$dir/inc/library/dynais/avx2/"
# the two EAR headers DynAIS needs, reduced to what it uses
printf '#pragma once\n#include <stdint.h>\ntypedef unsigned int uint;\ntypedef unsigned long ulong;\n' \
        >"$dir/inc/common/types/generic.h"
printf '#pragma once\ntypedef struct { int unused; } topology_t;\n' >"$dir/inc/common/hardware/topology.h"
cd "$dir"
gcc -O2 -mavx2 -Iinc -c inc/library/dynais/avx2/dynais.c -o ear.o
gcc -O2 -mavx2 -Iinc -c inc/library/dynais/avx2/dynais_core.c -o ear-core0.o
gcc -O2 -mavx2 -Iinc -DDYN_CORE_N -c inc/library/dynais/avx2/dynais_core.c -o ear-coren.o
gcc -O3 -std=c17 -c "$src/src/dynais/dynais.c" -o joule.o
gcc -O2 -Iinc -I"$src/src/dynais" "$src/bench/ear-dynais-compare.c" ear.o ear-core0.o ear-coren.o joule.o -o compare
./compare
