"""The results store: where each run's files live (:mod:`~bench.store.layout`), atomic writes
(:mod:`~bench.core.atomic`, encoded by :mod:`~bench.core.jsonio`), run locks and atomic commits (:mod:`~bench.store.commit`), the typed
``result.json`` record (:mod:`~bench.store.record`), finding results (:mod:`~bench.store.scan`)
and the provenance every result carries (:mod:`~bench.store.provenance`).

``from bench import store`` gives the functions of the first three and of provenance under one
name (``store.run_dir``, ``store.commit_run``, ``store.atomic_write_json``, ``store.environment``).
"""

from bench.core.atomic import (FILE_MODE, atomic_save_npz, atomic_torch_save, atomic_write_bytes,  # noqa: F401
                                atomic_write_json, atomic_write_text, fsync_dir, write_history_csv)
from bench.core.jsonio import to_jsonable  # noqa: F401
from bench.store.commit import (RunLock, commit_run, committed_state, has_complete_result, lock_is_held,  # noqa: F401
                                recover_run, remove_dir, remove_temp_files)
from bench.store.layout import (HISTORY_FILE, MAX_LABEL_DIR, RESULT_FILE, SPEC_FILE, audit_path,  # noqa: F401
                                config_dir, label_to_dirname, lock_path, partial_dir, read_json, replaced_dir,
                                run_dir)
from bench.store.provenance import describe_device, environment, git_revision  # noqa: F401
