"""Markdown rendering of a ``run_benchmark`` result."""

from __future__ import annotations

__all__ = ["markdown_report"]


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _window(row: dict) -> str:
    if row["model"] == "vitdet":
        return "14, own layout"  # ViTDet-B's config: window 14, global blocks 2/5/8/11
    if row["model"] not in ("ours", "vitdet"):  # a MegaDetector peer
        return "n/a (CNN)"
    return f"{row['window']}" if row["window"] else "global"


def _post_processing(settings: dict) -> str:
    """One line on the test-time settings both models share (they move the inference rows)."""
    cap = settings.get("topk_candidates", 0)
    return f"Both models: test score threshold {settings.get('score_thresh', 0.0)}, " + (
        f"at most {cap} candidates per image into NMS." if cap else "no cap on the candidates into NMS."
    )


def markdown_report(result: dict) -> str:
    """The rows, the ratios, the accuracy guard and the machine, as Markdown."""
    m = result["machine"]
    lines = [
        f"Machine: {m['device_name']} ({m['device']}), {m['threads']} threads, torch {m['torch']}; "
        f"measured matmul peak fp32 {m['matmul_peak_gflops']['fp32']:.0f} GFLOP/s, "
        f"bf16 {m['matmul_peak_gflops']['bf16']:.0f} GFLOP/s.",
        _post_processing(result.get("settings", {})),
        "",
        "| model | mode | precision | window | task | size | batch | median s | ms/image | images/s "
        "| peak MiB | GFLOP | GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if r.get("error"):
            lines.append(
                f"| {r['model']} | {r['mode']} | {r['precision']} | {_window(r)} | {r['task']} | {r['size']} "
                f"| {r['batch']} | {r['error']} | | | | | | |"
            )
            continue
        achieved = r["gflops"] / r["seconds_median"] if r["gflops"] else None
        fraction = 100 * r["fraction_of_peak"] if r["fraction_of_peak"] is not None else None
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['precision']} | {_window(r)} "
            f"| {r['task']} | {r['size']} | {r['batch']} | {r['seconds_median']:.3f} | {r['ms_per_image']:.1f} "
            f"| {r['images_per_second']:.2f} | {_num(r['peak_mem_mb'], '.0f')} | {_num(r['gflops'], '.1f')} "
            f"| {_num(achieved, '.0f')} | {_num(fraction, '.1f')} |"
        )
    at = result["ratios_at"]
    train_batch = at.get("train_batch", at["batch"])
    lines += [
        "",
        f"Ratios at {at['size']} px, batch {at['batch']} (training: batch {train_batch}); `*_vs_vitdet`: "
        "ours / ViTDet-B fp32, lower is better; `*_speedup_*`: higher is better:",
        "",
        "| ratio | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_num(v, '.3f')} |" for k, v in result["ratios"].items() if v is not None]
    if "mdv5a" in at:
        lines += [
            "",
            f"`*_vs_mdv5a`: ours at {at['size']} px against MegaDetector v5a ({at['mdv5a']} long side, "
            "letterboxed 4:3 frame), same batch; task backbone = the network alone; "
            "`images_per_second_*` is higher-is-better.",
        ]
    if result.get("peers"):
        lines += [
            "",
            "MegaDetector peers (random weights, published architecture and input size; MegaDetector's own "
            "speed rating against v5a for reference): "
            + "; ".join(
                f"{name} = {p['architecture']} at {p['image_size']} px, stride {p['stride']} "
                f"(rated {p['megadetector_speed_vs_v5a']}x v5a)"
                for name, p in result["peers"].items()
            )
            + ". `*_vs_<peer>` as for v5a.",
        ]
    if result.get("ratios_vs_vitdet_bf16"):
        lines += ["", "Against ViTDet-B in bf16 autocast:", "", "| ratio | value |", "|---|---|"]
        lines += [f"| {k} | {_num(v, '.3f')} |" for k, v in result["ratios_vs_vitdet_bf16"].items() if v is not None]
    if result.get("accuracy"):
        lines += [
            "",
            "Accuracy guard: neck of each fast mode against fp32 global attention, same weights "
            f"({result['accuracy'][0]['size']} px):",
            "",
            "| mode | cosine mean | cosine min | cosine (flattened) | relative L2 | guard | passed |",
            "|---|---|---|---|---|---|---|",
        ]
        for a in result["accuracy"]:
            passed = "n/a" if a["passed"] is None else ("yes" if a["passed"] else "NO")
            lines.append(
                f"| {a['mode']} | {a['cosine_mean']:.6f} | {a['cosine_min']:.6f} | {a['cosine_flat']:.6f} "
                f"| {a['relative_l2']:.4f} | {a['guard']} | {passed} |"
            )
    return "\n".join(lines)
