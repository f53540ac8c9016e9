"""The processes of an end-to-end run: the API emulator and a headless ComfyUI with the pack linked in.

Everything lives in one scratch folder (ComfyUI's base directory: custom_nodes with a link to
the pack, input, output, user; the pack's journal and cache), so a run never touches a real
ComfyUI installation and starts from a fresh state.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EMULATOR_KEY = "emulator-key"
PACK_FOLDER = "comfyui-face-beauty-pro"  # the folder name a `git clone` of the repository gets


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read().decode("utf-8"))


def post_json(url: str, body: dict[str, Any], timeout: float = 10.0) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        payload = answer.read().decode("utf-8")
    return json.loads(payload) if payload.strip() else None


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}); see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (an error status is an answer)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {log}")


@dataclass
class Emulator:
    """`python -m beauty_api.emulator` on a fixed port, so it can be stopped (API down) and restarted."""

    python: str
    pack: Path
    work: Path
    port: int = field(default_factory=free_port)
    processing_seconds: float = 3.0
    credits: int | None = None  # the account's balance; None: unlimited
    fail_tasks: int = 0  # the first N tasks fail (PROCESSING_FAILURE), as a broken API would
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.work / "emulator.log"
        command = [
            self.python,
            "-m",
            "beauty_api.emulator",
            "--port",
            str(self.port),
            "--processing-seconds",
            str(self.processing_seconds),
            "--api-key",
            EMULATOR_KEY,
        ]
        if self.credits is not None:
            command += ["--credits", str(self.credits)]
        if self.fail_tasks:
            command += ["--fail-tasks", str(self.fail_tasks)]
        with log.open("ab") as sink:
            self.process = subprocess.Popen(command, cwd=self.pack, stdout=sink, stderr=subprocess.STDOUT)
        wait_until_up(self.base_url, self.process, log, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def credits_billed(self) -> int:
        """Credits the emulator has billed so far (its balance starts at 1,000,000)."""
        request = urllib.request.Request(
            f"{self.base_url}/api/common/query-credits", headers={"ailabapi-api-key": EMULATOR_KEY}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = json.loads(answer.read().decode("utf-8"))
        balance = next(pool["balance"] for pool in body["data"] if pool["unique_sign"] == "common")
        return 1_000_000 - int(balance)


@dataclass
class ComfyUI:
    """A headless ComfyUI on CPU whose custom_nodes holds only a link to the pack."""

    python: str
    comfyui: Path
    pack: Path
    work: Path
    emulator_url: str
    front_end_root: Path | None = None  # another frontend's static folder (--front-end-root)
    with_key: bool = True  # how it was last started
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> Path:
        return self.work / "comfy-base"

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    def prepare(self) -> None:
        """A fresh base directory: the pack linked in, ComfyUI's own sample input, nothing else."""
        if self.base.exists():
            shutil.rmtree(self.base)
        (self.base / "custom_nodes").mkdir(parents=True)
        (self.base / "custom_nodes" / PACK_FOLDER).symlink_to(self.pack.resolve(), target_is_directory=True)
        self.input_dir.mkdir()
        shipped = self.comfyui / "input" / "example.png"
        if shipped.exists():  # what a fresh ComfyUI installation has in its input folder
            shutil.copy(shipped, self.input_dir / "example.png")

    def start(self, with_key: bool = True) -> None:
        """Start ComfyUI; `with_key=False` starts it the way a user without an API key would."""
        log = self.work / "comfyui.log"
        self.with_key = with_key
        env = {name: value for name, value in os.environ.items() if not name.startswith("AILAB_")}
        # A home of its own: a developer's ~/.config/face-beauty-pro key file is never read.
        home = self.work / "home"
        home.mkdir(exist_ok=True)
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            AILAB_API_BASE_URL=self.emulator_url,
            FACE_BEAUTY_STATE_DIR=str(self.work / "pack-state"),
        )
        if with_key:
            env["AILAB_API_KEY"] = EMULATOR_KEY
        command = [
            self.python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--base-directory",
            str(self.base),
            "--database-url",
            "sqlite:///:memory:",
        ]
        if self.front_end_root is not None:
            command += ["--front-end-root", str(self.front_end_root)]
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                command, cwd=self.comfyui, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        wait_until_up(f"{self.url}/object_info/FaceBeautyPro", self.process, log, timeout=180)
        text = log.read_text(encoding="utf-8", errors="replace")
        if "IMPORT FAILED" in text:
            raise RuntimeError(f"the pack failed to import; see {log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def free_caches(self) -> None:
        """Make ComfyUI forget its cached outputs, so the next run executes the node again."""
        post_json(f"{self.url}/free", {"free_memory": True, "unload_models": True})
