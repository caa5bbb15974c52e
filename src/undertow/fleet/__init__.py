"""Fleet outputs (issue 22): events to NATS JetStream and ClickHouse, and their collector.

- :mod:`.urls`: ``--output URL`` values (``-``, ``nats://``, ``clickhouse+http://``), checked
  at parse time with a caret under the bad part;
- :mod:`.provenance`: where an event came from (``hostname machine_id boot_id run_id``);
- :mod:`.sinks`: the one mechanism every event-emitting command goes through: the command's
  JSON lines are fanned out to the sinks, each event with its provenance;
- :mod:`.nats`: the NATS client protocol over a socket (standard library);
- :mod:`.jetstream`: JetStream publishing with batched acks and a bounded spool; pull consumers;
- :mod:`.clickhouse`: batched ``INSERT ... FORMAT JSONEachRow`` over HTTP, the flat schema.

Nothing here is imported unless a command is given ``--output`` or runs ``undertow collect``.
"""
