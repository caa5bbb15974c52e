"""Parameter types of kernel functions that BTF does not describe because their only
symbol is a compiler clone (``__netif_receive_skb_core.constprop.0``).

pahole leaves such clones out of BTF (their parameters may differ from the source's:
``.constprop`` drops constant ones, ``.isra`` replaces aggregates). A function below is
listed with the parameters its clones keep in place, checked against the kernel sources
and the lab's Debian kernels; nothing else is assumed. Used only where BTF has no
prototype, and every use is said to the user (a warning naming this table).
"""

from __future__ import annotations

import os
import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

__all__ = ["CLONE_PROTOTYPES", "base_name", "clone_param"]

#: name -> ((major, minor) of the first release with these parameters, parameter types)
CLONE_PROTOTYPES: Dict[str, Tuple[Tuple[int, int], Tuple[str, ...]]] = {
    # net/core/dev.c, "__netif_receive_skb_core: pass skb by reference" (c0bbbdc32feb,
    # v5.7; also in 4.19.126 and 5.4.44, which a distribution's release string does not
    # show: those kernels are not matched). GCC emits it as .constprop.0 (6.1, 6.12, 6.18).
    "__netif_receive_skb_core": ((5, 7), ("struct sk_buff **", "bool", "struct packet_type **")),
}

_SUFFIX = re.compile(r"(\.(?:constprop|isra|part|llvm)\.\d+)+$")


def base_name(symbol: str) -> str:
    """``symbol`` without GCC/LLVM clone suffixes (``.constprop.0``, ``.isra.0``, ``.part.0``)."""
    return _SUFFIX.sub("", symbol)


def clone_param(symbol: str, index: int, release: Optional[str] = None) -> Optional[str]:
    """The C type of parameter ``index`` of ``symbol`` (a clone or its base name) from
    :data:`CLONE_PROTOTYPES` on kernel ``release`` (default: the running one), or None."""
    entry = CLONE_PROTOTYPES.get(base_name(symbol))
    if entry is None:
        return None
    since, params = entry
    nums = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    if nums is None or (int(nums.group(1)), int(nums.group(2))) < since or index >= len(params):
        return None
    return params[index]
