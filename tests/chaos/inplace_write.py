#!/usr/bin/env python3
"""Issue 20 item 8 on the built binary: a journal written in place while the
relay serves. 4 threads post 5-event batches for 3 s on loopback (ports 18291,
18292), the journal is written 1 s in (`cp` of an earlier copy of it over
relay.db, or `truncate -s0 relay.db-wal`), then SIGTERM, a restart, and a count
of the acknowledged batch ids the journal at the path holds. Prints the
answers, how soon the first 503 came, lost = acknowledged but not there, the
journal's integrity_check, and the relay's log lines about it; when a saved copy
was left, what `sqlite3 .recover` finds in it. KEEP=1 keeps the directory;
FRESH=1 serves the load with the relay that created the journal (the copy is
then taken with SQLite's backup API while it runs) instead of one restarted.

    python3 tests/chaos/inplace_write.py build/app/mews-relay cp|truncate
"""
import json, os, re, shutil, signal, sqlite3, subprocess, sys, tempfile, threading, time, urllib.request

binary, fault = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="jfile-inplace.")
db = os.path.join(work, "relay.db")
port = 18291
ini = os.path.join(work, "relay.ini")
open(ini, "w").write(f"""[server]\nlisten = 127.0.0.1:{port}\ntokens = inplace-token-0123456789\n[admin]\nlisten = 127.0.0.1:18292\n[journal]\npath = {db}\n[target.pms]\nurl = http://127.0.0.1:9/unused\n""")
body = json.dumps({"EnterpriseId": "851df8c8-90f2-4c4a-8e01-a4fc46b25178",
                   "IntegrationId": "c8bee838-7fb1-4f4e-8fac-ac87008b2f90",
                   "Events": [{"Discriminator": "ReservationUpdated", "Value": {"Id": f"r{i}"}} for i in range(5)]}).encode()
url = f"http://127.0.0.1:{port}/webhooks/mews?token=inplace-token-0123456789"

def start(log):
    p = subprocess.Popen([binary, "-c", ini, "serve"], stderr=open(log, "w"))
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:18292/readyz", timeout=1); return p
        except Exception: time.sleep(0.05)
    raise SystemExit("relay did not start: " + open(log).read()[-600:])

def post():
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r: return r.status, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()

other = os.path.join(work, "other.db")
if os.environ.get("FRESH"):
    # The relay that created the journal serves the load (it has read every page it has).
    relay = start(os.path.join(work, "relay2.log"))
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True); target = sqlite3.connect(other)
    source.backup(target); target.close(); source.close()
else:
    relay = start(os.path.join(work, "relay1.log")); relay.send_signal(signal.SIGTERM); relay.wait()
    shutil.copy(db, other)  # a valid journal of the same schema: a backup
    relay = start(os.path.join(work, "relay2.log"))
acked, statuses, lock = [], {}, threading.Lock()
t0 = time.monotonic()
def load():
    while time.monotonic() - t0 < 3:
        status, text = post()
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
            if status == 202: acked.append(int(re.search(r'"batch":(\d+)', text).group(1)))
threads = [threading.Thread(target=load) for _ in range(4)]
for t in threads: t.start()
time.sleep(1)
with lock: acked_before = len(acked)
if fault == "cp": shutil.copyfile(other, db)  # same inode, the backup's bytes
else: os.truncate(db + "-wal", 0)
made = time.monotonic()
first_503 = None
while time.monotonic() - made < 2:
    with lock:
        if statuses.get(503):
            first_503 = time.monotonic() - made; break
    time.sleep(0.001)
for t in threads: t.join()
relay.send_signal(signal.SIGTERM); relay.wait()
log2 = open(os.path.join(work, "relay2.log")).read()
try:
    relay = start(os.path.join(work, "relay3.log")); relay.send_signal(signal.SIGTERM); relay.wait()
    restart = "ok"
except SystemExit as e:
    restart = str(e).splitlines()[-1][:160]
try:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    integrity = c.execute("PRAGMA integrity_check").fetchone()[0]
    present = c.execute(f"SELECT count(*) FROM batches WHERE id IN ({','.join(map(str, acked))})").fetchone()[0]
except Exception as e:
    integrity, present = f"error: {e}", 0
lines = [l for l in log2.splitlines() if "another process" in l or "cannot be saved" in l or "put back" in l]
print(f"fault={fault} answers={statuses} acked={len(acked)} (before the fault {acked_before}) "
      f"first_503_after_fault_ms={None if first_503 is None else round(first_503*1000, 1)} "
      f"restart: {restart}; after_restart: present={present} lost={len(acked)-present} integrity={integrity}")
for l in lines[:3]: print("  log:", l[:330])
for name in sorted(os.listdir(work)):
    if ".saved-" in name and not name.endswith("-journal"):
        saved = os.path.join(work, name)
        rec = os.path.join(work, "recovered.db")
        subprocess.run(f"sqlite3 -readonly '{saved}' .recover | sqlite3 '{rec}'", shell=True, capture_output=True)
        try:
            c = sqlite3.connect(rec)
            got = c.execute(f"SELECT count(DISTINCT id) FROM batches WHERE id IN ({','.join(map(str, acked))})").fetchone()[0]
        except Exception as e:
            got = f"error: {e}"
        print(f"  saved copy {name}: sqlite3 .recover finds {got} of {len(acked)} acknowledged batches")
if not os.environ.get("KEEP"): shutil.rmtree(work)
else: print("kept", work)
