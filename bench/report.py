#!/usr/bin/env python3
"""Turns bench/run.sh's raw results (one JSON object a line) into the Markdown tables of
docs/benchmarks.md, with the machine, the command and the date, and the targets checked.

Usage: report.py RESULTS.jsonl
"""
import datetime
import json
import os
import platform
import sys


def machine() -> str:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return (f"{os.cpu_count()} cores ({model}), {mem_kb / 1024 / 1024:.1f} GiB, "
            f"Linux {platform.release()}")


def ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MiB"


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by_phase = {}
    for r in rows:
        by_phase.setdefault(r["phase"], []).append(r)
    upstream = by_phase["upstream"][0]["stats"]

    out = []
    say = out.append
    say(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; "
        "command `bench/run.sh`.")
    say("")
    say(f"Upstream answers: PNG {upstream['png_body_bytes'] / 1e6:.2f} MB of JSON "
        f"(1024×1024 PNG), JPEG {upstream['jpeg_body_bytes'] / 1e6:.2f} MB (2048×2048 JPEG).")
    say("")
    say("### Latency and throughput (upstream delay 0)")
    say("")
    say("| payload | conc. | direct req/s | direct p50 / p99 ms | gateway req/s | "
        "gateway p50 / p99 ms | added p50 / p99 ms | gateway ÷ direct req/s | "
        "gateway CPU ms/req | errors |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    checks = []
    for image in ("png", "jpeg"):
        for c in (1, 16, 64):
            runs = {r["target"]: r["wrk"] for r in by_phase.get(f"{image}-c{c}", [])}
            if set(runs) != {"direct", "gateway"}:
                continue
            d, g = runs["direct"], runs["gateway"]
            cpu = [r for r in by_phase[f"{image}-c{c}"] if r["target"] == "gateway"][0]["cpu"]
            cpu_ms = 1000 * cpu["gateway_s"] / max(g["requests"], 1)
            errors = sum(sum(x["errors"].values()) for x in (d, g))
            ratio = g["rps"] / d["rps"]
            added50, added99 = g["p50_ms"] - d["p50_ms"], g["p99_ms"] - d["p99_ms"]
            say(f"| {image.upper()} | {c} | {d['rps']:.0f} | {ms(d['p50_ms'])} / {ms(d['p99_ms'])} | "
                f"{g['rps']:.0f} | {ms(g['p50_ms'])} / {ms(g['p99_ms'])} | "
                f"{ms(added50)} / {ms(added99)} | {ratio:.2f} | {cpu_ms:.2f} | {errors} |")
            if image == "png" and c == 1:
                checks.append(("added p99 at concurrency 1, 1.5 MB PNG", f"{added99:.2f} ms", "< 5 ms",
                               added99 < 5))
            if image == "png" and c == 64:
                checks.append(("gateway ÷ direct throughput at concurrency 64, PNG", f"{ratio:.2f}",
                               "≥ 0.5", ratio >= 0.5))
    say("")

    say("### OpenAI surface (`POST /v1/images/generations`, `b64_json`, PNG, upstream delay 0)")
    say("")
    openai = [(c, by_phase[f"openai-png-c{c}"][0]) for c in (1, 16, 64) if f"openai-png-c{c}" in by_phase]
    if openai:
        say("| conc. | req/s | p50 / p99 ms | gateway CPU ms/req | errors |")
        say("|---|---|---|---|---|")
        for c, run in openai:
            w = run["wrk"]
            cpu_ms = 1000 * run["cpu"]["gateway_s"] / max(w["requests"], 1)
            say(f"| {c} | {w['rps']:.0f} | {ms(w['p50_ms'])} / {ms(w['p99_ms'])} | {cpu_ms:.2f} | "
                f"{sum(w['errors'].values())} |")
    else:
        say("Not run (`BENCH_PHASES` left the `openai` phase out).")
    say("")

    say("### Memory (resident set of the imagegate process)")
    say("")
    say("| measurement | RSS |")
    say("|---|---|")
    for held in by_phase.get("rss-held", []):
        how = {"glibc-default": "glibc malloc as it comes",
               "glibc-mmap-threshold-128k": "`MALLOC_MMAP_THRESHOLD_=131072`"}.get(
                   held["allocator"], held["allocator"])
        say(f"| idle, just started ({how}) | {mb(held['idle_kb'])} |")
        say(f"| while 1,000 requests are held by a 10 s upstream delay, upstream saw "
            f"{held['max_in_flight']} at once ({how}) | {mb(held['while_held_kb'])} |")
        say(f"| peak (VmHWM) over the phase, the 1,000 answers' burst included ({how}) | "
            f"**{mb(held['peak_kb'])}** |")
        checks.append((f"peak RSS with 1,000 in flight, {how}", mb(held["peak_kb"]),
                       "< 150 MiB", held["peak_kb"] < 150 * 1024))
    growth = by_phase.get("rss-growth", [None])[0]
    if growth:
        wrk = by_phase["growth-10k"][0]["wrk"]
        say(f"| before 10,000 requests (after the runs above) | {mb(growth['before_kb'])} |")
        say(f"| after them ({wrk['requests']} answered; upstream served "
            f"{growth['upstream']['served']}) | {mb(growth['after_kb'])} |")
    say("")

    say("### Async path")
    say("")
    async_ = by_phase.get("async", [None])[0]
    if async_ and async_["result"].get("status") == "measured":
        a = async_["result"]
        say(f"Submit → webhook received at concurrency {a['concurrency']}: p50 {ms(a['p50_ms'])} ms, "
            f"p99 {ms(a['p99_ms'])} ms, max {ms(a['max_ms'])} ms "
            f"({a['completed']} completed, {a['failed']} failed).")
    elif async_:
        say(f"Submit → webhook latency: **not measured**: {async_['result']}")
    else:
        say("Not run (`BENCH_PHASES` left the `async` phase out).")
    say("")

    hostile = by_phase.get("hostile-mix", [None])[0]
    if hostile:
        say("")
        say("### Hostile mix")
        say("")
        say(f"{hostile['clients']} clients at once with the heaviest legal inputs (50 MP to "
            "`/quality`, outpaint near the 4K cap, OpenAI edit with mask and n=10):")
        say("")
        say("| idle RSS | peak RSS (VmHWM) | decoded-pixel budget | wall time | answers |")
        say("|---|---|---|---|---|")
        codes = ", ".join(f"{n}× {c}" for c, n in sorted(hostile["codes"].items()))
        say(f"| {hostile['idle_kb'] / 1024:.0f} MiB | {hostile['peak_kb'] / 1024:.0f} MiB | "
            f"{hostile['budget_kb'] / 1024:.0f} MiB | {hostile['seconds']:.1f} s | {codes} |")
    imaging = by_phase.get("imaging", [None])[0]
    if imaging:
        rust, py = imaging["rust"], imaging["python"]
        say(f"### Image work, Rust (release) against Python {py['python']} "
            f"(NumPy {py['numpy']}, Pillow {py['pillow']}), same files")
        say("")
        say("| work | Rust median (min) ms | Python median (min) ms | Rust speed-up |")
        say("|---|---|---|---|")
        for key, label in (("quality_png_1024", "quality metrics + score, 1024×1024 PNG "
                            f"({rust['png_bytes'] / 1e6:.2f} MB)"),
                           ("downscale_jpeg_4000x3000", "decode + resize to 1024 + JPEG encode, "
                            f"4000×3000 JPEG ({rust['photo_bytes'] / 1e6:.2f} MB)")):
            r, p = rust[key], py[key]
            speedup = p["median_ms"] / r["median_ms"]
            say(f"| {label} | {ms(r['median_ms'])} ({ms(r['min_ms'])}) | "
                f"{ms(p['median_ms'])} ({ms(p['min_ms'])}) | {speedup:.1f}× |")
            if key == "quality_png_1024":
                checks.append(("quality metrics against NumPy", f"{speedup:.1f}×", "≥ 5×",
                               speedup >= 5))
        say("")

    say("### Targets")
    say("")
    say("| target | measured | goal | met |")
    say("|---|---|---|---|")
    for name, value, goal, met in checks:
        say(f"| {name} | {value} | {goal} | {'yes' if met else '**no**'} |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
