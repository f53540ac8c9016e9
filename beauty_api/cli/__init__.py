"""`python -m beauty_api`: retouch image files, list the filters, run the offline demo, manage the cache.

Every check that can fail (parameters, inputs, output path, API key) runs before the first
paid request, and each problem is one line on stderr. Exit codes:

    0    every image was retouched and written
    1    some image failed (one line each); the others were written and their results cached
    2    usage or configuration error: nothing was sent
    130  interrupted: tasks already submitted are in the task journal, a re-run resumes them

Progress, errors and the summary go to stderr; stdout carries only the paths written (and the
listings of `filters` and `cache`), so the command composes in scripts.

Where things live: parser.py (options and help), main.py (dispatch, exit codes), output.py
(stderr/stdout lines), one module per command (retouch.py with retouch_job.py, output_paths.py,
progress_report.py and live_status.py; filters.py; demo.py with demo_run.py; cache.py; journal.py;
landmarks.py), heap.py (big buffers handed back to the system).
"""

from .main import main

__all__ = ["main"]
