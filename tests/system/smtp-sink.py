#!/usr/bin/python3
# smtp-sink.py - a real SMTP server for the mail tests (Debian's python3-aiosmtpd), on loopback: every
# message it accepts is stored as DIR/N.eml (the DATA as received) with DIR/N.json beside it (the envelope:
# mail_from, rcpt_tos, whether the client authenticated). Runs until SIGTERM/SIGINT.
#
#   smtp-sink.py --port PORT --dir DIR [--auth USER:PASSWORD] [--reject-rcpt SUBSTRING]
#
# --auth requires AUTH (PLAIN/LOGIN, allowed without TLS on loopback); --reject-rcpt answers 550 to every
# RCPT TO that contains SUBSTRING. Prints "ready" on stdout once it listens.
import argparse
import json
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, directory, reject):
        self.dir = directory
        self.reject = reject
        self.lock = threading.Lock()
        # numbering goes on after what an earlier sink left in the directory
        self.n = max([int(f[:-4]) for f in os.listdir(directory) if f.endswith(".eml")] or [0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and self.reject in address:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
            n = self.n
        base = os.path.join(self.dir, "%d" % n)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "authenticated": bool(getattr(session, "authenticated", False)),
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".tmp", base + ".eml")  # the .eml appears whole
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--auth")
    ap.add_argument("--reject-rcpt")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)

    kw = {}
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)

        kw = dict(authenticator=authenticator, auth_require_tls=False, auth_required=True)
    ctl = Controller(Sink(a.dir, a.reject_rcpt), hostname="127.0.0.1", port=a.port, **kw)
    ctl.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(0.2):
        pass
    ctl.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
