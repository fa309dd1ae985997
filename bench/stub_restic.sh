#!/bin/sh
# A stand-in for restic (point JABALI_RESTIC at a copy of it) that does no work, for measuring jabali's own
# bookkeeping (bench/run_due_bookkeeping.py). POSIX sh, not Python: it is started thousands of times, and a
# dash start costs ~1 ms where a Python one costs ~20 ms.
#
#   version                  -> "restic 0.14.0 ..."
#   backup --json ...        -> consumes stdin when --stdin is given; one summary JSON line with a unique id
#   key list --json, snapshots --json -> []
#   cat config               -> {}
#   anything else (init, forget, prune, key add/remove, unlock) -> exit 0
#
# Each call appends its subcommand to stub-calls.log next to this file (restic gets a clean environment from
# jabali, so the log location cannot come from an environment variable).

sub=
stdin=
for a in "$@"; do
    case "$a" in
        --stdin) stdin=1 ;;
        version|backup|forget|prune|cat|key|init|snapshots|unlock|check) [ -z "$sub" ] && sub=$a ;;
    esac
done
echo "$sub" >> "${0%/*}/stub-calls.log"
case "$sub" in
    version)
        echo "restic 0.14.0 compiled with go1.19.8 on linux/amd64" ;;
    backup)
        [ -n "$stdin" ] && cat > /dev/null
        # unique per call: this process id and the uptime in centiseconds (no extra process needed)
        read -r up _ < /proc/uptime
        printf '{"message_type":"summary","snapshot_id":"%032x%032x","total_bytes_processed":1,"total_files_processed":1}\n' \
            "$$" "${up%.*}${up#*.}" ;;
    snapshots|key)
        case " $* " in *" --json "*) echo "[]" ;; esac ;;
    cat)
        echo "{}" ;;
esac
exit 0
