# Where the time of a guest->host stream goes, measured, not guessed: the same
# guest sends 64 MiB over vsock (through the backend) and over virtio-serial
# (QEMU's own chardev), and for each the run records, per MiB moved, the guest's
# CPU time by kind (/proc/stat: user, system, irq+softirq), the guest's
# interrupts (/proc/interrupts), the CPU time of each QEMU thread (the TCG vCPU
# threads run the guest kernel and the guest program; the main thread runs the
# eventfds, the chardev and interrupt injection), of the backend and of the host
# reader. Prints the model as diag lines; asserts only that every byte arrived.
import json
import os
import socket
import time

MIB = 64
PORT = 5250

GUEST = r"""
import json, glob, os, socket, sys, time
mode, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def stat():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    irqs = {}
    with open("/proc/interrupts") as f:
        ncpu = len(f.readline().split())
        for line in f:
            p = line.split()
            if len(p) > ncpu and p[0].endswith(":") and all(x.isdigit() for x in p[1:1 + ncpu]):
                irqs[p[0][:-1] + " " + " ".join(p[1 + ncpu:])[-32:]] = sum(int(x) for x in p[1:1 + ncpu])
    return cpu, irqs

if mode == "vsock":
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.setsockopt(socket.AF_VSOCK, getattr(socket, "SO_VM_SOCKETS_BUFFER_MAX_SIZE", 2), 4 << 20)
    s.setsockopt(socket.AF_VSOCK, getattr(socket, "SO_VM_SOCKETS_BUFFER_SIZE", 0), 4 << 20)
    s.connect((2, port))
    fd = s.fileno()
else:
    s = None
    for p in glob.glob("/sys/class/virtio-ports/*/name"):
        if open(p).read().strip() == "org.guestlink.bench":
            fd = os.open("/dev/" + p.split("/")[-2], os.O_RDWR)
    time.sleep(0.5)
data = memoryview(b"\x5a" * (4 << 20))
cpu0, irq0 = stat()
t0 = time.monotonic()
left = n
while left:
    left -= os.write(fd, data[:min(left, len(data))])
if s is not None:
    s.shutdown(socket.SHUT_WR)
    s.settimeout(60)
    while s.recv(65536):
        pass
t1 = time.monotonic()
cpu1, irq1 = stat()
hz = os.sysconf("SC_CLK_TCK")
names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
print(json.dumps({"seconds": t1 - t0,
                  "cpu_ms": {k: (cpu1[i] - cpu0[i]) * 1000 / hz for i, k in enumerate(names)},
                  "irqs": {k: v - irq0.get(k, 0) for k, v in irq1.items() if v - irq0.get(k, 0) > 0}}))
"""


def thread_ticks(pid):
    """{tid: utime+stime in clock ticks} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def measure(vm, H, mode, prefix=""):
    """Run one transfer (the guest command line after `prefix`); returns (bytes,
    model dict) or (bytes, None)."""
    hz = os.sysconf("SC_CLK_TCK")
    ls = conn = None
    if mode == "vsock":
        lpath = "%s_%d" % (vm.uds, PORT)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(lpath)
        ls.listen(1)
        ls.settimeout(150 if prefix else 60)
    else:
        conn = vm.bench_port()
    try:
        h = vm.ctl.start("timeout 280 %spython3 - %s %d %d" % (prefix, mode, MIB << 20, PORT),
                         timeout=290, stdin=GUEST)
        if ls is not None:
            try:
                conn, _ = ls.accept()
            except socket.timeout:
                r = vm.ctl.result(h)
                H.diag("25: %s: the guest never connected: %s"
                       % (mode, (r["err"] or r["out"])[-300:]))
                return 0, None
        conn.settimeout(120)
        # Host-side CPU counted from the first byte to the last (not the guest
        # helper's start-up, which TCG makes slow).
        got = 0
        while got < MIB << 20:
            b = conn.recv(1 << 20)
            if not b:
                break
            if got == 0:
                q0, b0 = thread_ticks(vm.qemu.pid), thread_ticks(vm.backend.pid)
                r0, w0 = time.thread_time(), time.monotonic()
            got += len(b)
        w1 = time.monotonic()
        q1, b1, r1 = thread_ticks(vm.qemu.pid), thread_ticks(vm.backend.pid), time.thread_time()
        if ls is not None:
            conn.close()
        r = vm.ctl.result(h)
        if got == 0:
            return 0, None
    finally:
        if ls is not None:
            ls.close()
            os.unlink(lpath)
    try:
        g = json.loads(r["out"].strip().split("\n")[-1])
    except ValueError:
        H.diag("25: %s guest helper failed: %s" % (mode, (r["err"] or r["out"])[-300:]))
        return got, None
    mib = got / (1 << 20)
    qd = {t: (q1.get(t, 0) - q0.get(t, 0)) * 1000 / hz for t in q1}
    model = {
        "MiB/s": mib / g["seconds"],
        "guest user": g["cpu_ms"]["user"] / mib,
        "guest system": g["cpu_ms"]["system"] / mib,
        "guest irq+softirq": (g["cpu_ms"]["irq"] + g["cpu_ms"]["softirq"]) / mib,
        "guest idle": g["cpu_ms"]["idle"] / mib,
        "qemu main thread": qd.get(vm.qemu.pid, 0) / mib,
        "qemu other threads (TCG vCPUs)": sum(v for t, v in qd.items() if t != vm.qemu.pid) / mib,
        "backend": sum((b1.get(t, 0) - b0.get(t, 0)) for t in b1) * 1000 / hz / mib,
        "host reader": (r1 - r0) * 1000 / mib,
        "host wall": (w1 - w0) * 1000 / mib,
    }
    irqs = sorted(g["irqs"].items(), key=lambda kv: -kv[1])[:4]
    model["guest interrupts"] = ", ".join("%s: %.0f" % (k.strip(), v / mib) for k, v in irqs)
    return got, model


def s25_g2h_model(vm, H):
    for mode in ("vsock", "serial"):
        got, m = measure(vm, H, mode)
        H.ok(got == MIB << 20, "25: %s guest->host %d MiB arrived whole (%d bytes)"
             % (mode, MIB, got))
        if not m:
            continue
        H.diag("25: %s g2h %.1f MiB/s; per MiB, ms of CPU: %s" % (
            mode, m["MiB/s"], ", ".join("%s %.2f" % (k, v) for k, v in m.items()
                                        if k not in ("MiB/s", "guest interrupts"))))
        H.diag("25: %s g2h guest interrupts per MiB: %s" % (mode, m["guest interrupts"]))


def s25_g2h_guest_profile(vm, H):
    """The guest kernel's share, by function: the vsock sender again under perf
    (cpu-clock, whole guest), when the guest has perf (it sees the host's root)."""
    r = vm.ctl.sh("perf record -q -e cpu-clock -a -o /tmp/g2h.probe -- true 2>&1; echo rc=$?",
                  timeout=120)
    if not r["out"].rstrip().endswith("rc=0"):
        H.skip("25: guest kernel profile", "perf does not run in the guest: %s"
               % r["out"].strip()[-200:].replace("\n", " "))
        return
    got, m = measure(vm, H, "vsock", "perf record -q -F 200 -e cpu-clock -a -o /tmp/g2h.perf -- ")
    H.ok(got == MIB << 20, "25: vsock guest->host under perf: %d MiB arrived whole" % MIB)
    r = vm.ctl.sh("perf report -i /tmp/g2h.perf --no-children --sort sym --stdio 2>/dev/null"
                  " | grep -v '^#' | grep -v '^$' | head -25", timeout=300)
    H.diag("25: guest profile of vsock g2h (%s MiB/s under perf):\n%s"
           % ("%.1f" % m["MiB/s"] if m else "?", r["out"].rstrip()))


SCENARIOS = [s25_g2h_model, s25_g2h_guest_profile]
