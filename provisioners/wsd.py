"""Getting wire-server-deploy: an existing checkout, a git URL and ref, or a release zip URL with a checksum."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from provisioners import ProvisionError


@dataclass
class WsdSource:
    path: Path | None = None
    git_url: str | None = None
    git_ref: str | None = None
    zip_url: str | None = None
    zip_sha256: str | None = None

    def describe(self) -> str:
        if self.path:
            return f"checkout {self.path}"
        if self.git_url:
            return f"git {self.git_url} @ {self.git_ref or 'default branch'}"
        return f"zip {self.zip_url} (sha256 {self.zip_sha256})"

    def validate(self) -> None:
        given = [x for x in (self.path, self.git_url, self.zip_url) if x]
        if len(given) != 1:
            raise ProvisionError("give exactly one of --wire-server-deploy PATH, --wsd-git URL, --wsd-zip URL")
        if self.zip_url and not self.zip_sha256:
            raise ProvisionError("--wsd-zip needs --wsd-sha256 (the release checksum)")
        if self.zip_sha256 and len(self.zip_sha256) != 64:
            raise ProvisionError("--wsd-sha256 must be 64 hex digits")

    def commands(self, workdir: Path) -> list[list[str]]:
        """The commands `fetch` runs (for --dry-run)."""
        if self.git_url:
            dest = str(workdir / "wire-server-deploy")
            cmds = [["git", "clone", "--recurse-submodules", "--", self.git_url, dest]]
            if self.git_ref:
                cmds.append(["git", "-C", dest, "checkout", "--detach", self.git_ref])
                cmds.append(["git", "-C", dest, "submodule", "update", "--init", "--recursive"])
            return cmds
        return []

    def fetch(self, workdir: Path, timeout: float = 600.0) -> Path:
        """Return the root of a usable checkout, fetching it into `workdir` when needed."""
        self.validate()
        if self.path:
            root = self.path.expanduser().resolve()
            if not root.is_dir():
                raise ProvisionError(f"wire-server-deploy checkout {root} does not exist")
            return root
        workdir.mkdir(parents=True, exist_ok=True)
        if self.git_url:
            dest = workdir / "wire-server-deploy"
            if dest.exists():
                shutil.rmtree(dest)
            for argv in self.commands(workdir):
                try:
                    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
                except subprocess.TimeoutExpired as exc:
                    raise ProvisionError(f"{' '.join(argv[:2])} timed out after {timeout:g}s") from exc
                if proc.returncode != 0:
                    raise ProvisionError(f"{' '.join(argv[:3])} failed: {proc.stderr.strip().splitlines()[-1:]}")
            return dest
        return self._fetch_zip(workdir, timeout)

    def _fetch_zip(self, workdir: Path, timeout: float) -> Path:
        assert self.zip_url and self.zip_sha256
        archive = workdir / "wire-server-deploy.zip"
        parts = urlsplit(self.zip_url)
        digest = hashlib.sha256()
        if parts.scheme in ("", "file"):
            src = Path(unquote(parts.path))
            if not src.is_file():
                raise ProvisionError(f"release zip {src} does not exist")
            with src.open("rb") as fin, archive.open("wb") as fout:
                for chunk in iter(lambda: fin.read(1 << 20), b""):
                    digest.update(chunk)
                    fout.write(chunk)
        elif parts.scheme in ("http", "https"):
            import requests

            with requests.Session() as s:
                s.trust_env = True  # honour an operator's proxy for downloads
                try:
                    with s.get(self.zip_url, stream=True, timeout=(30, timeout)) as resp:
                        resp.raise_for_status()
                        with archive.open("wb") as fout:
                            for chunk in resp.iter_content(1 << 20):
                                digest.update(chunk)
                                fout.write(chunk)
                except requests.RequestException as exc:
                    raise ProvisionError(f"downloading {self.zip_url} failed: {exc}") from exc
        else:
            raise ProvisionError(f"unsupported URL scheme in --wsd-zip: {parts.scheme}")
        got = digest.hexdigest()
        if got != self.zip_sha256.lower():
            archive.unlink(missing_ok=True)
            raise ProvisionError(f"release zip checksum mismatch: got sha256 {got}, expected {self.zip_sha256}")
        dest = workdir / "wire-server-deploy"
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir()
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = (dest / info.filename).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise ProvisionError(f"release zip member {info.filename!r} escapes the target directory")
            zf.extractall(dest)
            for info in zf.infolist():  # keep executable bits (zipfile drops them)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    (dest / info.filename).chmod(mode)
        entries = list(dest.iterdir())
        # GitHub release zips hold one top-level directory
        return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
