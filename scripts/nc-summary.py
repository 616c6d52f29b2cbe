#!/usr/bin/env python3
"""Mean / min / max over seeds, per epoch, of a study's tracked log lines (stdlib only).

usage: nc-summary.py STUDY_DIR   (run directories named l2-s<seed>, nol2-s<seed>)
"""
import glob
import json
import os
import re
import sys

def nc_measures(entry):
    """The NC measures of a tracked log line under the report's names (nc1, nc2_equinorm_means,
    ...): read from the line itself, so the list of measures is ncood's alone."""
    out = {}
    for k, v in entry["track"]["nc"].items():
        if isinstance(v, dict):
            out.update({f"{k}_{part}": x for part, x in v.items()})
        elif k.startswith("nc") and (v is None or isinstance(v, (int, float))):
            out[k] = v  # NC1 is None where undefined; nc1_undefined (why) is text
    return out


def fields(entry):
    """(column, getter) pairs for a run's log lines, from its first line."""
    return (
        [("test_acc", lambda e: e["test_acc"])]
        + [(m, lambda e, m=m: nc_measures(e)[m]) for m in nc_measures(entry)]
        + [
            ("GDA AUROC", lambda e: e["track"]["gda_auroc"]),
            ("top-N FP", lambda e: e["track"]["topn_false_positives"]),
        ]
    )


def logs(root, group):
    out = []
    for d in sorted(glob.glob(os.path.join(root, f"{group}-s*"))):
        if not re.fullmatch(rf"{group}-s\d+", os.path.basename(d)):
            continue
        with open(os.path.join(d, "log.jsonl")) as f:
            out.append([json.loads(line) for line in f if line.strip()])
    return out


def main(root):
    for group in ("l2", "nol2"):
        runs = logs(root, group)
        if not runs:
            continue
        print(f"\n## {group}: {len(runs)} seeds, mean [min, max]\n")
        columns = fields(runs[0][0])
        print("| epoch | " + " | ".join(name for name, _ in columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for k in range(min(len(r) for r in runs)):
            cells = []
            for _, get in columns:
                # NC1 is null where it is undefined (class means spanning < C-1 dimensions).
                v = [x for x in (get(r[k]) for r in runs) if x is not None]
                cells.append(
                    f"{sum(v) / len(v):.4g} [{min(v):.4g}, {max(v):.4g}]" if v else "undefined"
                )
            print(f"| {runs[0][k]['epoch']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
