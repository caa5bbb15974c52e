#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module undertow.fleet.sweep: run one undertow tool for a duration, report what it sent."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sweep
short_description: Run an undertow tool for a duration and report events sent and lost
description:
  - Runs C(undertow TOOL --duration SECONDS --run-id ID) with each C(--output URL) given (NATS JetStream,
    ClickHouse), optionally also writing the events as NDJSON to a file the play can fetch back.
  - Meant to run as an async job (C(async:)/C(poll:)) for sweeps longer than an SSH session should last.
  - Reports events sent and lost per output (undertow's own report on standard error) and the kernel's losses.
options:
  tool:
    description: The undertow command (dns, connect, exec, exit, icmp, arp, inbound, filewatch, modules).
    required: true
    type: str
  duration:
    description: Seconds to run (undertow --duration).
    required: true
    type: float
  outputs:
    description: Output URLs (nats://HOST:PORT/SUBJECT, clickhouse+http://HOST:PORT/DB.TABLE).
    type: list
    elements: str
    default: []
  run_id:
    description: The run id every event carries (give all hosts of one sweep the same).
    type: str
  create:
    description: Create the stream/table when missing (undertow --create).
    type: bool
    default: false
  ndjson:
    description: Also write the events as NDJSON to a new file in I(ndjson_dir) and return its path.
    type: bool
    default: false
  ndjson_dir:
    description: Directory for the NDJSON file; created mode 0700; must be owned by the user running the module.
    type: path
    default: /var/lib/undertow/sweeps
  args:
    description: More arguments for the tool (e.g. C(["--comm", "xmrig*"])).
    type: list
    elements: str
    default: []
  undertow:
    description: The command that runs undertow (argv list).
    type: list
    elements: str
    default: [undertow]
author:
  - undertow developers
"""

EXAMPLES = r"""
- name: DNS for ten minutes, to NATS
  undertow.fleet.sweep:
    tool: dns
    duration: 600
    outputs: [nats://10.0.0.5:4222/undertow.events]
    run_id: sweep-20261207
  async: 720
  poll: 15
  register: sweep
"""

RETURN = r"""
events_sent:
  description: Events acknowledged by the network outputs (or written to the NDJSON file when there is none).
  type: int
events_lost:
  description: Events lost (outputs' spool overflow, unsent at the end, refused; plus the kernel's losses).
  type: int
outputs:
  description: Per output, its URL (password hidden), events sent and lost, and undertow's report line.
  type: list
kernel_lost:
  description: Events the kernel recorded that never reached undertow.
  type: int
ndjson:
  description: Path of the NDJSON file on the host (with ndjson=true).
  type: str
rc:
  description: undertow's exit status.
  type: int
stderr_lines:
  description: The last 40 lines undertow wrote to standard error.
  type: list
"""

import os
import re
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule

REPORT = re.compile(r": output (\S+): (\d+) events sent, (\d+) lost")
KERNEL_LOST = re.compile(r"^undertow \S+: lost (\d+) events")
TOOLS = ("dns", "connect", "exec", "exit", "icmp", "arp", "inbound", "filewatch", "modules", "trace", "run")


def _open_new(path, name):
    """Create ``path`` 0700 if missing, open it without following a symbolic link, refuse it when
    another user owns it or may write it (checked on the open descriptor), and create ``name``
    in it (O_EXCL, O_NOFOLLOW, mode 0600)."""
    os.makedirs(path, 0o700, exist_ok=True)
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror} (a symbolic link is not followed)") from None
    try:
        st = os.fstat(dfd)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise ValueError(f"{path} is owned or writable by another user")
        return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                       dir_fd=dfd)
    finally:
        os.close(dfd)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tool=dict(type="str", required=True, choices=list(TOOLS)),
            duration=dict(type="float", required=True),
            outputs=dict(type="list", elements="str", default=[]),
            run_id=dict(type="str"),
            create=dict(type="bool", default=False),
            ndjson=dict(type="bool", default=False),
            ndjson_dir=dict(type="path", default="/var/lib/undertow/sweeps"),
            args=dict(type="list", elements="str", default=[]),
            undertow=dict(type="list", elements="str", default=["undertow"]),
        ),
        supports_check_mode=False,
    )
    p = module.params
    if not p["duration"] > 0:
        module.fail_json(msg="duration must be > 0")
    if not p["outputs"] and not p["ndjson"]:
        module.fail_json(msg="give outputs (nats://..., clickhouse+http://...) or ndjson=true")
    argv = list(p["undertow"]) + [p["tool"], "--duration", repr(p["duration"])]
    if p["run_id"]:
        argv += ["--run-id", p["run_id"]]
    if p["create"]:
        argv.append("--create")
    for url in p["outputs"]:
        argv += ["--output", url]
    ndjson_path = None
    out_fd = subprocess.DEVNULL
    if p["ndjson"]:
        argv += ["--output", "-"]
        try:
            d = p["ndjson_dir"]
            name = f"{p['run_id'] or 'run'}-{p['tool']}-{os.getpid()}.ndjson"
            name = re.sub(r"[^A-Za-z0-9_.:-]", "_", name)
            out_fd = _open_new(d, name)
            ndjson_path = os.path.join(d, name)
        except (OSError, ValueError) as e:
            module.fail_json(msg=f"cannot create the NDJSON file: {e}")
    argv += list(p["args"])
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out_fd, stderr=subprocess.PIPE,
                           timeout=p["duration"] + 120, check=False)
        rc, err = r.returncode, r.stderr.decode("utf-8", "replace")
    except FileNotFoundError:
        module.fail_json(msg=f"undertow not found: {argv[0]} (install it: role undertow.fleet.install)")
    except subprocess.TimeoutExpired:
        module.fail_json(msg=f"undertow did not end within {p['duration'] + 120:g} s")
    finally:
        if isinstance(out_fd, int) and out_fd >= 0:
            os.close(out_fd)
    outputs, sent, lost, kernel_lost = [], 0, 0, 0
    for line in err.splitlines():
        m = REPORT.search(line)
        if m:
            outputs.append({"url": m.group(1), "sent": int(m.group(2)), "lost": int(m.group(3)), "report": line})
            if not m.group(1) in ("-", "stdout"):
                sent += int(m.group(2))
            lost += int(m.group(3))
            continue
        m = KERNEL_LOST.match(line)
        if m:
            kernel_lost += int(m.group(1))
    if ndjson_path and not p["outputs"]:
        with open(ndjson_path, "rb") as f:
            sent = sum(1 for _ in f)
    result = dict(changed=False, rc=rc, events_sent=sent, events_lost=lost + kernel_lost, kernel_lost=kernel_lost,
                  outputs=outputs, cmd=argv, stderr_lines=err.splitlines()[-40:])
    if ndjson_path:
        result["ndjson"] = ndjson_path
    if rc != 0:
        module.fail_json(msg=f"undertow {p['tool']} exited with status {rc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
