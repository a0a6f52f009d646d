"""Image folders: the one way cnnlens lists, limits, labels and batches the images of a folder.

- :func:`list_images`: the image files under a folder, sorted (flat or in class subfolders, hidden
  files left out).
- :func:`spread`: what ``limit`` means everywhere: that many images spread evenly over the sorted
  list (every class folder has a chance to appear), not the first ones.
- :func:`select_images`: ``{name: source}`` of a folder, files or pixels; :func:`iter_batches`:
  prepared batches of them, read ahead by threads.
- :func:`labelled_folder`: labelled images from class subfolders, a flat folder with a labels CSV,
  or MNIST IDX files (:class:`LabelledImages`, :func:`batches`).

Labelled layouts:

- **class subfolders** (torchvision ``ImageFolder``): ``DIR/<class>/<image>``; the class index is the
  folder's position in sorted order, except when every folder name is an integer, which is then
  the index itself (``DIR/7/...`` is class 7, and ``10`` does not sort before ``2``).
- **flat folder + CSV**: ``labels.csv`` (UTF-8) with a header naming a file column (``filename``,
  ``file``, ``image`` or ``path``) and a class column (``class_index``, ``label``, ``class`` or
  ``target``), or two columns without a header. ``DIR/labels.csv`` is used when ``labels`` is not
  given. The images evaluated are those that are present **and** labelled: files the CSV names that
  are absent (a subset of a labelled set) and images the CSV does not name are counted
  (:attr:`LabelledImages.absent`, :attr:`LabelledImages.unlabelled`), not refused. A file named
  twice with the same class is fine; with two classes it is an error.
- **IDX** (MNIST's own format, optionally gzipped): a folder holding ``*images-idx3-ubyte[.gz]`` and
  ``*labels-idx1-ubyte[.gz]``.
"""

from __future__ import annotations

import csv
import gzip
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checks import check_int
from .errors import CnnlensError
from .images import IMAGE_SUFFIXES, load_image
from .pixels import Preprocessing, as_pixels

__all__ = [
    "LabelledImages",
    "batches",
    "iter_batches",
    "labelled_folder",
    "list_images",
    "prepare_image",
    "read_idx",
    "read_labels_csv",
    "select_images",
    "spread",
]

_FILE_COLUMNS = ("filename", "file", "image", "path", "name")
_CLASS_COLUMNS = ("class_index", "label", "class", "target", "class_idx", "y")


# -- listing and limiting ------------------------------------------------------------------------------


def _image_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (sorted; hidden files left out); none is not an error here."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (sorted), flat or in class subfolders; hidden files left out.

    Raises:
        CnnlensError: ``folder`` is not a folder or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CnnlensError(f"not a folder: {folder}")
    files = _image_files(folder, recursive)
    if not files:
        raise CnnlensError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def spread(n: int, limit: int | None) -> list[int]:
    """The indices ``limit`` keeps of ``n`` sorted items: ``limit`` of them spread evenly (item
    ``floor(i * n / limit)`` for ``i < limit``), so that every class folder of a sorted list has a
    chance to appear; all ``n`` when ``limit`` is None or not below ``n``. The one meaning of
    ``limit`` in cnnlens."""
    if limit is None or limit >= n:
        return list(range(n))
    step = n / limit
    return [int(i * step) for i in range(limit)]


def prepare_image(image: Any, preprocessing: Preprocessing) -> torch.Tensor:
    """One image (path, PIL, array or tensor of pixels in [0, 1]) resized, centre-cropped and
    converted to the model's channels: ``(C, H, W)`` pixels in [0, 1]."""
    return as_pixels(image, preprocessing, fit="crop")[0].contiguous()


def select_images(images: Any, limit: int | None = None) -> dict[str, Any]:
    """``{name: source}`` of the images to mine, in order: a folder (flat or class subfolders,
    sorted), an image file, a list of files, or pixels (an ``(N, C, H, W)`` tensor, or a list of
    tensors, PIL images or arrays; named ``images[i]``). ``limit`` keeps that many, spread evenly
    over the list (:func:`spread`)."""
    if limit is not None:
        limit = check_int(limit, "limit", low=1)
    sources: list[tuple[str, Any]] = []
    if isinstance(images, (str, Path)):
        path = Path(images).expanduser()
        if path.is_dir():
            sources = [(str(p), p) for p in list_images(path)]
        elif path.is_file():
            sources = [(str(path), path)]
        else:
            raise CnnlensError(f"images: no such folder or file {path}", param="images")
    elif isinstance(images, torch.Tensor):
        batch = as_pixels(images, name="images")
        sources = [(f"images[{i}]", batch[i]) for i in range(batch.shape[0])]
    elif isinstance(images, (list, tuple)):
        for i, item in enumerate(images):
            if isinstance(item, (str, Path)):
                sources.append((str(item), Path(item).expanduser()))
            else:
                sources.append((f"images[{i}]", as_pixels(item, name="images")[0]))
    else:
        raise CnnlensError(f"images must be a folder, image files or pixels, not {type(images).__name__}", param="images")
    if not sources:
        raise CnnlensError("images: no images given", param="images")
    names = [n for n, _ in sources]
    if len(set(names)) != len(names):
        raise CnnlensError("images: the same file is given twice", param="images")
    return dict(sources[i] for i in spread(len(sources), limit))


def iter_batches(sources: Sequence[Any], preprocessing: Preprocessing, *, batch_size: int = 32, workers: int = 0) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Batches ``(indices, pixels)`` of prepared images, in the order of ``sources``.

    ``workers`` threads read and resize ahead of the model (image decoding and resizing release
    the GIL); an unreadable image raises its one-line :class:`CnnlensError` here, in the caller.
    Threads, not processes: nothing to pickle, no socket in the temp folder, no traceback of
    another process.
    """
    n = len(sources)
    if workers <= 0:
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            yield idx, torch.stack([prepare_image(sources[i], preprocessing) for i in idx])
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cnnlens-images")
    pending: deque[Future[torch.Tensor]] = deque()
    ahead = 2 * batch_size
    submitted = 0
    try:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            while submitted < min(n, stop + ahead):
                pending.append(pool.submit(prepare_image, sources[submitted], preprocessing))
                submitted += 1
            yield list(range(start, stop)), torch.stack([pending.popleft().result() for _ in range(start, stop)])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- labelled images -----------------------------------------------------------------------------------


@dataclass
class LabelledImages:
    """A list of labelled images, loaded lazily from files (``paths``) or held in memory (``tensors``).

    ``dataset[i]`` is ``(image, label)`` with the image as ``transform`` makes it.
    """

    labels: list[int]
    paths: list[Path] | None = None
    tensors: torch.Tensor | None = None  # (N, C, H, W) in [0, 1]
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    source: str = ""
    absent: list[str] = field(default_factory=list)  # files the labels name that are not in the folder
    unlabelled: list[str] = field(default_factory=list)  # images in the folder that have no label

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.tensors is not None:
            image = self.tensors[index]
        else:
            assert self.paths is not None
            image = load_image(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]

    def subset(self, indices: Sequence[int] | slice) -> LabelledImages:
        idx = list(range(len(self)))[indices] if isinstance(indices, slice) else list(indices)
        return replace(
            self,
            labels=[self.labels[i] for i in idx],
            paths=[self.paths[i] for i in idx] if self.paths is not None else None,
            tensors=self.tensors[idx] if self.tensors is not None else None,
        )

    def with_transform(self, transform: Callable[[torch.Tensor], torch.Tensor] | None) -> LabelledImages:
        return replace(self, transform=transform)

    def to_dict(self) -> dict[str, Any]:
        """Where the images came from and what was left out: JSON-safe."""
        return {"source": self.source, "images": len(self), "absent_labelled": len(self.absent), "unlabelled": len(self.unlabelled)}

    def notes(self) -> list[str]:
        """One line for each kind of file left out (absent labelled files, images without a label)."""
        out = []
        if self.absent:
            k = len(self.absent)
            out.append(f"{k} labelled file{'s are' if k > 1 else ' is'} absent from {self.source} (e.g. {self.absent[0]}); the images present are evaluated")
        if self.unlabelled:
            k = len(self.unlabelled)
            out.append(f"{k} image{'s' if k > 1 else ''} in {self.source} {'have' if k > 1 else 'has'} no label and {'are' if k > 1 else 'is'} skipped (e.g. {self.unlabelled[0]})")
        return out


def batches(dataset: LabelledImages, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images, labels)`` batches in order (every image must come out of the transform at one size)."""
    batch_size = check_int(batch_size, "batch_size", low=1)
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        shapes = {tuple(x.shape) for x, _ in items}
        if len(shapes) > 1:
            raise CnnlensError(f"images of different sizes in one batch {sorted(shapes)[:2]}: give them a transform to one size")
        yield torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.long)


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format; gzipped or not) as a numpy array."""
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
        ndim = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        if raw[2] != 0x08:
            raise ValueError(f"element type 0x{raw[2]:02x} is not uint8")
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, ValueError, IndexError) as exc:  # unreadable, gzip damage, truncated, wrong shape
        raise CnnlensError(f"cannot read IDX file {path}: {exc}".splitlines()[0]) from None


def _idx_pair(folder: Path) -> tuple[Path, Path] | None:
    images = sorted(folder.glob("*images-idx3-ubyte*")) + sorted(folder.glob("*images.idx3-ubyte*"))
    labels = sorted(folder.glob("*labels-idx1-ubyte*")) + sorted(folder.glob("*labels.idx1-ubyte*"))
    if not images or not labels:
        return None
    # prefer the test set when a folder holds both
    pick = lambda files: next((f for f in files if "t10k" in f.name), files[0])  # noqa: E731
    return pick(images), pick(labels)


def read_labels_csv(path: str | Path) -> dict[str, int]:
    """``{filename: class index}`` from a UTF-8 CSV with or without a header.

    A file named on several rows with one class is kept once; with different classes it is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CnnlensError(f"labels file not found: {path}", param="labels")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(f), start=1) if row and any(c.strip() for c in row)]
    except UnicodeDecodeError as exc:
        raise CnnlensError(
            f"labels {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8", param="labels"
        ) from None
    except csv.Error as exc:
        raise CnnlensError(f"labels {path} is not a readable CSV: {exc}", param="labels") from None
    if not rows:
        raise CnnlensError(f"labels {path} is empty", param="labels")
    header = [c.lower() for c in rows[0][1]]
    file_col = next((header.index(c) for c in _FILE_COLUMNS if c in header), None)
    class_col = next((header.index(c) for c in _CLASS_COLUMNS if c in header), None)
    if file_col is not None and class_col is not None:
        body = rows[1:]
    else:
        file_col, class_col = 0, 1
        first = rows[0][1]
        body = rows[1:] if not _is_int(first[1] if len(first) > 1 else "") else rows
    if not body:
        raise CnnlensError(f"labels {path} has no rows of a filename and a class index", param="labels")
    out: dict[str, int] = {}
    line_of: dict[str, int] = {}
    for n, row in body:
        if len(row) <= max(file_col, class_col) or not _is_int(row[class_col]) or not row[file_col]:
            raise CnnlensError(f"labels {path} line {n}: expected a filename and a class index, got {row}", param="labels")
        name, label = row[file_col], int(row[class_col])
        if name in out and out[name] != label:
            raise CnnlensError(
                f"labels {path}: {name} has class {out[name]} on line {line_of[name]} and {label} on line {n}; keep one row per file",
                param="labels",
            )
        out.setdefault(name, label)
        line_of.setdefault(name, n)
    return out


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def labelled_folder(
    folder: str | Path,
    *,
    labels: str | Path | None = None,
    limit: int | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> LabelledImages:
    """The labelled images in ``folder`` (see the module docstring for the three layouts).

    Args:
        labels: a CSV of filename and class index for a flat folder (default ``folder/labels.csv``).
        limit: keep that many images, spread evenly over the sorted list (IDX order for MNIST; :func:`spread`).
        transform: applied to each ``(3, H, W)`` image (``(1, H, W)`` for IDX) when it is read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CnnlensError(f"data: not a folder: {folder}", param="data")
    if limit is not None:
        limit = check_int(limit, "limit", low=1)
    csv_path = Path(labels) if labels is not None else (folder / "labels.csv" if (folder / "labels.csv").is_file() else None)
    if csv_path is not None:
        table = read_labels_csv(csv_path)
        names = sorted(table)
        present = [n for n in names if (folder / n).is_file()]
        absent = [n for n in names if not (folder / n).is_file()]
        if not present:
            raise CnnlensError(f"labels: none of the {len(names)} files named in {csv_path} is in {folder} (e.g. {names[0]})", param="labels")
        known = {(folder / n).resolve() for n in names}
        unlabelled = [p.relative_to(folder).as_posix() for p in _image_files(folder) if p.resolve() not in known]
        data = LabelledImages([table[n] for n in present], paths=[folder / n for n in present], transform=transform,
                              source=str(folder), absent=absent, unlabelled=unlabelled)
        return data.subset(spread(len(data), limit))
    pair = _idx_pair(folder)
    if pair is not None:
        images, ys = read_idx(pair[0]), read_idx(pair[1])
        if images.ndim != 3 or ys.ndim != 1 or len(images) != len(ys):
            raise CnnlensError(f"IDX files {pair[0].name} / {pair[1].name} do not match: {images.shape} vs {ys.shape}")
        keep = spread(len(ys), limit)
        x = torch.from_numpy(images[keep]).float().div_(255).unsqueeze(1)
        return LabelledImages(ys[keep].astype(np.int64).tolist(), tensors=x, transform=transform, source=str(folder))
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes:
        numeric = all(_is_int(c) for c in classes)
        index = {c: (int(c) if numeric else i) for i, c in enumerate(classes)}
        everything = _image_files(folder)
        files = [p for p in everything if p.parent.parent == folder and p.parent.name in index]
        if not files:
            raise CnnlensError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders of {folder}", param="data")
        unlabelled = [p.relative_to(folder).as_posix() for p in everything if p.parent.parent != folder or p.parent.name not in index]
        files = [files[i] for i in spread(len(files), limit)]
        return LabelledImages([index[p.parent.name] for p in files], paths=files, transform=transform, source=str(folder), unlabelled=unlabelled)
    raise CnnlensError(f"data: no labels for {folder}: use class subfolders, MNIST IDX files, or a labels CSV (labels=)", param="data")
