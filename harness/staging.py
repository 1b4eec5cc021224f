"""The entry as the phases see it: a bounded, harness-owned copy, made once per graded run.

The entry's own folder may be private (mode 0700, as home folders and `mktemp -d` make them),
owned by anyone, hold set-uid files or links, and change while it is graded. The phases run as
uid 10001 (Docker, sandbox), which could not read a private folder that is mounted as it is. So
every graded run copies the entry first, with the shared walker's rules (harness.contract:
list_entry, the same bounds and refusals as the digest), into a folder of the harness's:

  * folders 0755, files 0644, or 0755 where the owner could execute them: set-uid, set-gid and
    sticky bits never reach the copy, whoever owned the file;
  * a link to a file inside the entry becomes a copy of that file; a link to a folder inside it
    becomes a relative link made by the harness (never the entry's own link text); a link out of
    the entry or to nowhere, a named pipe, a socket or a device file refuses the entry;
  * each file is opened beneath the entry with no link followed and checked to be the file that
    was listed (device and inode), and the bytes copied stop at MAX_ENTRY_BYTES in all.

The run's digest is computed from this copy, so what is digested is what runs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.contract import DIGEST_CHUNK, MAX_ENTRY_BYTES, ContractError, list_entry, open_entry_file
from harness.text import clean

FOLDER_MODE = 0o755
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755


def stage_entry(src: Path, dst: Path) -> Path:
    """Copy the entry at `src` into `dst` (which must not exist; its parent is made) as described
    above, and return `dst`. Raises ContractError with the fix when the entry is refused: nothing
    is copied then when the listing refuses it, and a partial copy is left to the caller to remove
    when the entry changed while it was copied."""
    shown = clean(src, 300)
    listing = list_entry(src)  # every refusal by name and size happens here, before a byte is read
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.mkdir(mode=FOLDER_MODE)
    os.chmod(dst, FOLDER_MODE)  # whatever the umask
    for rel in listing.folders:
        os.mkdir(dst / rel, FOLDER_MODE)
        os.chmod(dst / rel, FOLDER_MODE)
    total = 0
    for file in listing.files:
        mode = EXECUTABLE_MODE if file.st.st_mode & stat.S_IXUSR else FILE_MODE
        target = dst / file.rel
        with (
            os.fdopen(open_entry_file(listing, file, shown), "rb") as source,
            os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode), "wb") as out,
        ):
            while chunk := source.read(DIGEST_CHUNK):
                total += len(chunk)
                if total > MAX_ENTRY_BYTES:  # a file that grew since it was listed
                    raise ContractError(
                        f"{shown}: its files add up to more than {MAX_ENTRY_BYTES // 2**20} MiB "
                        f"(at {clean(file.rel, 120)}); keep large data out of the entry "
                        "and unchanged while it is graded"
                    )
                out.write(chunk)
            os.fchmod(out.fileno(), mode)
    for rel, folder in listing.folder_links:  # last: no copy above ever passes through one of them
        os.symlink(os.path.relpath(folder, os.path.dirname(rel) or os.curdir), dst / rel)
    return dst
