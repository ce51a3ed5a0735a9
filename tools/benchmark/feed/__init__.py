"""The change-feed rows of `make bench`: WatchUsers replay and live delivery.

They run against a user_svc of their own, on a fresh SQLite file (and, with `--database`,
again on an empty PostgreSQL database) whose history of N changes is written straight into
its tables after `python -m user_svc migrate`: users
rows as `UserRows.to_row` makes them, change rows carrying the orjson of that row as
`ResourceTable` writes them, consecutive revisions, the counter at N (`history`).

- replay: one watcher reads WatchUsers(start_revision=1) until it has N events;
  events/s, and user_svc's CPU time per event.
- live: 10 watchers follow the feed from the current revision + 1 (from now, without
  the race of `start_revision=0`) while writer processes drive UpdateUser open-loop on
  a fixed schedule (write i is due at start + i/rate, whether or not earlier ones have
  returned). Each event's lag is its receive time minus the user's update_time in the
  event; each watcher must receive every revision committed, once, in order.

Every client runs in a process of its own, apart from user_svc and from the benchmark
(`python -m benchmark.feed.client replay|watch|write ...` from `tools/`): it prints
`ready`, starts on a line from stdin, and prints one JSON line with what it saw. `runner`
starts them and user_svc; `results` holds what they measured and its Markdown and JSON;
`stream` reads a watch in revision order (the scale benchmark's feed part reads with it too).
"""
