"""Where runs live: a local directory, or a URI (s3://, gs://, file://...) reached through pyarrow.

Ray Tune writes a run to either kind the same way (`storage_path` goes to pyarrow). The orchestrator
itself reads results and exports the best model from plain files, so for a URI it keeps a local mirror
of the run: it uploads what it writes (experiment.yaml, best/) and downloads what Tune wrote before
reading it (of the checkpoint weights, only the export's candidates). A directory every node of a
cluster mounts (NFS, EFS, Filestore) is a local path here.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.reading import results as R

# Checkpoint weights the driver's copy of a cloud-stored run holds: the best by their recorded metric, and
# one more in case the best cannot be read. The others stay at the URI only (a run keeps `checkpoint.keep`
# per trial, which adds up to gigabytes for a large search).
MIRRORED_WEIGHTS = 2


def is_uri(location: str) -> bool:
    """True for `scheme://...` (cloud storage or file://), False for a filesystem path."""
    return "://" in location


@dataclass(frozen=True)
class Storage:
    """The storage root that runs are created under: an absolute local path or a URI."""

    root: str

    @classmethod
    def of(cls, location: str) -> "Storage":
        if not is_uri(location):
            return cls(str(Path(location).expanduser().resolve()))
        store = cls(location.rstrip("/"))
        store._fs()  # an unknown scheme or a malformed URI fails here, before anything is written
        return store

    @property
    def remote(self) -> bool:
        return is_uri(self.root)

    def run(self, name: str) -> str:
        """The location of run `name` under this root (what `orchestrator best`/`export` are given)."""
        return f"{self.root}/{name}" if self.remote else str(Path(self.root) / name)

    def taken(self, name: str) -> bool:
        return self.exists(name) if self.remote else (Path(self.root) / name).exists()

    def new_run(self, name: str, explicit: bool) -> Path:
        """The directory the driver keeps run `name` in: `<root>/<name>`, or for a URI root a new local mirror
        of it. A taken name gets a numeric suffix (`name-2`), unless the user chose it with --name."""
        if self.taken(name):
            if explicit:
                hint = "pick another name" if self.remote else f"resume it with `orchestrator resume {self.run(name)}` or pick another name"
                raise UserError(f"--name {name}: {self.run(name)} already exists; {hint}")
            n = 2
            while self.taken(f"{name}-{n}"):
                n += 1
            name = f"{name}-{n}"
        # For a URI, Tune writes to the URI itself; the driver reads results from this copy.
        return Path(tempfile.mkdtemp(prefix="orchestrator-")) / name if self.remote else Path(self.root) / name

    def _fs(self):
        import pyarrow.fs

        try:
            return pyarrow.fs.FileSystem.from_uri(self.root)
        except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, OSError, ValueError) as exc:
            raise UserError(f"storage {self.root}: not a storage location pyarrow can open: {exc}") from None

    def _path(self, name: str, relpath: str = "") -> tuple[object, str]:
        fs, base = self._fs()
        return fs, "/".join(p for p in (base.rstrip("/"), name, relpath) if p)

    def exists(self, name: str) -> bool:
        import pyarrow.fs

        fs, path = self._path(name)
        try:
            return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound
        except OSError as exc:
            raise UserError(f"storage {self.root}: cannot be read ({exc}); check the credentials of this machine") from None

    def upload(self, local: Path, name: str, relpath: str) -> None:
        """Copies a local file or directory to `<run>/<relpath>`."""
        import pyarrow.fs

        fs, path = self._path(name, relpath)
        if local.is_dir():
            fs.create_dir(path, recursive=True)
            pyarrow.fs.copy_files(str(local), path, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs)
        else:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with fs.open_output_stream(path) as dst:
                dst.write(local.read_bytes())

    def download_file(self, name: str, relpath: str, local: Path) -> Path:
        """Copies the one file `<run>/<relpath>` to `local` (its folder created if missing); returns it."""
        fs, path = self._path(name, relpath)
        try:
            _copy_out(fs, path, local)
        except FileNotFoundError:
            raise UserError(f"{self.run(name)}: no {relpath} there; is it a run this orchestrator started?") from None
        except OSError as exc:
            raise UserError(f"{self.run(name)}: cannot read {relpath} ({exc})") from None
        return local

    def mirror(self, name: str, local: Path, *, skip: Callable[[str], bool]) -> list[str]:
        """Copies run `name` to `local`, except the files whose path in the run `skip` accepts; returns those."""
        import pyarrow.fs

        fs, base = self._path(name)
        try:
            files = [i.path for i in fs.get_file_info(pyarrow.fs.FileSelector(base, recursive=True)) if i.type == pyarrow.fs.FileType.File]
        except OSError as exc:
            raise UserError(f"{self.run(name)}: cannot be listed ({exc})") from None
        relpaths = {path[len(base):].lstrip("/"): path for path in files}
        skipped = {rel for rel in relpaths if skip(rel)}
        wanted = [rel for rel in relpaths if rel not in skipped]
        try:
            with ThreadPoolExecutor(max_workers=16) as pool:  # one request per file: overlap their latencies
                list(pool.map(lambda rel: _copy_out(fs, relpaths[rel], local / rel), wanted))
        except OSError as exc:
            raise UserError(f"{self.run(name)}: cannot be read ({exc})") from None
        return sorted(skipped)


def mirror_run(store: Storage, run_dir: Path, metric: str, mode: str) -> None:
    """Copies a cloud-stored run to the driver's `run_dir`: every file but the checkpoint weights, which
    only the export needs, and of those the MIRRORED_WEIGHTS best."""
    skipped = store.mirror(run_dir.name, run_dir, skip=lambda rel: rel.endswith("/" + R.STATE_FILE))
    ranked = []
    for rel in skipped:
        meta = run_dir / rel.rsplit("/", 1)[0] / R.META_FILE
        value = R.checkpoint_value(json.loads(meta.read_text()), metric) if meta.is_file() else None
        if value is not None:
            ranked.append((value, rel))
    ranked.sort(reverse=(mode == "max"))
    for _, rel in ranked[:MIRRORED_WEIGHTS]:
        store.download_file(run_dir.name, rel, run_dir / rel)


def stored_run(location: str) -> tuple[Storage, str, Path]:
    """(storage, run name, a new local directory for this machine's copy) of the run stored at URI `location`;
    the copy starts with the run's experiment.yaml, which says how to read the rest."""
    root, _, name = location.rstrip("/").rpartition("/")
    store = Storage.of(root)
    if not name or not store.exists(name):
        raise UserError(f"{location}: no such run in that storage")
    run_dir = Path(tempfile.mkdtemp(prefix="orchestrator-")) / name
    store.download_file(name, R.EXPERIMENT_FILE, run_dir / R.EXPERIMENT_FILE)
    return store, name, run_dir


def readable_run(location: str) -> Path:
    """The run directory that `best`, `export`, `report` and `tensorboard` read: `location` itself, or for a
    run stored at a URI, a copy taken now (results, TensorBoard files, best/, the best checkpoints' weights)."""
    if not is_uri(location):
        return Path(location)
    store, _, run_dir = stored_run(location)
    exp = R.read_experiment(run_dir)
    mirror_run(store, run_dir, exp["metric"], exp["mode"])
    print(f"reading a copy of {location} taken now: {run_dir}", file=sys.stderr, flush=True)
    return run_dir


def _copy_out(fs, path: str, local: Path) -> None:
    """Copies one file from a pyarrow filesystem to a local path, creating its folder."""
    local.parent.mkdir(parents=True, exist_ok=True)
    with fs.open_input_stream(path) as src:
        local.write_bytes(src.read())


def fetch_command(run: str, dest: str) -> str:
    """A shell command that copies a run stored at a URI to a local directory (pyarrow ships with Ray)."""
    return f"python -c \"import pyarrow.fs as f; f.copy_files('{run}', '{dest}')\""
