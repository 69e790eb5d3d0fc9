#!/usr/bin/env python3
"""Smoke test of a built tikrelay binary: what a user sees on the first start.

Checks `--version` (version and this checkout's commit), `check --config` on the example config,
then twice `demo --port 0` (the first creates the commented config file where users look for
it, e.g. %APPDATA%\\tikrelay\\tikrelay.toml): the listening line, /healthz, the websocket hello and events, an
overlay page, the data dir (under %APPDATA%\\tikrelay on Windows), a clean stop with exit code 0
and the session totals saved; the second start restores them. Last, a start without a command
(a double-click) with nothing saved: idle, the dashboard's connect screen, a clean stop.

Runs the binary under Wine (scripts/test-windows.sh, on Linux) or natively (the release
workflow, on each OS). Standard library only. Each check prints one `ok:` line; the first
failure prints `FAIL:` with what was expected and what came, plus the relay's stderr, and
exits 1.

Usage: smoke_check.py [--wine PREFIX] EXE REPO
  --wine PREFIX  run EXE with wine in this (initialised) WINEPREFIX
  EXE            the tikrelay binary
  REPO           the repository root (for examples/tikrelay.toml and the commit)
"""

import base64
import http.client
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Generous bounds: Wine is slow to start, the machine is shared. Nothing asserts on timing.
START_TIMEOUT = 180
WAIT = 60


class Failure(Exception):
    pass


def ok(msg):
    print(f"ok: {msg}", flush=True)


class Mode:
    """How the binary runs here: the command, environment, data dir and stop signal."""

    def __init__(self, exe, wine_prefix, work):
        env = dict(os.environ, RUST_LOG="info")
        for k in [k for k in env if k.startswith("TIKRELAY_")]:
            del env[k]
        self.popen_flags = {}
        exe = os.path.abspath(exe)
        if wine_prefix:
            self.command = ["wine", exe]
            env.update(WINEPREFIX=wine_prefix, WINEDEBUG="-all")
            env.pop("DISPLAY", None)
            env.pop("WAYLAND_DISPLAY", None)
            user = os.environ.get("USER") or subprocess.run(
                ["id", "-un"], capture_output=True, text=True
            ).stdout.strip()
            self.data = os.path.join(
                wine_prefix, "drive_c", "users", user, "AppData", "Roaming", "tikrelay"
            )
            # The config file the first start creates: %APPDATA%\tikrelay\tikrelay.toml.
            self.config = os.path.join(self.data, "tikrelay.toml")
            # What the relay itself sees and logs: %APPDATA%\tikrelay.
            self.logged_data = re.compile(
                r"C:\\users\\[^\\]+\\AppData\\Roaming\\tikrelay\\demo", re.I
            )
            # Wine turns SIGINT into a CTRL_C_EVENT for the console program, which runs the
            # console control handler the relay installed (tokio::signal::ctrl_c): the path a
            # user pressing Ctrl-C in the console window takes.
            self.stop = lambda proc: proc.send_signal(signal.SIGINT)
            self.stop_log = "Ctrl-C: shutting down"
            self.host_path = lambda p: "Z:" + os.path.abspath(p).replace("/", "\\")
        elif os.name == "nt":
            self.command = [exe]
            # The real per-user folder of this (throwaway CI) account: the default is the check.
            self.data = os.path.join(os.environ["APPDATA"], "tikrelay")
            self.config = os.path.join(self.data, "tikrelay.toml")
            self.logged_data = re.compile(re.escape(os.path.join(self.data, "demo")), re.I)
            # Ctrl-C is disabled in a new process group; Ctrl-Break reaches it, and the relay
            # treats it like Ctrl-C.
            self.popen_flags = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
            self.stop = lambda proc: proc.send_signal(signal.CTRL_BREAK_EVENT)
            self.stop_log = "Ctrl-Break: shutting down"
            self.host_path = os.path.abspath
        else:
            self.command = [exe]
            # Never the real per-user folder on a developer's machine.
            self.data = os.path.join(work, "data")
            env["TIKRELAY_DATA_DIR"] = self.data
            # Nor the real per-user config file (Linux: XDG_CONFIG_HOME, macOS: HOME).
            env["XDG_CONFIG_HOME"] = os.path.join(work, "config")
            env["HOME"] = os.path.join(work, "home")
            if sys.platform == "darwin":
                self.config = os.path.join(
                    work, "home", "Library", "Application Support", "tikrelay", "tikrelay.toml"
                )
            else:
                self.config = os.path.join(work, "config", "tikrelay", "tikrelay.toml")
            self.logged_data = re.compile(re.escape(os.path.join(self.data, "demo")))
            self.stop = lambda proc: proc.send_signal(signal.SIGINT)
            self.stop_log = "Ctrl-C: shutting down"
            self.host_path = os.path.abspath
        self.env = env


class Relay:
    """The relay running, its stdout lines and stderr collected by threads."""

    def __init__(self, mode, args):
        self.proc = subprocess.Popen(
            [*mode.command, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=mode.env,
            **mode.popen_flags,
        )
        self.stdout = queue.Queue()
        self.stderr_lines = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self):
        for raw in self.proc.stdout:
            self.stdout.put(raw.decode("utf-8", "replace"))
        self.stdout.put(None)

    def _read_err(self):
        for raw in self.proc.stderr:
            with self._lock:
                self.stderr_lines.append(raw.decode("utf-8", "replace"))

    def stderr(self):
        with self._lock:
            return "".join(self.stderr_lines)

    def line(self, timeout):
        try:
            line = self.stdout.get(timeout=timeout)
        except queue.Empty:
            raise Failure(f"no output line within {timeout} s")
        if line is None:
            raise Failure(f"the relay ended (exit code {self.proc.wait()}) before printing a line")
        return line

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def http_get(addr, path):
    host, port = addr
    conn = http.client.HTTPConnection(host, port, timeout=WAIT)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


class WebSocket:
    """A minimal RFC 6455 client: handshake, unmasked server frames, masked client frames."""

    def __init__(self, addr, path):
        self.sock = socket.create_connection(addr, timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failure(f"websocket handshake: connection closed after {head!r}")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise Failure(f"websocket handshake answered {status!r}, not 101")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("websocket closed by the relay")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def next_json(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack(">Q", self._read(8))
            if b1 & 0x80:
                raise Failure("the server sent a masked frame")
            payload = self._read(n)
            if opcode == 0x9:
                self._send(0xA, payload)
                continue
            if opcode == 0x8:
                raise Failure(f"websocket closed by the relay: {payload!r}")
            if opcode in (0x1, 0x0):
                message += payload
                if b0 & 0x80:
                    return json.loads(message)

    def close(self):
        try:
            self._send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


def wait_exit(relay, timeout):
    try:
        return relay.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def run_version(mode, repo):
    out = subprocess.run(
        [*mode.command, "--version"], env=mode.env, capture_output=True, timeout=WAIT
    )
    text = out.stdout.decode("utf-8", "replace").strip()
    m = re.fullmatch(r"tikrelay (\d+\.\d+\.\d+\S*) \(([0-9a-f]{7,}|unknown)\)", text)
    if out.returncode != 0 or not m:
        raise Failure(f"--version printed {text!r} (exit {out.returncode}); expected 'tikrelay X.Y.Z (commit)'")
    # The exe must carry the commit it was built from (built from this checkout just before).
    head = subprocess.run(
        ["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0 and m.group(2) != head.stdout.strip():
        raise Failure(f"--version says commit {m.group(2)}, the checkout is at {head.stdout.strip()}: rebuild with scripts/build-windows.sh")
    ok(f"--version: {text}")


def run_check(mode, repo):
    config = os.path.join(repo, "examples", "tikrelay.toml")
    # Under Wine a Windows path (Z: is the Unix root), as a Windows user would type it.
    win_path = mode.host_path(config)
    out = subprocess.run(
        [*mode.command, "check", "--config", win_path],
        env=mode.env,
        capture_output=True,
        timeout=WAIT,
    )
    if out.returncode != 0:
        raise Failure(
            f"check --config {win_path} exited {out.returncode}:\n"
            + out.stdout.decode("utf-8", "replace")
            + out.stderr.decode("utf-8", "replace")
        )
    ok(f"check --config {win_path}")


def run_demo(mode, restored=None):
    """One demo run. With `restored` (the first run's saved session), the demo sends nothing
    (--rate 0) and the hello must carry exactly the saved totals."""
    rate = "20" if restored is None else "0"
    relay = Relay(mode, ["demo", "--port", "0", "--rate", rate])
    try:
        return _run_demo(relay, mode, restored)
    except Failure as f:
        relay.kill()
        raise Failure(f"{f}\n--- relay stderr ---\n{relay.stderr()}")
    finally:
        relay.kill()


def _run_demo(relay, mode, restored):
    first = relay.line(START_TIMEOUT)
    m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\r?\n", first)
    if not m:
        raise Failure(f"first stdout line is {first!r}, expected 'listening on http://127.0.0.1:PORT'")
    if first.endswith("\r\n"):
        raise Failure("the listening line ends in CRLF: scripts reading it would get a stray \\r")
    addr = ("127.0.0.1", int(m.group(1)))
    ok(first.strip())
    lines = []
    while True:
        try:
            line = relay.line(3)
        except Failure:
            break
        lines.append(line.strip())
    pages = [l.split()[0] for l in lines if "/overlays/" in l]
    if not pages:
        raise Failure(f"no overlay URLs printed after the listening line: {lines}")

    status, _, body = http_get(addr, "/healthz")
    if status != 200:
        raise Failure(f"/healthz answered {status}: {body[:200]!r}")
    ok(f"/healthz {status} {body[:80].decode('utf-8', 'replace').strip()}")

    ws = WebSocket(addr, "/ws")
    hello = ws.next_json()
    if hello.get("type") != "hello" or hello.get("v") != 1 or not isinstance(
        hello.get("state", {}).get("totals"), dict
    ):
        raise Failure(f"first websocket message is not a hello with totals: {str(hello)[:300]}")
    ok("websocket hello with state.totals")
    if restored is not None:
        saved = restored.get("totals")
        if not isinstance(saved, dict) or not any(saved.values()):
            raise Failure(f"the first run saved no totals: {str(restored)[:300]}")
        now = {k: hello["state"]["totals"].get(k) for k in saved}
        if now != saved:
            raise Failure(f"restart: totals {now}, but the first run saved {saved}")
        ok(f"restart restored the saved totals {saved}")
    else:
        types = set()
        deadline = time.monotonic() + WAIT
        while len(types) < 4 and time.monotonic() < deadline:
            msg = ws.next_json()
            if msg.get("type") in ("state", "queue"):
                continue
            if msg.get("source") != "demo" or not msg.get("id") or msg.get("v") != 1:
                raise Failure(f"event without the demo envelope: {str(msg)[:300]}")
            types.add(msg["type"])
        if len(types) < 4:
            raise Failure(f"only event types {sorted(types)} arrived on the websocket")
        ok(f"websocket events: {', '.join(sorted(types))}")

    alerts = next((p for p in pages if "/alerts" in p), pages[0])
    path = alerts.split("://", 1)[1].split("/", 1)[1]
    status, ctype, body = http_get(addr, "/" + path)
    if status != 200 or "text/html" not in ctype or b"<html" not in body.lower():
        raise Failure(f"overlay page /{path}: {status} {ctype} {body[:200]!r}")
    ok(f"overlay page /{path} ({len(body)} bytes of HTML)")

    # The relay logs where its data lives; on Windows that must be under %APPDATA%.
    m = re.search(r"data dir: (\S.*?)\r?$", relay.stderr(), re.M)
    if not m:
        raise Failure("the relay did not log its data dir")
    logged = m.group(1)
    if not mode.logged_data.fullmatch(logged):
        raise Failure(f"data dir is {logged!r}, expected {mode.logged_data.pattern}")
    ok(f"data dir {logged}")

    # A stop with the overlays still connected, as when the streamer ends the relay mid-show.
    mode.stop(relay.proc)
    code = wait_exit(relay, WAIT)
    ws.close()
    if code is None:
        raise Failure(f"still running {WAIT} s after the stop signal")
    if code != 0:
        raise Failure(f"exit code {code} after the stop signal, expected 0")
    # The reader thread may still hold the last lines.
    time.sleep(0.5)
    if mode.stop_log not in relay.stderr():
        raise Failure(f"exit without the {mode.stop_log!r} log line")
    ok(f"{mode.stop_log.split(':')[0]}: clean stop, exit code 0")

    saved = os.path.join(mode.data, "demo", "session.json")
    if not os.path.isfile(saved):
        raise Failure(f"no session.json in {os.path.dirname(saved)} after the stop")
    with open(saved, encoding="utf-8") as f:
        session = json.load(f)
    ok(f"session totals saved in {saved} ({os.path.getsize(saved)} bytes)")
    problems = [
        l for l in relay.stderr().splitlines() if " WARN " in l or " ERROR " in l or "panicked" in l
    ]
    if problems:
        raise Failure("warnings or errors in a clean run:\n" + "\n".join(problems))
    ok("no warnings or errors logged")
    return session


def main():
    args = sys.argv[1:]
    wine_prefix = None
    if args[:1] == ["--wine"]:
        wine_prefix, args = args[1], args[2:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    exe, repo = args
    with tempfile.TemporaryDirectory() as work:
        mode = Mode(exe, wine_prefix, work)
        try:
            run_version(mode, repo)
            run_check(mode, repo)
            if os.path.exists(mode.config):
                raise Failure(f"{mode.config} exists before the first start")
            first = run_demo(mode)
            run_config_created(mode, repo)
            # A second start loads what the first saved (a file replaced by rename while the
            # first ran, the step Windows is strict about) and goes on from there.
            run_demo(mode, restored=first)
            run_idle(mode)
        except Failure as f:
            print(f"FAIL: {f}", file=sys.stderr, flush=True)
            return 1
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            return 1
    return 0


def run_idle(mode):
    """`tikrelay` without a command (a double-click) and nothing saved: idle, the dashboard
    showing its connect screen, and a clean stop."""
    relay = Relay(mode, ["--no-browser", "--port", "0"])
    try:
        first = relay.line(START_TIMEOUT)
        m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\r?\n", first)
        if not m:
            raise Failure(f"without a command, the first line is {first!r}")
        addr = ("127.0.0.1", int(m.group(1)))
        status, _, body = http_get(addr, "/api/setup")
        setup = json.loads(body or b"{}")
        if status != 200 or setup.get("idle") is not True:
            raise Failure(f"without a command and nothing saved, /api/setup is {status} {body[:200]!r}")
        status, ctype, body = http_get(addr, "/")
        if status != 200 or "text/html" not in ctype or b'id="firstrun"' not in body:
            raise Failure(f"the dashboard without a source has no connect screen: {status} {body[:200]!r}")
        ok("without a command: idle, the dashboard shows the connect screen")
        mode.stop(relay.proc)
        code = wait_exit(relay, WAIT)
        if code != 0:
            raise Failure(f"without a command: exit code {code} after the stop signal, expected 0")
        ok("without a command: clean stop, exit code 0")
    except Failure as f:
        raise Failure(f"{f}\n--- relay stderr ---\n{relay.stderr()}")
    finally:
        relay.kill()


def run_config_created(mode, repo):
    """The first start wrote the built-in config, comments included, where users look."""
    try:
        with open(mode.config, "rb") as f:
            text = f.read().decode("utf-8").replace("\r\n", "\n")
    except OSError as e:
        raise Failure(f"the first start did not create the config file {mode.config}: {e}")
    with open(os.path.join(repo, "src", "config", "default.toml"), "rb") as f:
        want = f.read().decode("utf-8").replace("\r\n", "\n")
    if text != want:
        raise Failure(f"{mode.config} is not the built-in config:\n{text[:500]}")
    ok(f"config file created: {mode.config}")


if __name__ == "__main__":
    sys.exit(main())
