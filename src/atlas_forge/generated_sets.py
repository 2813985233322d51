"""The mixture card's per-set counts for the sets built from raw text (generate phase: generated
QA/social-media rows, stories, identity rows): rows in, generated, rejected by phase and reason, mixed.

`stats` are the generate phase's --stats files; rejects and mixed rows come from the card itself
(its per-phase reject counts and its train/test rows), so the numbers agree with the rest of the card.
"""

from __future__ import annotations


def sets_section(card: dict, stats: list[dict]) -> dict:
    out = {}
    for s in sorted(stats, key=lambda s: s["source"]):
        src = s["source"]
        rejected = {
            phase: dict(by_source.get(src, {}))
            for phase, by_source in card["rejects"].items()
            if by_source.get(src)
        }
        per = card["sources"].get(src, {})
        out[src] = {
            "set": s["set"],
            "rows_in": s["rows_in"],
            "generated": s["generated"],
            "rows_out": s["rows_out"],
            "rejected": rejected,
            "mixed": {
                "train": per.get("train_rows", 0),
                "test": per.get("test_rows", 0),
                "total": per.get("train_rows", 0) + per.get("test_rows", 0),
            },
            **({"shots": s["shots"]} if "shots" in s else {}),
            **({"types": s["types"]} if "types" in s else {}),
        }
    return out


def sets_markdown(sets: dict) -> list[str]:
    lines = [
        "",
        "## Sets built from raw text (generate phase)",
        "",
        "rows in: documents, posts, stories or pairs read; generated: checked generations, story "
        "segments or identity copies; rows out: conversations after assembly; mixed: rows in the "
        "mixture (train + test).",
        "",
        "| source | set | rows in | generated | rows out | rejected (phase: reason rows) | mixed |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for src, s in sets.items():
        rej = (
            "; ".join(
                # a reason that names its phase already ("generate: not generated") is shown as is
                f"{reason if reason.startswith(phase + ':') else f'{phase}: {reason}'} {n}"
                for phase, reasons in s["rejected"].items()
                for reason, n in reasons.items()
            )
            or "-"
        )
        lines.append(
            f"| {src} | {s['set']} | {s['rows_in']} | {s['generated']} | {s['rows_out']} | "
            f"{rej.replace('|', '/')} | {s['mixed']['total']} |"
        )
    return lines
