"""The local model's runtime is built portably, whatever CPU built it or runs these tests.

llama.cpp's default build is native (``-march=native``): on a host whose CPU has AVX-512 and
AMX, it compiles code that dies with SIGILL on other hosts, and pip's wheel cache hands that
wheel on. ``scripts/llama_wheel`` builds for a fixed x86-64-v3 baseline and records the
compiler's flags in each library (``-frecord-gcc-switches``); these tests read them back, so a
native or unrecorded build fails here on any CPU.
"""

from __future__ import annotations

import platform
import struct
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="the local extra is installed by bootstrap")

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the baseline is an x86-64 one"
)

FORBIDDEN = ("-march=native", "-mtune=native", "-mavx512", "-mamx", "-mavxvnni")


def _libraries() -> list[Path]:
    lib = Path(llama_cpp.__file__).with_name("lib")
    found = sorted(p for p in lib.glob("lib*.so*") if not p.is_symlink())
    assert found, f"no llama.cpp libraries in {lib}"
    return found


def elf_section(path: Path, wanted: str) -> bytes | None:
    """The bytes of section ``wanted`` of a 64-bit little-endian ELF file, or None."""
    data = path.read_bytes()
    assert data[:6] == b"\x7fELF\x02\x01", f"{path}: not a 64-bit little-endian ELF file"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + index * shentsize
        )
        return name, offset, size

    _, names_at, _ = header(shstrndx)
    for index in range(shnum):
        name, offset, size = header(index)
        end = data.index(b"\0", names_at + name)
        if data[names_at + name : end].decode() == wanted:
            return data[offset : offset + size]
    return None


def test_every_library_records_portable_compiler_flags() -> None:
    """Each library was compiled with recorded flags: x86-64-v3 features, nothing native."""
    for library in _libraries():
        recorded = elf_section(library, ".GCC.command.line")
        assert recorded, f"{library.name}: no recorded compiler flags; not built by llama_wheel"
        flags = recorded.decode(errors="replace")
        for bad in FORBIDDEN:
            assert bad not in flags, f"{library.name} was compiled with {bad}"
        # A native build records the CPU it ran on (-march=znver3, -march=sapphirerapids ...).
        marches = {w.split("=", 1)[1] for w in flags.replace("\0", " ").split() if "-march=" in w}
        assert marches == {"x86-64"}, f"{library.name} was compiled for {sorted(marches)}"
    cpu = next(p for p in _libraries() if p.name.startswith("libggml-cpu"))
    flags = (elf_section(cpu, ".GCC.command.line") or b"").decode(errors="replace")
    for needed in ("-mavx2", "-mfma", "-mf16c"):
        assert needed in flags, f"{cpu.name} lacks {needed}: not the x86-64-v3 baseline"


def test_the_runtime_reports_no_avx512_or_amx_code_paths() -> None:
    """llama.cpp's own system info: AVX2 on, every AVX-512 and AMX path off."""
    info = llama_cpp.llama_print_system_info().decode()
    features = dict(
        part.strip().split(" = ", 1)
        for part in info.replace("|", "\n").splitlines()
        if " = " in part
    )
    assert features.get("AVX2") == "1", info
    on = sorted(k for k, v in features.items() if v == "1" and ("AVX512" in k or "AMX" in k))
    assert on == [], f"the build has {on}: {info}"
