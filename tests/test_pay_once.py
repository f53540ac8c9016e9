"""Issue 16, "pay once, whatever happens": each reproduced defect costs exactly one paid submit now.

Every test runs against the loopback emulator, which counts paid submits. The choke point
(run/paid_request.py) is the only caller of the client's paid methods: checked on the source.
"""

from __future__ import annotations

import ast
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pipeline_helpers import EMULATOR_KEY, FAST, make_backend, portraits, sample_portrait

from beauty_api.api.client import FaceBeautyClient
from beauty_api.codec import EncodedImage, SourceImage, encode_for_upload
from beauty_api.errors import ApiError, RetouchCancelled, SubmitOutcomeUnknown
from beauty_api.ledger.fingerprint import legacy_fingerprint
from beauty_api.ledger.journal import TaskJournal
from beauty_api.ledger.storage_paths import journal_path, open_result_cache, state_dir
from beauty_api.params import BeautyParams
from beauty_api.run.api_backend import ApiBackend
from beauty_api.run.backend import RetouchOptions
from beauty_api.run.batch import retouch_batch

ROOT = Path(__file__).resolve().parents[1]
PARAMS = BeautyParams(smoothing=70)
SYNC = RetouchOptions(mode="sync")


@pytest.fixture
def images() -> list[SourceImage]:
    return portraits(sample_portrait(), 6)


# -- the choke point ---------------------------------------------------------------------------


def test_only_the_choke_point_calls_the_clients_paid_methods() -> None:
    callers = []
    for path in [
        ROOT / "nodes.py",
        *(ROOT / "beauty_api").rglob("*.py"),
        *(ROOT / "face_beauty_nodes").rglob("*.py"),
    ]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            paid = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            if paid and node.func.attr in ("submit", "submit_sync") and not _is_super_call(node.func.value):
                callers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert callers and all(c.startswith("beauty_api/run/paid_request.py:") for c in callers), callers
    assert len(callers) == 2


def _is_super_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


# -- defect 2: sync requests claim, and a Cancel never abandons one --------------------------


@pytest.mark.usefixtures("both_ledgers")  # issue 18: the shared ledger too
def test_cancel_during_a_sync_request_keeps_its_answer_and_a_rerun_pays_nothing(emulator, images) -> None:
    emulator.faults.slow("submit", 1, seconds=0.4)
    backend = make_backend(emulator.base_url, state_dir())
    sent = threading.Event()

    def cancel_once_sent() -> bool:
        if emulator.stats.submits_received >= 1:
            sent.set()
        return sent.is_set()

    with pytest.raises(RetouchCancelled):
        retouch_batch(backend, images[:1], PARAMS, options=SYNC, concurrency=1, check_cancel=cancel_once_sent)
    again = make_backend(emulator.base_url, state_dir()).retouch(images[0], PARAMS, options=SYNC)
    assert again.origin == "cached"
    assert emulator.stats.paid_submits == 1


def test_a_sync_request_without_an_answer_is_not_sent_again_until_forgotten(emulator, images) -> None:
    emulator.faults.drop_connections("submit", 1, after_processing=True)
    backend = make_backend(emulator.base_url, state_dir())
    with pytest.raises(SubmitOutcomeUnknown, match="answer not received"):
        backend.retouch(images[0], PARAMS, options=SYNC)
    with pytest.raises(SubmitOutcomeUnknown, match="journal forget"):
        make_backend(emulator.base_url, state_dir()).retouch(images[0], PARAMS, options=SYNC)
    assert emulator.stats.paid_submits == 1
    journal = TaskJournal(journal_path(state_dir()))
    assert journal.forget_matching(None) == 1  # `journal forget --all`: the user says so
    assert (
        make_backend(emulator.base_url, state_dir()).retouch(images[0], PARAMS, options=SYNC).origin == "new"
    )
    assert emulator.stats.paid_submits == 2


@pytest.mark.usefixtures("both_ledgers")  # issue 18: the shared ledger too
def test_an_async_submit_without_an_answer_is_not_sent_again_until_forgotten(emulator, images) -> None:
    emulator.faults.drop_connections("submit", 1, after_processing=True)
    with pytest.raises(SubmitOutcomeUnknown):
        make_backend(emulator.base_url, state_dir()).retouch(images[0], PARAMS)
    with pytest.raises(SubmitOutcomeUnknown, match="journal forget"):
        make_backend(emulator.base_url, state_dir()).retouch(images[0], PARAMS)
    assert emulator.stats.paid_submits == 1


# -- defect 4: a claim lives as long as its owner ---------------------------------------------


class _Wall:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_submit_longer_than_the_claim_timeout_is_not_taken_over(emulator, images) -> None:
    wall = _Wall()
    path = journal_path(state_dir())
    in_flight, release = threading.Event(), threading.Event()

    class SlowUpload(FaceBeautyClient):
        def submit(self, *args, **kwargs):  # the upload takes far longer than the claim timeout
            in_flight.set()
            release.wait(10)
            return super().submit(*args, **kwargs)

    def backend(client: FaceBeautyClient) -> ApiBackend:
        journal = TaskJournal(path, time_source=wall, claim_timeout=60.0)
        return ApiBackend(client, journal=journal, cache=open_result_cache(state_dir()))

    slow = backend(SlowUpload(EMULATOR_KEY, emulator.base_url, settings=FAST))
    first = threading.Thread(target=slow.retouch, args=(images[0], PARAMS))
    first.start()
    assert in_flight.wait(10)
    wall.now += 3600  # an hour on the wall clock (a laptop suspended mid-upload)
    other = backend(FaceBeautyClient(EMULATOR_KEY, emulator.base_url, settings=FAST))
    threading.Timer(0.2, release.set).start()
    assert other.retouch(images[0], PARAMS).origin in ("resumed", "cached")
    first.join(10)
    assert emulator.stats.paid_submits == 1


# -- defect 5: slow start ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_wrong_key_costs_one_request_whatever_the_concurrency(emulator, images, mode) -> None:
    client = FaceBeautyClient("wrong-key", emulator.base_url, settings=FAST)
    backend = ApiBackend(client, journal=TaskJournal(journal_path(state_dir())))
    result = retouch_batch(backend, images, PARAMS, options=RetouchOptions(mode=mode), concurrency=3)
    assert emulator.stats.submits_received == 1
    assert len(result.failures) == 6 and len(result.not_sent) == 5
    assert isinstance(next(f.error for f in result.failures if f.index not in result.not_sent), ApiError)


@pytest.mark.usefixtures("both_ledgers")  # issue 18: the shared ledger too
def test_after_the_first_request_is_accepted_the_rest_go_together(emulator, images) -> None:
    backend = make_backend(emulator.base_url, state_dir())
    result = retouch_batch(backend, images, PARAMS, concurrency=3)
    assert result.counts()["new"] == 6 and emulator.stats.paid_submits == 6


# -- item 5: identity over decoded pixels -----------------------------------------------------


def _reencoded(upload: EncodedImage) -> EncodedImage:
    """The same pixels as another Pillow/zlib would write them: other bytes."""
    image = Image.open(io.BytesIO(upload.data))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    assert buffer.getvalue() != upload.data
    return EncodedImage(buffer.getvalue(), upload.mime_type, upload.filename, upload.size, upload.source_size)


@pytest.mark.usefixtures("both_ledgers")  # issue 18: the shared ledger too
def test_an_encoder_upgrade_between_runs_still_hits_the_cache_and_resumes(
    emulator, images, monkeypatch
) -> None:
    import beauty_api.run.api_backend as pipeline

    assert make_backend(emulator.base_url, state_dir()).retouch(images[0], PARAMS).origin == "new"
    monkeypatch.setattr(pipeline, "encode_for_upload", lambda source: _reencoded(encode_for_upload(source)))
    assert make_backend(emulator.base_url, state_dir()).retouch(images[0], PARAMS).origin == "cached"
    no_cache = make_backend(emulator.base_url, state_dir(), cache=False)
    assert no_cache.retouch(images[0], PARAMS).origin == "resumed"
    assert emulator.stats.paid_submits == 1


def test_entries_written_under_the_old_fingerprint_keep_working(emulator, images) -> None:
    client = FaceBeautyClient(EMULATOR_KEY, emulator.base_url, settings=FAST)
    upload = encode_for_upload(images[0])
    old_key = legacy_fingerprint(
        client.ENDPOINT, "async", client.form_fields(PARAMS, "async"), upload.data, base_url=client.base_url
    )
    journal = TaskJournal(journal_path(state_dir()))
    assert journal.claim(old_key, "someone-else:1:x").action == "submit"
    receipt = client.submit(upload, PARAMS)  # noqa: the old version's own submit, before the upgrade
    journal.record_submitted(old_key, receipt.task_id)
    outcome = make_backend(emulator.base_url, state_dir(), cache=False).retouch(images[0], PARAMS)
    assert (outcome.origin, outcome.task_id) == ("resumed", receipt.task_id)
    assert journal.get(old_key) is None  # moved to its version-3 key
    cache = open_result_cache(state_dir())
    cache.put(
        legacy_fingerprint(
            client.ENDPOINT,
            "async",
            client.form_fields(PARAMS, "async"),
            encode_for_upload(images[1]).data,
            base_url=client.base_url,
        ),
        _png(images[1]),
    )
    assert make_backend(emulator.base_url, state_dir()).retouch(images[1], PARAMS).origin == "cached"
    assert emulator.stats.paid_submits == 1


def _png(source: SourceImage) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(source.rgb)).save(buffer, format="PNG")
    return buffer.getvalue()
