#!/usr/bin/env python3
"""Where the setsid, exec and exit programs' time goes, by ablation.

bpf_stats gives a program's time per run, not its parts', and this VM has no hardware
counters for `bpftool prog profile`. So each part is taken out of the program in a build
of its own, and the part costs what the program saves without it. Builds the variants
(the edits below, applied to probe-ebpf's sources and undone after each build), then runs
them interleaved, REPS rounds, on two loops: fork+setsid+exit and fork+exec+exit. Writes
parts.json and PARTS.md beside this file; `cargo xtask bench` puts PARTS.md into
bench/RESULTS.md.

Run as root from the repository's root, after `cargo xtask setup` (bpftrace, bpftool, gcc):
    python3 bench/ablation/parts.py
`--check` only says whether every variant's edits still apply (`cargo xtask test` runs it);
`--markdown` writes PARTS.md again from parts.json.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.getcwd()
SRC = os.path.join(ROOT, "probe-ebpf/src")
OUT = os.path.join(ROOT, "target/ablation")
HERE = os.path.join(ROOT, "bench/ablation")
REPS = int(os.environ.get("REPS", "3"))
LOOPS = {"setsid": 10000, "exec": 3000}
PROGRAMS = ["sys_enter_setsid", "sys_exit_setsid", "task_newtask", "sched_process_exec",
            "sched_process_exit"]

ENTER = {
    "the old session id": "        (*slot).old_sid = task::session_id(current);\n",
    "the old terminal's name": "        (*slot).old_tty = task::tty_name(current);\n",
    "the caller's name": "        (*slot).comm = task::comm(current);\n",
}
EXEC_READS = ["(*record).ppid = task::tgid(parent);", "(*record).sid = task::session_id(current);",
              "(*record).hangup = task::hangup(current);", "(*record).tty = task::tty_name(current);",
              "(*record).parent_tty = task::tty_name(parent);"]
EXIT_SEND_START = "    let current = task::current();\n    send(\n        kind::EXIT"

# name: (loop, program, what the part is, edits as (file, old, new))
VARIANTS = {
    "enter-reads": ("setsid", "sys_enter_setsid", "reading the old session, terminal, fork time and name",
                    [("session.rs", line, "") for line in ENTER.values()]
                    + [("session.rs", "        (*slot).started = task::start_boottime(current);\n", "")]),
    "enter-sid": ("setsid", "sys_enter_setsid", "the old session id (task, signal, pid)",
                  [("session.rs", ENTER["the old session id"], "")]),
    "enter-tty": ("setsid", "sys_enter_setsid", "the old terminal's name (signal, tty)",
                  [("session.rs", ENTER["the old terminal's name"], "")]),
    "enter-comm": ("setsid", "sys_enter_setsid", "the caller's name",
                   [("session.rs", ENTER["the caller's name"], "")]),
    "setsid-send": ("setsid", "sys_exit_setsid", "sending the record (tracked caller)",
                    [("session.rs", "    slot.tid = 0;\n    send_setsid(tgid, slot, true);\n",
                      "    slot.tid = 0;\n")]),
    "clock": ("exec", None, "the record's time stamp (bpf_ktime_get_boot_ns)",
              [("emit.rs", "        time_ns: unsafe { bpf_ktime_get_boot_ns() },", "        time_ns: 0,")]),
    "exec-rss": ("exec", "sched_process_exec", "removing the old image's RSS entry (hash delete)",
                 [("lifecycle.rs", "        let _ = RSS.remove(&tgid);\n    }\n    if !tracked",
                   "    }\n    if !tracked")]),
    "exec-filename": ("exec", "sched_process_exec", "copying the file name (bpf_probe_read_kernel_str)",
                      [("lifecycle.rs",
                        "let len = match bpf_probe_read_kernel_str_bytes(src, &mut (*record).filename) {\n"
                        "            Ok(bytes) => bytes.len() as u32,\n            Err(_) => 0,\n        };",
                        "let len = core::hint::black_box(src) as u32 & 0;")]),
    "exec-reads": ("exec", "sched_process_exec", "parent, session, SIGHUP disposition, both terminals",
                   [("lifecycle.rs", a, a.split("=")[0] + "= core::mem::zeroed();") for a in EXEC_READS]),
    "exec-record": ("exec", "sched_process_exec", "the whole record: reserve, fill, submit",
                    [("lifecycle.rs", "    let filename_loc = field!(ctx, exec_filename: u32 = 8)?;\n",
                      "    core::hint::black_box((started, forked_by, &comm));\n"
                      "    if config!(trace_all) != 7 {\n        return Ok(0);\n    }\n"
                      "    let filename_loc = field!(ctx, exec_filename: u32 = 8)?;\n")]),
    "exit-rss": ("exec", "sched_process_exit", "reading and removing its RSS entry (hash lookup, delete)",
                 [("lifecycle.rs", "unsafe { RSS.get(&tgid) }.map_or((0, 0), |rss| (rss.peak, rss.swap));\n"
                   "    let _ = RSS.remove(&tgid);", "(0u64, 0u64);")]),
    "exit-send": ("exec", "sched_process_exit", "the record: time, name, reserve, submit",
                  "exit-send"),
}


# Parts measured inside another (their saving is part of that one's).
WITHIN = {"enter-sid": "enter-reads", "enter-tty": "enter-reads", "enter-comm": "enter-reads",
          "exec-filename": "exec-record", "exec-reads": "exec-record"}
# The clock is read inside each record.
CLOCK_WITHIN = {"sched_process_exec": "exec-record", "sched_process_exit": "exit-send"}


def edit(edits, before):
    """Applies the edits, keeping each file's text before the first in `before`."""
    for name, old, new in edits:
        path = os.path.join(SRC, name)
        text = open(path).read()
        before.setdefault(name, text)
        if old not in text:
            sys.exit(f"parts.py: {name} no longer has {old!r}: update the variant")
        open(path, "w").write(text.replace(old, new, 1))


def exit_send_edits():
    text = open(os.path.join(SRC, "lifecycle.rs")).read()
    if EXIT_SEND_START not in text:
        sys.exit(f"parts.py: lifecycle.rs no longer has {EXIT_SEND_START!r}; update exit-send")
    start = text.index(EXIT_SEND_START)
    end = text.index("    Ok(0)\n}", start)
    keep = ("    let current = task::current();\n    core::hint::black_box((task::parent_tgid(current), "
            "task::exit_code(current), peak_rss_bytes, swap_bytes));\n")
    return [("lifecycle.rs", text[start:end], keep)]


def build(name, edits):
    before = {}
    # Inside the try: an edit that no longer applies must not leave the earlier ones.
    try:
        edit(edits, before)
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "probe-user", "--bin", "hupwatch"],
                       check=True)
        shutil.copy(os.path.join(ROOT, "target/release/hupwatch"), os.path.join(OUT, f"hupwatch-{name}"))
    finally:
        for file, text in before.items():
            open(os.path.join(SRC, file), "w").write(text)


def bpf_programs():
    shown = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True)
    return {p["id"]: p for p in json.loads(shown.stdout)}


def measure(command, ready):
    """ns per run of each program on each loop, run one after the other under `command`."""
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    log = os.path.join(OUT, "run.log")
    with open(log, "w") as out:
        probe = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    result = {}
    try:
        for _ in range(150):
            if ready in open(log).read():
                break
            time.sleep(0.2)
        else:
            sys.exit(f"parts.py: {command[0]} did not start: {open(log).read()}")
        time.sleep(1)
        for loop in LOOPS:
            before = bpf_programs()
            workload = [os.path.join(OUT, f"{loop}_loop"), str(LOOPS[loop])]
            if loop == "exec":
                workload.append(os.path.join(OUT, "nop"))
            subprocess.run(workload, check=True)
            result[loop] = per_program(before, bpf_programs())
    finally:
        probe.send_signal(signal.SIGINT if command[0] == "bpftrace" else signal.SIGTERM)
        probe.wait()
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("0")
    return result


def per_program(before, after):
    result = {}
    for pid, p in after.items():
        old = before.get(pid, {})
        runs = p.get("run_cnt", 0) - old.get("run_cnt", 0)
        spent = p.get("run_time_ns", 0) - old.get("run_time_ns", 0)
        # Program names are cut at 15 bytes (sched_process_e, sys_enter_setsi).
        for program in PROGRAMS:
            if runs >= 1000 and len(p.get("name", "")) >= 12 and program.startswith(p["name"]):
                result[program] = spent / runs
    return result


def check():
    """Whether every variant's edits still apply to the sources (`cargo xtask test` asks)."""
    for name, (_, _, _, edits) in VARIANTS.items():
        for file, old, _ in exit_send_edits() if edits == "exit-send" else edits:
            if old not in open(os.path.join(SRC, file)).read():
                sys.exit(f"parts.py: variant {name}: {file} no longer has {old!r}; update the variant")
    print(f"parts.py: the edits of all {len(VARIANTS)} variants apply")


def main():
    if sys.argv[1:] == ["--check"]:
        return check()
    if sys.argv[1:] == ["--markdown"]:
        saved = json.load(open(os.path.join(HERE, "parts.json")))
        return write_markdown(saved["commit"], saved["median_ns"], saved["parts"])
    os.makedirs(OUT, exist_ok=True)
    for loop in LOOPS:
        subprocess.run(["gcc", "-O2", "-o", os.path.join(OUT, f"{loop}_loop"),
                        os.path.join(HERE, f"{loop}_loop.c")], check=True)
    nop = os.path.join(OUT, "nop.c")
    open(nop, "w").write("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-O2", "-static", "-o", os.path.join(OUT, "nop"), nop], check=True)

    build("whole", [])
    for name, (_, _, _, edits) in VARIANTS.items():
        build(name, exit_send_edits() if edits == "exit-send" else edits)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "probe-ebpf"]).returncode != 0:
        commit += " with uncommitted changes to probe-ebpf"

    def hupwatch(name, *extra):
        return [os.path.join(OUT, f"hupwatch-{name}"), "run", "--listen", "127.0.0.1:0",
                "--alerts-file", "/dev/null", *extra]

    empty = " ".join(f"tracepoint:{tp} {{ }}" for tp in [
        "syscalls:sys_enter_setsid", "syscalls:sys_exit_setsid", "task:task_newtask",
        "sched:sched_process_exec", "sched:sched_process_exit"])
    conditions = [("empty", ["bpftrace", "-e", empty], "Attaching"),
                  ("whole", hupwatch("whole"), "ready"),
                  ("whole-untracked", hupwatch("whole", "--match", "no-such-name"), "ready")]
    conditions += [(name, hupwatch(name), "ready") for name in VARIANTS]
    runs = {}
    for round_ in range(REPS):
        for name, command, ready in conditions:
            for loop, programs in measure(command, ready).items():
                for program, ns in programs.items():
                    runs.setdefault(f"{name}/{loop}/{program}", []).append(ns)
            print(f"round {round_ + 1}/{REPS}: {name}", file=sys.stderr)

    med = {key: statistics.median(values) for key, values in runs.items()}
    parts = []
    for name, (loop, program, what, _) in VARIANTS.items():
        for p in ([program] if program else ["sched_process_exec", "sched_process_exit"]):
            whole, without = med.get(f"whole/{loop}/{p}"), med.get(f"{name}/{loop}/{p}")
            within = CLOCK_WITHIN[p] if name == "clock" else WITHIN.get(name)
            parts.append({"program": p, "variant": name, "part": what, "loop": loop, "within": within,
                          "ns": None if whole is None or without is None else whole - without})
    json.dump({"commit": commit, "rounds": REPS, "loops": LOOPS, "median_ns": med, "runs_ns": runs,
               "parts": parts}, open(os.path.join(HERE, "parts.json"), "w"), indent=1)
    write_markdown(commit, med, parts)


def affects(variant, program):
    """Whether the variant's edits change the program."""
    if variant == "clock":
        return program in CLOCK_WITHIN
    return VARIANTS[variant][1] == program


def noise(med, program):
    """How far the program's median moved in builds that do not change it (min, max)."""
    loop = "setsid" if "setsid" in program else "exec"
    same = [med[f"{v}/{loop}/{program}"] for v in ["whole", *VARIANTS]
            if (v == "whole" or not affects(v, program)) and f"{v}/{loop}/{program}" in med]
    return (min(same), max(same)) if same else (None, None)


def write_markdown(commit, med, parts):
    def fmt(v):
        return "n/a" if v is None else f"{v:.0f}"
    lines = [
        f"Measured apart from the run above, at {commit}, by `bench/ablation/parts.py`: each part",
        "taken out of the program in a build of its own, the builds run interleaved over "
        f"{REPS} rounds on",
        f"a fork+setsid+exit loop ({LOOPS['setsid']:,}) and a fork+exec+exit loop "
        f"({LOOPS['exec']:,}); medians,",
        "tracing every process. A part's figure is what the program saves without it, so cache",
        "effects shared between parts land on whichever goes first. The noise column is how far",
        "the program's median moved in the builds that leave it unchanged: a part smaller than",
        "that spread is not told apart from nothing (parts.json has every run).",
        "",
        "| program | whole, every process | whole, untracked | empty program | noise: unchanged builds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for program in ["sys_enter_setsid", "sys_exit_setsid", "sched_process_exec", "sched_process_exit"]:
        loop = "setsid" if "setsid" in program else "exec"
        low, high = noise(med, program)
        lines.append(f"| {program} | {fmt(med.get(f'whole/{loop}/{program}'))} | "
                     f"{fmt(med.get(f'whole-untracked/{loop}/{program}'))} | "
                     f"{fmt(med.get(f'empty/{loop}/{program}'))} | {fmt(low)} to {fmt(high)} |")
    lines += ["", "Each program's run, part by part; the parts of a part are under it, and the rest is the",
              "whole less the empty program and the parts:", "",
              "| program | part | ns per run |", "| --- | --- | --- |"]
    for program in ["sys_enter_setsid", "sys_exit_setsid", "sched_process_exec", "sched_process_exit"]:
        loop = "setsid" if "setsid" in program else "exec"
        whole, empty = med.get(f"whole/{loop}/{program}"), med.get(f"empty/{loop}/{program}")
        lines.append(f"| {program} | what the hook charges any program (the empty program) | {fmt(empty)} |")
        top = [p for p in parts if p["program"] == program and p["within"] is None]
        for part in top:
            lines.append(f"| {program} | {part['part']} | {fmt(part['ns'])} |")
            for sub in parts:
                if sub["program"] == program and sub["within"] == part["variant"]:
                    lines.append(f"| {program} | of which: {sub['part']} | {fmt(sub['ns'])} |")
        known = [p["ns"] for p in top]
        rest = None if whole is None or empty is None or None in known else whole - empty - sum(known)
        lines.append(f"| {program} | the rest: the checks before, helper calls, map slots | {fmt(rest)} |")
        lines.append(f"| {program} | **whole** | **{fmt(whole)}** |")
    open(os.path.join(HERE, "PARTS.md"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
