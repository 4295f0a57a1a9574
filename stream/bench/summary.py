"""What a bench run found, as plain data: one row per (source resolution, variant),
each capacity also as a share of the decode ceiling measured on the same sources
in the same run, the ratios per preset and source, and the notes that explain
them (stream.bench.report renders all of it)."""

from __future__ import annotations

from typing import Any

CEILING = "decode_ceiling"


def row(variant, source: str, search, at_load: dict[str, Any] | None, load: int | None,
        cores: int) -> dict[str, Any]:
    """One variant's result on one source resolution."""
    probes = [search.probes[n] for n in sorted(search.probes)]
    extra = [] if at_load is None or any(p is at_load for p in probes) else [at_load]
    judged = same_aspect(source, variant.frame_size)
    if at_load and not judged:
        at_load = {**at_load, "accuracy": None}
    return {
        "name": variant.name, "preset": variant.preset, "method": variant.method,
        "source": source, "trained": variant.trained, "model_file": variant.model_file,
        "skip_mode": variant.skip_mode, "budget": variant.budget,
        "frame_size": list(variant.frame_size), "gflops_full": variant.gflops_full,
        "val_accuracy_training": variant.val_accuracy,
        "capacity": search.streams, "capacity_upper": search.upper,
        "capacity_exact": search.exact, "load": load, "at_load": at_load or {},
        "accuracy_judged": judged,
        "limit": _limit(search, cores), "probes": probes + extra,
    }


def same_aspect(source: str, frame_size) -> bool:
    """Does a WxH source have the model frame's (H, W) aspect? Only then does the
    live path's fit (aspect kept, letterboxed) show the model the scene it was
    rendered as; a square scene stretched to 16:9 comes back squashed."""
    width, height = (int(n) for n in source.split("x"))
    return width * frame_size[0] == height * frame_size[1]


def add_ceiling_shares(rows: list[dict[str, Any]]) -> None:
    """Each row's capacity as a share of its source's decode ceiling (in place)."""
    ceilings = {r["source"]: r["capacity"] for r in rows if r["method"] == CEILING}
    for r in rows:
        ceiling = ceilings.get(r["source"])
        r["ceiling_share"] = r["capacity"] / ceiling if ceiling else None


def _limit(search, cores: int) -> dict[str, Any] | None:
    """Why the first failing count failed, with where the CPU went there."""
    if search.upper is None:
        return None
    r = search.probes[search.upper]
    limit = {"streams": search.upper, "reasons": r["reasons"]}
    if "cpu_cores" in r:
        split = {k: v for k, v in r["cpu_ms_per_frame"].items() if k != "total"}
        limit.update(cpu_cores=r["cpu_cores"], cores=cores, cpu_ms_per_frame=split,
                     largest=max(split, key=split.get) if split else None)
    return limit


def summaries(rows: list[dict[str, Any]], loads: dict[str, int]) -> dict[str, Any]:
    """Per preset and source: the streams of full-frame and AdaFocus+skip, their
    ratio, the accuracy gap at the fixed load, and the shares of the ceiling."""
    out: dict[str, Any] = {}
    for r in rows:
        if r["method"] == CEILING:
            continue
        key = f"{r['preset']} @ {r['source']}"
        by = {x["method"]: x for x in rows
              if x["preset"] == r["preset"] and x["source"] == r["source"]}
        summary: dict[str, Any] = {"preset": r["preset"], "source": r["source"],
                                   "load": loads.get(key)}
        full, skip = by.get("full_frame"), by.get("adafocus_skip")
        if full and skip:
            summary["full_frame_streams"] = full["capacity"]
            summary["adafocus_skip_streams"] = skip["capacity"]
            if full["capacity"] > 0:
                summary["skip_vs_full_streams"] = skip["capacity"] / full["capacity"]
            a, b = skip["at_load"].get("accuracy"), full["at_load"].get("accuracy")
            if skip["trained"] and full["trained"] and a is not None and b is not None:
                summary["accuracy_gap_points"] = 100 * (a - b)
        summary["ceiling_share"] = {m: x.get("ceiling_share") for m, x in by.items()}
        out[key] = summary
    return out


def notes(rows: list[dict[str, Any]], loads: dict[str, int], s: dict[str, Any]) -> list[str]:
    out = ["Fixed load for latency, compute saved, accuracy and the CPU split: "
           + ", ".join(f"{p}: {n} stream(s)" for p, n in loads.items())
           + " (per preset and source, the first variant's capacity rounded down to a "
           "power of the search's growth factor, at least 1; each in a pipeline of its own, "
           "so every variant is judged on the same frames).",
           "Decode ceiling: the same pipeline and sources with no model (the worker only "
           "reads each frame and publishes a constant label, `model.checkpoint: none:HxW`): "
           "what the host can decode, move and publish, the limit no model can pass.",
           "CPU per frame: per-process CPU time (/proc) over the window divided by the "
           "labels published; decode = producer processes minus the ring write, model = "
           "worker process minus ring read and message encoding, publish = encoding + the "
           "supervisor's forwarder; ring and encoding costs are timed in isolation."]
    if s.get("ramp"):
        out.append("Ramp mode: each variant's search ran in one pipeline whose streams were "
                   "added and removed by config reloads (SIGHUP), not a new pipeline per "
                   "probe.")
    offline = [f"`{r['name']}` {100 * r['val_accuracy_training']:.1f}%" for r in rows
               if r["val_accuracy_training"] is not None and r["source"] == rows[0]["source"]]
    if offline:
        out.append("For reference, every-frame validation accuracy recorded by training "
                   "(offline, no skipping): " + ", ".join(offline) + ".")
    if any(not r["trained"] and r["method"] != CEILING for r in rows):
        out.append("Untrained rows run random weights (the paper preset cannot be "
                   "downloaded here): their throughput is real, their accuracy meaningless.")
    if any(r["accuracy_judged"] and r["trained"] for r in rows):
        start = s["warmup_s"]
        out.append(f"Accuracy at load is the labels of that probe's window only: every stream "
                   f"plays its clip from the first frame, so it judges about seconds {start:g} "
                   f"to {start + s['window_s']:g} of each clip (after start-up), a few thousand "
                   "frames of the first digits. For the models' accuracy over whole clips, "
                   "paired per clip with an interval, run `python -m "
                   "stream.bench.clip_accuracy`.")
    squashed = sorted({r["source"] for r in rows
                       if not r["accuracy_judged"] and r["method"] != CEILING})
    if squashed:
        out.append(f"Accuracy not judged on {', '.join(squashed)}: the square scene is scaled "
                   "to the source's aspect before encoding and the live path fits it back with "
                   "the aspect kept (letterboxed), so the model sees a squashed scene. These "
                   "rows measure cost only, and their skipping differs with the content.")
    for r in rows:
        if r["limit"] and r["method"] in ("adafocus_skip", CEILING):
            lim = r["limit"]
            where = "" if "cpu_cores" not in lim else (
                f"; the pipeline used {lim['cpu_cores']:.2f} of {lim['cores']} cores, most per "
                f"frame in {lim['largest']} "
                f"({lim['cpu_ms_per_frame'][lim['largest']]:.2f} ms)")
            out.append(f"`{r['name']}` on {r['source']} at {lim['streams']} streams: "
                       f"{'; '.join(lim['reasons'])}{where}.")
        if not r["capacity_exact"]:
            out.append(f"`{r['name']}` on {r['source']}: search cut short by --budget/"
                       f"--max-streams (capacity {r['capacity']}, first failure "
                       f"{r['capacity_upper'] or 'not reached'}).")
    if s["env"]:
        out.append("Pipeline environment: "
                   + ", ".join(f"{k}={v}" for k, v in s["env"].items()) + ".")
    return out
