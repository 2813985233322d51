"""A local stand-in for MBZUAI-Paris/Darija-SFT-Mixture, in its exact schema (dataset card at the
pinned revision: columns `dataset`, `id`, `messages` (list of {content, role}), `direction`,
`metadata` (struct page_id, page_title, url)), laid out as a Hub dataset repository: a README.md whose
YAML `configs:` block names data/train-*.parquet. datasets.load_dataset resolves a local folder like
that the way it resolves the Hub repository, so the `kind: hf` path runs offline on it.
"""

from __future__ import annotations

from pathlib import Path

README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
dataset_info:
  features:
  - name: dataset
    dtype: string
  - name: id
    dtype: string
  - name: messages
    list:
    - name: content
      dtype: string
    - name: role
      dtype: string
  - name: direction
    dtype: string
  - name: metadata
    struct:
    - name: page_id
      dtype: int64
    - name: page_title
      dtype: string
    - name: url
      dtype: string
license: odc-by
---
# Darija-SFT-Mixture (test fixture, same schema; rows written for atlas-forge)
"""


def _chat(*turns: str) -> list[dict]:
    return [{"content": t, "role": "user" if i % 2 == 0 else "assistant"} for i, t in enumerate(turns)]


def rows() -> list[dict]:
    """Rows of five subsets (`dataset` values of the released mixture: doda, msda, mac, tulu; and
    wikipedia, configs/reference/atlas-chat-table1.yaml's unverified guess for MW-QA); `expected` in
    tests follows from them."""
    out = []
    for i in range(6):
        out.append(
            {
                "dataset": "doda",
                "id": f"doda-{i}",
                "direction": "en_to_dr",
                "messages": _chat(
                    f"ترجم للدارجة: sentence number {i} about the market",
                    f"الجملة رقم {i} على السوق ديال الحومة",
                ),
                "metadata": None,
            }
        )
    for i in range(4):
        out.append(
            {
                "dataset": "msda" if i < 2 else "mac",  # two keys of Table 1's one Sentiment Analysis row
                "id": f"sent-{i}",
                "direction": None,
                "messages": _chat(f"شنو الإحساس ديال هاد التعليق رقم {i}؟ الماكلة كانت زوينة بزاف", "إيجابي"),
                "metadata": None,
            }
        )
    for i in range(3):
        out.append(
            {
                "dataset": "wikipedia",
                "id": f"wiki-{i}",
                "direction": None,
                "messages": _chat(
                    f"عطيني معلومات على المدينة رقم {i}",
                    f"المدينة رقم {i} كاينة فالشمال",
                    "شكرا، و شنو كاين تما؟",
                    "كاين البحر و الجبال و الناس زوينين",
                ),
                "metadata": {
                    "page_id": 100 + i,
                    "page_title": f"مدينة {i}",
                    "url": f"https://ary.wikipedia.org/wiki/{i}",
                },
            }
        )
    for i in range(2):  # a subset an overlay does not select: rejected at ingest with that reason
        out.append(
            {
                "dataset": "tulu",
                "id": f"tulu-{i}",
                "direction": None,
                "messages": _chat(f"سؤال عام رقم {i}", f"جواب عام رقم {i}"),
                "metadata": None,
            }
        )
    return out


def write(root: Path) -> Path:
    """The fixture repository under root; returns its folder (what `name:` points at)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(root) / "Darija-SFT-Mixture"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(README, encoding="utf-8")
    schema = pa.schema(
        [
            ("dataset", pa.string()),
            ("id", pa.string()),
            ("messages", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
            ("direction", pa.string()),
            (
                "metadata",
                pa.struct([("page_id", pa.int64()), ("page_title", pa.string()), ("url", pa.string())]),
            ),
        ]
    )
    table = pa.Table.from_pylist(rows(), schema=schema)
    pq.write_table(table, folder / "data" / "train-00000-of-00001.parquet")
    return folder
