#!/usr/bin/python3
# jouled-slow.py - slow and many clients for tests/system/test-jouled-limits.sh. Every wait is bounded.
#
#   jouled-slow.py trickle (unix PATH | tcp HOST:PORT) [--from ADDR] [--max S] [--http]
#       sends one byte a second of a request that never ends (a frame header, or "GET /metrics HTTP/1.1"
#       and headers) and prints {"closed_after_s": T} when the daemon closes it, or {"closed_after_s": null}
#       after --max seconds (default 12)
#   jouled-slow.py idle (unix PATH | tcp HOST:PORT) [--from ADDR] [--max S]
#       connects, sends nothing, prints {"closed_after_s": T} when the daemon closes it (null: not in --max s)
#   jouled-slow.py hold (unix PATH | tcp HOST:PORT) N [--from ADDR | --spread K] [--hold S] [--ready FILE]
#       opens N connections (from ADDR, or from 127.0.0.2 ... 127.0.0.K+1 in turn), writes one byte on each, and after 1 s prints {"opened": N, "closed": K} with K
#       the connections the daemon has closed; touches FILE then, and holds the rest open for --hold seconds
import json, os, resource, select, socket, sys, time

def connect(kind, where, src):
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(where)
        return s
    host, port = where.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.connect((host, int(port)))
    return s

def opt(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default

def closed(s):
    p = select.poll()  # not select(): descriptors beyond 1024
    p.register(s, select.POLLIN)
    if not p.poll(0):
        return False
    try:
        return s.recv(65536) == b""
    except OSError:
        return True

def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mode, kind, where = sys.argv[1], sys.argv[2], sys.argv[3]
    src = opt("--from", None)
    if mode == "trickle":
        limit = float(opt("--max", "12"))
        if "--http" in sys.argv:
            data = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
        else:
            # a frame header that announces 1000 bytes of payload, then the payload a byte at a time
            data = b"JOUL" + bytes([1, 20, 0, 0]) + (1000).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\0" * 1000
        s = connect(kind, where, src)
        t0 = time.monotonic()
        for i in range(len(data)):
            try:
                s.send(data[i:i + 1])
            except OSError:
                break
            end = time.monotonic() + 1
            gone = False
            while time.monotonic() < end:
                r, _, _ = select.select([s], [], [], max(0, end - time.monotonic()))
                if r:
                    try:
                        if s.recv(65536) == b"":
                            gone = True
                            break
                    except OSError:
                        gone = True
                        break
            if gone or time.monotonic() - t0 > limit:
                break
        t = time.monotonic() - t0
        print(json.dumps({"closed_after_s": round(t, 2) if t <= limit else None}))
    elif mode == "idle":
        limit = float(opt("--max", "15"))
        s = connect(kind, where, src)
        t0 = time.monotonic()
        p = select.poll()
        p.register(s, select.POLLIN)
        t = None
        while time.monotonic() - t0 < limit:
            if p.poll(100) and closed(s):
                t = round(time.monotonic() - t0, 2)
                break
        print(json.dumps({"closed_after_s": t}))
    elif mode == "hold":
        n = int(sys.argv[4])
        conns = []
        spread = int(opt("--spread", "0"))
        for i in range(n):
            try:
                s = connect(kind, where, "127.0.0.%d" % (2 + i % spread) if spread else src)
                s.send(b"J")
                conns.append(s)
            except OSError:
                conns.append(None)
        time.sleep(1)
        k = sum(1 for s in conns if s is None or closed(s))
        print(json.dumps({"opened": n, "closed": k}), flush=True)
        ready = opt("--ready", None)
        if ready:
            open(ready, "w").close()
        time.sleep(float(opt("--hold", "0")))

main()
