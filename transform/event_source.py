"""Reading (or generating) a dataset's events inside the Beam pipeline (``recsys.data.streaming``).

The launcher loads only the items table; the events file is read by Beam's file I/O
(``FileSystems``: a local path, ``gs://``, ``s3://``, ``hdfs://``), split by byte range
across workers, parsed in chunks by the adapter's own parser, and grouped by user. Per
user the events get the canonical order of ``load_dataset`` (duplicates dropped, stable
sort by the adapter's time key with ties in file order), so the sequence rows built from
them are the ones the launcher-side path builds.

The file offset of each line is its file-order key (a Beam ``GroupByKey`` keeps no order);
an event's ``seq`` is its rank among its user's events, the only order the sequence
builder uses.

A generated dataset (``EventShards``: the synthetic shop) is made shard by shard
(:func:`GenerateUserEvents`): the launcher's shard specifications are a ``Create``, each is
made into its canonical events by a worker, and since a shard holds whole users in canonical
order its users come out grouped, with no shuffle.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io import filebasedsource

from recsys.data import streaming
from recsys.data.contract import DataValidationError

CHUNK = 4096  # lines parsed per call of the adapter's parser


class _OffsetLines(filebasedsource.FileBasedSource):
    """``(byte offset, line)`` of a text file after its header line; splittable by byte range.

    A line belongs to the range its first byte is in: a reader that starts inside the file
    skips to the next line start (the previous reader finishes the line it started).
    """

    def __init__(self, pattern: str, header_lines: int = 1):
        super().__init__(pattern, validate=False)
        self._header_lines = header_lines

    def read_records(self, file_name, range_tracker):
        start = range_tracker.start_position()
        with self.open_file(file_name) as f:
            if start > 0:
                f.seek(start - 1)
                position = start - 1 + len(f.readline())  # to the first line that starts at or after start
            else:
                position = 0
                for _ in range(self._header_lines):
                    position += len(f.readline())
            while True:
                if not range_tracker.try_claim(position):
                    return
                line = f.readline()
                if not line:
                    return
                yield position, line.decode("utf-8").rstrip("\r\n")
                position += len(line)


def read_header(path: str) -> str:
    """The first line of ``path`` (through Beam's filesystems)."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as f:
        return f.readline().decode("utf-8")


class _ParseChunk(beam.DoFn):
    """A batch of ``(offset, line)`` → ``(user_id, row)`` of events whose item is in the catalogue.

    Events with an unknown item go to the ``unknown`` output as ``(item_id, offset)`` (or fail
    the read when ``strict``), as ``build_dataset``'s policy does.
    """

    def __init__(self, source: streaming.EventLines, header: str):
        self._source = source
        self._header = header
        self._known = frozenset(source.items["item_id"].tolist())

    def process(self, batch):
        batch = [(o, line) for o, line in batch if line != ""]  # pandas skips blank lines
        if not batch:
            return
        offsets = [o for o, _ in batch]
        src = self._source
        try:
            events = src.parse(self._header, [line for _, line in batch])
        except DataValidationError as e:
            row = getattr(e, "row", None)
            where = f" (the line at byte {offsets[row - 1]})" if row and 0 < row <= len(offsets) else ""
            raise DataValidationError(src.events_source, None, getattr(e, "field", None),
                                      f"{getattr(e, 'problem', str(e))}{where}") from e
        if len(events) != len(offsets):
            raise ValueError(f"{src.events_source}: the parser returned {len(events)} events for {len(offsets)} lines")
        for offset, u, i, t, ts, o, s, d in zip(offsets, events["user_id"], events["item_id"], events["event_type"],
                                                events["timestamp"], events["order_id"], events["session_id"],
                                                events["dwell_ms"]):
            if i not in self._known:
                if src.strict:
                    raise DataValidationError(
                        src.events_source, None, "item_id",
                        f"item {i!r} (the line at byte {offset}) is not in the {src.items_source} table. Add it "
                        "to the items table, or load with strict=False to drop such events (they are counted "
                        "in the load report).")
                yield beam.pvalue.TaggedOutput("unknown", (i, offset))
                continue
            yield u, (offset, i, t, int(ts), o, s, float(d))


def _timestamp_range(events):
    return (events
            | "Timestamps" >> beam.Map(lambda kv: kv[1][3])
            | "Range" >> beam.CombineGlobally(_MinMax()))


class _MinMax(beam.CombineFn):
    def create_accumulator(self):
        return None

    def add_input(self, acc, t):
        return (t, t) if acc is None else (min(acc[0], t), max(acc[1], t))

    def merge_accumulators(self, accs):
        accs = [a for a in accs if a is not None]
        return (min(a[0] for a in accs), max(a[1] for a in accs)) if accs else None

    def extract_output(self, acc):
        return acc


class _UserEvents(beam.DoFn):
    """(user, rows) → (user, kept rows in canonical order, dropped duplicates)."""

    def __init__(self, time_key):
        self._time_key = time_key

    def process(self, element, ts_range):
        user, rows = element
        key = None
        if self._time_key is not None:
            lo, hi = ts_range
            key = lambda ts: self._time_key(ts, lo, hi)  # noqa: E731
        kept, duplicates = streaming.user_events(rows, key)
        yield user, kept, duplicates


def _first_unknown(pairs):
    """``(item, offset)`` pairs → the first ``N_EXAMPLES`` distinct items in file order."""
    return [item for _, item in sorted((o, i) for i, o in pairs)[:streaming.N_EXAMPLES]]


@beam.ptransform_fn
def ReadUserEvents(pbegin, source: streaming.EventLines, header: str):  # noqa: N802
    """The events of ``source`` per user, canonically ordered, and the dataset's load report.

    Returns ``{"users": PCollection of (user_id, [row, ...]), "report": PCollection of one LoadReport}``;
    a row is ``(offset, item_id, event_type, timestamp, order_id, session_id, dwell_ms)``.
    """
    parsed = (pbegin
              | "ReadLines" >> beam.io.Read(_OffsetLines(source.events_file))
              | "Chunks" >> beam.BatchElements(min_batch_size=CHUNK, max_batch_size=CHUNK)
              | "Parse" >> beam.ParDo(_ParseChunk(source, header)).with_outputs("unknown", main="events"))
    events = parsed.events
    ts_range = beam.pvalue.AsSingleton(_timestamp_range(events))
    per_user = (events
                | "GroupByUser" >> beam.GroupByKey()
                | "Canonical" >> beam.ParDo(_UserEvents(source.time_key), ts_range))
    users = per_user | "Kept" >> beam.Map(lambda e: (e[0], e[1]))

    summary = (per_user
               | "Summarise" >> beam.Map(lambda e: streaming.summarise_user(e[0], e[1], e[2], source.protocol))
               | "Sum" >> beam.CombineGlobally(streaming.merge_summaries))
    items_with_events = (users
                         | "Items" >> beam.FlatMap(lambda e: {r[1] for r in e[1]})
                         | "DistinctItems" >> beam.Distinct()
                         | "CountItems" >> beam.combiners.Count.Globally())
    orders = (users
              | "Orders" >> beam.FlatMap(lambda e: {r[4] for r in e[1] if r[4]})
              | "DistinctOrders" >> beam.Distinct()
              | "CountOrders" >> beam.combiners.Count.Globally())
    unknown_count = parsed.unknown | "CountUnknown" >> beam.combiners.Count.Globally()
    unknown_examples = (parsed.unknown
                        | "FirstOffset" >> beam.CombinePerKey(min)
                        | "FirstItems" >> beam.combiners.ToList()
                        | "Examples" >> beam.Map(_first_unknown))
    report = (pbegin
              | "One" >> beam.Create([None])
              | "Report" >> beam.Map(
                  lambda _, s, n_items, n_orders, n_unknown, examples: streaming.load_report(
                      source, s, n_items, n_orders, n_unknown, examples),
                  beam.pvalue.AsSingleton(summary), beam.pvalue.AsSingleton(items_with_events),
                  beam.pvalue.AsSingleton(orders), beam.pvalue.AsSingleton(unknown_count),
                  beam.pvalue.AsSingleton(unknown_examples)))
    return {"users": users, "report": report}


class _ShardUsers(beam.DoFn):
    """A shard → ``(user_id, rows)`` per user, canonically ordered, and the shard's summary (``summary``)."""

    def __init__(self, events, protocol: str):
        self._events = events
        self._protocol = protocol

    def process(self, shard):
        frame = self._events(shard)
        users = streaming.shard_user_rows(frame)
        yield beam.pvalue.TaggedOutput("summary", streaming.summarise_shard(frame, users, self._protocol))
        del frame
        yield from users


@beam.ptransform_fn
def GenerateUserEvents(pbegin, source: streaming.EventShards):  # noqa: N802
    """The events of ``source``'s shards per user, canonically ordered, and the dataset's load report.

    Returns what :func:`ReadUserEvents` returns; a row's offset is its position in its shard.
    Only the shard specifications, the shard function and the items' summary are pickled into
    the pipeline (not the items table).
    """
    generated = (pbegin
                 | "Shards" >> beam.Create(source.shards)
                 | "Generate" >> beam.ParDo(_ShardUsers(source.events, source.protocol)).with_outputs(
                     "summary", main="users"))
    items, notes = streaming.summarise_items(source.items), source.notes
    report = (generated.summary
              | "Sum" >> beam.CombineGlobally(streaming.merge_shard_summaries)
              | "Report" >> beam.Map(lambda s: streaming.shard_report(items, notes, s)))
    return {"users": generated.users, "report": report}
