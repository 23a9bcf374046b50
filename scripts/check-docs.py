#!/usr/bin/env python3
"""Static checks of README.md and docs/*.md (run by scripts/check-docs.sh).

- every fenced code block names its language, one of LANGS (an unnamed fence would be
  compiled as Rust by the doctest include);
- ```c blocks compile against include/sensor_spool.h (gcc -fsyntax-only, C99 and C11,
  -Wall -Wextra -Werror -pedantic; tests/c/common.h stands in for the firmware's types).
  A block without its own #include is compiled after the prelude below. The first C block
  of README.md (the C quick start) is also linked against build/host-std and run when
  that archive exists (exit status 0 required);
- ```sh blocks pass `bash -n`; ```toml blocks parse;
- relative links resolve to a file, and #anchors to a heading of that file (GitHub slugs);
- repository paths named in code spans or code blocks (src/..., tests/..., scripts/...,
  `--test NAME`, `--bench NAME`, `--example NAME`, `fuzz run NAME`) exist;
- every file with a ```rust block is included as a doctest in src/lib.rs;
- README.md stays short (MAX_README_LINES).
Prints one line per failure and "docs-static: N passed, N failed" last.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LANGS = {"rust", "c", "sh", "text", "toml", "cmake"}
MAX_README_LINES = 220
PRELUDE = "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n" \
          "#include \"common.h\"\n#include \"sensor_spool.h\"\n"
CFLAGS = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-Wno-unused-function",
          "-Wno-unused-parameter", "-Wno-unused-variable", "-Wno-unused-but-set-variable",
          "-I" + os.path.join(ROOT, "include"), "-I" + os.path.join(ROOT, "tests/c")]
PATH_RE = re.compile(r"(?<![\w/.-])((?:src|tests|benches|examples|scripts|include|c|cmake|fuzz|docs)/[\w./-]*[\w/])")
OUTPUT_PREFIXES = ("build/", "target/", "fuzz/artifacts", "fuzz/target", "fuzz/corpus/<")

passed = 0
failed = 0
saved = {}  # "quickstart": README's C quick start, "hooks": the Linux critical-section hooks


def ok():
    global passed
    passed += 1


def fail(where, msg):
    global failed
    failed += 1
    print(f"FAIL {where}: {msg}")


def md_files():
    files = [os.path.join(ROOT, "README.md")]
    d = os.path.join(ROOT, "docs")
    files += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".md"))
    return files


def rel(p):
    return os.path.relpath(p, ROOT)


def blocks(text):
    """Yields (line number, info string, body) of every fenced block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,})(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).strip()
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*" + fence + r"\s*$", lines[i]):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        yield start, info, "\n".join(body) + "\n"
        i += 1


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[`*_]", lambda m: "_" if m.group(0) == "_" else "", s)
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        found = set()
        counts = {}
        in_code = False
        for line in open(path, encoding="utf-8"):
            if re.match(r"^\s*```", line):
                in_code = not in_code
                continue
            m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                s = slug(m.group(1))
                n = counts.get(s, 0)
                counts[s] = n + 1
                found.add(s if n == 0 else f"{s}-{n}")
        cache[path] = found
    return cache[path]


def check_links(path, text):
    # strip code blocks and code spans first: links inside code are not links
    t = re.sub(r"```.*?```", "", text, flags=re.S)
    t = re.sub(r"`[^`\n]*`", "", t)
    for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", t):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue  # external: not checked (CI may be offline)
        file_part, _, anchor = target.partition("#")
        dest = path if not file_part else os.path.normpath(os.path.join(os.path.dirname(path), file_part))
        where = f"{rel(path)} link {target}"
        if not os.path.exists(dest):
            fail(where, "target does not exist")
            continue
        if anchor:
            if not dest.endswith(".md"):
                fail(where, "anchor into a non-Markdown file")
            elif anchor not in anchors(dest):
                fail(where, f"no heading with anchor #{anchor} in {rel(dest)}")
                continue
        ok()


def check_paths(path, text):
    spans = re.findall(r"```.*?```", text, flags=re.S) + re.findall(r"`[^`\n]+`", text)
    seen = set()
    for s in spans:
        for m in PATH_RE.finditer(s):
            p = m.group(1).rstrip(".")
            nxt = s[m.end():m.end() + 1]
            if nxt in ("*", "<", "{") or "NN" in p:
                continue  # a pattern or placeholder, not a path
            if p in seen or p.startswith(OUTPUT_PREFIXES):
                continue
            seen.add(p)
            if os.path.exists(os.path.join(ROOT, p)):
                ok()
            else:
                fail(rel(path), f"names {p}, which does not exist")
        for kind, name in re.findall(r"--(test|bench|example) ([\w-]+)", s):
            cands = {"test": [f"tests/{name}.rs", f"tests/{name}/main.rs"],
                     "bench": [f"benches/{name}.rs"],
                     "example": [f"examples/{name}.rs", f"examples/{name}/main.rs"]}[kind]
            if any(os.path.exists(os.path.join(ROOT, c)) for c in cands):
                ok()
            else:
                fail(rel(path), f"--{kind} {name}: no {cands[0]}")
        for name in re.findall(r"fuzz (?:run|build|tmin|fmt|cmin|coverage) ([a-z_]+)", s):
            if os.path.exists(os.path.join(ROOT, "fuzz/fuzz_targets", name + ".rs")):
                ok()
            else:
                fail(rel(path), f"fuzz target {name}: no fuzz/fuzz_targets/{name}.rs")


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def check_c(path, line, body, tmp, quickstart):
    src = body if "#include" in body else PRELUDE + body
    f = os.path.join(tmp, "block.c")
    with open(f, "w") as fh:
        fh.write(src)
    where = f"{rel(path)}:{line} (c)"
    for std in ("c99", "c11"):
        r = run(["gcc", "-std=" + std, "-fsyntax-only"] + CFLAGS + [f])
        if r.returncode != 0:
            fail(where, f"does not compile as {std}:\n{r.stdout}")
            return
    ok()
    if "pthread_mutex_lock" in body and "spool_cs_acquire(void) {" in body:
        saved["hooks"] = (where, src)
    if not quickstart:
        return
    saved["quickstart"] = (where, src)
    lib = os.path.join(ROOT, "build/host-std/libsensor_spool.a")
    libs = os.path.join(ROOT, "build/host-std/native-static-libs.txt")
    if not (os.path.exists(lib) and os.path.exists(libs)):
        print(f"note: {where}: build/host-std not built, quick start compiled only")
        return
    exe = os.path.join(tmp, "quickstart")
    r = run(["gcc", "-std=c11"] + CFLAGS + [f, lib] + open(libs).read().split()
            + ["-Wl,--gc-sections", "-o", exe])
    if r.returncode != 0:
        fail(where, f"quick start does not link against {rel(lib)}:\n{r.stdout}")
        return
    r = run([exe], timeout=30)
    if r.returncode != 0:
        fail(where, f"quick start exits {r.returncode}:\n{r.stdout}")
        return
    print(f"C quick start ran: {' | '.join(r.stdout.split(chr(10))[:4])}")
    ok()


def check_host_link(tmp):
    """The README's C quick start linked against the no_std `host` archive with the Linux
    critical-section hooks of docs/c-integration.md, and run."""
    lib = os.path.join(ROOT, "build/host/libsensor_spool.a")
    if "quickstart" not in saved or "hooks" not in saved:
        fail("docs", "C quick start or Linux critical-section hooks block not found")
        return
    if not os.path.exists(lib):
        print("note: build/host not built, quick start + Linux hooks not linked")
        return
    files = []
    for k in ("quickstart", "hooks"):
        f = os.path.join(tmp, k + ".c")
        with open(f, "w") as fh:
            fh.write(saved[k][1])
        files.append(f)
    exe = os.path.join(tmp, "quickstart-host")
    r = run(["gcc", "-std=c11", "-DSPOOL_EXTERN_CS"] + CFLAGS + files + [lib, "-lpthread", "-Wl,--gc-sections", "-o", exe])
    if r.returncode != 0:
        fail(f"{saved['hooks'][0]} + {saved['quickstart'][0]}", f"do not link against {rel(lib)}:\n{r.stdout}")
        return
    r = run([exe], timeout=30)
    if r.returncode != 0:
        fail(saved["hooks"][0], f"quick start with the Linux hooks on build/host exits {r.returncode}:\n{r.stdout}")
        return
    print("C quick start + Linux hooks ran on the no_std host archive")
    ok()


def main():
    lib_rs = open(os.path.join(ROOT, "src/lib.rs"), encoding="utf-8").read()
    files = md_files()
    readme = files[0]
    n = sum(1 for _ in open(readme, encoding="utf-8"))
    if n > MAX_README_LINES:
        fail("README.md", f"{n} lines, more than {MAX_README_LINES}: move detail to docs/")
    else:
        ok()
    try:
        import tomllib
    except ImportError:
        tomllib = None
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            text = open(path, encoding="utf-8").read()
            check_links(path, text)
            check_paths(path, text)
            has_rust = False
            first_c = True
            for line, info, body in blocks(text):
                lang = info.split()[0] if info else ""
                where = f"{rel(path)}:{line}"
                if lang not in LANGS:
                    fail(where, f"code block language '{info}' not one of {sorted(LANGS)}")
                    continue
                if lang == "rust":
                    has_rust = True
                elif lang == "c":
                    check_c(path, line, body, tmp, quickstart=(path == readme and first_c))
                    first_c = False
                elif lang == "sh":
                    r = run(["bash", "-n"], input=body)
                    if r.returncode:
                        fail(where, f"sh block does not parse:\n{r.stdout}")
                    else:
                        ok()
                elif lang == "toml" and tomllib:
                    try:
                        tomllib.loads(body)
                        ok()
                    except Exception as e:  # noqa: BLE001
                        fail(where, f"toml block does not parse: {e}")
            if has_rust:
                inc = '"../' + rel(path) + '"'
                if inc in lib_rs:
                    ok()
                else:
                    fail(rel(path), f"has ```rust blocks but src/lib.rs does not include_str!({inc})")
        check_host_link(tmp)
    print(f"docs-static: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
