#!/bin/sh
# run.sh SCENARIO: the k6 scenarios with the vegeta CLI against `make stack`
# (install: go install github.com/tsenart/vegeta/v12@v12.12.0).
#   steady    zipf.txt at RATE (150/s) for DURATION (60s): no 429, no 5xx
#   abuser    abuser.txt at 200/s (20 x its 10/s) beside uniform.txt at RATE (100/s):
#             the uniform tenants get no 429
#   burst     uniform.txt at RATE (100/s) 15s, 10 x RATE 5s, RATE 15s: no 5xx
#   failover  uniform.txt at RATE (100/s) for DURATION (60s); stall or kill the
#             primary meanwhile (make stack prints how): no 5xx
# Each attack must keep P99 under 50 ms (MAX_P99_MS) and answer no 5xx;
# the exit status is 1 otherwise. GW1 and GW2 replace the stack's gateways
# (http://127.0.0.1:18080, :18082). Results in OUT (.stack/vegeta).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
VEGETA=${VEGETA:-$(command -v vegeta || echo "$(go env GOPATH)/bin/vegeta")}
OUT=${OUT:-.stack/vegeta}
GW1=${GW1:-http://127.0.0.1:18080}
GW2=${GW2:-http://127.0.0.1:18082}
MAX_P99_MS=${MAX_P99_MS:-50}
[ -x "$VEGETA" ] || { echo "vegeta not found: go install github.com/tsenart/vegeta/v12@v12.12.0"; exit 2; }
mkdir -p "$OUT"
failed=0

# targets FILE: the file with the gateways replaced, in OUT.
targets() {
	sed -e "s|http://127.0.0.1:18080|$GW1|" -e "s|http://127.0.0.1:18082|$GW2|" "$here/$1" >"$OUT/$1"
	echo "$OUT/$1"
}

# attack NAME FILE RATE DURATION: one attack, its results in OUT/NAME.bin.
attack() {
	"$VEGETA" attack -name "$1" -targets "$(targets "$2")" -rate "$3/s" -duration "$4" >"$OUT/$1.bin"
}

# check NAME [no429]: print the report; fail on a P99 past MAX_P99_MS, a
# 5xx, or (no429) a 429.
check() {
	echo "== $1"
	"$VEGETA" report "$OUT/$1.bin"
	p99=$("$VEGETA" report -type=json "$OUT/$1.bin" | sed -n 's/.*"99th":\([0-9]*\).*/\1/p')
	codes=$("$VEGETA" report -type=json "$OUT/$1.bin" | sed -n 's/.*"status_codes":{\([^}]*\)}.*/\1/p')
	if [ $((p99 / 1000000)) -ge "$MAX_P99_MS" ]; then echo "FAIL $1: P99 $((p99 / 1000)) us >= $MAX_P99_MS ms"; failed=1; fi
	if echo "$codes" | grep -q '"5[0-9][0-9]"'; then echo "FAIL $1: 5xx answers: $codes"; failed=1; fi
	if [ "${2:-}" = no429 ] && echo "$codes" | grep -q '"429"'; then echo "FAIL $1: 429 answers: $codes"; failed=1; fi
}

RATE_DEFAULT=100
case "${1:-}" in
steady)
	attack steady zipf.txt "${RATE:-150}" "${DURATION:-60s}"; check steady no429 ;;
abuser)
	attack abuser abuser.txt "${ABUSER_RATE:-200}" "${DURATION:-60s}" &
	attack normal uniform.txt "${RATE:-$RATE_DEFAULT}" "${DURATION:-60s}"
	wait
	check abuser; check normal no429 ;;
burst)
	r=${RATE:-$RATE_DEFAULT}
	attack calm1 uniform.txt "$r" 15s; attack burst uniform.txt $((r * ${BURST:-10})) 5s; attack calm2 uniform.txt "$r" 15s
	check calm1; check burst; check calm2 ;;
failover)
	attack failover uniform.txt "${RATE:-$RATE_DEFAULT}" "${DURATION:-60s}"; check failover ;;
*)
	echo "usage: $0 steady|abuser|burst|failover"; exit 2 ;;
esac
exit $failed
