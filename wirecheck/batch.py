"""Several commands in one round trip (Transport.run_batch): the script sent to the target and the
reading of what it prints.

The script has two branches that print the same records.  Where the target has Python 3 (PYTHONS),
the runner (wirecheck/batch_runner.py, sent as its source text) starts every command at once, reads
their output through pipes and ends each at its time limit: one interpreter for the whole batch, so
a command costs about what it costs run alone, and a batch whose reader goes away ends what it
started.  Without Python, a POSIX sh branch does the same with a background subshell and coreutils'
``timeout`` per command, the outputs waiting in a private temporary directory that is removed on
the way out (there the commands of a killed batch run on to their own limits).  The commands are
the script's positional parameters, written once for both branches.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from pathlib import Path

BATCH_MARK = "@@wc-batch"
STDERR_MARK = "@@wc-batch-stderr"
END_MARK = "@@wc-batch-end"

#: the Pythons the batch runs under, the first there is (fixed paths: a login's PATH may lead to a
#: virtualenv or a shim that changes the environment the commands would see); none: the sh branch
PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/usr/libexec/platform-python")

#: the runner's source without its module text, sent with ``python3 -c`` (it never lands on the
#: target's disk)
RUNNER = (Path(__file__).with_name("batch_runner.py")).read_text(encoding="utf-8").split('"""', 2)[2].lstrip()


def limit_seconds(timeout: float) -> int:
    """The whole seconds coreutils' ``timeout`` is given for a time limit: rounded up, plus a grace
    second (transport.bounded; the sh branch of the batch)."""
    return max(1, int(timeout + 0.999) + 1)


#: the sh branch: commands as positional parameters (command, timeout, whole-second limit, root)
SH_BRANCH = f"""d=$(mktemp -d 2>/dev/null) || exit 97
trap 'rm -rf -- "$d"' EXIT
trap 'exit 143' INT TERM HUP
s=$(date +%s%N)
tm=; command -v timeout >/dev/null 2>&1 && tm=1
n=0
while [ $# -ge 4 ]; do
  if [ -n "$tm" ]; then
    {{ timeout -k 2 "$3" /bin/sh -c "$1" </dev/null >"$d/$n.o" 2>"$d/$n.e"; echo "$? $(date +%s%N)" >"$d/$n.r"; }} &
  else
    {{ /bin/sh -c "$1" </dev/null >"$d/$n.o" 2>"$d/$n.e"; echo "$? $(date +%s%N)" >"$d/$n.r"; }} &
  fi
  n=$((n+1)); shift 4
done
wait
i=0
while [ "$i" -lt "$n" ]; do
  r=; {{ read -r r <"$d/$i.r"; }} 2>/dev/null
  case $r in
    *' '*) printf '\\n{BATCH_MARK} %s %s %s %s\\n' "$i" "${{r%% *}}" "$s" "${{r#* }}"
           base64 <"$d/$i.o" || exit 98; echo {STDERR_MARK}; base64 <"$d/$i.e" || exit 98;;
  esac
  i=$((i+1))
done
echo {END_MARK}
"""


def batch_script(commands: list[tuple[str, float, bool]] | list[tuple[str, float]]) -> str:
    """A POSIX sh script running each (command line, timeout in seconds[, whether it runs under
    ``sudo -n`` as root while the login user is not root; default no]) at once, each with stdin
    from /dev/null and ended at its time limit; then, per command, a record ``@@wc-batch I RC START
    END`` (times in ns), its stdout in base64, a line ``@@wc-batch-stderr``, its stderr in base64;
    ``@@wc-batch-end`` last.  python3 runs them where the target has it, else the shell itself."""
    args = " ".join(f"{shlex.quote(c)} {float(t)!r} {limit_seconds(t)} {int(bool(root and root[0]))}"
                    for c, t, *root in commands)
    runner = shlex.quote(RUNNER)
    return (f"set -- {args}\n"
            f"for py in {' '.join(shlex.quote(p) for p in PYTHONS)}; do\n"
            f"  [ -x \"$py\" ] && exec \"$py\" -I -S -c {runner} \"${{LC_CTYPE+x$LC_CTYPE}}\" \"$@\"\n"
            "done\n" + SH_BRANCH)


def parse_batch(text: str, count: int) -> dict[int, tuple[int, str, str, float | None]]:
    """batch_script's output -> {index: (rc, stdout, stderr, seconds or None)}; {} unless it ran to
    its end. An entry whose lines do not parse is left out."""
    lines = text.split("\n")
    if END_MARK not in lines:
        return {}
    out: dict[int, tuple[int, str, str, float | None]] = {}
    n = 0
    while n < len(lines):
        fields = lines[n].split()
        n += 1
        if len(fields) < 3 or fields[0] != BATCH_MARK:
            continue
        j = n
        while j < len(lines) and not lines[j].startswith("@@"):
            j += 1
        if j >= len(lines) or lines[j] != STDERR_MARK:
            continue
        k = j + 1
        while k < len(lines) and not lines[k].startswith("@@"):
            k += 1
        if k >= len(lines):
            continue
        try:
            i, rc = int(fields[1]), int(fields[2])
            stdout = base64.b64decode("".join(x.strip() for x in lines[n:j]), validate=True)
            stderr = base64.b64decode("".join(x.strip() for x in lines[j + 1:k]), validate=True)
        except (ValueError, binascii.Error):
            continue
        elapsed = None
        if len(fields) >= 5 and fields[3].isdigit() and fields[4].isdigit():
            elapsed = (int(fields[4]) - int(fields[3])) / 1e9
        if 0 <= i < count:
            out[i] = (rc, stdout.decode("utf-8", errors="replace"), stderr.decode("utf-8", errors="replace"),
                      elapsed)
        n = k
    return out
