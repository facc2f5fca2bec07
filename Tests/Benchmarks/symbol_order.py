"""Writes Sources/rtcam/symbol-order.txt: every function of rtcam that runs when the daemon starts,
idles, serves a viewer and goes idle again, for lld's --symbol-ordering-file (Package.swift).

Why: the kernel maps a file's pages around every page a process touches (fault-around, and whole
large folios of the page cache), so the pages a daemon has resident are set by how scattered the
code it runs is, not by how much it runs. Packed together, the ~1 MB of functions rtcam runs take
4 MB fewer resident pages (README, Performance). Functions not listed keep the linker's order.

How: the release daemon runs under valgrind's callgrind (exact: every function executed, the Swift
runtime and standard library included) through the footprint benchmark's two cases, the test
pattern with its tone and a pre-encoded file, each with one rtcam-bench loadgen viewer and the idle
release after it. Run it after changes that move much code: bash Tests/Benchmarks/make-symbol-order.sh
(Tests/check-footprint.sh says when too few of the listed functions still exist).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RELEASE = REPO / ".build" / "release"
OUTPUT = REPO / "Sources" / "rtcam" / "symbol-order.txt"
HTTP_PORT, MEDIA_PORT = 18380, 18389


def wait_until_serving(log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "rtcam serving" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    sys.exit(f"the daemon did not start under valgrind within {seconds:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def profile(binary: Path, work: Path, name: str, source_args: list[str]) -> Path:
    """One case under callgrind; returns its output file."""
    out = work / f"callgrind-{name}.out"
    log = work / f"{name}.log"
    state = work / f"state-{name}"
    command = ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
               str(binary), "serve", "--state-dir", str(state), "--http-address", "127.0.0.1",
               "--http-port", str(HTTP_PORT), "--media-port", str(MEDIA_PORT), "--candidate-address", "127.0.0.1",
               "--log-level", "info", *source_args]
    with open(log, "w") as log_file:
        daemon = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(log, 120)
        time.sleep(12)                                    # idle: the sources asleep
        for path in ("/", "/settings", "/api/status"):    # the pages and the API
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}{path}", timeout=30).read()
            except Exception as error:  # noqa: BLE001 — a 401 is as good a run of the code as a 200
                print(f"  {path}: {error}")
        subprocess.run([str(RELEASE / "rtcam-bench"), "loadgen", "--url", f"http://127.0.0.1:{HTTP_PORT}",
                        "--viewers", "1", "--seconds", "10", "--connect-timeout", "60",
                        "--json", str(work / f"loadgen-{name}.json"), "--quiet"], check=False)
        time.sleep(14)                                    # past the 10 s idle release
    finally:
        daemon.terminate()                                # SIGTERM: a clean stop, callgrind writes its file
        daemon.wait(timeout=120)
    return out


def executed_functions(callgrind_out: Path, object_name: str) -> set[str]:
    """Names of the functions callgrind saw run in `object_name` (its fn= records, with the name
    compression of the format undone; recursion markers such as 'name'2' dropped)."""
    objects: dict[str, str] = {}
    functions: dict[str, str] = {}
    current_object = ""
    found: set[str] = set()
    record = re.compile(r"^(c?)(ob|fn)=(?:\((\d+)\))?\s*(.*)$")
    with open(callgrind_out, errors="replace") as lines:
        for line in lines:
            match = record.match(line.rstrip("\n"))
            if not match:
                continue
            called, kind, number, name = match.groups()
            table = objects if kind == "ob" else functions
            if number is not None and name:
                table[number] = name
            resolved = table.get(number, "") if number is not None else name
            if called:
                continue
            if kind == "ob":
                current_object = resolved
            elif current_object.endswith("/" + object_name) and resolved and not resolved.startswith("0x"):
                found.add(re.sub(r"'\d+$", "", resolved))
    return found


def main() -> None:
    release_binary = RELEASE / "rtcam"
    if not release_binary.exists():
        sys.exit("build first: swift build -c release --static-swift-stdlib")
    with tempfile.TemporaryDirectory(prefix="rtcam-symbol-order-") as directory:
        work = Path(directory)
        # valgrind 3.19 cannot read the toolchain's DWARF 5; the symbol table is all it needs.
        binary = work / "rtcam"
        subprocess.run(["strip", "--strip-debug", "-o", str(binary), str(release_binary)], check=True)
        stream = work / "stream.h264"
        subprocess.run([str(RELEASE / "rtcam-bench"), "x264", "--size", "1280x720", "--fps", "30", "--bitrate", "2000",
                        "--seconds", "4", "--output", str(stream), "--json", str(work / "x264.json")],
                       check=True, stdout=subprocess.DEVNULL)
        functions: set[str] = set()
        for name, args in (("pattern", ["--source", "test-pattern", "--audio", "test-tone"]),
                           ("file", ["--source", f"file:{stream}", "--audio", "none"])):
            print(f"profiling: {name} (start, idle, pages, one viewer, idle release)")
            found = executed_functions(profile(binary, work, name, args), "rtcam")
            print(f"  {len(found)} functions ran")
            functions |= found
        if len(functions) < 1000:
            sys.exit(f"only {len(functions)} functions: the profile runs went wrong (see the logs above)")
        header = ("# rtcam's functions that run at start, idle and with a viewer, packed first in .text by lld\n"
                  "# (Package.swift: --symbol-ordering-file). Generated by Tests/Benchmarks/make-symbol-order.sh;\n"
                  "# do not edit by hand.\n")
        OUTPUT.write_text(header + "".join(name + "\n" for name in sorted(functions)))
        print(f"wrote {len(functions)} functions to {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
