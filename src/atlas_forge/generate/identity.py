"""Identity rows (paper App. C.1): a few hand-written question/answer pairs about who the assistant is,
each repeated `identity_repeat` times (the paper: 13 pairs x 10 = 130 rows).

Input: the ingested rows of an `identity` source (chat: one user and one assistant turn each). Every
copy gets its own id (the pair's id and the copy number) but keeps the pair's id in meta.origin_ids,
so all copies of a pair lie on one side of train/test. Copies are identical on purpose: the identity
source's `filter_steps` leave out the dedup steps (params.yaml). A pair that is not exactly one user
and one assistant turn is rejected with that reason.
"""

from __future__ import annotations

import polars as pl

from atlas_forge import records

PHASE = "generate"


def repeat_table(df: pl.DataFrame, repeat: int):
    out, reasons = [], {}
    for i, (rid, source, msgs, lang, meta) in enumerate(
        df.select("id", "source", "messages", "lang", "meta").rows()
    ):
        roles = [m["role"] for m in msgs or []]
        if roles != ["user", "assistant"]:
            reasons[i] = f"identity: not one question and one answer (turns {roles})"
            continue
        for k in range(repeat):
            m = {
                **records.load_meta(meta),
                "origin_ids": [rid],
                "copy": k,
                "shots": "zero",
                "template": "identity",
            }
            out.append(records.make_record(source, f"{rid}#{k}", "identity", msgs, lang or "ary_Arab", m))
    table = records.from_rows(out)
    mask = pl.Series([i in reasons for i in range(df.height)], dtype=pl.Boolean)
    rejected = records.reject(df.filter(mask), "", PHASE).with_columns(
        pl.Series("reason", [reasons[i] for i in sorted(reasons)], dtype=pl.String)
    )
    if table.height != (df.height - rejected.height) * repeat:
        raise RuntimeError("identity: rows out != pairs kept x repeat")
    return (
        table,
        rejected,
        {
            "rows_in": df.height,
            "generated": table.height,
            "pairs": df.height - len(reasons),
            "repeat": repeat,
            "rejected": len(reasons),
            "rows_out": table.height,
            "reasons": {"identity: not one question and one answer": len(reasons)} if reasons else {},
        },
    )
