"""Retouching many images with any backend: the interface, the paid backend and the batch around them.

backend.py is the `RetouchBackend` protocol (with `RetouchOptions` and `RetouchOutcome`) that the API
and the offline engine both implement; api_backend.py is `ApiBackend` (cache -> journal -> submit ->
wait -> download); resume.py picks up a task the journal recorded; image_run.py is one image's
progress, cancel hook and slots; batch.py is `retouch_batch` (bounded, adaptive concurrency, order
kept); concurrency.py and local_work.py bound what runs at once; progress_events.py is what a backend
reports while it works.

Public surface: `retouch_batch`, `BatchResult`, `ApiBackend`, `RetouchBackend`, `RetouchOptions`,
`RetouchOutcome`, `Progress` (also importable from `beauty_api`).
"""
