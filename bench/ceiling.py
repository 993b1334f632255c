"""The one-Redis ceiling (issue 12): does adding web processes add throughput?

Every Roomcast web process subscribes to the one Socket.IO channel in Redis, so each receives,
unpickles and filters every event of the cluster, whether or not it has a member in the event's
room. This starts K = 1, 2, 4 Roomcast servers (one gunicorn worker each), gives each its own
room of --members clients, and has one emitter publish a total --rates events a second for
--seconds, spread evenly over the K rooms: each process delivers 1/K of the events and receives
all of them. Per K and rate it reports each process's CPU (cores, and CPU-ms per 1,000 events
published) and the deliveries per second. A last run starts two processes but gives only the first a
room and clients: the second's CPU is the pure cost of receiving and filtering what it delivers to nobody.

    .venv/bin/python -m bench.ceiling [--processes 1,2,4] [--rates 1000,2000,4000] [--seconds 10]

It needs `make bench-deps` (Node's load generator). Writes bench/results/<date>-ceiling.{json,md}.
"""

import argparse
import json
import statistics
import subprocess
import time

from bench.run import BENCH, PROJECT_PYTHON, ROOT, SERVERS, Loadgen, Run, log, raise_open_files, settle

ROOMCAST = next(server for server in SERVERS if server.name == "roomcast")
DEFAULT_PROCESSES, DEFAULT_RATES = "1,2,4", "1000,2000,4000"


def measure(run, servers, rates, seconds, members, receivers=None):
    """Publish at each total rate to rooms on the first `receivers` servers (all); return one result per rate."""
    results = []
    receiving = servers[: receivers or len(servers)]
    for rate in rates:
        targets = [f"room:p{index}-fan{members}" for index in range(len(receiving))]  # /bench joins chat rooms
        per_room = int(rate * seconds) // len(targets)
        options = {"sizes": [members], "count": per_room, "timeout": seconds + 30}
        loadgens = [
            Loadgen(run, "fanout", url, token, prefix=f"p{index}-", **options)
            for index, (process, url, token, env) in enumerate(receiving)
        ]
        for loadgen in loadgens:
            loadgen.read()  # ready: its members have joined
        for process, *_ in servers:
            settle(process)
        for loadgen in loadgens:
            loadgen.go()
            loadgen.read()  # armed
        cpu_before = [process.cpu_seconds() for process, *_ in servers]
        started = time.monotonic()
        emitter = [PROJECT_PYTHON, "-m", "bench.emit_paced", run.redis_url, ROOMCAST.channel(run)]
        emitted = subprocess.run(
            [*emitter, ",".join(targets), str(rate), str(seconds)], check=True, capture_output=True, text=True, cwd=ROOT
        )
        sent = json.loads(emitted.stdout)
        received = [loadgen.read() for loadgen in loadgens]
        elapsed = time.monotonic() - started
        for loadgen in loadgens:
            loadgen.finish()
        cpu = [process.cpu_seconds() - before for (process, *_), before in zip(servers, cpu_before, strict=True)]
        delivered = sum(result["delivered"] for result in received)
        expected = sum(result["expected"] for result in received)
        results.append(
            {
                "rate": rate,
                "published": sent["sent"],
                "publish_seconds": round(sent["seconds"], 2),
                "elapsed_seconds": round(elapsed, 2),
                "delivered": delivered,
                "expected": expected,
                "deliveries_per_second": round(delivered / elapsed),
                "process_cores": [round(each / elapsed, 3) for each in cpu],
                "process_cpu_ms_per_1000_published": [round(1e6 * each / sent["sent"], 1) for each in cpu],
                "to_last_member_p99_ms": [result["to_last_member_ms"]["p99"] for result in received],
                "generator_cores": round(sum(result["generator"]["cpu_share"] for result in received), 2),
            }
        )
        row = results[-1]
        log(
            f"  K={len(servers)} rate {rate}/s: delivered {delivered}/{expected} "
            f"({row['deliveries_per_second']}/s), process cores {row['process_cores']}, "
            f"CPU-ms per 1000 published {row['process_cpu_ms_per_1000_published']}"
        )
    return results


def table(results):
    """The Markdown table of a run."""
    lines = [
        "| web processes | total rate (/s) | delivered (/s) | delivered of expected | cores per process (median) "
        "| CPU-ms per 1,000 published, per process (median) | generator cores |",
        "|---|---|---|---|---|---|---|",
    ]
    for count, rows in results["scale"].items():
        for row in rows:
            lines.append(
                f"| {count} | {row['rate']} | {row['deliveries_per_second']} | {row['delivered']}/{row['expected']} "
                f"| {statistics.median(row['process_cores']):.2f} "
                f"| {statistics.median(row['process_cpu_ms_per_1000_published']):.1f} | {row['generator_cores']} |"
            )
    for row in results["filter_only"]:
        lines.append(
            f"| 2, clients on the first only | {row['rate']} | {row['deliveries_per_second']} "
            f"| {row['delivered']}/{row['expected']} | {row['process_cores'][0]:.2f} / {row['process_cores'][1]:.2f} "
            f"| {row['process_cpu_ms_per_1000_published'][0]:.1f} / {row['process_cpu_ms_per_1000_published'][1]:.1f} "
            f"| {row['generator_cores']} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", default=DEFAULT_PROCESSES, help='"" for the filter-only run alone')
    parser.add_argument("--rates", default=DEFAULT_RATES)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--members", type=int, default=10, help="clients in each process's room")
    arguments = parser.parse_args()
    raise_open_files()
    run = Run("quick")
    rates = [int(rate) for rate in arguments.rates.split(",")]
    results = {"date": run.stamp, "seconds": arguments.seconds, "members": arguments.members, "scale": {}}
    started = time.monotonic()
    try:
        for count in [int(each) for each in arguments.processes.split(",") if each]:
            log(f"{count} web process(es)")
            servers = [ROOMCAST.start(run) for _ in range(count)]
            try:
                results["scale"][count] = measure(run, servers, rates, arguments.seconds, arguments.members)
            finally:
                for process, *_ in servers:
                    process.stop()
        log("2 web processes, clients and events on the first only")
        servers = [ROOMCAST.start(run) for _ in range(2)]
        try:
            results["filter_only"] = measure(run, servers, rates, arguments.seconds, arguments.members, receivers=1)
        finally:
            for process, *_ in servers:
                process.stop()
    finally:
        run.close()
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    complete = arguments.processes == DEFAULT_PROCESSES and arguments.rates == DEFAULT_RATES
    out = BENCH / "results" / f"{run.stamp}-ceiling{'' if complete else '-partial'}"
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = table(results)
    out.with_suffix(".md").write_text(
        f"# One-Redis ceiling {run.stamp} ({results['minutes']} min, {arguments.members} members per process, "
        f"{arguments.seconds:g} s per rate)\n\n" + markdown + "\n"
    )
    print("\n" + markdown)
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
