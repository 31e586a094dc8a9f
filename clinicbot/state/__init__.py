"""Everything under state_dir: atomic writes, the lock, the ledger, the sync cache, run history, metrics history."""
