"""Bad inputs through the predict CLI and the service, and the service's security defaults.

The corpus is `tests/bad_inputs.py`; the same kinds and expectations drive tests/test_reliability_data.py.
Existing checks in test_inference_service.py (API key, CORS on/off, 4xx bodies) are not repeated here.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServiceSettings
from deepfake_lightning.predict import predict
from tests.bad_inputs import ERROR, SCORE, add_good_images, build_file_corpus, good_jpeg
from tests.conftest import REPO_ROOT
from tests.fixtures_inference import compose_entry

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt shared fixture

KEY = "reliability-key-0123"


@pytest.fixture(scope="module")
def corpus_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list[Path]]:
    folder = tmp_path_factory.mktemp("corpus") / "images"
    corpus = build_file_corpus(folder)
    good = add_good_images(folder, 3, seed=500)
    return folder, corpus, good


@pytest.fixture(scope="module")
def detector(tiny_ckpt: Path) -> Detector:
    return Detector.load(tiny_ckpt)


def _predict(tmp_path: Path, overrides: list[str]) -> dict:
    cfg = compose_entry("predict", ["progress=false", *overrides], tmp_path / "run")
    return predict(cfg)


@pytest.mark.parametrize(("output", "workers"), [("preds.csv", 0), ("preds.json", 2)])
def test_predict_cli_gives_one_row_per_listed_file(
    tiny_ckpt: Path, corpus_folder, detector: Detector, tmp_path: Path, output: str, workers: int
) -> None:
    folder, corpus, good = corpus_folder
    out = tmp_path / output
    result = _predict(
        tmp_path, [f"ckpt_path={tiny_ckpt}", f"input={folder}", f"output={out}", f"num_workers={workers}"]
    )
    if output.endswith(".csv"):
        with out.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = json.loads(out.read_text())
    by_name = {Path(row["path"]).name: row for row in rows}
    assert len(by_name) == len(rows)
    expected = {c.name: c for c in corpus if c.predict is not None}
    assert sorted(by_name) == sorted([*expected, *(p.name for p in good)])
    for name, case in expected.items():
        row = by_name[name]
        if case.predict == SCORE:
            assert (
                row["error"] == "" and row["label"] in ("fake", "real") and 0 <= float(row["p_fake"]) <= 1
            ), name
        else:
            assert row["p_fake"] in ("", None) and row["label"] in ("", None), name
            assert name in row["error"] and re.search(case.match, row["error"]), (name, row["error"])
    n_score = sum(c.predict == SCORE for c in expected.values()) + len(good)
    n_error = sum(c.predict == ERROR for c in expected.values())
    assert (result["fake"] + result["real"], result["error"], result["n"]) == (n_score, n_error, len(rows))
    for path in good:
        assert float(by_name[path.name]["p_fake"]) == pytest.approx(
            detector.predict(path)[0].p_fake, abs=1e-6
        )


def test_predict_glob_through_a_symlink_loop_lists_each_file_once(
    tiny_ckpt: Path, corpus_folder, tmp_path: Path
) -> None:
    folder, corpus, good = corpus_folder
    result = _predict(tmp_path, [f"ckpt_path={tiny_ckpt}", f"input='{folder}/**/*.jpg'", "num_workers=0"])
    with open(result["output"], newline="", encoding="utf-8", errors="surrogateescape") as handle:
        names = [Path(row["path"]).name for row in csv.DictReader(handle)]
    expected = sorted(c.name for c in corpus if c.predict is not None and c.name.endswith(".jpg"))
    assert sorted(names) == sorted(expected + [p.name for p in good])  # `loop -> ..` is not followed


@pytest.fixture(scope="module")
def client(detector: Detector) -> TestClient:
    return TestClient(create_app(detector, ServiceSettings(max_batch_files=32)))


def test_service_answers_each_upload_as_documented(client: TestClient, corpus_folder) -> None:
    folder, corpus, _ = corpus_folder
    uploads = [c for c in corpus if c.status is not None]
    assert len(uploads) >= 20
    for case in uploads:
        response = client.post("/v1/predict", files={"file": (case.name, (folder / case.name).read_bytes())})
        assert response.status_code == case.status, (case.kind, response.text)
        body = response.json()
        if case.status == 200:
            assert (
                0 <= body["p_fake"] <= 1
                and body["label"] in ("fake", "real")
                and body["filename"] == case.name
            )
        else:
            assert case.name in body["detail"] and re.search(case.match, body["detail"]), (case.kind, body)


def test_service_batch_scores_good_files_and_names_each_bad_one(client: TestClient, corpus_folder) -> None:
    folder, corpus, good = corpus_folder
    # every bad file gets its own entry, an empty one too (as its row in a predictions CSV)
    uploads = [c for c in corpus if c.status is not None]
    files = [("files", (c.name, (folder / c.name).read_bytes())) for c in uploads]
    files += [("files", (p.name, p.read_bytes())) for p in good]
    response = client.post("/v1/predict/batch", files=files)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["filename"] for p in predictions] == [name for _, (name, _) in files]  # order kept, none lost
    for case, entry in zip(uploads, predictions, strict=False):
        assert ("p_fake" in entry) == (case.status == 200), (case.kind, entry)
        assert ("error" in entry) == (case.status != 200), (case.kind, entry)
    assert all("p_fake" in entry for entry in predictions[len(uploads) :])


# --- security -------------------------------------------------------------------------------------------


def _serve_cfg(tmp_path: Path, tiny_ckpt: Path, overrides: list[str]):  # noqa: ANN202
    return compose_entry("serve", [f"ckpt_path={tiny_ckpt}", *overrides], tmp_path / "serve")


def test_loopback_by_default_and_a_warning_for_an_open_host_without_key(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import uvicorn

    from deepfake_lightning.serve import serve

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.delenv("DEEPFAKE_API_KEY", raising=False)
    with caplog.at_level(logging.WARNING):
        serve(_serve_cfg(tmp_path, tiny_ckpt, []))
    assert calls[-1]["host"] == "127.0.0.1" and "without an API key" not in caplog.text
    serve(_serve_cfg(tmp_path, tiny_ckpt, ["host=0.0.0.0"]))
    assert calls[-1]["host"] == "0.0.0.0" and "listening on 0.0.0.0 without an API key" in caplog.text
    caplog.clear()
    serve(_serve_cfg(tmp_path, tiny_ckpt, ["host=0.0.0.0", f"api_key={KEY}"]))
    assert "without an API key" not in caplog.text


def test_api_takes_no_file_paths_only_uploads(client: TestClient) -> None:
    """Every parameter of every operation: no path, URL or model can be named by a client."""
    spec = client.get("/openapi.json").json()
    parameters, bodies = set(), {}
    for route, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                parameters.add((parameter["name"].lower(), parameter["in"], parameter["schema"].get("type")))
            if "requestBody" in operation:
                content = operation["requestBody"]["content"]
                assert list(content) == ["multipart/form-data"], (route, content)
                ref = content["multipart/form-data"]["schema"]["$ref"].split("/")[-1]
                bodies[(method, route)] = spec["components"]["schemas"][ref]["properties"]
    assert parameters <= {
        ("attention", "query", "boolean"),
        ("explain", "query", "boolean"),
        ("x-api-key", "header", None),
    }
    assert {key: sorted(props) for key, props in bodies.items()} == {
        ("post", "/v1/predict"): ["file"],
        ("post", "/v1/predict/batch"): ["files"],
        ("post", "/v1/predict/video"): ["file"],
    }
    for props in bodies.values():
        for prop in props.values():
            schema = prop.get("items", prop)
            assert (
                schema.get("format") == "binary"
                or schema.get("contentMediaType") == "application/octet-stream"
            )
    image = good_jpeg(3)
    plain = client.post("/v1/predict", files={"file": ("a.jpg", image)}).json()
    probing = client.post(
        "/v1/predict?path=/etc/passwd&ckpt_path=/tmp/evil.ckpt", files={"file": ("../../etc/passwd", image)}
    ).json()
    assert (
        probing["p_fake"] == plain["p_fake"] and probing["filename"] == "../../etc/passwd"
    )  # echoed, never opened


def test_chunked_upload_without_content_length_is_cut_at_the_limit(detector: Detector) -> None:
    small = TestClient(create_app(detector, ServiceSettings(max_upload_bytes=50_000)))
    boundary = "reliabilityboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body():  # noqa: ANN202 - a generator makes the client send Transfer-Encoding: chunked
        yield head
        for _ in range(20):
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = small.post(
        "/v1/predict", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413 and "larger than the limit of 50000 bytes" in response.json()["detail"]


def test_no_code_path_unpickles_user_files() -> None:
    """Static guard: every torch.load is weights_only=True, every Lightning checkpoint load passes it too, and
    nothing calls pickle/joblib/dill loaders or numpy with allow_pickle."""
    offenders = []
    for path in sorted((REPO_ROOT / "deepfake_lightning").rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in match.group(1):
                offenders.append(f"{path.name}: {match.group(0)}")
        for match in re.finditer(r"\.(fit|test|validate|predict)\(([^)]*ckpt_path=[^)]*)\)", text):
            if "weights_only=True" not in match.group(2):
                offenders.append(f"{path.name}: {match.group(0)}")
        for pattern in (
            r"pickle\.loads?\(",
            r"joblib\.load",
            r"dill\.",
            r"allow_pickle=True",
            r"load_from_checkpoint\(",
        ):
            offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert offenders == []


def test_error_bodies_do_not_leak_server_paths(client: TestClient, tiny_ckpt: Path) -> None:
    model = client.get("/v1/model").json()
    assert str(tiny_ckpt.parent) not in json.dumps(model)
    response = client.post("/v1/predict", files={"file": ("x.jpg", io.BytesIO(b"\xff\xd8\xff junk").read())})
    assert response.status_code == 422 and "/tmp" not in response.json()["detail"]


def test_cors_preflight_gets_no_cors_headers_by_default(client: TestClient) -> None:
    preflight = client.options(
        "/v1/predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert not any(name.lower().startswith("access-control-") for name in preflight.headers)
    assert preflight.status_code == 405  # no CORS middleware: OPTIONS is just another method


def test_reliability_doc_covers_every_corpus_kind(corpus_folder) -> None:
    """docs/reliability.md promises a behaviour for each generated kind: keep the table in step."""
    doc = (REPO_ROOT / "docs" / "reliability.md").read_text()
    _, corpus, _ = corpus_folder
    missing = sorted({c.kind for c in corpus if c.kind not in doc})
    assert missing == []
