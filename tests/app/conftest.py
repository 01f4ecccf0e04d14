"""The demo app (`app.py` at the repository root) loaded as a module, and served on a free local port."""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

APP_PATH = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture(scope="session")
def app_module() -> ModuleType:
    """`app.py`, imported from its file (it is a script beside the package, not part of it)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls from the test server
    pytest.importorskip("gradio", reason="the demo needs the app extra: pip install -e '.[app]'")
    spec = importlib.util.spec_from_file_location("hf_faceinpaint_demo_app", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1 (`free_port`)."""
    return free_port()


@pytest.fixture(scope="session")
def app_url(app_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo served on 127.0.0.1 for this test session (closed at the end); its URL."""
    demo = app_module.build_app(out_root=tmp_path_factory.mktemp("app-requests"))
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
        **app_module.LAUNCH_OPTIONS,
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_palette_png(path: Path, side: int) -> Path:
    """A black `side`² palette PNG with one white pixel, compressed row by row: a few hundred KB on disk whatever its
    side (so writing it costs no memory), side² bytes and more once decoded."""
    packer, rows = zlib.compressobj(9), []
    for row in range(side):
        line = bytearray(side + 1)  # filter byte 0, then one palette index per pixel
        line[1] = 1 if row == 0 else 0
        rows.append(packer.compress(bytes(line)))
    rows.append(packer.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 3, 0, 0, 0)  # 8-bit palette
    chunks = [(b"IHDR", header), (b"PLTE", bytes([0] * 3 + [255] * 3)), (b"IDAT", b"".join(rows)), (b"IEND", b"")]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(_png_chunk(kind, data) for kind, data in chunks))
    return path


@pytest.fixture(scope="session")
def palette_png() -> Callable[[Path, int], Path]:
    """`write_palette_png`: a huge mask in a small file, as a hostile client sends it."""
    return write_palette_png
