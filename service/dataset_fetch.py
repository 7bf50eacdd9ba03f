"""Download the public datasets (STS-B, CLINC150, review sentences) from their original public sources into the
layout service/datasets.py reads (O2V_SHARED_DATA), every file checked against a pinned sha256.

SOURCES is the one table of where each dataset comes from and what its files hash to: the bytes described in each
dataset's SOURCE.md, which the benchmarks and the bundled model's card were measured on. A dataset is downloaded and
unpacked into a hidden staging folder beside its destination and renamed into place only when every file matched,
so a mismatch, a missing file or a broken download leaves nothing behind. A dataset folder already there is
checked, never overwritten.
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import IO

from tqdm import tqdm

from service.datasets import file_sha256
from service.errors import BadGateway, Conflict, InvalidRequest, Unavailable

MAX_BYTES = 64 << 20  # any one download or unpacked file: the largest real one (data_full.json) is 2.5 MB
CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    """One dataset: `name` is its folder under the shared-data root; `url` an archive (.tar.gz or .zip) holding
    `files` (found by base name, whatever folder the archive keeps them in) or, for raw files, the URL they sit
    under (`url`/file). `files` maps each file to its sha256."""

    name: str
    title: str
    url: str
    files: Mapping[str, str]
    licence: str

    @property
    def archive(self) -> str | None:
        return next((kind for kind in (".tar.gz", ".zip") if self.url.endswith(kind)), None)

    def downloads(self, mirror: str | None = None) -> list[tuple[str, str]]:
        """(URL, file name) of each download: the archive, or every raw file. A mirror serves the same file names
        under `<mirror>/<dataset folder>/`."""
        urls = [self.url] if self.archive else [f"{self.url.rstrip('/')}/{name}" for name in self.files]
        names = [urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(u).path).name) for u in urls]
        if mirror:
            urls = [f"{mirror.rstrip('/')}/{self.name}/{urllib.parse.quote(n)}" for n in names]
        return list(zip(urls, names, strict=True))


SOURCES = (
    Source(
        "stsbenchmark",
        "STS Benchmark (STS-B), English, 2017 release",
        "http://ixa2.si.ehu.es/stswiki/images/4/48/Stsbenchmark.tar.gz",
        {
            "sts-train.csv": "0f71910b59aa1ad973c5897f0791f3b0965a92b8f82b1a95f3eea9f4162fda82",
            "sts-dev.csv": "5d7e944d8b02734b07bfdb5df67db3420c64bed153fcaa1ba47ad03480cf4234",
            "sts-test.csv": "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a",
            "readme.txt": "e9488363d211c32ca5e912954f16eb9233cfed1b5b4b0475d0d812d35d7c8ef1",
            "LICENSE.txt": "3dfc3217395f8c5dd05c5f8995f25fe2f8fd258e6dd770b3de480749caee8c70",
        },
        "similarity scores CC BY-SA 4.0; the sentences keep their sources' licences (MSRpar, MSRvid: Microsoft's "
        "terms; headlines: EMM; images, SNLI: CC BY-SA; Stack Exchange: CC BY-SA 3.0 with attribution), see "
        "LICENSE.txt. Cite Cer et al., SemEval-2017 Task 1; http://ixa2.si.ehu.eus/stswiki",
    ),
    Source(
        "clinc150",
        "CLINC150 (clinc/oos-eval): intent classification with out-of-scope queries",
        "https://raw.githubusercontent.com/clinc/oos-eval/828f8093932c8fe6ca7936c3d2e52903b1c523de/data",
        {
            "data_full.json": "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
            "data_small.json": "050e17476e6b4fa88f8518edaf09921c8f5e3a86dc8b63615361102a20b2ac01",
            "domains.json": "b947b579d3b8e74b06f93b01083d8efaff2888b43a3e362533bd88a6e1211b3a",
        },
        "CC BY 3.0 (the repository's LICENSE). Cite Larson et al., EMNLP-IJCNLP 2019, 'An Evaluation Dataset for "
        "Intent Classification and Out-of-Scope Prediction'",
    ),
    Source(
        "sentiment_labelled_sentences",
        "Sentiment Labelled Sentences (Amazon, Yelp, IMDb review sentences; UCI ML Repository)",
        "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip",
        {
            "amazon_cells_labelled.txt": "47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",
            "yelp_labelled.txt": "c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea",
            "imdb_labelled.txt": "aef2e49e3da25714d61175e3a6e68eeef74a20a2f914318dc3be9947ea86512d",
            "readme.txt": "736c26aa54e3614459e50314ece0698051f0923d108ed53938dcb1aa0483bfd4",
        },
        "CC BY 4.0 (as the UCI Machine Learning Repository lists it; readme.txt states none). Cite Kotzias et al., "
        "KDD 2015, 'From Group to Individual Labels using Deep Features'",
    ),
)


def select(names: Sequence[str] | None, sources: Sequence[Source] = SOURCES) -> list[Source]:
    """The sources named (all without names), in table order; an unknown name is the caller's mistake."""
    known = {s.name: s for s in sources}
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise InvalidRequest(f"no dataset {unknown[0]!r}: one of {', '.join(known)}", "dataset")
    return [s for s in sources if not names or s.name in names]


def fetch(source: Source, root: Path, mirror: str | None = None, timeout: float = 60.0, progress: bool = True) -> str:
    """`source` into root/<name>; "fetched", or "present" when a folder that passes the checks is already there."""
    dest = root / source.name
    if dest.exists():
        bad = mismatches(dest, source.files)
        if bad:
            raise Conflict(f"{dest} is already there, but {bad[0]}: move it away to fetch it again", "to")
        return "present"
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.name}.", suffix=".partial", dir=root))
    try:
        for url, name in source.downloads(mirror):
            download(url, staging / name, timeout, progress)
            if source.archive:
                unpack(staging / name, source.archive, staging, source.files, url)
                (staging / name).unlink()
        bad = mismatches(staging, source.files)
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise BadGateway(f"{source.name}: {bad[0]}{more}, from {mirror or source.url}: nothing written")
        (staging / "SOURCE.md").write_text(source_note(source, mirror), encoding="utf-8")
        try:
            staging.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
            return fetch(source, root, mirror, timeout, progress)  # another fetch finished first: check its copy
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when renamed
    return "fetched"


def mismatches(folder: Path, files: Mapping[str, str]) -> list[str]:
    """What is wrong with folder's copy of `files`, one line a file (empty when every file is there and matches)."""
    out = []
    for name, want in files.items():
        path = folder / name
        got = file_sha256(path) if path.is_file() else None
        if got is None:
            out.append(f"{name} is missing")
        elif got != want:
            out.append(f"{name} has sha256 {got}, not the pinned {want}")
    return out


def download(url: str, path: Path, timeout: float, progress: bool) -> None:
    """`url` to `path` in chunks, with a progress bar. An unreachable source, an HTTP error or a body cut short is
    Unavailable (exit 69); a body larger than MAX_BYTES is BadGateway (76), as a file that fails its sha256 is."""
    request = urllib.request.Request(url, headers={"User-Agent": "o2v-datasets-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(path, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar:
                size = _copy(response, out, url, bar.update)
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, HTTPException, TimeoutError, ConnectionError) as exc:
        raise Unavailable(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from exc
    if total is not None and size != total:
        raise Unavailable(f"cannot download {url}: {size} of {total} bytes arrived")


def unpack(archive: Path, kind: str, folder: Path, files: Mapping[str, str], url: str) -> None:
    """Each of `files` from the archive into folder, found by base name (macOS's __MACOSX/ copies are skipped);
    nothing else is extracted, so no member's path ever reaches the file system."""
    try:
        with _members(archive, kind) as members:
            for name in files:
                found = [m for m in members if m[0] == name]
                if len(found) != 1:
                    raise BadGateway(f"{url}: the archive holds {len(found)} files named {name}, not 1")
                _, size, opener = found[0]
                if size > MAX_BYTES:
                    raise BadGateway(f"{url}: {name} unpacks to {size} bytes, over {MAX_BYTES}")
                with opener() as src, open(folder / name, "wb") as out:
                    _copy(src, out, url)
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise BadGateway(f"{url}: not a readable {kind} archive ({exc})") from exc


Member = tuple[str, int, Callable[[], IO[bytes]]]


@contextmanager
def _members(archive: Path, kind: str) -> Iterator[list[Member]]:
    """(base name, size, opener) of each regular file in a .tar.gz or .zip."""
    if kind == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zipped = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
            yield [(PurePosixPath(i.filename).name, i.file_size, partial(zf.open, i)) for i in zipped]
    else:
        with tarfile.open(archive, "r:gz") as tf:
            tarred = [m for m in tf.getmembers() if m.isfile()]
            yield [(PurePosixPath(m.name).name, m.size, partial(_extracted, tf, m)) for m in tarred]


def _extracted(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    fh = tf.extractfile(member)
    if fh is None:  # isfile() members always have one
        raise tarfile.TarError(f"cannot read {member.name}")
    return fh


def _copy(src: IO[bytes], out: IO[bytes], url: str, seen: Callable[[int], object] = lambda n: None) -> int:
    """Bytes copied; past MAX_BYTES it stops: no pinned file is that large, so it is not the file asked for."""
    size = 0
    while chunk := src.read(CHUNK):
        size += len(chunk)
        if size > MAX_BYTES:
            raise BadGateway(f"{url}: more than {MAX_BYTES} bytes, larger than any pinned file")
        out.write(chunk)
        seen(len(chunk))
    return size


def source_note(source: Source, mirror: str | None) -> str:
    """SOURCE.md for a fetched dataset: where it came from, its licence, and the sha256 each file was checked at."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    via = f" through the mirror {mirror}" if mirror else ""
    rows = "".join(f"| {name} | {sha} |\n" for name, sha in source.files.items())
    return (
        f"# {source.title}\n\nFetched by `o2v datasets fetch` on {when} from {source.url}{via}.\n\n"
        f"## Licence\n{source.licence}.\n\n## Files (sha256 checked)\n| file | sha256 |\n|---|---|\n{rows}"
    )
