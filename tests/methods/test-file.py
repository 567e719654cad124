# SPDX-License-Identifier: LGPL-2.1-or-later
"""file.*: real files in a temporary directory through a running agent."""

import os
import random
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, b64, unb64, error_code  # noqa: E402

agent = Agent()
c = agent.client()
d = g.tmpdir()
rng = random.Random(1234)


def path(name):
    return os.path.join(d, name)


def read_all(p, chunk=1 << 20):
    out, off = b"", 0
    while True:
        r = c.result("file.read", {"path": p, "offset": off, "length": chunk})
        data = unb64(r["data"])
        out += data
        off += len(data)
        if r["eof"]:
            return out


# --- round trips of random sizes ---
sizes = [0, 1, 2, 3, 4095, 65536 + 7] + [rng.randrange(1, 3 << 20) for _ in range(4)]
good = 0
for k, n in enumerate(sizes):
    data = rng.randbytes(n)
    p = path("rt%d" % k)
    c.result("file.write", {"path": p, "data": b64(data)})
    with open(p, "rb") as f:
        on_disk = f.read()
    back = read_all(p, chunk=rng.choice([1000, 65536, 1 << 20]))
    good += on_disk == data and back == data
g.is_eq(good, len(sizes), "write then read of %d random sizes is byte for byte" % len(sizes))

# --- chunked uploads through a handle, several writes in flight ---
data = rng.randbytes(5 * 1000 * 1000 + 3)
p = path("chunked")
h = c.result("file.open", {"path": p, "mode": 0o640})["handle"]
chunk = 256 * 1024
ids = [c.request("file.write", {"handle": h, "offset": off, "data": b64(data[off:off + chunk])})
       for off in range(0, len(data), chunk)][::-1]  # answers may come in any order
ok_all = all("result" in c.answer(i) for i in ids)
g.ok(ok_all and not os.path.exists(p), "the file does not exist before file.close")
r = c.result("file.close", {"handle": h})
with open(p, "rb") as f:
    g.ok(f.read() == data and r["size"] == len(data), "file.close renames the upload into place")
g.is_eq(stat.S_IMODE(os.stat(p).st_mode), 0o640, "the requested mode is set")
g.is_eq(error_code(c.call("file.write", {"handle": h, "data": ""})), -32002,
        "a closed handle is unknown (-32002)")

# aborted upload
h = c.result("file.open", {"path": path("aborted")})["handle"]
c.result("file.write", {"handle": h, "data": b64(b"x" * 1000)})
c.result("file.close", {"handle": h, "abort": True})
g.ok(not os.path.exists(path("aborted")), "file.close abort leaves no file")

# a dropped connection mid-write leaves no partial file, and no temporary file
before = set(os.listdir(d))
with open(path("victim"), "wb") as f:
    f.write(b"old contents")
other = agent.client()
h = other.result("file.open", {"path": path("victim")})["handle"]
other.result("file.write", {"handle": h, "data": b64(b"new" * 100000)})
other.close()
time.sleep(0.5)
with open(path("victim"), "rb") as f:
    g.is_eq(f.read(), b"old contents", "a dropped connection mid-upload leaves the old file intact")
h2 = None
other = agent.client()
h2 = other.result("file.open", {"path": path("fresh")})["handle"]
other.result("file.write", {"handle": h2, "data": b64(b"partial")})
other.close()
time.sleep(0.5)
g.ok(not os.path.exists(path("fresh")), "a dropped connection mid-upload creates no file")
g.is_eq(sorted(set(os.listdir(d)) - before), ["victim"], "no temporary files are left behind")
g.is_eq(error_code(c.call("file.write", {"handle": h, "data": ""})), -32002,
        "another connection cannot use a handle")

# Half a file.write message, then the connection drops: nothing written.
raw = agent.client()
raw.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"file.write","params":{"path":"%s","data":"%s'
             % (path("half").encode(), b"QUFB" * 10000))
raw.close()
time.sleep(0.3)
g.ok(not os.path.exists(path("half")), "a half-sent file.write writes nothing")

# --- whole-file replace keeps mode; in-place writes ---
p = path("modes")
with open(p, "wb") as f:
    f.write(b"0123456789")
os.chmod(p, 0o604)
c.result("file.write", {"path": p, "data": b64(b"replaced")})
with open(p, "rb") as f:
    g.is_eq((f.read(), stat.S_IMODE(os.stat(p).st_mode)), (b"replaced", 0o604),
            "replacing a whole file keeps its mode")
c.result("file.write", {"path": p, "data": b64(b"XY"), "offset": 2})
with open(p, "rb") as f:
    g.is_eq(f.read(), b"reXYaced", "offset writes in place")
c.result("file.write", {"path": p, "data": b64(b"!"), "append": True})
c.result("file.write", {"path": p, "data": b64(b"Z"), "offset": 1, "truncate": True})
with open(p, "rb") as f:
    g.is_eq(f.read(), b"rZ", "append, then offset with truncate")
r = c.result("file.read", {"path": p, "offset": 1, "length": 10})
g.is_eq((unb64(r["data"]), r["eof"]), (b"Z", True), "read with offset reports eof")
g.is_eq(error_code(c.call("file.write", {"path": path("nocreate"), "data": "", "create": False})),
        -32002, "create false on a missing file: -32002")

# --- stat, list, mkdir, rename, remove ---
c.result("file.mkdir", {"path": path("a/b/c"), "parents": True, "mode": 0o750})
g.ok(os.path.isdir(path("a/b/c")), "mkdir with parents")
c.result("file.mkdir", {"path": path("a/b/c"), "parents": True})
g.ok(True, "mkdir with parents of an existing directory succeeds")
g.is_eq(error_code(c.call("file.mkdir", {"path": path("a")})), -32000,
        "mkdir of an existing directory: -32000")
os.symlink("modes", path("link"))
os.mkfifo(path("fifo"))
st = c.result("file.stat", {"path": path("link")})
g.is_eq((st["type"], st.get("target")), ("symlink", "modes"), "stat of a symlink with its target")
st = c.result("file.stat", {"path": path("link"), "follow": True})
g.is_eq((st["type"], st["size"]), ("file", 2), "stat following a symlink")
ents = {e["name"]: e for e in c.result("file.list", {"path": d})["entries"]}
g.ok(ents["a"]["type"] == "directory" and ents["fifo"]["type"] == "fifo" and
     ents["modes"]["size"] == 2 and ents["link"]["type"] == "symlink",
     "list gives names, types and sizes")
r = c.result("file.read", {"path": path("fifo")})
g.is_eq(r["data"], "", "reading a FIFO without a writer does not hang the agent")
badname = os.fsencode(d) + b"/bad\xffname"
with open(badname, "wb"):
    pass
ents = c.result("file.list", {"path": d})["entries"]
g.ok(any(unb64(e.get("name_base64", "")) == b"bad\xffname" for e in ents),
     "a non-UTF-8 name is listed as name_base64")
r = c.result("file.list", {"path": d, "limit": 2})
g.ok(r["truncated"] and len(r["entries"]) == 2, "list limit truncates and says so")
c.result("file.rename", {"from": path("modes"), "to": path("renamed")})
g.ok(os.path.exists(path("renamed")) and not os.path.exists(path("modes")), "rename")
c.result("file.remove", {"path": path("renamed")})
c.result("file.remove", {"path": path("a/b/c")})
g.ok(not os.path.exists(path("renamed")) and not os.path.exists(path("a/b/c")),
     "remove a file and an empty directory")

# --- raw side channel: file.channel + file.attach on a second connection ---
def attach(token):
    s = agent.client()
    s.send({"jsonrpc": "2.0", "id": 1, "method": "file.attach", "params": {"token": token}})
    return s, s.recv(10)


data = rng.randbytes(3 * 1000 * 1000 + 11)
p = path("chan-up")
tok = c.result("file.channel", {"path": p, "direction": "upload", "size": len(data),
                                "mode": 0o600})["token"]
s, a = attach(tok)
g.is_eq(a.get("result", {}).get("size"), len(data), "file.attach answers with the size")
s.send_raw(data[:1000])
g.ok(not os.path.exists(p), "a channel upload does not appear before it is complete")
s.send_raw(data[1000:])
st = s.recv(30)
with open(p, "rb") as f:
    g.ok(st == {"ok": True, "size": len(data)} and f.read() == data and
         stat.S_IMODE(os.stat(p).st_mode) == 0o600,
         "a raw channel upload lands byte for byte with its mode")
s.close()
g.is_eq(error_code(attach(tok)[1]), -32002, "a channel token is single-use")
g.is_eq(error_code(attach("0" * 32)[1]), -32002, "an unknown token answers -32002")

# The request and the first raw bytes in one write: nothing is lost or parsed as JSON.
tok = c.result("file.channel", {"path": path("chan-early"), "direction": "upload",
                                "size": 5})["token"]
s = agent.client()
s.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"file.attach","params":{"token":"%s"}}\nhello'
           % tok.encode())
a, st = s.recv(10), s.recv(10)
with open(path("chan-early"), "rb") as f:
    g.ok("result" in a and st["ok"] and f.read() == b"hello",
         "raw bytes sent right behind file.attach are kept")
s.close()

before = set(os.listdir(d))
tok = c.result("file.channel", {"path": path("chan-drop"), "direction": "upload",
                                "size": 1 << 20})["token"]
s, a = attach(tok)
s.send_raw(b"x" * 5000)
s.close()
time.sleep(0.5)
g.is_eq(set(os.listdir(d)) - before, set(), "a channel dropped mid-upload leaves no file")
tok = c.result("file.channel", {"path": path("chan-big"), "direction": "upload",
                                "size": 10})["token"]
s, a = attach(tok)
s.send_raw(b"y" * 20)
st = s.recv(10)
g.ok(st["ok"] is False and not os.path.exists(path("chan-big")),
     "more bytes than announced is refused, no file (%s)" % st)
s.close()

tok = c.result("file.channel", {"path": path("chan-up"), "direction": "download"})
g.is_eq((tok["size"], tok["mode"]), (len(data), 0o600), "a download channel tells size and mode")
s, a = attach(tok["token"])
got = s.buf
s.s.settimeout(30)
while True:
    chunk = s.s.recv(1 << 20)
    if not chunk:
        break
    got += chunk
g.ok(got == data, "a raw channel download is byte for byte, then the agent closes")
s.close()
g.is_eq(error_code(c.call("file.channel", {"path": path("x"), "direction": "upload"})), -32602,
        "an upload channel needs its size")
g.is_eq(error_code(c.call("file.channel", {"path": path("none"), "direction": "download"})),
        -32002, "a download channel of a missing file answers -32002")
g.is_eq(error_code(c.call("file.channel", {"path": d, "direction": "sideways"})), -32602,
        "an unknown direction answers -32602")
codes = [error_code(c.call("file.channel", {"path": path("rt5"), "direction": "download"}))
         for _ in range(70)]
g.ok(codes[:64] == [None] * 64 and set(codes[64:]) == {-32003},
     "at most 64 channels at once, then -32003")

# --- errors and bad input ---
a = c.call("file.read", {"path": path("missing")})
g.ok(error_code(a) == -32002 and a["error"]["data"]["errno"] == "ENOENT",
     "a missing path answers -32002 with the errno name")
a = c.call("file.read", {"path": d})
g.ok(error_code(a) == -32000 and a["error"]["data"]["errno"] == "EISDIR",
     "reading a directory answers -32000 with EISDIR")
a = c.call("file.remove", {"path": path("a")})
g.ok(error_code(a) == -32000 and a["error"]["data"]["errno"] == "ENOTEMPTY",
     "removing a non-empty directory answers ENOTEMPTY")
bad = [
    ("file.read", {"path": "/etc/pass\u0000wd"}, -32602, "path with NUL"),
    ("file.read", {"path": path("rt5"), "length": 1 << 40}, -32602, "huge length"),
    ("file.read", {"path": path("rt5"), "offset": -1}, -32602, "negative offset"),
    ("file.write", {"path": path("x"), "data": "not base64!"}, -32602, "data not base64"),
    ("file.write", {"path": path("x"), "data": "QQ"}, -32602, "base64 without padding"),
    ("file.write", {"path": path("x"), "data": "", "offset": 0, "append": True}, -32602,
     "offset and append together"),
    ("file.write", {"data": ""}, -32602, "neither path nor handle"),
    ("file.write", {"path": path("x"), "data": "", "mode": 0o70000}, -32602, "mode out of range"),
    ("file.write", {"handle": 424242, "data": ""}, -32002, "unknown handle"),
    ("file.stat", {"path": 5}, -32602, "path not a string"),
    ("file.stat", {}, -32602, "missing path"),
    ("file.rename", {"from": path("nothing"), "to": path("x")}, -32002, "rename of a missing path"),
]
for method, params, code, what in bad:
    a = c.call(method, params)
    g.ok(error_code(a) == code and a["error"].get("message"),
         "bad input answers %d: %s (%s)" % (code, what, a.get("error", {}).get("message")))
g.ok(not os.path.exists(path("x")), "rejected writes wrote nothing")

# Non-UTF-8 bytes inside a JSON string: the framing rejects them, the agent carries on.
raw = agent.client()
raw.send_raw(b'{"jsonrpc":"2.0","id":7,"method":"file.stat","params":{"path":"\xff\xfe"}}\n')
a = raw.recv(10)
g.ok(error_code(a) in (-32700, -32600, -32602), "non-UTF-8 path bytes are rejected (%s)"
     % a.get("error"))
raw.close()
g.ok(agent.alive() and "result" in c.call("agent.ping"), "the agent is unharmed")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0 on SIGTERM")
g.done()
