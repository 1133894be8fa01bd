"""Security: queue messages cannot carry code (SQLite and a password-protected / TLS Redis), server-side
work is bounded in size, and the paths a web client may name are an allow-list whose refusals reveal
nothing; plus login before anything is shown and downloads that concurrent clients never see broken."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from lab_helpers import drawn, free_port, png_claiming, refusal, write_checkpoint  # noqa: E402
from test_jobs import ENV, TINY_OVERRIDES, _ping, start_worker, stop_worker, tiny_job, wait_for  # noqa: E402

from contextrast.data.toy import TOY  # noqa: E402
from contextrast.jobs import get_job, list_jobs, submit_job  # noqa: E402
from contextrast.jobs.control import queue_for  # noqa: E402
from contextrast.jobs.message import RefusedMessage  # noqa: E402

CLASSES = list(TOY.classes)
USER, PASSWORD = "alice", "s3cret-word"
SCRATCH = "(from scratch)"


class Evil:
    """A pickle that runs a shell command when unpickled: what an attacker with queue access sends."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------------------------------- 1. the queue


def test_a_pickled_sqlite_message_is_refused_and_never_run(tmp_path):
    runs, marker = tmp_path / "runs", tmp_path / "pwned"
    q = queue_for(runs)
    q.huey.storage.enqueue(pickle.dumps(Evil(marker)), 0)  # write access to runs/queue.sqlite3 is enough
    with pytest.raises(RefusedMessage, match="not JSON"):
        q.huey.dequeue()
    assert not marker.exists()
    job = submit_job(tiny_job(2), runs)
    raw = q.huey.storage.dequeue()
    assert json.loads(raw) == {"task": json.loads(raw)["task"], "id": json.loads(raw)["id"], "job": job["id"],
                               "token": job["token"]}  # a message is a job id and a token, nothing else


def _redis_server(*args: str) -> subprocess.Popen:
    return subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(20)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_password_protected_redis_queue_refuses_a_pickle_and_runs_real_jobs(tmp_path):
    import redis

    port = free_port()
    server = _redis_server("--port", str(port), "--requirepass", PASSWORD)
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    worker = None
    try:
        client = redis.Redis.from_url(url)
        wait_for(lambda: _ping(client), "redis-server", timeout=20)
        with pytest.raises(redis.AuthenticationError):  # without the password the queue is closed
            redis.Redis(host="127.0.0.1", port=port).lpush("huey.redis.contextrast", b"x")
        marker = tmp_path / "pwned"
        client.lpush("huey.redis.contextrast", pickle.dumps(Evil(marker)))  # the attack, with the password
        runs = tmp_path / "runs"
        worker = start_worker(runs, "worker", {**ENV, "CONTEXTRAST_REDIS_URL": url})
        job = submit_job(tiny_job(3), runs, redis_url=url)
        r = wait_for(lambda: get_job(job["id"], runs, url)["state"] in ("finished", "failed")
                     and get_job(job["id"], runs, url), "the job", logs=tmp_path)
        assert r["state"] == "finished", r
        assert not marker.exists()
        log = (tmp_path / "worker.log").read_text()
        assert "refused a queue message" in log and PASSWORD not in log
        assert "Traceback" not in log  # one warning line, not huey's traceback
    finally:
        if worker is not None:
            stop_worker(worker)
        _stop(server)


@pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("openssl") is None,
                    reason="redis-server or openssl is not installed")
def test_redis_queue_over_tls_with_a_password(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    server = _redis_server("--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file",
                           str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                           "--requirepass", PASSWORD)
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    try:
        import redis

        wait_for(lambda: _ping(redis.Redis.from_url(url)), "redis-server with TLS", timeout=20)
        runs = tmp_path / "runs"
        job = submit_job(tiny_job(2), runs, redis_url=url)
        assert [r["id"] for r in list_jobs(runs, url)] == [job["id"]]
        task = queue_for(runs, url).huey.dequeue()
        assert task.args == (job["id"], job["token"])
        with pytest.raises(redis.ConnectionError):  # plain text is not spoken on the TLS port
            redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=5).ping()
    finally:
        _stop(server)


# ------------------------------------------------------------------------------------- the app under test


def _folder_dataset(root: Path, classes: list[str]) -> Path:
    from contextrast.data import build_dataset

    toy = build_dataset("toy:n=2,size=64x80", "val")
    for sub in ("images/val", "masks/val"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(len(toy)):
        rgb, mask = toy.load(i)
        Image.fromarray(rgb).save(root / "images/val" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks/val" / f"{i}.png")
    (root / "classes.json").write_text(json.dumps({"classes": classes}))
    return root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("secure-lab")
    write_checkpoint(root / "checkpoints" / "toy-srm")
    _folder_dataset(root / "data" / "shapes", CLASSES)
    _folder_dataset(root / "private" / "secret-set", ["secret-class-a", "secret-class-b"])
    write_checkpoint(root / "private" / "secret-ckpt")
    login = root / "login.txt"
    login.write_text(f"{USER}:{PASSWORD}\n")
    args = argparse.Namespace(checkpoint=[], checkpoints_dir=str(root / "checkpoints"), data=None, port=free_port(),
                              host="127.0.0.1", auth=None, auth_file=str(login), insecure=False,
                              max_file_size="20mb", max_side=2048, runs_dir=str(root / "runs"), no_worker=True,
                              data_root=[str(root / "data")])
    from app.main import launch

    demo = launch(args, prevent_thread_lock=True)
    url = f"http://127.0.0.1:{args.port}/"
    client = Client(url, auth=(USER, PASSWORD), verbose=False)
    yield demo, client, root, url
    demo.close()


def call(client: Client, api: str, *args):
    """A view's outputs (its tab and input messages checked empty)."""
    return drawn(client.predict(*args, api_name=api))


def refused(client: Client, api: str, *args) -> str:
    """The one message of a refused request (every output checked to stay as it was)."""
    return refusal(client.predict(*args, api_name=api))


def submit(client: Client, data: str = "toy:n=8,size=64x80", base: str = SCRATCH, overrides: list[str] = (),
           checked: bool = True):
    """The Train tab's Start: its outputs (messages checked empty), or with `checked=False` all it returned."""
    tiny = [o for o in TINY_OVERRIDES if base == SCRATCH or not o.startswith("model.")]  # a base sets the model
    out = client.predict(base, data, "ce", 4, 0.01, 4, 64, 64, "cpu", 1, "probe", "\n".join([*tiny, *overrides]),
                         api_name="/train_submit")
    return drawn(out) if checked else out


# --------------------------------------------------------------------------------- 3. bounded server work


def test_an_upload_declaring_a_huge_picture_is_refused_before_decoding(lab):
    _, client, root, _ = lab
    bomb = png_claiming(root / "bomb.png", 13000, 13000, bit_depth=16)  # a few hundred bytes, 1.7 GB decoded
    start = time.perf_counter()
    assert re.search(r"13000×13000 px .*more than the 40.0 MP",
                     refused(client, "/predict", "toy-srm", "(your upload)", handle_file(str(bomb)), None, 0.5, CLASSES))
    assert time.perf_counter() - start < 20  # refused from the header, not after a 26-second decode


def test_split_evaluation_in_the_app_is_bounded_by_max_side(lab):
    _, client, _, _ = lab
    assert re.search(r"3072×3072 px .*--max-side squared",
                     refused(client, "/errors_split", "toy-srm", "toy:n=1,size=3072x3072", "val", 0, "(none)", False))


def test_submit_does_not_draw_the_dataset_in_the_web_process(monkeypatch, tmp_path):
    from contextrast.data.toy import ToyDataset
    from contextrast.jobs.validate import validate_job

    def no_drawing(*_):
        raise AssertionError("a sample was rendered at submit")

    monkeypatch.setattr(ToyDataset, "load", no_drawing)
    _, cfg = validate_job(tiny_job(5, data="toy:n=4,size=3072x3072", crop=[512, 512]))
    assert cfg.train.data.endswith("3072x3072")


def test_a_client_supplied_confusion_matrix_is_bounded(lab):
    _, client, _, _ = lab
    k = 2000
    metrics = {"confusion": [[0] * k] * k, "classes": [f"c{i}" for i in range(k)]}
    assert "at most 255" in refused(client, "/errors_confusion", metrics, False)
    for broken in ({"confusion": [[0] * k] * k}, [[1, 2], [3, 4]]):  # no class names, or not the metrics object
        assert "needs its 'confusion' matrix and 'classes' list" in refused(client, "/errors_confusion", broken, False)


def test_a_model_beyond_the_size_bounds_is_refused_at_submit_and_when_its_card_is_read(lab, tmp_path):
    from contextrast.engine.checkpoint import read_card

    _, client, root, _ = lab
    assert "decoder_channels=100000 is wider than" in refusal(submit(client, overrides=["model.decoder_channels=100000"],
                                                                     checked=False))
    big = write_checkpoint(tmp_path / "big")
    card = json.loads((big / "model_card.json").read_text())
    card["model"]["decoder_channels"] = 10_000_000
    (big / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="wider than"):
        read_card(big)  # the worker's loader refuses it before building anything


# ------------------------------------------------------------------------------------------ 7. allow-list


def test_paths_outside_the_allow_list_are_refused_alike_whether_they_exist_or_not(lab):
    _, client, root, _ = lab
    messages = []
    for folder in (root / "private" / "secret-set", root / "private" / "no-such-set", Path("/etc"),
                   root / "data" / ".." / "private" / "secret-set"):
        message = refused(client, "/errors_split", "toy-srm", f"folder:{folder}", "val", 0, "(none)", False)
        messages.append(re.sub(r"'[^']*'", "<path>", message, count=1))
    assert len(set(messages)) == 1, messages  # no existence test
    assert "not inside the folders this lab may read" in messages[0]
    assert "secret-class" not in messages[0] and "classes.json" not in messages[0]


def test_a_dataset_inside_a_data_root_evaluates_and_responses_hold_no_server_paths(lab):
    _, client, root, _ = lab
    *_, metrics, info = call(client, "/errors_split", "toy-srm", f"folder:{root / 'data' / 'shapes'}", "val", 0,
                             "(none)", False)
    assert metrics["images"] == 2
    assert metrics["checkpoint"] == "checkpoints/toy-srm"  # under its root's name, not the server's path
    named = call(client, "/errors_split", "toy-srm", "folder:data/shapes", "val", 1, "(none)", False)[3]
    assert named["images"] == 1  # a client may name the folder under the root's name


def test_fine_tuning_reads_only_allowed_folders(lab):
    _, client, root, _ = lab
    outside = str(root / "private" / "secret-ckpt")
    for kwargs in ({"base": outside}, {"overrides": [f"train.init_from={outside}"]},
                   {"data": f"folder:{root / 'private' / 'secret-set'}"},
                   {"overrides": [f"train.data=folder:{root / 'private' / 'secret-set'}"]}):
        assert "not inside the folders this lab may read" in refusal(submit(client, **kwargs, checked=False))
    out = submit(client, base=str(root / "checkpoints" / "toy-srm"))
    assert out[0].startswith("Submitted job")
    assert str(root) not in json.dumps(out)  # progress text and log tail speak of roots by their given names


# ----------------------------------------------------------------------------------------- login and files


def test_nothing_about_the_lab_is_served_before_login(lab):
    _, _, _, url = lab
    anonymous = urllib.request.urlopen(url).read().decode()
    assert "toy-srm" not in anonymous and "val_00000" not in anonymous and "/predict" not in anonymous
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url + "config")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    opener.open(url + "login", data=f"username={USER}&password={PASSWORD}".encode())
    assert "toy-srm" in opener.open(url).read().decode()


def test_the_login_comes_from_a_file_or_the_environment_not_the_command_line(tmp_path, monkeypatch):
    from app.access import resolve_auth

    login = tmp_path / "login"
    login.write_text("bob:from-a-file\n")
    assert resolve_auth(None, str(login)) == ("bob", "from-a-file")
    monkeypatch.setenv("CONTEXTRAST_AUTH", "carol:from-env")
    assert resolve_auth(None, None) == ("carol", "from-env")
    with pytest.raises(ValueError, match="cannot read --auth-file"):
        resolve_auth(None, str(tmp_path / "missing"))


def test_concurrent_clients_always_download_whole_identical_pictures(lab):
    """8 clients × 5 rounds of the same request: every picture decodes, and identical inputs give identical
    pixels (Gradio's own cache rewrote a shared file in place, truncating downloads in flight)."""
    _, _, _, url = lab
    pictures: dict[int, set[bytes]] = {}
    problems: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        c = Client(url, auth=(USER, PASSWORD), verbose=False)
        for r in range(5):
            try:
                out = call(c, "/predict", "toy-srm", "toy/val_00000", None, None, 0.5, CLASSES)
                images = [o for o in out if isinstance(o, str) and o.endswith((".png", ".webp"))]
                decoded = [np.asarray(Image.open(p).convert("RGB")).tobytes() for p in images]
            except Exception as e:  # noqa: BLE001 - every failure is counted
                with lock:
                    problems.append(f"client {i} round {r}: {type(e).__name__}: {e}")
                continue
            with lock:
                for j, pixels in enumerate(decoded):
                    pictures.setdefault(j, set()).add(pixels)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not problems, problems[:5]
    assert pictures and all(len(v) == 1 for v in pictures.values())
