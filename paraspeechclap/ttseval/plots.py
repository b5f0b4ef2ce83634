"""The report's plots (matplotlib, Agg, PNG): per-score intervals, per-attribute accuracy, score distributions,
pairwise win rates and the robustness set. Each function returns a figure; :mod:`.report` saves and closes it."""
from __future__ import annotations

import numpy as np

from .summary import SCORES

__all__ = ["plot_scores", "plot_attributes", "plot_distributions", "plot_wins", "plot_robustness"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_scores(view: dict, title: str):
    """One panel per score: each system's mean and interval, best first."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(SCORES), figsize=(4.2 * len(SCORES), 0.45 * len(
        next(iter(view["scores"].values()))["systems"]) + 1.6), squeeze=False)
    for ax, score in zip(axes[0], SCORES):
        block = view["scores"][score]
        order = [s for s in block["ranking"] if block["systems"][s]["mean"] is not None][::-1]
        means = [block["systems"][s]["mean"] for s in order]
        lo = [block["systems"][s]["mean"] - (block["systems"][s]["lo"] or block["systems"][s]["mean"]) for s in order]
        hi = [(block["systems"][s]["hi"] or block["systems"][s]["mean"]) - block["systems"][s]["mean"] for s in order]
        ax.errorbar(means, range(len(order)), xerr=[lo, hi], fmt="o", capsize=4)
        ax.set_yticks(range(len(order)), [f"{s} (#{block['ranking'][s]['rank']})" for s in order])
        ax.set_title(score)
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_attributes(view: dict, title: str):
    """Per attribute, each system's accuracy with its interval."""
    plt = _pyplot()
    attrs = sorted(view["attributes"])
    systems = list(next(iter(view["attributes"].values())).keys()) if attrs else []
    figure, ax = plt.subplots(figsize=(min(16.0, max(5.0, 0.3 * len(attrs) * max(1, len(systems)) + 2.5)), 4.0))
    width = 0.8 / max(1, len(systems))
    for k, system in enumerate(systems):
        rows = [view["attributes"][a][system]["accuracy"] for a in attrs]
        mean = np.array([r["mean"] if r["mean"] is not None else np.nan for r in rows])
        err = np.array([[m - (r["lo"] if r["lo"] is not None else m), (r["hi"] if r["hi"] is not None else m) - m]
                        for m, r in zip(mean, rows)]).T
        ax.bar(np.arange(len(attrs)) + k * width, mean, width, yerr=err, capsize=2, label=system)
    ax.set_xticks(np.arange(len(attrs)) + 0.4 - width / 2, attrs)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("classified as intended")
    ax.legend(fontsize="small", ncol=max(1, len(systems) // 3))
    ax.set_title(title)
    figure.tight_layout()
    return figure


def plot_distributions(values: dict[str, np.ndarray], score: str):
    """Box plots of one score's per-clip values, per system."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(max(4.0, 1.0 * len(values) + 2), 3.6))
    names = list(values)
    ax.boxplot([v[np.isfinite(v)] for v in values.values()], showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    ax.set_ylabel(score)
    ax.set_title(f"per-clip {score}")
    figure.tight_layout()
    return figure


def plot_wins(block: dict, score: str):
    """Win rate of the row system over the column system (prompts where its clip scores higher; ties half)."""
    plt = _pyplot()
    names = list(block["ranking"])
    grid = np.full((len(names), len(names)), np.nan)
    for pair in block["pairs"]:
        if pair["win_rate"] is None:
            continue
        i, j = names.index(pair["a"]), names.index(pair["b"])
        grid[i, j], grid[j, i] = pair["win_rate"], 1 - pair["win_rate"]
    figure, ax = plt.subplots(figsize=(0.7 * len(names) + 3, 0.6 * len(names) + 2))
    image = ax.imshow(grid, cmap="RdBu", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="win rate (row over column)")
    ax.set_title(f"pairwise win rates: {score}")
    figure.tight_layout()
    return figure


def plot_robustness(robustness: dict):
    """Share of perturbed correct renderings that raise each score, per perturbation."""
    plt = _pyplot()
    names = list(robustness["perturbations"])
    figure, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 3.8))
    width = 0.8 / len(SCORES)
    for k, score in enumerate(SCORES):
        shares = [robustness["perturbations"][n][score].get("raised_share", np.nan) for n in names]
        ax.bar(np.arange(len(names)) + k * width, shares, width, label=score)
    ax.axhline(0.05, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=30, ha="right")
    ax.set_ylabel(f"share raised (> {robustness['margin_sd']} SD)")
    ax.legend(fontsize="small")
    ax.set_title(f"robustness: perturbed clips of {robustness['reference']}")
    figure.tight_layout()
    return figure
