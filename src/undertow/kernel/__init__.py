"""One view of the kernel: tracefs, BTF, kallsyms, ELF files, feature probes.

Everything that reads /proc, /sys, tracefs, BTF or ELF files lives in this
package; nothing here imports from ``undertow.lang``, ``undertow.backends``, the CLI
or the package face ``undertow/__init__`` (only the leaves ``undertow.errors``,
``undertow.consts`` and ``undertow.version``). :class:`Kernel` bundles the readers for one :class:`Roots` and builds
each lazily, once (bpftrace's mockable KernelInfo, drgn's Program in spirit).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

from .roots import Roots

if TYPE_CHECKING:  # each reader is imported when first asked for: `import undertow.kernel` stays light
    from .btf import BTF
    from .features import Features
    from .kallsyms import Kallsyms
    from .tracefs import Tracefs

__all__ = ["Kernel", "Roots"]


class Kernel:
    """Lazy accessors for the facts of one kernel.

    ``Kernel()`` is the running kernel (``Roots.from_env()``); tests pass a
    ``Roots`` pointing at fixtures.
    """

    def __init__(self, roots: Optional[Roots] = None) -> None:
        self.roots = roots or Roots.from_env()
        self._tracefs: "Optional[Tracefs]" = None
        self._btf: "Optional[BTF]" = None
        self._kallsyms: "Optional[Kallsyms]" = None
        self._features: "Optional[Features]" = None
        #: True when the BTF (``roots.btf``, ``trace --btf``) describes another kernel than
        #: the running one: this machine's kallsyms and tracefs are not that kernel's
        self.foreign = False

    def tracefs(self, mount: bool = True) -> "Tracefs":
        """The tracefs mount (mounted first when absent, ``mount`` is true and we are root).

        Raises :class:`undertow.errors.TracefsError` with a hint when unusable.
        """
        if self._tracefs is None:
            from .tracefs import open_tracefs

            self._tracefs = open_tracefs(self.roots, mount=mount)
        return self._tracefs

    def btf(self) -> "BTF":
        """vmlinux BTF (lazy index). Raises :class:`undertow.errors.BTFError` when absent."""
        if self._btf is None:
            from .btf import load_vmlinux

            self._btf = load_vmlinux(self.roots)
        return self._btf

    def member_offset(self, struct: str, path: str) -> int:
        """Byte offset of ``path`` (``"thread_info.status"``) in ``struct`` per vmlinux BTF.

        On the running kernel the answer is cached per boot with the BTF records it was read
        from: a later run checks those few records in the BTF file (kernel/btfcheck.py) instead
        of loading the BTF (~3 ms of a one-liner's start); a claim the BTF does not back is a
        miss. Raises what :meth:`BTF.member` raises."""
        from .cache import boot_id, read_cache, write_cache

        # cached per boot for the running kernel's own BTF only (not a file given instead)
        boot = boot_id(self.roots) if self.roots.live and self.roots.btf is None else "unknown-boot"
        key = f"member-{boot}-{struct}-{path}" if boot != "unknown-boot" else None
        if key is not None:
            got = read_cache(self.roots, key, limit=2048)
            if got is not None:
                from .btfcheck import check_member_witness

                off = check_member_witness(self.roots.btf_vmlinux, struct, path, got)
                if off is not None:
                    return off
        btf = self.btf()
        off = btf.member(struct, path).offset
        if key is not None:
            witness = btf.member_witness(struct, path)
            if witness is not None:
                write_cache(self.roots, key, witness)
        return off

    def kallsyms(self) -> "Kallsyms":
        if self._kallsyms is None:
            from .kallsyms import load_kallsyms

            self._kallsyms = load_kallsyms(self.roots)
        return self._kallsyms

    def features(self, refresh: bool = False) -> "Features":
        """Feature probes, cached per boot (``refresh``: probe again, ignoring the cache)."""
        if self._features is None or refresh:
            from .features import detect_features

            self._features = detect_features(self, refresh=refresh)
        return self._features
