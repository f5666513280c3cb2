"""A soak test: mixed HTTP load on `xlsearch serve` for minutes while `xlsearch index` keeps changing the index.

    python benchmarks/soak.py [--minutes 10] [--clients 8] [--size 100000] [--seed 0] [--json]
    python benchmarks/soak.py --db DIR          # an existing index instead of the cached collection

The collection is http_latency.py's (benchmarks/common.py); the soak writes to a temporary copy.

Method:

1. Quiet answers. `--queries` dev sentences (picked as http_latency.py picks them) and 20 more
   that become an extra folder of short Markdown/text files; 10 of the 20 are queries too, so
   their answers change with the folder. With `xlsearch.Index` on the copy, in this process,
   every query is searched (k=10, the API's defaults) with the folder's files pruned away (state
   B) and indexed (state A). Balanced scores are z-scores against a per-language sample of chunks
   (search.calibration); it is picked by a hash of chunk text, so every state-A generation has
   the same sample whatever ids its re-indexed files get (up to float rounding of re-embedded
   vectors). (Before that was so, the sample went by chunk id and state A was re-added, up to 5
   times, until its sample held no extra chunk; the retry loop is kept, and is now a no-op.)
2. `xlsearch serve` runs on the copy (started as http_latency.py starts it). For `--minutes`,
   `--clients` threads, each with one keep-alive connection and a seeded random stream, send a
   closed-loop mix: 70% searches (`/api/search?q=...&k=10`, one in ten a query matching an extra
   file), 10% summaries (`/api/summarize`), 10% documents (`/api/documents/{id}` or
   `/documents/{id}`, ids from earlier hits), 10% bad requests (empty q, k=0, lang=fr, an id past
   2^63, a 3000-character q). Kept per request: start, route, status, latency (send to last
   byte), and a search's hits by rank (file name#row key, score).
3. Churn, meanwhile: one loop writes the extra files (state A) or deletes them (state B), in
   turn, and runs `python -m cli -q index EXTRA --db COPY --prune --json` (one at a time, one
   commit each), recording its start, end, summary and the calibration sample's digest after it.
4. Memory: the server's VmRSS (/proc/PID/status) every 5 s.

Failures: a 5xx or failed connection; a search whose hits are not exactly (same documents, same
order) the quiet state-A or state-B answer, a "wrong answer", by cause: "tie order" if it is one
of them but for the order of hits of equal (rounded) score, else "calibration drift" if it
overlaps a generation whose calibration sample differs from its state's quiet one (from the
start of that index run to the end of the next), else "unexplained"; a document answered other
than 200 (or 404 for an extra file, which may be pruned); a bad request not answered 4xx; a
summary not answered 200; a failed index run; memory not flat (the largest RSS over the last 80%
of the run above 1.10 x the RSS at the end of the first minute). Also reported: "stale" answers,
a matching query answered in the other state though sent after an index run ended and answered
before the next began. Writes benchmarks/results/soak-<chunks>.json (or `--out`: the machine,
the command line, every summary) and a PNG beside it (per-minute p50/p99 latency, RSS, index
runs shaded).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from benchmarks.http_latency import HOST, start_server, stop_server  # noqa: E402

EXTRA_FILES, MATCHING = 20, 10  # extra files; how many of their texts are also queries
BAD = {"empty q": "/api/search?q=&k=10", "k=0": "/api/search?q=hello&k=0", "lang=fr": "/api/search?q=hello&lang=fr",
       "id past 2^63": f"/api/documents/{2**63}", "3000-char q": "/api/search?" + urlencode({"q": "搜索" * 1500})}
MAX_REQUESTS_PER_CLIENT, MAX_RUNS, RUN_TIMEOUT_S, RSS_EVERY_S = 1_000_000, 10_000, 600, 5.0


def label(hit: dict) -> str:
    return Path(hit["path"]).name + (f"#{hit['key']}" if hit.get("key") else "")


def write_extra(folder: Path, texts: list[str], present: bool) -> None:
    for i, text in enumerate(texts):
        path = folder / (f"note-{i:02d}.md" if i % 2 == 0 else f"note-{i:02d}.txt")
        if present:
            path.write_text(f"# Note {i}\n\n{text}\n" if i % 2 == 0 else f"{text}\n", encoding="utf-8")
        else:
            path.unlink(missing_ok=True)


def calibration(db: Path) -> str:
    """A digest of the current generation's language-calibration sample (search.calibration), which balanced scores depend on."""
    from search.calibration import SAMPLE_PER_LANGUAGE
    from storage.store import Store

    with Store.open(db) as store:
        sample = store.documents.vector_sample(SAMPLE_PER_LANGUAGE)
    return hashlib.sha256(b"".join(lang.encode() + b"".join(sorted(v.tobytes() for v in sample[lang])) for lang in sorted(sample))).hexdigest()[:12]


def quiet_answers(db: Path, extra: Path, texts: list[str], queries: list[str], k: int) -> tuple[dict, dict]:
    """state → query → [[label, score], ...] in rank order, searched in this process with nothing else running;
    and state → its calibration digest. State A is re-added (new chunk ids) up to 5 times until its calibration sample
    holds no extra chunk, i.e. equals state B's (a no-op since the sample goes by chunk text; see the module doc)."""
    from core.config import IndexConfig
    from search.searcher import SearchRequest
    from xlsearch import Index

    answers, digests = {}, {}
    with Index(db) as index:

        def to(state: str) -> None:
            write_extra(extra, texts, present=state == "A")
            index.add([extra], config=IndexConfig(prune=True))
            digests[state] = calibration(db)

        def search_all() -> dict:
            hits = [h for i in range(0, len(queries), 16) for h in index.search_batch([SearchRequest(q, k) for q in queries[i : i + 16]])]
            return {q: [[label(h.to_dict()), round(h.score, 4)] for h in hs] for q, hs in zip(queries, hits)}

        to("B")
        answers["B"] = search_all()
        for attempt in range(5):
            if attempt:
                to("B")
            to("A")
            if digests["A"] == digests["B"]:
                break
        answers["A"] = search_all()
        to("B")  # as the soak starts
    return answers, digests


def churn(db: Path, extra: Path, texts: list[str], t0: float, deadline: float, runs: list, pause: float) -> None:
    """Index runs one at a time, alternately to state A (files written) and B (files deleted), until the deadline."""
    cmd = [sys.executable, "-m", "cli", "-q", "index", str(extra), "--db", str(db), "--prune", "--json"]
    state = "B"
    while time.monotonic() < deadline and len(runs) < MAX_RUNS:
        state = "A" if state == "B" else "B"
        write_extra(extra, texts, present=state == "A")
        run = {"to": state, "start_s": round(time.monotonic() - t0, 2)}
        try:
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
            run["rc"] = out.returncode
            if out.returncode == 0:
                summary = json.loads(out.stdout)
                run.update({key: summary.get(key) for key in ("added", "removed", "chunks", "seconds")})
            else:
                run["stderr"] = out.stderr[-500:]
        except subprocess.TimeoutExpired:
            run["rc"] = "timeout"
        run["end_s"] = round(time.monotonic() - t0, 2)
        run["calibration"] = calibration(db)
        runs.append(run)
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))


def client(n: int, port: int, seed: int, pool: list[str], matching: list[str], doc_ids: deque, extra: Path,
           t0: float, deadline: float, log: list, lock: threading.Lock) -> None:
    rng = random.Random(f"{seed}/{n}")
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() >= deadline:
            break
        r, rec = rng.random(), {}
        if r < 0.70:
            q = rng.choice(matching) if rng.random() < 0.1 else rng.choice(pool)
            rec, url = {"route": "search", "q": q}, "/api/search?" + urlencode({"q": q, "k": 10})
        elif r < 0.80:
            rec, url = {"route": "summarize"}, "/api/summarize?" + urlencode({"q": rng.choice(pool)})
        elif r < 0.90:
            with lock:
                doc, path = rng.choice(doc_ids) if doc_ids else (1, None)
            page = rng.random() < 0.5
            rec = {"route": "document page" if page else "api document", "doc": doc, "extra": path is not None and path.startswith(str(extra))}
            url = f"/documents/{doc}?q={quote('note')}" if page else f"/api/documents/{doc}"
        else:
            kind = rng.choice(sorted(BAD))
            rec, url = {"route": "bad", "kind": kind}, BAD[kind]
        start = time.monotonic()
        try:
            conn.request("GET", url)
            resp = conn.getresponse()
            status, body = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            status, body = 0, repr(exc).encode()
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=120)
        rec.update(url=url[:200], t=round(start - t0, 3), end=round(time.monotonic() - t0, 3), status=status, ms=(time.monotonic() - start) * 1000)
        if status == 200 and rec["route"] == "search":
            hits = json.loads(body)["hits"]
            rec["ranks_ok"] = [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
            rec["hits"] = [[label(h), round(h["score"], 4)] for h in hits]
            with lock:
                doc_ids.extend((h["doc_id"], h["path"]) for h in hits[:2])
        elif status != 200:
            rec["body"] = body[:300].decode("utf-8", "replace")
        with lock:
            log.append(rec)
    conn.close()


def sample_rss(pid: int, t0: float, stop: threading.Event, series: list) -> None:
    while not stop.is_set():
        try:
            kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
            series.append([round(time.monotonic() - t0, 1), round(kb / 1024, 1)])
        except (OSError, StopIteration):
            break
        stop.wait(RSS_EVERY_S)


def latencies(recs: list, route: str | None = None) -> dict:
    return common.latency_summary([r["ms"] for r in recs if route in (None, r["route"])])


def statuses(recs: list, **match) -> dict:
    return dict(Counter(str(r["status"]) for r in recs if all(r.get(k) == v for k, v in match.items())))


def untied(hits: list) -> list[str]:
    """The labels with hits of equal (rounded) score in name order: an answer that differs from another only
    in the order of tied hits is the same answer up to "tie order"."""
    return [label for label, _ in sorted(hits, key=lambda h: (-h[1], h[0]))]


def judge(log: list, answers: dict, digests: dict, matching: list[str], runs: list, minutes: float) -> dict:
    """Every summary and failure count from the request log, the quiet answers and the index runs (see the module docstring)."""
    wrong, stale, seen_states, failures, examples = [], 0, Counter(), Counter(), {}
    drift = [(r["start_s"], nxt["end_s"] if nxt else float("inf")) for r, nxt in zip(runs, [*runs[1:], None])
             if r["calibration"] != digests[r["to"]]]
    for rec in log:
        route, status, failure = rec["route"], rec["status"], None
        if status == 0 or status >= 500:
            failure = "5xx or no answer"
        elif route == "bad":
            failure = None if 400 <= status < 500 else "bad request not 4xx"
        elif route in ("api document", "document page"):
            failure = None if status == 200 or (status == 404 and rec["extra"]) else "document not 200 (or 404 for an extra file)"
        elif status != 200:
            failure = f"{route} not 200"
        if failure:
            failures[failure] += 1
            if len(examples.setdefault(failure, [])) < 5:
                examples[failure].append(rec)
        elif route == "search":
            got, a, b = [h[0] for h in rec["hits"]], *([h[0] for h in answers[s][rec["q"]]] for s in "AB")
            state = ("AB" if a == b else "A") if got == a else "B" if got == b else None
            seen_states[state or "wrong"] += 1
            if state is None or not rec["ranks_ok"]:
                why = ("unexplained" if not rec["ranks_ok"] else "tie order" if untied(rec["hits"]) in (untied(answers[s][rec["q"]]) for s in "AB")
                       else "calibration drift" if any(lo < rec["end"] and rec["t"] < hi for lo, hi in drift) else "unexplained")
                failures[f"wrong answer, {why}"] += 1
                if sum(w["why"] == why for w in wrong) < 10:
                    wrong.append({"t_s": rec["t"], "end_s": rec["end"], "q": rec["q"], "why": why, "got": rec["hits"],
                                  "expected_A": answers["A"][rec["q"]], "expected_B": answers["B"][rec["q"]], "ranks_ok": rec["ranks_ok"]})
            elif state in ("A", "B") and rec["q"] in matching:  # sent after a run ended, answered before the next began: that run's state
                before = [r for r in runs if r["end_s"] <= rec["t"]]
                during = any(r["start_s"] < rec["end"] and r["end_s"] > rec["t"] for r in runs)
                stale += not during and (not before or before[-1]["rc"] == 0) and state != (before[-1]["to"] if before else "B")
    minute = [[r for r in log if m * 60 <= r["t"] < (m + 1) * 60] for m in range(int(-(-minutes // 1)))]
    return {
        "requests": len(log), "latency_all": latencies(log), "latency_by_route": {route: latencies(log, route) for route in sorted({r["route"] for r in log})},
        "per_minute": [{"minute": m + 1, "requests": len(recs), "all": latencies(recs), "search": latencies(recs, "search"),
                        "status": statuses(recs)} for m, recs in enumerate(minute)],
        "status_counts": statuses(log), "status_by_route": {route: statuses(log, route=route) for route in sorted({r["route"] for r in log})},
        "bad_request_statuses": {kind: statuses(log, kind=kind) for kind in sorted(BAD)},
        "5xx": sum(r["status"] >= 500 for r in log), "no_answer": sum(r["status"] == 0 for r in log),
        "search_answers_by_state": dict(seen_states), "wrong_examples": wrong,
        "wrong_answers": sum(v for k, v in failures.items() if k.startswith("wrong")), "drifted_runs": len(drift),
        "wrong_by_cause": {k.split(", ")[1]: v for k, v in failures.items() if k.startswith("wrong")},
        "stale_answers": stale, "failures": {k: v for k, v in failures.items() if v},
        "failure_examples": examples,
    }


def memory(series: list, seconds: float) -> dict:
    first = [mb for t, mb in series if t <= 60] or [series[0][1]]
    late = [mb for t, mb in series if t >= 0.2 * seconds] or [series[-1][1]]
    return {"rss_after_1min_mb": first[-1], "max_rss_last_80pct_mb": max(late), "ratio": round(max(late) / first[-1], 3), "rss_end_mb": series[-1][1],
            "flat": max(late) <= 1.10 * first[-1], "every_s": RSS_EVERY_S, "series": series}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pm, series = report["load"]["per_minute"], report["memory"]["series"]
    fig, (lat, rss) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for key, sub, style in (("all", "p50_ms", "C0-o"), ("all", "p99_ms", "C0--o"), ("search", "p50_ms", "C1-s"), ("search", "p99_ms", "C1--s")):
        lat.plot([m["minute"] - 0.5 for m in pm], [m[key][sub] for m in pm], style, label=f"{key} {sub[:3]}")
    rss.plot([t / 60 for t, _ in series], [mb for _, mb in series], "C2-", label="server RSS")
    rss.axhline(1.10 * report["memory"]["rss_after_1min_mb"], color="C3", ls=":", label="1.10 x RSS at 1 min")
    lat.set(ylabel="latency per minute (ms)", yscale="log")
    rss.set(ylabel="RSS (MB)", xlabel="minutes (shaded: index runs, green to state A, orange to state B)")
    lat.legend(fontsize=8)
    rss.legend(fontsize=8)
    for run in report["churn"]["runs"]:
        for ax in (lat, rss):
            ax.axvspan(run["start_s"] / 60, run["end_s"] / 60, color="C2" if run["to"] == "A" else "C1", alpha=0.15, lw=0)
    c = report["collection"]
    fig.suptitle(f"soak: {c['chunks']} chunks, {report['clients']} clients, {report['minutes']} min, "
                 f"{report['churn']['completed']} index runs; 5xx {report['load']['5xx']}, wrong answers {report['load']['wrong_answers']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(r: dict) -> str:
    load, mem, churn_ = r["load"], r["memory"], r["churn"]
    lines = [f"{r['collection']['chunks']} chunks, {r['clients']} clients, {r['minutes']} min; {r['machine']['cpu_count']} CPUs",
             f"{'minute':>6}{'requests':>10}{'p50':>8}{'p90':>8}{'p99':>8}{'search p50':>12}{'search p99':>12}"]
    for m in load["per_minute"]:
        a, s = m["all"], m["search"]
        lines.append(f"{m['minute']:>6}{m['requests']:>10}{a['p50_ms']:>8.1f}{a['p90_ms']:>8.1f}{a['p99_ms']:>8.1f}{s['p50_ms']:>12.1f}{s['p99_ms']:>12.1f}")
    lines += [f"statuses {load['status_counts']}; 5xx {load['5xx']}, no answer {load['no_answer']}",
              f"search answers by state {load['search_answers_by_state']}; wrong {load['wrong_answers']} {load['wrong_by_cause']} "
              f"({load['drifted_runs']} index runs with a drifted calibration), stale {load['stale_answers']}",
              f"index runs {churn_['completed']} completed of {len(churn_['runs'])}; failures {load['failures'] or 'none'}",
              f"RSS {mem['rss_after_1min_mb']} MB at 1 min, max {mem['max_rss_last_80pct_mb']} MB after: "
              f"{'flat' if mem['flat'] else 'NOT flat'} (x{mem['ratio']}); verdict: {'PASS' if r['passed'] else 'FAIL'}"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_collection_args(ap)
    ap.add_argument("--minutes", type=float, default=10, help="length of the load")
    ap.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections")
    ap.add_argument("--queries", type=int, default=2000, help="distinct search queries (the server caches 1,024 query vectors)")
    ap.add_argument("--churn-pause", type=float, default=2.0, help="seconds between index runs")
    ap.add_argument("--startup-timeout", type=float, default=300, help="seconds to wait for /healthz")
    ap.add_argument("--out", type=Path, default=None, help="result file (default benchmarks/results/soak-<chunks>.json; the PNG goes beside it)")
    ap.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = ap.parse_args()

    db, summary, model = common.collection_from_args(args)
    collection = common.collection_report(db, summary)
    picked = [q["text"] for q in common.dev_queries(args.queries + EXTRA_FILES, args.seed, common.load_tokenizer(model), common.collection_texts_in(db))]
    pool, texts = picked[: args.queries], picked[args.queries :]
    matching = texts[:MATCHING]
    log, runs, rss, doc_ids, lock, stop = [], [], [], deque(maxlen=1000), threading.Lock(), threading.Event()
    with tempfile.TemporaryDirectory(prefix="xlsearch-soak-") as tmp, open(Path(tmp) / "serve.log", "w+") as log_file:
        copy, extra = Path(tmp) / "db", Path(tmp) / "extra"
        shutil.copytree(db, copy)
        extra.mkdir()
        started = time.monotonic()
        answers, digests = quiet_answers(copy, extra, texts, pool + matching, k=10)
        quiet_s = round(time.monotonic() - started, 1)
        proc, port = start_server(copy, log_file, args.startup_timeout)
        t0 = time.monotonic()
        deadline = t0 + args.minutes * 60
        threads = [threading.Thread(target=churn, args=(copy, extra, texts, t0, deadline, runs, args.churn_pause))]
        threads += [threading.Thread(target=client, args=(n, port, args.seed, pool, matching, doc_ids, extra, t0, deadline, log, lock))
                    for n in range(args.clients)]
        sampler = threading.Thread(target=sample_rss, args=(proc.pid, t0, stop, rss))
        try:
            for t in [sampler, *threads]:
                t.start()
            for t in threads:
                t.join()
            seconds, alive = round(time.monotonic() - t0, 1), proc.poll() is None
        finally:
            stop.set()
            sampler.join()
            server = stop_server(proc)
        log_file.seek(0)
        server_log_tail = log_file.read()[-2000:]
    load = judge(log, answers, digests, matching, runs, args.minutes)
    report = {
        "collection": collection, "minutes": args.minutes, "clients": args.clients, "seconds": seconds,
        "queries": {"distinct": len(pool), "matching_extra_files": len(matching), "extra_files": len(texts), "quiet_answers_s": quiet_s,
                    "differ_between_states": sum(answers["A"][q] != answers["B"][q] for q in pool + matching), "calibration": digests},
        "load": load, "memory": memory(rss, seconds),
        "churn": {"completed": sum(r["rc"] == 0 for r in runs), "failed": sum(r["rc"] != 0 for r in runs), "runs": runs},
        "server": {**server, "alive_at_end": alive, "log_tail": server_log_tail if load["5xx"] or not alive else ""},
        "machine": common.machine_info(), **common.stamp(),
    }
    report["passed"] = not load["failures"] and alive and report["churn"]["failed"] == 0 and report["memory"]["flat"]
    out = args.out or common.RESULTS / f"soak-{collection['chunks']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(report, out.with_suffix(".png"))
    common.write_result(report, out, args.json, table(report))


if __name__ == "__main__":
    main()
