"""The in-place combination of an incremental chain (recovery/combine.py): the same cluster as
pg_combinebackup builds, file for file and byte for byte — on the real chain against the tool itself,
and on small hand-made chains for pg_combinebackup's rules (reconstruct.c): the newest piece's blocks
win, a truncation drops blocks, a file grows with zeros, a later whole copy is the base, files the newest
piece lacks go, and anything unknown leaves every piece untouched."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
from pathlib import Path

import pytest

from orchestrator_data.recovery import base_backups
from orchestrator_data.recovery.combine import BLCKSZ, INCREMENTAL_MAGIC, NotCombinable, combine_in_place, plan
from orchestrator_data.recovery.server import tool


def _tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path -> sha256 of every file (directories as 'dir')."""
    found = {}
    for directory, dirs, files in os.walk(root):
        relative_dir = os.path.relpath(directory, root)
        for name in dirs:
            found[os.path.normpath(os.path.join(relative_dir, name))] = "dir"
        for name in files:
            relative = os.path.normpath(os.path.join(relative_dir, name))
            if relative not in skip:
                found[relative] = hashlib.sha256(Path(directory, name).read_bytes()).hexdigest()
    return found


@pytest.mark.integration
def test_the_real_chain_combines_in_place_into_what_pg_combinebackup_builds(recovery_chain, tmp_path):
    chain = recovery_chain
    full, incremental = tmp_path / "full", tmp_path / "incremental"
    base_backups.unpack(chain.full, full, chain.key_for)
    base_backups.unpack(chain.incremental, incremental, chain.key_for)
    assert plan([full, incremental]).rebuilt, "the incremental carries no INCREMENTAL file: nothing is tested"
    by_tool = tmp_path / "by-pg_combinebackup"
    subprocess.run([tool("pg_combinebackup"), "--no-sync", "-o", str(by_tool), str(full), str(incremental)],
                   check=True, capture_output=True)
    assert combine_in_place([full, incremental], base_backups.block_size(incremental)) == full
    assert _tree(full, ("backup_manifest",)) == _tree(by_tool, ("backup_manifest",))


# -- hand-made chains ----------------------------------------------------------------------------------
def _block(tag: str) -> bytes:
    return tag.encode().ljust(BLCKSZ, b".")


def _incremental(blocks: dict[int, bytes], truncation: int) -> bytes:
    numbers = sorted(blocks)
    header = struct.pack("<III", INCREMENTAL_MAGIC, len(numbers), truncation) + struct.pack(f"<{len(numbers)}I", *numbers)
    if numbers and len(header) % BLCKSZ:
        header += b"\0" * (BLCKSZ - len(header) % BLCKSZ)
    return header + b"".join(blocks[n] for n in numbers)


def _piece(root: Path, start: str, files: dict[str, bytes], parent_start: str | None = None,
           system: bytes = b"\x07" * 8) -> Path:
    label = f"START WAL LOCATION: {start} (file 000000010000000000000002)\nCHECKPOINT LOCATION: {start}\n"
    if parent_start:
        label += f"INCREMENTAL FROM LSN: {parent_start}\nINCREMENTAL FROM TLI: 1\n"
    label += "BACKUP METHOD: streamed\nSTART TIMELINE: 1\n"
    for relative, content in {"backup_label": label.encode(), "global/pg_control": system + b"\0" * 100,
                              "backup_manifest": b"{}", **files}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return root


def test_blocks_truncation_growth_and_the_newest_pieces_files(tmp_path):
    a = [_block(f"a{n}") for n in range(4)]
    full = _piece(tmp_path / "full", "0/2000028", {
        "base/1/100": b"".join(a), "base/1/200": b"".join(a), "base/1/dropped": a[0],
        "base/9/gone": a[0], "PG_VERSION": b"18\n"})
    middle = _piece(tmp_path / "middle", "0/3000028", {
        # block 1 changed, block 5 written (4 never logged: zeros); a later truncation drops block 5 again
        "base/1/INCREMENTAL.100": _incremental({1: _block("b1"), 5: _block("b5")}, truncation=6),
        "base/1/INCREMENTAL.200": _incremental({3: _block("b3")}, truncation=4),
        "base/1/dropped": a[1], "base/9/gone": a[1], "PG_VERSION": b"18\n"}, parent_start="0/2000028")
    newest = _piece(tmp_path / "newest", "0/4000028", {
        "base/1/INCREMENTAL.100": _incremental({3: _block("c3")}, truncation=4),
        # cut to two blocks (b3 goes), then block 6 written: 2..5 are zeros
        "base/1/INCREMENTAL.200": _incremental({6: _block("c6")}, truncation=2),
        "base/5/new": b"created", "INCREMENTAL.conf": b"not a relation: copied as it is",
        "PG_VERSION": b"18\n"}, parent_start="0/3000028")
    assert combine_in_place([full, middle, newest]) == full
    zero = b"\0" * BLCKSZ
    assert (full / "base/1/100").read_bytes() == a[0] + _block("b1") + a[2] + _block("c3")
    assert (full / "base/1/200").read_bytes() == a[0] + a[1] + zero * 4 + _block("c6")
    assert (full / "base/5/new").read_bytes() == b"created"
    assert (full / "INCREMENTAL.conf").read_bytes() == b"not a relation: copied as it is"
    assert not (full / "base/1/dropped").exists() and not (full / "base/9").exists()
    assert not (full / "backup_manifest").exists()
    label = (full / "backup_label").read_text()
    assert "START WAL LOCATION: 0/4000028" in label and "INCREMENTAL" not in label


def test_a_whole_copy_in_a_later_piece_is_the_base(tmp_path):
    a = [_block(f"a{n}") for n in range(3)]
    d = [_block(f"d{n}") for n in range(3)]
    full = _piece(tmp_path / "full", "0/2000028", {"base/1/100": b"".join(a)})
    middle = _piece(tmp_path / "middle", "0/3000028", {"base/1/100": b"".join(d)}, parent_start="0/2000028")
    newest = _piece(tmp_path / "newest", "0/4000028",
                    {"base/1/INCREMENTAL.100": _incremental({0: _block("e0")}, truncation=3)},
                    parent_start="0/3000028")
    combine_in_place([full, middle, newest])
    assert (full / "base/1/100").read_bytes() == _block("e0") + d[1] + d[2]


@pytest.mark.parametrize("breakage", ["magic", "chain", "cluster", "source", "size"])
def test_a_chain_it_does_not_know_leaves_every_piece_untouched(tmp_path, breakage):
    increment = _incremental({1: _block("b1")}, truncation=2)
    if breakage == "magic":
        increment = b"\xff" + increment[1:]
    if breakage == "size":
        increment = increment[:-1]
    full = _piece(tmp_path / "full", "0/2000028",
                  {} if breakage == "source" else {"base/1/100": _block("a0") * 2})
    newest = _piece(tmp_path / "newest", "0/3000028", {"base/1/INCREMENTAL.100": increment},
                    parent_start="0/9000028" if breakage == "chain" else "0/2000028",
                    system=b"\x08" * 8 if breakage == "cluster" else b"\x07" * 8)
    before = (_tree(full), _tree(newest))
    with pytest.raises(NotCombinable):
        combine_in_place([full, newest])
    assert (_tree(full), _tree(newest)) == before


def test_another_block_size_is_left_to_pg_combinebackup(tmp_path):
    full = _piece(tmp_path / "full", "0/2000028", {})
    newest = _piece(tmp_path / "newest", "0/3000028", {}, parent_start="0/2000028")
    with pytest.raises(NotCombinable, match="block size"):
        combine_in_place([full, newest], block_size=16384)


def test_a_chain_it_does_not_know_goes_to_pg_combinebackup(tmp_path):
    """base_backups.combine hands what combine.py refuses to the tool, which judges it itself (here: it
    refuses the hand-made pieces too, having no backup_manifest it can read)."""
    from orchestrator_data.recovery.errors import RecoveryError

    full = _piece(tmp_path / "full", "0/2000028", {"base/1/100": _block("a0")})
    newest = _piece(tmp_path / "newest", "0/3000028", {"base/1/INCREMENTAL.100": b"\xff" * 64},
                    parent_start="0/2000028")
    with pytest.raises(RecoveryError, match="pg_combinebackup failed"):
        base_backups.combine([full, newest], tmp_path / "out")
    assert (full / "base/1/100").read_bytes() == _block("a0")
