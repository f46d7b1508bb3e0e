"""`dcicnn serve`: the page's restore step (no browser), the command's errors, and the page itself in headless
Chromium (Selenium): upload, compare, download, and a bad file's message.

The browser tests need Gradio (the `[web]` extra), Selenium and Chromium with its driver (Debian: `apt-get install
chromium chromium-driver`). Without them they are skipped, unless DCICNN_REQUIRE_BROWSER=1 (as `.ci/run` sets),
which turns a missing piece into a failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dcicnn import DCICNN
from dcicnn.errors import ImageReadError, InvalidArgumentError
from dcicnn.imageio import open_image
from dcicnn.web import PageRestorer, for_display
from dcicnn_cli.main import main
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "dcicnn" / "assets" / "sample.png"
REQUIRE_BROWSER = os.environ.get("DCICNN_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def model() -> DCICNN:
    return DCICNN.from_pretrained()  # the bundled default: conditioned, so the page offers the JPEG setting


def jpeg_of_sample(path: Path, quality: int = 30) -> Path:
    Image.open(SAMPLE).convert("RGB").save(path, quality=quality)
    return path


def pixels(image: Image.Image | Path) -> np.ndarray:
    if isinstance(image, Path):
        with Image.open(image) as opened:
            return np.asarray(opened.convert("RGB"))
    return np.asarray(image.convert("RGB"))


# --- the page's restore step, without Gradio -------------------------------------------------------------------


def test_upload_is_restored_as_restore_does_the_file(tmp_path: Path, model: DCICNN) -> None:
    upload = jpeg_of_sample(tmp_path / "parrots.jpg")
    page = PageRestorer(model, tmp_path)
    result = page(str(upload), 1.0, "auto", 30)
    expected = model.restore(open_image(upload))  # the file's quantisation tables say q30
    assert np.array_equal(pixels(result.png), np.asarray(expected))
    assert np.array_equal(pixels(result.after), np.asarray(expected))
    assert np.array_equal(pixels(result.before), pixels(open_image(upload)))
    assert not np.array_equal(pixels(result.before), pixels(result.after))
    assert result.png.name == "parrots-restored.png"
    assert "parrots.jpg" in result.summary and "quality 30" in result.summary and "Changed" in result.summary


def test_a_resaved_jpeg_says_what_its_pixels_show(tmp_path: Path) -> None:
    with Image.open(SAMPLE) as sample:
        buffer = io.BytesIO()
        sample.convert("RGB").save(buffer, format="JPEG", quality=74)
    upload = tmp_path / "twice.jpg"
    with Image.open(buffer) as once:
        once.save(upload, quality=96)  # the tables say 96, the pixels 74
    result = PageRestorer(DCICNN.from_pretrained(), tmp_path)(str(upload), 1.0, "auto", 30)
    assert "quality 96" in result.summary and "Read: tables q96, pixels q7" in result.summary
    assert "Changed" in result.summary and "Note:" not in result.summary  # said once, not again as a note


def test_page_settings_reach_restore(tmp_path: Path, model: DCICNN) -> None:
    upload = jpeg_of_sample(tmp_path / "q30.jpg")
    page = PageRestorer(model, tmp_path)
    told_50 = page(str(upload), 0.5, "set", 50)
    expected = model.restore(open_image(upload), jpeg_quality=50, strength=0.5)
    assert np.array_equal(pixels(told_50.png), np.asarray(expected))
    withheld = page(str(upload), 1.0, "none", 50)
    assert np.array_equal(pixels(withheld.png), np.asarray(model.restore(open_image(upload), jpeg_quality=None)))
    untouched = page(str(upload), 0.0, "auto", None)
    assert np.array_equal(pixels(untouched.png), pixels(open_image(upload)))
    assert "strength 0" in untouched.summary


def test_page_errors_are_one_clear_line(tmp_path: Path, model: DCICNN) -> None:
    page = PageRestorer(model, tmp_path / "work")
    (tmp_path / "work").mkdir()
    with pytest.raises(InvalidArgumentError, match="drop an image file"):
        page(None)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        page(str(broken))
    upload = jpeg_of_sample(tmp_path / "ok.jpg")
    with pytest.raises(InvalidArgumentError, match="strength"):
        page(str(upload), 3.0)
    with pytest.raises(InvalidArgumentError, match="one of auto, none, set"):
        page(str(upload), 1.0, "best")
    with pytest.raises(InvalidArgumentError, match="quality"):
        page(str(upload), 1.0, "set", 0)
    # nothing half-written: the failed requests left no image behind
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


def test_blind_model_page_has_no_jpeg_setting(tmp_path: Path) -> None:
    assert not PageRestorer(DCICNN(width=8, depth=3), tmp_path).takes_jpeg_quality
    assert PageRestorer(DCICNN(width=8, depth=3, conditions=["jpeg", "noise"]), tmp_path).takes_jpeg_quality


def test_sixteen_bit_is_shown_in_eight_bits() -> None:
    wide = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16))
    assert np.array_equal(np.asarray(for_display(wide)), [[0, 100, 255]])
    palette = Image.new("P", (2, 2))
    assert for_display(palette).mode == "RGB"


# --- the command ------------------------------------------------------------------------------------------------


def test_serve_without_gradio_says_how_to_install(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    assert main(["serve", "--port", "7999"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'dcicnn[web]'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be in 1..65535"),
        (["--strength", "5"], "strength"),
        (["--model", "/no/such/model"], "/no/such/model"),
    ],
)
def test_serve_bad_options(args: list[str], message: str, capsys: Any) -> None:
    port = [] if "--port" in args else ["--port", str(_free_port())]
    assert main(["serve", *args, *port]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_on_a_taken_port_says_so_before_loading_the_model(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import dcicnn_cli.serve

    def never(*args: object) -> None:
        raise AssertionError("the model was loaded before the port was checked")

    monkeypatch.setattr(dcicnn_cli.serve, "load_model_source", never)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot listen on 127.0.0.1:{port}" in err and "pick another --port" in err


# --- the page in a real browser ---------------------------------------------------------------------------------


def _missing(what: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"DCICNN_REQUIRE_BROWSER=1 but {what}")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dcicnn serve` with the bundled default model on a free local port, as a user starts it."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        _missing("Gradio is not installed (pip install 'dcicnn[web]')")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "dcicnn_cli.main", "serve", "--port", str(port)], stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"dcicnn serve exited with {process.returncode}: {log.read_text()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail("dcicnn serve did not answer within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium driven by Selenium, downloading into ``tmp_path / "downloads"``."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("Selenium is not installed (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        _missing("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.downloads = downloads
    try:
        yield chrome
    finally:
        chrome.quit()


def _upload(browser: Any, url: str, path: Path) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    wait = WebDriverWait(browser, 120)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]"))).send_keys(str(path))
    return wait


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sample.png", "sample-q30.jpg"])
def test_browser_upload_compare_download(
    server: str, browser: Any, model: DCICNN, tmp_path: Path, name: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    upload = SAMPLE if name == "sample.png" else jpeg_of_sample(tmp_path / name)
    wait = _upload(browser, server, upload)
    stem = upload.stem
    button = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#download")))
    wait.until(lambda _: f"{stem}-restored.png" in button.text)
    # both panes of the slider show an image, fully loaded
    wait.until(
        lambda b: len(images := b.find_elements(By.CSS_SELECTOR, "#compare img")) == 2
        and all(b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in images)
    )
    summary = browser.find_element(By.CSS_SELECTOR, "#summary").text
    assert f"{upload.name}, 384 x 256" in summary
    if name == "sample-q30.jpg" and (shot := os.environ.get("DCICNN_WEB_SCREENSHOT")):
        browser.save_screenshot(shot)  # the README's picture: DCICNN_WEB_SCREENSHOT=docs/web-page.png
    button.click()
    target = browser.downloads / f"{stem}-restored.png"
    wait.until(lambda _: target.exists() and not list(browser.downloads.glob("*.crdownload")))
    expected = model.restore(open_image(upload))
    assert np.array_equal(pixels(target), np.asarray(expected))
    if name == "sample-q30.jpg":
        assert "quality 30" in summary and "Changed" in summary
        assert not np.array_equal(np.asarray(expected), pixels(open_image(upload)))


@pytest.mark.slow
def test_browser_bad_file_gets_a_readable_message(server: str, browser: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG" * 10)
    wait = _upload(browser, server, broken)
    wait.until(lambda b: "broken.jpg:" in b.find_element("tag name", "body").text)
    text = browser.find_element("tag name", "body").text
    message = next(line for line in text.splitlines() if "broken.jpg:" in line)
    assert "Traceback" not in text and str(tmp_path) not in text
    assert "cannot" in message.lower() or "not" in message.lower(), message
    # the page still works after the error
    good = jpeg_of_sample(tmp_path / "after.jpg")
    from selenium.webdriver.common.by import By

    _upload(browser, server, good).until(lambda b: "after-restored.png" in b.find_element(By.ID, "download").text)


def test_screenshot_in_the_docs_exists() -> None:
    page = (REPO_ROOT / "docs" / "cli.md").read_text()  # the command line page, where `dcicnn serve` is documented
    assert "](web-page.png)" in page and (REPO_ROOT / "docs" / "web-page.png").is_file()
    with Image.open(io.BytesIO((REPO_ROOT / "docs" / "web-page.png").read_bytes())) as shot:
        assert shot.width >= 800


def test_float_and_sixteen_bit_uploads_keep_their_depth(tmp_path: Path) -> None:
    model = DCICNN(width=8, depth=3)
    rng = np.random.default_rng(0)
    wide = tmp_path / "wide.png"
    Image.fromarray(rng.integers(0, 65536, size=(24, 32), dtype=np.uint16)).save(wide)
    result = PageRestorer(model, tmp_path)(str(wide))
    with Image.open(result.png) as saved:
        assert saved.mode.startswith("I") and result.png.suffix == ".png"
    floating = tmp_path / "float.tif"
    Image.fromarray(rng.random((24, 32), dtype=np.float32), mode="F").save(floating)
    result = PageRestorer(model, tmp_path)(str(floating))
    with Image.open(result.png) as saved:
        assert saved.mode == "F" and result.png.suffix == ".tif"
    assert result.after.mode == "L"
