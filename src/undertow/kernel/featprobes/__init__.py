"""Feature probes, one module per facility: :mod:`.tracefs`, :mod:`.btf`, :mod:`.bpf`, on the
shared context of :mod:`.base`. :mod:`undertow.kernel.features` runs them in order, derives
what to use instead of a missing feature, and caches the answers per boot."""
