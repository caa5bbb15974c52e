#!/usr/bin/env python3
"""Fleet end to end (issue 22): H hosts x R events/s -> NATS JetStream -> `undertow collect` -> ClickHouse.

Starts a real ``nats-server -js`` and ``clickhouse-server`` on loopback (tests/live/fleet_servers.py,
temporary directories, stopped by PID). The hosts' dns-like events, each with its provenance (a
hostname per host) and ``Nats-Msg-Id``, are published by one light process (default) or, with
``--sinks``, by one process per host driving undertow's own output path
(:class:`undertow.fleet.sinks.FanOut` into a ``nats://`` sink); the collector is ``undertow collect``'s
:class:`~undertow.fleet.collect.Collector` in its own process. Printed: events made, sent, lost,
rows in ClickHouse, the latency from an event's time (``wall_ns``) to the end of the INSERT that
stored its row (every 10th row, p50/p99/max; target p99 < 2 s), and the collector's CPU (user +
system, share of one core over the run).

    python3 bench/fleet.py [--hosts 20] [--rate 1000] [--duration 10] [--batch 1000] [--sinks]

The hosts are simulated (a tool at 1,000 events/s on each of 20 real hosts would need 20
machines): what is measured is the transport, the collector and ClickHouse, which a real run
shares. Traffic stays on loopback.
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, os.path.join(ROOT, "tests", "live"))


def host(i, url, rate, duration, run_id, q):
    """One host: FanOut + nats sink, ``rate`` events/s for ``duration`` s; puts its report on ``q``."""
    from undertow.fleet import provenance, sinks, urls

    u = urls.parse(url)
    sink = sinks.open_sink(u, False, sys.stdout)
    prov = provenance.Provenance("dns", run_id)
    prov.hostname = f"bench-host-{i:02d}"
    fan = sinks.FanOut([sink], prov, sys.stdout)
    line = ('{"ts": %d, "pid": 4242, "tid": 4242, "comm": "resolver", "syscall": "sendto", "resolver": '
            '"127.0.0.53", "resolver_port": 53, "transport": "udp", "id": %d, "qname": "host-%02d.example.", '
            '"qtype": "A", "qclass": "IN", "size": 40, "netns": 4026531840, "uid": 0}\n')
    t0 = time.monotonic()
    n = 0
    while True:
        now = time.monotonic()
        if now - t0 >= duration:
            break
        due = int((now - t0) * rate)
        while n < due:
            fan.write(line % (time.monotonic_ns(), n & 0xFFFF, i))
            n += 1
        time.sleep(0.005)
    fan.finish()
    sink.close(5.0)
    r = sink.report
    q.put({"host": i, "made": n, "sent": r.sent, "lost": r.total_lost, "errors": list(r.errors)})


def light(hosts, url, rate, duration, run_id, q):
    """All hosts from one process, cheaply: the events as undertow's sink sends them (the JSON
    with its provenance, ``Nats-Msg-Id``, a reply subject for the ack), acks read but not
    waited for. On a machine with few CPUs this leaves them to NATS, the collector and ClickHouse."""
    from undertow.fleet import provenance, urls
    from undertow.fleet.jetstream import JetStream
    from undertow.fleet.nats import Connection

    u = urls.parse(url)
    js = JetStream(Connection(u.host, u.port).connect())
    conn = js.conn
    provs = []
    for i in range(hosts):
        p = provenance.Provenance("dns", run_id)
        p.hostname = f"bench-host-{i:02d}"
        provs.append(p)
    base = {"pid": 4242, "tid": 4242, "comm": "resolver", "syscall": "sendto", "resolver": "127.0.0.53",
            "resolver_port": 53, "transport": "udp", "qtype": "A", "qclass": "IN", "size": 40, "netns": 4026531840,
            "uid": 0}
    t0 = time.monotonic()
    n = acks = 0
    total = int(rate * hosts)
    while True:
        now = time.monotonic()
        if now - t0 >= duration:
            break
        due = min(int((now - t0) * total), int(duration * total))
        while n < due:
            p = provs[n % hosts]
            ev = dict(base, ts=time.monotonic_ns(), id=n & 0xFFFF, qname=f"{p.hostname}.example.")
            p.stamp(ev)
            conn.publish(u.target, json.dumps(ev).encode(), reply=f"{js.root}.p.{n}",
                         headers={"Nats-Msg-Id": provenance.msg_id(ev)})
            n += 1
        conn.flush()
        while conn.read(0.0) is not None:
            acks += 1
        time.sleep(0.005)
    end = time.monotonic() + 5
    while acks < n and time.monotonic() < end:
        if conn.read(0.2) is not None:
            acks += 1
    conn.close()
    q.put({"host": -1, "made": n, "sent": acks, "lost": n - acks, "errors": []})


def collector(src, dst, batch, stop_at, q):
    """`undertow collect`'s Collector, the INSERT timed: latencies of every 10th row, its CPU."""
    from undertow.fleet import clickhouse, collect, urls

    lat = []
    orig = clickhouse.Client.insert
    spent = {"insert": 0.0}

    def timed(self, lines):
        t = time.monotonic()
        orig(self, lines)
        spent["insert"] += time.monotonic() - t
        done = time.time_ns()
        for ln in lines[::10]:
            k = ln.find('"wall_ns": ')
            if k >= 0:
                lat.append(done - int(ln[k + 11:ln.index(",", k)]))
    clickhouse.Client.insert = timed
    c = collect.Collector(urls.parse(src, ("nats",)), urls.parse(dst, ("clickhouse",)), batch=batch, create=True,
                          log=lambda text: None)
    cpu0, t0 = time.process_time(), time.monotonic()
    while time.monotonic() < stop_at:
        try:
            c.step()
        except Exception as e:  # noqa: BLE001 - reported, the bench goes on
            print("collector:", e, file=sys.stderr)
            c.close()
            time.sleep(0.2)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    c.close()
    q.put({"latencies": lat, "cpu": cpu, "wall": wall, "inserted": c.stats.inserted, "batches": c.stats.batches,
           "insert_s": spent["insert"]})


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--rate", type=float, default=1000.0, help="events/s per host")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=1000, help="collector batch")
    ap.add_argument("--sinks", action="store_true",
                    help="one process per host through undertow's FanOut and nats:// sink (costs a core or more "
                         "at 20 x 1,000/s: on a small machine the hosts then starve the collector)")
    a = ap.parse_args()
    import fleet_servers as fs
    from undertow.fleet.jetstream import JetStream
    from undertow.fleet.nats import Connection

    nats = ch = None
    try:
        nats, ch = fs.Nats(), fs.ClickHouse()
        subject = "bench.events"
        js = JetStream(Connection("127.0.0.1", nats.port).connect())
        js.create_stream("BENCH", [subject], storage="file")
        js.conn.close()
        url = f"{nats.url}/{subject}"
        dst = f"clickhouse+http://127.0.0.1:{ch.http_port}/bench.events"
        q = mp.Queue()
        stop_at = time.monotonic() + a.duration + 8
        col = mp.Process(target=collector, args=(url, dst, a.batch, stop_at, q))
        col.start()
        if a.sinks:
            hosts = [mp.Process(target=host, args=(i, url, a.rate, a.duration, "bench", q)) for i in range(a.hosts)]
        else:
            hosts = [mp.Process(target=light, args=(a.hosts, url, a.rate, a.duration, "bench", q))]
        for p in hosts:
            p.start()
        results = [q.get(timeout=a.duration + 60) for _ in range(len(hosts) + 1)]
        for p in hosts + [col]:
            p.join(10)
        hs = [r for r in results if "host" in r]
        cr = [r for r in results if "latencies" in r][0]
        rows = int(ch.query("SELECT count() FROM bench.events FORMAT TSV"))
        lat = [x / 1e9 for x in cr["latencies"]]
        out = {
            "hosts": a.hosts, "rate_per_host": a.rate, "duration_s": a.duration,
            "events_made": sum(r["made"] for r in hs), "events_sent": sum(r["sent"] for r in hs),
            "events_lost": sum(r["lost"] for r in hs), "rows": rows, "collector_batches": cr["batches"],
            "latency_s": {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "max": max(lat) if lat else None,
                          "samples": len(lat)},
            "collector_cpu_s": round(cr["cpu"], 2),
            "collector_insert_wait_s": round(cr["insert_s"], 2),
            "collector_core_share": round(cr["cpu"] / cr["wall"], 3),
            "collector_us_per_row": round(cr["cpu"] / max(1, cr["inserted"]) * 1e6, 1),
            "host_errors": sorted({e for r in hs for e in r["errors"]})[:5],
        }
        print(json.dumps(out, indent=1))
    finally:
        for s in (nats, ch):
            if s is not None:
                s.stop()


if __name__ == "__main__":
    main()
