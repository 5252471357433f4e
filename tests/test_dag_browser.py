"""The HTML page of ``luigi-repro dag`` in a real browser (headless Chromium): it draws, and
after its script ran every task is in the page with its status.

Without a browser the tests skip, except in CI (the environment variable ``CI`` set), where a
missing browser must fail them: ``.ci/run`` installs Debian's ``chromium``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Dict, Set, Tuple

import pytest
from dagpipelines import G12Group, part_file
from pipelines import Report, build, make_raw, runs, write_raw
from test_dag import luigi_repro, parse_page, verify_json

from luigi_repro.graphview import status_style

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str:
    """The browser to run, or skip (fail in CI) with the reason."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found is not None:
            return found
    reason = "no Chromium on PATH (Debian: apt-get install chromium)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}; CI is set, so the browser tests must run")
    pytest.skip(reason)


def headless(page: Path, *args: str, fragment: str = "") -> subprocess.CompletedProcess[str]:
    """Chromium without a window, its own profile, on ``page`` (``#fragment`` appended)."""
    profile = page.parent / f".chromium-{page.stem}"
    command = [
        browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
        page.resolve().as_uri() + fragment,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def screenshot(page: Path, width: int, height: int) -> Path:
    png = page.with_suffix(".png")
    headless(page, f"--screenshot={png}", f"--window-size={width},{height}")
    return png


def png_colours(path: Path) -> Set[Tuple[int, int, int]]:
    """Every colour (RGB) of an 8-bit RGB or RGBA PNG, decoded with zlib alone."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8, depth
    assert colour_type in (2, 6), colour_type
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    previous, colours = bytearray(stride), set()
    for row in range(height):
        start = row * (stride + 1)
        filtered = bytearray(raw[start + 1 : start + 1 + stride])
        line = _unfilter(raw[start], filtered, previous, channels)
        pixels = bytes(line)
        for x in range(0, stride, channels):
            colours.add((pixels[x], pixels[x + 1], pixels[x + 2]))
        previous = line
    return colours


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> bytearray:
    """One row of a PNG with its filter (none, sub, up, average, Paeth) undone."""
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = above[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            corner = above[i - bpp] if i >= bpp else 0
            estimate = left + up - corner
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
            best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            line[i] = (line[i] + best) & 0xFF
    return line


def rgb(colour: str) -> Tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def dom(page: Path, fragment: str = "") -> str:
    """The page as it is after its script ran."""
    return headless(page, "--dump-dom", fragment=fragment).stdout


def assert_every_task_shown(page: Path, verdicts: Dict[str, Dict[str, object]]) -> str:
    document = dom(page)
    shown = parse_page(document)
    assert shown.root.get("data-dag-ready") == "true", "the page's script did not run"
    assert shown.statuses == {task_id: v["status"] for task_id, v in verdicts.items()}
    return document


def test_small_pipeline_draws_in_a_browser_with_every_task_and_its_reasons() -> None:
    """Screenshot: a real picture holding the fill of each status present; DOM: every task
    with its status, and a link to a task opens its reasons in the panel."""
    make_raw()
    assert build(Report())
    runs()
    write_raw("a", "edited\n")
    task = ["--module", "pipelines", "Report"]
    result = luigi_repro("dag", "--format", "html", "-o", "small.html", *task)
    assert result.returncode == 1, result.stderr
    page = Path("small.html")
    verdicts = verify_json(*task)
    assert_every_task_shown(page, verdicts)

    png = screenshot(page, 900, 700)
    assert png.stat().st_size > 5000
    colours = png_colours(png)
    assert len(colours) > 50  # text, borders, fills: not one colour
    for status in ("STALE", "UP_TO_DATE", "COMPLETE"):
        assert rgb(status_style(status, True).fill) in colours, status

    stale = next(t for t in verdicts.values() if t["label"] == "Clean(name=a)")
    opened = dom(page, fragment=f"#task={stale['task_id']}")
    reason = stale["reasons"][0]  # type: ignore[index]
    panel = opened.split('id="panel"', 1)[1]
    assert f'data-showing="{stale["task_id"]}"' in opened
    assert "INPUT_CHANGED" in panel
    assert str(reason["message"]).split(" (")[0] in panel  # type: ignore[index]


def test_five_hundred_tasks_fold_into_families_that_a_browser_draws() -> None:
    """511 tasks: one node per family, every task listed with its status once the page ran,
    and a family link lists its tasks in the panel."""
    Path("raw").mkdir()
    for index in range(250):
        Path(part_file(index)).write_text(f"{index}\n")
    assert build(G12Group(0))
    runs()
    Path(part_file(3)).write_text("changed\n")
    task = ["--module", "dagpipelines", "G12Total"]
    result = luigi_repro("dag", "--format", "html", "-o", "wide.html", *task)
    assert result.returncode == 1, result.stderr
    page = Path("wide.html")
    verdicts = verify_json(*task)
    assert len(verdicts) == 511
    document = assert_every_task_shown(page, verdicts)
    shown = parse_page(document)
    assert shown.root["data-grouped"] == "true"
    assert shown.families["G12Part"] == "MISSING_OUTPUT"  # the worst of the family
    assert shown.family_counts == {
        "G12Total": {"MISSING_OUTPUT": 1},
        "G12Group": {"MISSING_OUTPUT": 9, "STALE": 1},
        "G12Part": {"MISSING_OUTPUT": 225, "STALE": 1, "UP_TO_DATE": 24},
        "HashableExternalFile": {"COMPLETE": 250},
    }

    png = screenshot(page, 1000, 700)
    colours = png_colours(png)
    for status in ("MISSING_OUTPUT", "COMPLETE"):
        assert rgb(status_style(status, False).fill) in colours, status
    listed = dom(page, fragment="#family=G12Part")
    panel = listed.split('id="panel"', 1)[1].split("</aside>", 1)[0]
    assert panel.count("data-task-id=") == 250
