"""The demo app (`app.py` at the repository root) loaded as a module, and served on a free local port."""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def app_url(app_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo served on 127.0.0.1 for this test session (closed at the end); its URL."""
    demo = app_module.build_app(out_root=tmp_path_factory.mktemp("app-requests"))
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
        max_file_size=app_module.MAX_UPLOAD,
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
