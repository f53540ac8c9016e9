"""What was paid and what it produced, kept on disk so that nobody pays twice for the same image.

fingerprint.py names a paid request; journal.py (`TaskJournal`, with journal_rows.py and
journal_claims.py) records claims and task ids per fingerprint in SQLite; result_cache.py
(`ResultCache`, with cache_blobs.py and cache_meta.py) keeps the paid results; private_store.py makes
the files private and opens SQLite; storage_paths.py says where the state lives (`state_dir`,
`open_journal`, `open_result_cache`). docs/ledger.md explains the guarantees.

Public surface: `TaskJournal`, `ResultCache`, `request_fingerprint`, `open_journal`,
`open_result_cache`, `state_dir`. Imported from their modules; this package imports nothing.
"""
