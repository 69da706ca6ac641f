#!/usr/bin/env bash
# Training text for the embedded default model: the King James Version of the Bible (1611; public
# domain), from Debian's package bible-kjv-text, dumped with the package's own reader `bible`.
# Output: data/kjv/train.txt (first 95% of verses) and data/kjv/val.txt (last 5%: the end of the
# New Testament). One verse per line, a blank line between chapters, verse references dropped.
# Deterministic: the same package version gives byte-identical files (sha256 printed at the end).
set -euo pipefail
out="${1:-$(dirname "$0")/../data/kjv}"
# Nothing is installed from here: say what is missing and how to get it.
if ! command -v bible >/dev/null 2>&1; then
  echo "prepare-data: the 'bible' program is needed: on Debian/Ubuntu, apt-get install bible-kjv bible-kjv-text" >&2
  echo "prepare-data: (or train on any text file instead: grok train --config ... --data FILE)" >&2
  exit 1
fi
mkdir -p "$out"
raw="$out/kjv-raw.txt"
# -f turns pretty-printing off: one verse per line, prefixed by its reference ("Ge1:1 In the ...").
bible -f 'Gen1:1-Rev22:21' > "$raw"
n=$(wc -l < "$raw")
if [ "$n" -ne 31102 ]; then
  echo "prepare-data: expected 31102 verses from 'bible', got $n" >&2
  exit 1
fi
split=$(( n * 95 / 100 ))
# Drop the reference; a blank line where the chapter changes (reference without ':verse').
awk -v cut="$split" -v train="$out/train.txt" -v val="$out/val.txt" '
  { ref = $1; chap = ref; sub(/:.*/, "", chap)
    text = substr($0, length(ref) + 2)
    dest = (NR <= cut) ? train : val
    if (NR > 1 && chap != prev && NR != cut + 1) print "" > dest
    print text > dest
    prev = chap }' "$raw"
rm -f "$raw"
wc -c "$out/train.txt" "$out/val.txt" >&2
sha256sum "$out/train.txt" "$out/val.txt" >&2
