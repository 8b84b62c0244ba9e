# cputime.sh is sourced by bench/cpupairs.sh and bench/floor.sh. It defines
# cpu_seconds WORK NAME CMD INPUT, which runs CMD (its {out} replaced by
# WORK/cpu-out-NAME, a directory kept between runs whose *.log files are
# emptied with truncate first: a daemon's steady state; and no dirty pages
# left by the command before, written out with sync) with INPUT on
# stdin and prints the user+sys seconds of CMD alone, from /usr/bin/time's
# getrusage, so the harness costs nothing measured. On failure it prints
# CMD's last lines of stderr and exits 1.
cpu_seconds() {
  local work=$1 name=$2 cmd=$3 in=$4
  local out=$work/cpu-out-$name
  mkdir -p "$out"
  find "$out" -type f -name '*.log' -exec truncate -s 0 {} +
  sync # start with no dirty pages: else the runs after a big writer pay its writeback
  cmd=${cmd//\{out\}/$out}
  /usr/bin/time -f '%U %S' -o "$work/cpu-time-$name" bash -c "exec $cmd" <"$in" >/dev/null 2>"$work/cpu-stderr-$name" ||
    { echo "$name failed: $(tail -3 "$work/cpu-stderr-$name")" >&2; exit 1; }
  awk '{ printf "%.3f", $1 + $2 }' "$work/cpu-time-$name"
}
