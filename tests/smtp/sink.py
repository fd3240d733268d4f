"""The mail tests' SMTP server: aiosmtpd on 127.0.0.1:PORT, writing each message it accepts to
DIR/<ns>-<pid>-<n>.json (in the order received, across restarts) as {mail_from, rcpt_tos, from, to, subject, message_id, text, html}, parsed with
Python's email package (the text and HTML parts decoded), so a test compares exact contents.

    python sink.py DIR PORT

Prints "ready" once it listens. Each file is written under a temporary name and renamed, so a
reader never sees half of one.
"""

import asyncio
import email
import itertools
import json
import os
import sys
import time
from email import policy

from aiosmtpd.controller import Controller


def lines(part):
    """A part's decoded content with SMTP's CRLF line ends as the sender wrote them (LF)."""
    return None if part is None else part.get_content().replace("\r\n", "\n")


class Sink:
    def __init__(self, out):
        self.out = out
        self.seq = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "text": lines(text),
            "html": lines(html),
        }
        n = next(self.seq)
        tmp = os.path.join(self.out, f".{n}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, os.path.join(self.out, f"{time.time_ns()}-{os.getpid()}-{n:06}.json"))
        return "250 OK"


def main():
    out, port = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
