"""sft's loss curve: training and held-out loss per step, as a TSV (DVC plots) and a PNG."""

from __future__ import annotations

from typing import Any

from atlas_forge import io


def loss_rows(log_history: list[dict[str, Any]]) -> list[tuple[int, float | None, float | None]]:
    by_step: dict[int, list[float | None]] = {}
    for entry in log_history:
        step = int(entry.get("step", 0))
        if "loss" in entry:
            by_step.setdefault(step, [None, None])[0] = float(entry["loss"])
        if "eval_loss" in entry:
            by_step.setdefault(step, [None, None])[1] = float(entry["eval_loss"])
    return [(s, v[0], v[1]) for s, v in sorted(by_step.items())]


def write_loss_tsv(rows, path: str) -> None:
    def fmt(x):
        return "" if x is None else f"{x:.6f}"

    lines = ["step\tloss\teval_loss"] + [f"{s}\t{fmt(a)}\t{fmt(b)}" for s, a, b in rows]
    io.write_text("\n".join(lines) + "\n", path)


def plot_loss(rows, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train = [(s, a) for s, a, _ in rows if a is not None]
    evals = [(s, b) for s, _, b in rows if b is not None]
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), marker="o", label="held-out loss (assistant tokens)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

