"""Talking to the vendor: the Face Beauty Pro HTTP API, and nothing about money or many images.

Lowest first: protocol.py reads the API's answers (pure functions); retry_policy.py and
network_failures.py decide what is worth another try; http_wait.py makes one request Cancel can
leave; transport.py is the one session and the one retry loop inside a deadline (the key goes to
the API's host only); result_download.py fetches result files (no key); poll_schedule.py and
task_timings.py decide when to ask whether a task is done; client.py is `FaceBeautyClient`, one
method per API step (submit, query, download, credits).

Public surface: `client.FaceBeautyClient`, `client.ClientSettings`, `transport.Transport`,
`retry_policy.RetrySettings`. Nothing is imported here, so `import beauty_api.api` never loads requests.
"""
