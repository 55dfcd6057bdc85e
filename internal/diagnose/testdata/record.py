#!/usr/bin/env python3
"""Turn a recorded run directory into a fixture (txtar) for TestFixtures.

    python3 record.py RUN_DIR NAME "comment" "want line" ["want line" ...] > NAME.txtar

The run is trimmed to the seconds around its failures (PAD on each side;
the whole run when nothing failed, at most MAX_ROWS requests), the log
events to the first 20 and last 5 of each signature, and the
absolute paths of the log refs are cut to the log's file name, so the
fixture holds real requests, probe samples and log excerpts with their
file:line refs. Runs come from `stampede demo --fault ID -t 15s --out DIR`.
"""
import csv
import io
import json
import os
import sys
from datetime import datetime, timedelta, timezone

PAD = timedelta(seconds=4)
MAX_ROWS = 700


def ts(s):
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac, zone = rest[:rest.index("+")], rest[rest.index("+"):]
        s = head + "." + frac[:6].ljust(6, "0") + zone
    return datetime.fromisoformat(s)


def main():
    run, name, comment, want = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    meta = json.load(open(os.path.join(run, "meta.json")))
    rows = list(csv.reader(open(os.path.join(run, "requests.csv"), newline="")))
    head, rows = rows[0], rows[1:]

    def end(r):
        return datetime.fromtimestamp((int(r[0]) + int(r[5])) / 1e6, timezone.utc)

    fails = [end(r) for r in rows if r[9] != "ok"]
    if fails:
        lo, hi = min(fails) - PAD, max(fails) + PAD
    else:
        lo, hi = end(rows[0]) - PAD, end(rows[-1]) + PAD
    keep = [r for r in rows if lo <= end(r) <= hi]
    if len(keep) > MAX_ROWS and not fails:
        keep = keep[:MAX_ROWS]
        hi = end(keep[-1]) + PAD
    start = max(lo, ts(meta["start"]))
    stop = min(hi, ts(meta["end"]) if meta.get("end") else hi)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(head)
    w.writerows(keep)
    reqs = out.getvalue()

    def lines(fname):
        p = os.path.join(run, fname)
        if not os.path.exists(p):
            return ""
        kept = []
        for line in open(p):
            if not line.strip():
                continue
            o = json.loads(line)
            if lo - PAD <= ts(o["t"]) <= hi + PAD:
                if "ref" in o:
                    path, _, n = o["ref"].rpartition(":")
                    o["ref"] = os.path.basename(path) + ":" + n
                kept.append(json.dumps(o, ensure_ascii=False, separators=(",", ":")))
        if fname == "evidence.jsonl":
            kept = cap(kept)
        return "\n".join(kept) + ("\n" if kept else "")

    def cap(evs):
        # At most the first 20 and the last 5 events of each signature:
        # enough to place them in time, small enough to read.
        by = {}
        for e in evs:
            by.setdefault(json.loads(e).get("signature", ""), []).append(e)
        keep = set()
        for v in by.values():
            keep.update(v[:20] + v[-5:])
        return [e for e in evs if e in keep]

    m = {"run": name, "start": start.isoformat().replace("+00:00", "Z"),
         "end": stop.isoformat().replace("+00:00", "Z"), "load": meta.get("load", {})}
    sys.stdout.write(comment.strip() + "\n")
    sys.stdout.write("-- meta.json --\n" + json.dumps(m, indent=1) + "\n")
    sys.stdout.write("-- requests.csv --\n" + reqs)
    sys.stdout.write("-- timeline.jsonl --\n" + lines("timeline.jsonl"))
    sys.stdout.write("-- evidence.jsonl --\n" + lines("evidence.jsonl"))
    sys.stdout.write("-- want --\n" + "\n".join(want) + "\n")


main()
